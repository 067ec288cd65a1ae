// Looking at results: element access, slices along any axis, argmax and top-k, conversion to and
// from Swift arrays. Convenience for users and analysis code, not for hot loops.

extension Tensor {
    /// A tensor holding `values` under `shape` (default: one axis of `values.count`).
    public init(_ values: [Float], shape: [Int]? = nil) {
        self.init(shape: shape ?? [values.count], storage: values)
    }

    /// A rank-2 tensor from equal-length rows.
    public init(rows: [[Float]]) {
        let width = rows.first?.count ?? 0
        precondition(rows.allSatisfy { $0.count == width }, "Tensor(rows:): rows of unequal length")
        self.init(shape: [rows.count, width], storage: rows.flatMap { $0 })
    }

    /// The elements in row-major order.
    public var scalars: [Float] { storage }

    /// The single element of a one-element tensor.
    public var scalar: Float {
        precondition(count == 1, "scalar: tensor of shape \(shape) holds \(count) elements")
        return storage[0]
    }

    /// The flat offset of a full index (one entry per axis; negative entries count from the end).
    public func offset(of index: [Int]) -> Int {
        precondition(index.count == rank, "index \(index) has \(index.count) entries for a tensor of rank \(rank)")
        var o = 0
        for (axis, i) in index.enumerated() {
            let n = shape[axis], j = i < 0 ? i + n : i
            precondition(j >= 0 && j < n, "index \(i) outside 0..<\(n) on axis \(axis) of shape \(shape)")
            o = o * n + j
        }
        return o
    }

    /// The element at a full index, e.g. `t[3, 0, -1]`.
    public subscript(_ index: Int...) -> Float {
        get { storage[offset(of: index)] }
        set { storage[offset(of: index)] = newValue }
    }

    /// The sub-tensor at `index` along the outermost axis (negative counts from the end).
    public subscript(at index: Int) -> Tensor {
        let n = shape.first ?? 0
        let i = index < 0 ? index + n : index
        precondition(rank >= 1 && i >= 0 && i < n, "index \(index) outside 0..<\(n) of shape \(shape)")
        return row(i)
    }

    /// Elements `range` along `axis` (other axes whole); the result keeps the axis.
    public func slice(_ range: Range<Int>, axis: Int = 0) -> Tensor {
        let ax = normalizedAxis(axis)
        precondition(
            range.lowerBound >= 0 && range.upperBound <= shape[ax],
            "slice \(range) outside 0..<\(shape[ax]) on axis \(ax) of shape \(shape)")
        let outer = shape[..<ax].reduce(1, *), inner = shape[(ax + 1)...].reduce(1, *)
        var newShape = shape
        newShape[ax] = range.count
        var out = [Float]()
        out.reserveCapacity(outer * range.count * inner)
        for o in 0..<outer {
            let base = (o * shape[ax] + range.lowerBound) * inner
            out.append(contentsOf: storage[base..<(base + range.count * inner)])
        }
        return Tensor(shape: newShape, storage: out)
    }

    /// Writes `values` into elements `range` along `axis` (the inverse of `slice`): `values` has
    /// this shape with `range.count` on that axis.
    public mutating func replaceSlice(_ range: Range<Int>, axis: Int = 0, with values: Tensor) {
        let ax = normalizedAxis(axis)
        var expected = shape
        expected[ax] = range.count
        precondition(
            range.lowerBound >= 0 && range.upperBound <= shape[ax] && values.shape == expected,
            "replaceSlice \(range) on axis \(ax) of shape \(shape) with \(values.shape)")
        let outer = shape[..<ax].reduce(1, *), inner = shape[(ax + 1)...].reduce(1, *), run = range.count * inner
        for o in 0..<outer {
            let base = (o * shape[ax] + range.lowerBound) * inner
            storage.replaceSubrange(base..<(base + run), with: values.storage[(o * run)..<((o + 1) * run)])
        }
    }

    /// Rows `indices` of the outermost axis, in that order (an embedding lookup, a subset of
    /// sequences): `[indices.count, …]`.
    public func gather(rows indices: [Int]) -> Tensor {
        let n = shape.first ?? 0, inner = count / max(n, 1)
        var newShape = shape
        newShape[0] = indices.count
        return Tensor(shape: newShape) { out in
            storage.withUnsafeBufferPointer { src in
                for (k, i) in indices.enumerated() {
                    precondition(i >= 0 && i < n, "gather: row \(i) outside 0..<\(n)")
                    (out.baseAddress! + k * inner).initialize(from: src.baseAddress! + i * inner, count: inner)
                }
            }
        }
    }

