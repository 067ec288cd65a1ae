// A small unpickler for torch.save's data.pkl: enough opcodes for dicts of tensors and ints.
import AuscultTensor
import Foundation

enum Pickle {
    struct Problem: Error, CustomStringConvertible { var description: String }

    /// A reference to a tensor's bytes inside the archive.
    struct TensorRef {
        var storageKey: String
        var dtype: String
        var offset: Int
        var size: [Int]
        var stride: [Int]

        func materialise(_ bytes: Data, name: String, file: String) throws -> Tensor {
            let elements: [String: StoredElement] = [
                "FloatStorage": .f32, "HalfStorage": .f16, "BFloat16Storage": .bf16,
            ]
            guard let element = elements[dtype] else {
                throw ModelLoadError(.corruptModel, "\(file): tensor '\(name)' has unsupported storage \(dtype)")
            }
            let width = element.byteWidth
            // Sizes, strides and offset come from the file: the last element's byte must be
            // computed without wrapping before it is compared with the storage.
            guard let count = Tensor.elementCount(size), size.count == stride.count, offset >= 0,
                stride.allSatisfy({ $0 >= 0 })
            else {
                throw ModelLoadError(
                    .corruptModel, "\(file): tensor '\(name)' has an impossible size \(size) or stride \(stride)")
            }
            var maxIndex = offset, wrapped = false
            for (s, st) in zip(size, stride) where s > 0 {
                let (step, o1) = (s - 1).multipliedReportingOverflow(by: st)
                let (sum, o2) = maxIndex.addingReportingOverflow(step)
                wrapped = wrapped || o1 || o2
                maxIndex = sum
            }
            let (end, o3) = (maxIndex &+ 1).multipliedReportingOverflow(by: width)
            guard count == 0 || (!wrapped && !o3 && maxIndex < Int.max && end <= bytes.count) else {
                throw ModelLoadError(.corruptModel, "\(file): tensor '\(name)' points past its storage")
            }
            return Tensor(
                decoding: bytes, byteOffset: offset * width, as: element, shape: size.isEmpty ? [1] : size,
                strides: size.isEmpty ? nil : stride)
        }
    }

    indirect enum Value {
        case none, bool(Bool), int(Int), float(Double), string(String)
        case tuple([Value]), list([Value]), dict([String: Value])
        case global(String), storage(key: String, dtype: String), tensor(TensorRef), mark
    }

