// Reading and writing the safetensors format (8-byte header length, JSON header, raw data).
import CAuscultKernels
import Foundation

/// An error reading or writing a tensor file: a code, a message naming the file, the cause.
public struct TensorFileError: AuscultError, Sendable {
    public enum Code: String, Sendable { case unreadable, corrupt, unsupportedDType, writeFailed }
    public var code: Code
    public var message: String
    public var path: String
    public var underlying: (any Error)?
    public var description: String { "\(path): \(message)" + (underlying.map { " (\($0))" } ?? "") }
    public init(_ code: Code, _ message: String, path: String, cause: (any Error)? = nil) {
        self.code = code; self.message = message; self.path = path; self.underlying = cause
    }
}

/// A safetensors file, memory-mapped; tensors are converted to Float32 on access.
public struct SafeTensorsFile: Sendable {
    /// One entry of the header.
    public struct Entry: Sendable {
        public var dtype: String
        public var shape: [Int]
        public var range: Range<Int>
    }
    public let path: String
    public let entries: [String: Entry]
    public let metadata: [String: String]
    private let data: Data
    private let base: Int

    /// Maps `path` and parses its header; throws a `TensorFileError` naming the file on any defect.
    public init(path: String) throws {
        self.path = path
        guard let d = try? Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) else {
            throw TensorFileError(.unreadable, "cannot read the file (missing or not readable)", path: path)
        }
        guard d.count >= 8 else { throw TensorFileError(.corrupt, "too short for a safetensors header", path: path) }
        let declared = d.withUnsafeBytes { UInt64(littleEndian: $0.loadUnaligned(as: UInt64.self)) }
        guard declared > 0, declared <= UInt64(d.count - 8) else {
            throw TensorFileError(
                .corrupt, "the header length \(declared) does not fit the file's \(d.count) bytes", path: path)
        }
        let n = Int(declared)
        guard let json = try? JSONSerialization.jsonObject(with: d.subdata(in: 8..<(8 + n))) as? [String: Any]
        else {
            throw TensorFileError(.corrupt, "the header is not valid safetensors JSON", path: path)
        }
        var entries = [String: Entry]()
        var meta = [String: String]()
        for (k, v) in json {
            if k == "__metadata__" { meta = (v as? [String: String]) ?? [:]; continue }
            guard let e = v as? [String: Any], let dt = e["dtype"] as? String, let sh = e["shape"] as? [Int],
                let off = e["data_offsets"] as? [Int], off.count == 2, off[0] >= 0, off[0] <= off[1],
                off[1] <= d.count - 8 - n
            else {
                throw TensorFileError(
                    .corrupt, "entry '\(k)' is malformed or points outside the file's data", path: path)
            }
            // The element count must not wrap: a shape is checked against its byte range on access.
            guard Tensor.elementCount(sh) != nil else {
                throw TensorFileError(.corrupt, "entry '\(k)' has an impossible shape \(sh)", path: path)
            }
            entries[k] = Entry(dtype: dt, shape: sh, range: off[0]..<off[1])
        }
        self.entries = entries
        self.metadata = meta
        self.data = d
        self.base = 8 + n
    }

    /// Names of all tensors, sorted.
    public var names: [String] { entries.keys.sorted() }

    /// The tensor `name` as Float32 (F32, F16, BF16, I32, I64 and U8/I8 stored types are converted).
    public func tensor(_ name: String) throws -> Tensor {
        guard let e = entries[name] else {
            throw TensorFileError(.corrupt, "no tensor named '\(name)'", path: path)
        }
        let count = e.shape.reduce(1, *)  // checked not to wrap when the header was read
        let elements: [String: StoredElement] = [
            "F32": .f32, "I32": .i32, "I64": .i64, "F64": .f64, "F16": .f16, "BF16": .bf16, "U8": .u8, "BOOL": .u8,
            "I8": .i8,
        ]
        guard let element = elements[e.dtype] else {
            throw TensorFileError(.unsupportedDType, "tensor '\(name)' has unsupported dtype \(e.dtype)", path: path)
        }
        let width = element.byteWidth
        guard count.multipliedReportingOverflow(by: width) == (e.range.count, false) else {
            throw TensorFileError(
                .corrupt, "tensor '\(name)' holds \(e.range.count) bytes, shape \(e.shape) needs \(count * width)",
                path: path)
        }
        return Tensor(decoding: data, byteOffset: base + e.range.lowerBound, as: element, shape: e.shape)
    }

    /// Integer tensor `name` (I32 or I64) as `[Int]`.
    /// Stored as I64 or I32 the ids are read exactly; other dtypes go through `tensor` and must
    /// hold whole numbers.
    public func integers(_ name: String) throws -> [Int] {
        guard let e = entries[name], e.dtype == "I64" || e.dtype == "I32" else {
            let t = try tensor(name)
            if let bad = t.storage.first(where: { $0.rounded() != $0 || abs($0) > 16_777_216 }) {
                throw TensorFileError(.corrupt, "tensor '\(name)' holds \(bad), not an integer id", path: path)
            }
            return t.storage.map { Int($0) }
        }
        let width = e.dtype == "I64" ? 8 : 4
        let count = e.shape.reduce(1, *)
        guard count.multipliedReportingOverflow(by: width) == (e.range.count, false) else {
            throw TensorFileError(
                .corrupt, "tensor '\(name)' holds \(e.range.count) bytes, shape \(e.shape) needs \(count * width)",
                path: path)
        }
        return data.withUnsafeBytes { raw in
            let p = raw.baseAddress! + base + e.range.lowerBound
            return (0..<count).map { i in
                width == 8
                    ? Int(Int64(littleEndian: p.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)))
                    : Int(Int32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)))
            }
        }
    }

    /// Writes `tensors` (as `precision`, F32 unless told) and `integers` (as I64, e.g. token ids)
    /// to `path` as a safetensors file, keys sorted, through a temporary file renamed into place.
    public static func write(
        _ tensors: [String: Tensor], integers: [String: [Int]] = [:],
        metadata: [String: String] = [:], precision: FloatPrecision = .f32, to path: String
    ) throws {
        if let both = tensors.keys.first(where: { integers[$0] != nil }) {
            throw TensorFileError(.writeFailed, "'\(both)' is given both as a tensor and as integers", path: path)
        }
        var header = [String: Any]()
        if !metadata.isEmpty { header["__metadata__"] = metadata }
        var offset = 0
        let keys = (Array(tensors.keys) + Array(integers.keys)).sorted()
        for k in keys {
            let (dtype, shape, bytes) =
                tensors[k].map { (precision.safetensorsName, $0.shape, precision.width * $0.count) }
                ?? ("I64", [integers[k]!.count], 8 * integers[k]!.count)
            header[k] = ["dtype": dtype, "shape": shape, "data_offsets": [offset, offset + bytes]] as [String: Any]
            offset += bytes
        }
        var json = try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])
        while (json.count + 8) % 8 != 0 { json.append(0x20) }
        var out = Data()
        out.reserveCapacity(8 + json.count + offset)
        withUnsafeBytes(of: UInt64(json.count).littleEndian) { out.append(contentsOf: $0) }
        out.append(json)
        for k in keys {
            if let t = tensors[k] {
                out.append(t.encoded(as: precision))
            } else {
                integers[k]!.map { Int64($0).littleEndian }.withUnsafeBytes { out.append(contentsOf: $0) }
            }
        }
        do { try out.write(to: URL(fileURLWithPath: path), options: .atomic) } catch {
            throw TensorFileError(.writeFailed, "cannot write: \(error.localizedDescription)", path: path)
        }
    }
}

