// Numbers as weight files store them (safetensors, CTranslate2's model.bin, PyTorch's pickled
// storages), decoded into tensors here so the loaders above read bytes, never pointers.
import Foundation

/// How one number is stored in a file, little-endian.
public enum StoredElement: Sendable {
    case f32, f64, f16, bf16, i8, u8, i16, i32, i64

    /// Bytes per element.
    public var byteWidth: Int {
        switch self {
        case .i8, .u8: 1
        case .f16, .bf16, .i16: 2
        case .f32, .i32: 4
        case .f64, .i64: 8
        }
    }
}

extension Tensor {
    /// The tensor of `shape` whose elements are stored as `element` from byte `byteOffset` of
    /// `data`: contiguous, or element i at element offset Σ index·stride with `strides`
    /// (PyTorch's strided storages; row-major strides read as contiguous). The caller checks the
    /// bytes are there; a range past the end stops the process.
    public init(
        decoding data: Data, byteOffset: Int, as element: StoredElement, shape: [Int], strides given: [Int]? = nil
    ) {
        let count = shape.reduce(1, *), w = element.byteWidth
        let size = shape
        var rowMajor = [Int](repeating: 1, count: size.count)
        for ax in size.indices.dropLast().reversed() { rowMajor[ax] = rowMajor[ax + 1] * size[ax + 1] }
        let strides = given == rowMajor ? nil : given
        var last = count == 0 ? -1 : 0
        if let strides {
            precondition(strides.count == size.count, "decoding: \(strides.count) strides for shape \(size)")
            for (s, st) in zip(size, strides) where s > 0 { last += (s - 1) * st }
        } else {
            last = count - 1
        }
        precondition(byteOffset >= 0 && byteOffset + (last + 1) * w <= data.count, "decoding: bytes past the end")
        self.init(shape: size) { out in
            guard count > 0 else { return }
            data.withUnsafeBytes { raw in
                let p = raw.baseAddress! + byteOffset
                func at(_ i: Int) -> Int {
                    guard let strides else { return i }
                    var rem = i, idx = 0
                    for ax in strides.indices.reversed() {
                        idx += (rem % size[ax]) * strides[ax]
                        rem /= size[ax]
                    }
                    return idx
                }
                if element == .f16 && strides == nil {
                    return HalfPrecision.toFloat(p, count: count, out: out.baseAddress!)
                }
                for i in 0..<count {
                    let o = at(i) * w
                    out[i] =
                        switch element {
                        case .f32: p.loadUnaligned(fromByteOffset: o, as: Float.self)
                        case .f64: Float(p.loadUnaligned(fromByteOffset: o, as: Double.self))
                        case .f16: Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: o, as: UInt16.self)))
                        case .bf16: Float(bitPattern: UInt32(p.loadUnaligned(fromByteOffset: o, as: UInt16.self)) << 16)
                        case .i8: Float(p.load(fromByteOffset: o, as: Int8.self))
                        case .u8: Float(p.load(fromByteOffset: o, as: UInt8.self))
                        case .i16: Float(p.loadUnaligned(fromByteOffset: o, as: Int16.self))
                        case .i32: Float(p.loadUnaligned(fromByteOffset: o, as: Int32.self))
                        case .i64: Float(p.loadUnaligned(fromByteOffset: o, as: Int64.self))
                        }
                }
            }
        }
    }
}

extension Tensor {
    /// The elements as little-endian bytes of `precision` (f16 and bf16 rounded to nearest,
    /// ties to even, as PyTorch's `.to(dtype)`).
    public func encoded(as precision: FloatPrecision) -> Data {
        switch precision {
        case .f32: return storage.map { $0.bitPattern.littleEndian }.withUnsafeBytes { Data($0) }
        case .f16, .bf16:
            let half = storage.map { precision == .f16 ? Float16($0).bitPattern : bfloat16Bits($0) }
            return half.map { $0.littleEndian }.withUnsafeBytes { Data($0) }
        }
    }
}

/// Little-endian unsigned integers in bytes (zip directories, file headers).
public enum LittleEndian {
    /// The `bytes`-byte unsigned integer at `offset` of `data` (counted from its first byte);
    /// nil when it runs past the end.
    public static func uint(_ data: Data, at offset: Int, bytes: Int) -> Int? {
        guard offset >= 0, bytes > 0, bytes <= 8, offset <= data.count - bytes else { return nil }
        var v: UInt64 = 0
        for k in (0..<bytes).reversed() { v = v << 8 | UInt64(data[data.startIndex + offset + k]) }
        return Int(truncatingIfNeeded: v)
    }
}