    static func load(_ data: Data) throws -> Value {
        let b = [UInt8](data)
        var i = 0
        var stack = [Value]()
        var marks = [Int]()
        var memo = [Int: Value]()
        func need(_ n: Int) throws { if i + n > b.count { throw Problem(description: "truncated pickle") } }
        func le(_ n: Int) throws -> Int {
            try need(n); var v = 0
            for k in 0..<n { v |= Int(b[i + k]) << (8 * k) }
            i += n; return v
        }
        func pop() throws -> Value {
            guard let v = stack.popLast() else { throw Problem(description: "stack underflow") }; return v
        }
        func popMark() throws -> [Value] {
            guard let m = marks.popLast() else { throw Problem(description: "no mark") }
            let items = Array(stack[m...]); stack.removeSubrange(m...); return items
        }
        func str(_ n: Int) throws -> String {
            try need(n); defer { i += n }; return String(decoding: b[i..<(i + n)], as: UTF8.self)
        }
        func line() throws -> String {
            var s = ""
            while i < b.count, b[i] != 0x0A { s.append(Character(UnicodeScalar(b[i]))); i += 1 }
            i += 1; return s
        }
        func key(_ v: Value) -> String {
            switch v {
            case .string(let s): return s;
            case .int(let n): return String(n);
            default: return "\(v)"
            }
        }
        func setItems(_ items: [Value]) throws {
            guard case .dict(var d) = try pop() else { throw Problem(description: "SETITEMS on a non-dict") }
            var k = 0
            while k + 1 < items.count { d[key(items[k])] = items[k + 1]; k += 2 }
            stack.append(.dict(d))
        }
        while i < b.count {
            let op = b[i]; i += 1
            switch op {
            case 0x80: i += 1  // PROTO
            case 0x95: i += 8  // FRAME
            case 0x2E: return try pop()  // STOP
            case 0x7D: stack.append(.dict([:]))  // EMPTY_DICT
            case 0x5D: stack.append(.list([]))  // EMPTY_LIST
            case 0x29: stack.append(.tuple([]))  // EMPTY_TUPLE
            case 0x28: marks.append(stack.count)  // MARK
            case 0x71: memo[try le(1)] = stack.last  // BINPUT
            case 0x72: memo[try le(4)] = stack.last  // LONG_BINPUT
            case 0x94: memo[memo.count] = stack.last  // MEMOIZE
            case 0x68: stack.append(memo[try le(1)] ?? .none)  // BINGET
            case 0x6A: stack.append(memo[try le(4)] ?? .none)  // LONG_BINGET
            case 0x58: stack.append(.string(try str(try le(4))))  // BINUNICODE
            case 0x8C: stack.append(.string(try str(try le(1))))  // SHORT_BINUNICODE
            case 0x4B: stack.append(.int(try le(1)))  // BININT1
            case 0x4D: stack.append(.int(try le(2)))  // BININT2
            case 0x4A: stack.append(.int(Int(Int32(truncatingIfNeeded: try le(4)))))  // BININT
            case 0x8A:  // LONG1
                let n = try le(1); var v = try n > 0 ? le(n) : 0
                if n > 0 && n < 8 && v & (1 << (8 * n - 1)) != 0 { v -= 1 << (8 * n) }
                stack.append(.int(v))
            case 0x47:  // BINFLOAT (big-endian)
                try need(8); var bits: UInt64 = 0
                for k in 0..<8 { bits = bits << 8 | UInt64(b[i + k]) }
                i += 8; stack.append(.float(Double(bitPattern: bits)))
            case 0x4E: stack.append(.none)
            case 0x88: stack.append(.bool(true))
            case 0x89: stack.append(.bool(false))
            case 0x74: stack.append(.tuple(try popMark()))  // TUPLE
            case 0x85: stack.append(.tuple([try pop()]))  // TUPLE1
            case 0x86: let y = try pop(), x = try pop(); stack.append(.tuple([x, y]))
            case 0x87: let z = try pop(), y = try pop(), x = try pop(); stack.append(.tuple([x, y, z]))
            case 0x63: let m = try line(), n = try line(); stack.append(.global(m + "." + n))  // GLOBAL
            case 0x93:  // STACK_GLOBAL
                let n = try pop(), m = try pop(); stack.append(.global(key(m) + "." + key(n)))
            case 0x75: try setItems(try popMark())  // SETITEMS
            case 0x73: let v = try pop(), k = try pop(); try setItems([k, v])  // SETITEM
            case 0x61:  // APPEND
                let v = try pop()
                if case .list(var l) = try pop() { l.append(v); stack.append(.list(l)) }
            case 0x65:  // APPENDS
                let items = try popMark()
                if case .list(var l) = try pop() { l += items; stack.append(.list(l)) }
            case 0x62: _ = try pop()  // BUILD: state ignored (e.g. _metadata)
            case 0x51:  // BINPERSID
                guard case .tuple(let t) = try pop(), t.count >= 3, case .global(let type) = t[1] else {
                    throw Problem(description: "unexpected persistent id")
                }
                stack.append(.storage(key: key(t[2]), dtype: String(type.split(separator: ".").last ?? "")))
            case 0x52:  // REDUCE
                let args = try pop(), fn = try pop()
                guard case .global(let name) = fn, case .tuple(let a) = args else { stack.append(.none); break }
                switch name {
                case "torch._utils._rebuild_tensor_v2", "torch._utils._rebuild_tensor":
                    guard a.count >= 4, case .storage(let k, let dt) = a[0], case .int(let off) = a[1],
                        case .tuple(let sz) = a[2], case .tuple(let st) = a[3]
                    else {
                        throw Problem(description: "malformed tensor record")
                    }
                    func ints(_ v: [Value]) -> [Int] {
                        v.compactMap { if case .int(let n) = $0 { return n } else { return nil } }
                    }
                    stack.append(
                        .tensor(TensorRef(storageKey: k, dtype: dt, offset: off, size: ints(sz), stride: ints(st))))
                case "torch._utils._rebuild_parameter":
                    stack.append(a.first ?? .none)
                case "collections.OrderedDict", "builtins.dict":
                    stack.append(.dict([:]))
                default:
                    stack.append(.none)
                }
            default:
                throw Problem(description: String(format: "unsupported pickle opcode 0x%02x at byte %d", op, i - 1))
            }
        }
        throw Problem(description: "pickle has no STOP")
    }
}