/// The floating-point type a tensor file stores its values as.
public enum FloatPrecision: String, CaseIterable, Sendable {
    case f32, f16, bf16
    /// The dtype's name in a safetensors header (`F32`, `F16`, `BF16`).
    public var safetensorsName: String { rawValue.uppercased() }
    /// Bytes per value.
    public var width: Int { self == .f32 ? 4 : 2 }
    /// The name PyTorch gives the type (`float32`, `float16`, `bfloat16`), as transformers' configs write it.
    public var torchName: String { ["f32": "float32", "f16": "float16", "bf16": "bfloat16"][rawValue]! }
}

/// `x` rounded to bfloat16 (nearest, ties to even, as PyTorch's `.to(torch.bfloat16)`), as its bits.
@inline(__always)
func bfloat16Bits(_ x: Float) -> UInt16 {
    if x.isNaN { return 0x7FC0 }
    let b = x.bitPattern
    return UInt16(truncatingIfNeeded: (b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16)
}

/// IEEE half-precision conversion.
public enum HalfPrecision {
    /// Converts `count` little-endian Float16 values at `p` (any alignment) to Float32: F16C
    /// instructions where the CPU has them (`auscult_half_to_float`; a 39 M-parameter fp16 model
    /// converted element by element in baseline x86-64 Swift calls a runtime function per value).
    public static func toFloat(_ p: UnsafeRawPointer, count: Int, out: UnsafeMutablePointer<Float>) {
        auscult_half_to_float(p, count, out)
    }
}