    /// The inverse of `gather`: row k of this tensor becomes row `indices[k]` of a tensor of
    /// `rows` rows, every other row zero. Each element is written once (no zero fill first: for a
    /// 160-row step of logits that fill was 95 MB of extra writes).
    public func scatter(rows indices: [Int], into rows: Int) -> Tensor {
        let inner = count / max(shape.first ?? 1, 1)
        var slot = [Int](repeating: -1, count: rows)
        for (k, r) in indices.enumerated() {
            precondition(r >= 0 && r < rows && slot[r] < 0, "scatter: row \(r) outside 0..<\(rows) or repeated")
            slot[r] = k
        }
        var newShape = shape
        newShape[0] = rows
        return Tensor(shape: newShape) { out in
            storage.withUnsafeBufferPointer { src in
                for r in 0..<rows {
                    let row = out.baseAddress! + r * inner
                    if slot[r] >= 0 {
                        row.initialize(from: src.baseAddress! + slot[r] * inner, count: inner)
                    } else {
                        row.initialize(repeating: 0, count: inner)
                    }
                }
            }
        }
    }

    /// Index `index` along `axis`, with that axis removed (`t.select(2, axis: 1)` of `[A, B, C]` is `[A, C]`).
    public func select(_ index: Int, axis: Int) -> Tensor {
        let ax = normalizedAxis(axis)
        let i = index < 0 ? index + shape[ax] : index
        let one = slice(i..<(i + 1), axis: ax)
        var s = one.shape
        s.remove(at: ax)
        return one.reshaped(s)
    }

    /// Positions of the largest element along `axis` (first on ties), shape without that axis.
    public func argmax(axis: Int = -1) -> [Int] {
        topK(1, axis: axis).indices.map { $0[0] }
    }

    /// The `k` largest elements along `axis`, largest first (earlier index first on ties), for
    /// each position of the other axes in row-major order. NaN never ranks above a number.
    public func topK(_ k: Int, axis: Int = -1) -> (values: [[Float]], indices: [[Int]]) {
        let ax = normalizedAxis(axis)
        let n = shape[ax]
        precondition(k >= 1 && k <= n, "topK: k = \(k) outside 1…\(n) on axis \(ax) of shape \(shape)")
        let outer = shape[..<ax].reduce(1, *), inner = shape[(ax + 1)...].reduce(1, *)
        var values = [[Float]](), indices = [[Int]]()
        values.reserveCapacity(outer * inner); indices.reserveCapacity(outer * inner)
        for o in 0..<outer {
            for i in 0..<inner {
                let at = { (j: Int) in self.storage[(o * n + j) * inner + i] }
                let top = Self.largestFirst(count: n, k: k, skippingNaN: true, at)
                indices.append(top)
                values.append(top.map(at))
            }
        }
        return (values, indices)
    }

    /// Indices of the `k` largest of `count` values `value(0) …`, largest first, the earlier
    /// index first on ties: one pass keeping the best k in order, each value compared with the
    /// worst kept. NaNs are skipped with `skippingNaN`, else one enters only while fewer than k are
    /// kept (it compares below everything after).
    @inlinable
    static func largestFirst(count: Int, k: Int, skippingNaN: Bool, _ value: (Int) -> Float) -> [Int] {
        var top = [(value: Float, index: Int)]()
        for i in 0..<count {
            let x = value(i)
            if skippingNaN && x.isNaN { continue }
            if top.count >= k && !(x > top[top.count - 1].value) { continue }
            var at = top.count
            while at > 0 && top[at - 1].value < x { at -= 1 }
            top.insert((x, i), at: at)
            if top.count > k { top.removeLast() }
        }
        return top.map(\.index)
    }

    /// Sum along `axis`, which is removed (in Double, rounded once).
    public func sum(axis: Int) -> Tensor {
        let ax = normalizedAxis(axis)
        let n = shape[ax], outer = shape[..<ax].reduce(1, *), inner = shape[(ax + 1)...].reduce(1, *)
        var s = shape
        s.remove(at: ax)
        return Tensor(shape: s) { out in
            for o in 0..<outer {
                for i in 0..<inner {
                    var acc = 0.0
                    for j in 0..<n { acc += Double(storage[(o * n + j) * inner + i]) }
                    out[o * inner + i] = Float(acc)
                }
            }
        }
    }

    /// `axis` as a non-negative axis number (negative counts from the last axis).
    func normalizedAxis(_ axis: Int) -> Int {
        let ax = axis < 0 ? axis + rank : axis
        precondition(ax >= 0 && ax < rank, "axis \(axis) outside a tensor of rank \(rank)")
        return ax
    }
}
