// The n-d Float32 array that every layer above passes around.

/// A dense, row-major Float32 array with value semantics (copy-on-write through `[Float]`).
///
/// Shapes are written outermost first, as in PyTorch: a `[F, d]` tensor holds `F` rows of `d`
/// contiguous floats.
public struct Tensor: Sendable, Equatable {
    /// The number of elements of `shape`, or nil when a size is negative or their product does
    /// not fit an Int: what a reader of a file checks before trusting a shape it was given.
    public static func elementCount(_ shape: [Int]) -> Int? {
        var count = 1
        for dim in shape {
            let (product, overflow) = count.multipliedReportingOverflow(by: dim)
            guard dim >= 0, !overflow else { return nil }
            count = product
        }
        return count
    }

    /// Extent of each axis, outermost first.
    public private(set) var shape: [Int]
    /// The elements in row-major order; `storage.count == shape.product`.
    public var storage: [Float]

    /// A tensor of `shape` filled with `value`.
    public init(zeros shape: [Int], value: Float = 0) {
        self.shape = shape
        self.storage = [Float](repeating: value, count: shape.reduce(1, *))
    }

    /// A tensor that takes ownership of `storage`; its count must equal the product of `shape`.
    public init(shape: [Int], storage: [Float]) {
        precondition(
            shape.reduce(1, *) == storage.count,
            "Tensor: \(storage.count) elements do not fill shape \(shape)")
        self.shape = shape
        self.storage = storage
    }

    /// A tensor whose elements are produced by `body` writing into uninitialised storage.
    public init(shape: [Int], initializingWith body: (UnsafeMutableBufferPointer<Float>) throws -> Void) rethrows {
        let n = shape.reduce(1, *)
        self.shape = shape
        self.storage = try [Float](unsafeUninitializedCapacity: n) { buf, count in
            try body(buf)
            count = n
        }
    }

    /// Number of elements.
    @inlinable public var count: Int { storage.count }
    /// Number of axes.
    @inlinable public var rank: Int { shape.count }

    /// The same elements under a new shape with the same element count.
    public func reshaped(_ newShape: [Int]) -> Tensor {
        Tensor(shape: newShape, storage: storage)
    }

    /// Row `i` of the outermost axis, as a tensor of the remaining shape.
    public func row(_ i: Int) -> Tensor {
        let inner = Array(shape.dropFirst())
        let n = inner.reduce(1, *)
        return Tensor(shape: inner, storage: Array(storage[(i * n)..<((i + 1) * n)]))
    }

    /// Rows `range` of the outermost axis.
    public func rows(_ range: Range<Int>) -> Tensor {
        let n = shape.dropFirst().reduce(1, *)
        var s = shape
        s[0] = range.count
        return Tensor(shape: s, storage: Array(storage[(range.lowerBound * n)..<(range.upperBound * n)]))
    }

    /// Stacks tensors of equal shape along a new outermost axis.
    public static func stack(_ items: [Tensor]) -> Tensor {
        precondition(!items.isEmpty)
        let inner = items[0].shape
        var all = [Float]()
        all.reserveCapacity(items.count * items[0].count)
        for t in items {
            precondition(t.shape == inner, "stack: shape \(t.shape) differs from \(inner)")
            all.append(contentsOf: t.storage)
        }
        return Tensor(shape: [items.count] + inner, storage: all)
    }

    /// Concatenates along the outermost axis; inner shapes must agree.
    public static func concatenate(_ items: [Tensor]) -> Tensor {
        precondition(!items.isEmpty)
        let inner = Array(items[0].shape.dropFirst())
        var all = [Float]()
        var rows = 0
        for t in items {
            precondition(Array(t.shape.dropFirst()) == inner, "concatenate: inner shapes differ")
            all.append(contentsOf: t.storage)
            rows += t.shape[0]
        }
        return Tensor(shape: [rows] + inner, storage: all)
    }
}

extension Tensor {
    /// Largest absolute difference to `other` (same shape), and the largest |other| for scale.
    public func maxAbsDifference(to other: Tensor) -> (diff: Float, scale: Float) {
        precondition(shape == other.shape, "compare: \(shape) vs \(other.shape)")
        var d: Float = 0, s: Float = 0
        for i in 0..<count {
            d = max(d, abs(storage[i] - other.storage[i]))
            s = max(s, abs(other.storage[i]))
        }
        return (d, s)
    }
}
