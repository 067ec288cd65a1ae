// Row-wise operations the analysis code needs (TransformerLens's `apply_ln_to_stack` and
// `logit_attrs`, means over clips, growing caches), so the layers above never index `storage`:
// a backend that keeps tensors elsewhere implements these, not every analysis.
import Foundation

extension Tensor {
    /// Each row along the last axis minus its mean, divided by the scale of its position:
    /// `[C, T, d]` with `scales` of `T` elements (`[T]` or `[T, 1]`) gives `[C, T, d]`, the
    /// LayerNorm of a stack of components with the stream's own scale (γ and β not applied).
    /// Mean and quotient in Double, rounded once.
    public func centered(dividingRowsBy scales: Tensor) -> Tensor {
        precondition(rank == 3 && scales.count == shape[1], "centered: \(shape) rows by \(scales.shape) scales")
        let c = shape[0], t = shape[1], d = shape[2]
        return Tensor(shape: shape) { out in
            for k in 0..<c {
                for p in 0..<t {
                    let base = (k * t + p) * d
                    var mean = 0.0
                    for j in 0..<d { mean += Double(storage[base + j]) }
                    mean /= Double(d)
                    let s = Double(scales.storage[p])
                    for j in 0..<d { out[base + j] = Float((Double(storage[base + j]) - mean) / s) }
                }
            }
        }
    }

    /// Dot products along the last axis with one direction per position: `[C, T, d]` and
    /// `directions` `[T][d]` give `[C, T]`, accumulated in Double and rounded once.
    public func dots(alongLastAxisWith directions: [[Double]]) -> Tensor {
        precondition(
            rank == 3 && directions.count == shape[1] && directions.allSatisfy { $0.count == shape[2] },
            "dots: \(shape) with \(directions.count) directions")
        let c = shape[0], t = shape[1], d = shape[2]
        return Tensor(shape: [c, t]) { out in
            for k in 0..<c {
                for p in 0..<t {
                    var s = 0.0
                    for j in 0..<d { s += Double(storage[(k * t + p) * d + j]) * directions[p][j] }
                    out[k * t + p] = Float(s)
                }
            }
        }
    }

    /// Log-softmax along the last axis in Double, one array per row (every leading axis
    /// flattened): `[…, V]` gives `count / V` rows of V log-probabilities.
    public func logSoftmaxRows() -> [[Double]] {
        let v = shape.last ?? 0, rows = v == 0 ? 0 : count / v
        return (0..<rows).map { r in
            let row = storage[(r * v)..<((r + 1) * v)]
            var m = -Double.infinity
            for x in row { m = max(m, Double(x)) }
            var s = 0.0
            for x in row { s += exp(Double(x) - m) }
            let lse = m + log(s)
            return row.map { Double($0) - lse }
        }
    }

    /// The elementwise mean of tensors of one shape, accumulated in Double and rounded once.
    public static func mean(_ tensors: [Tensor]) -> Tensor {
        guard let first = tensors.first else { return Tensor(zeros: [0]) }
        precondition(tensors.allSatisfy { $0.shape == first.shape }, "mean of tensors of different shapes")
        var sum = [Double](repeating: 0, count: first.count)
        for t in tensors { for i in 0..<t.count { sum[i] += Double(t.storage[i]) } }
        let n = Double(tensors.count)
        return Tensor(shape: first.shape, storage: sum.map { Float($0 / n) })
    }

    /// The index of the first element that is NaN or infinite, if any.
    public var firstNonFiniteIndex: Int? { storage.firstIndex { !$0.isFinite } }

    /// `a` and `b` concatenated along `axis`, every later axis zero-padded to the larger extent
    /// (a cache growing by decoding steps: a self-attention pattern's key axis grows too).
    ///
    /// When the later axes agree each outer index is two contiguous block copies; otherwise
    /// elements are placed one by one.
    public static func joined(_ a: Tensor, _ b: Tensor, axis: Int) -> Tensor {
        precondition(
            a.rank == b.rank && axis >= 0 && axis < a.rank && a.shape[..<axis] == b.shape[..<axis],
            "joined: \(a.shape) and \(b.shape) along axis \(axis)")
        var shape = a.shape
        shape[axis] = a.shape[axis] + b.shape[axis]
        for ax in (axis + 1)..<a.rank { shape[ax] = max(a.shape[ax], b.shape[ax]) }
        if Array(a.shape[(axis + 1)...]) == Array(b.shape[(axis + 1)...]) {
            let outer = a.shape[..<axis].reduce(1, *), inner = a.shape[(axis + 1)...].reduce(1, *)
            let na = a.shape[axis] * inner, nb = b.shape[axis] * inner
            var out = [Float]()
            out.reserveCapacity(outer * (na + nb))
            for o in 0..<outer {
                out.append(contentsOf: a.storage[(o * na)..<((o + 1) * na)])
                out.append(contentsOf: b.storage[(o * nb)..<((o + 1) * nb)])
            }
            return Tensor(shape: shape, storage: out)
        }
        var out = Tensor(zeros: shape)
        func copy(_ t: Tensor, offset: Int) {
            var idx = [Int](repeating: 0, count: t.rank)
            for i in 0..<t.count {
                var rem = i
                for ax in stride(from: t.rank - 1, through: 0, by: -1) {
                    idx[ax] = rem % t.shape[ax]; rem /= t.shape[ax]
                }
                var o = 0
                for ax in 0..<t.rank { o = o * shape[ax] + idx[ax] + (ax == axis ? offset : 0) }
                out.storage[o] = t.storage[i]
            }
        }
        copy(a, offset: 0)
        copy(b, offset: a.shape[axis])
        return out
    }
}

extension Tensor {
    /// The mean over rows of KL(target ‖ softmax(self)) for logits `[N, V]` and target
    /// log-probabilities `targetLogp` `[N, V]`, in Double, and on request its gradient with
    /// respect to the logits, `(softmax(self) − exp(target)) / N` `[N, V]`.
    public func klDivergence(
        fromLogProbabilities targetLogp: Tensor, gradient: Bool = false
    ) -> (loss: Double, gradient: Tensor?) {
        precondition(rank == 2 && targetLogp.shape == shape, "klDivergence: \(shape) against \(targetLogp.shape)")
        let n = shape[0], v = shape[1]
        var loss = 0.0
        var grad = gradient ? [Float](repeating: 0, count: count) : []
        for r in 0..<n {
            var m = -Float.infinity
            for j in 0..<v { m = max(m, storage[r * v + j]) }
            var s = 0.0
            for j in 0..<v { s += exp(Double(storage[r * v + j] - m)) }
            let lse = Double(m) + log(s)
            for j in 0..<v {
                let lq = Double(storage[r * v + j]) - lse, lp = Double(targetLogp.storage[r * v + j])
                let p = exp(lp)
                loss += p * (lp - lq)
                if gradient { grad[r * v + j] = Float((exp(lq) - p) / Double(n)) }
            }
        }
        return (loss / Double(max(n, 1)), gradient ? Tensor(shape: shape, storage: grad) : nil)
    }

    /// Adds each row's first positions into running per-position sums: `self` `[R, n, w]` holds
    /// positions `offset ..< offset + n` of R sequences, row r counting only positions below
    /// `lengths[r]`. `sums` (`[positions · w]`, Double) and `counts` (`[positions]`) grow to
    /// `offset + n` positions as needed; elements are added in row order, one at a time.
    public func accumulatePositions(
        into sums: inout [Double], counts: inout [Int], offset: Int, lengths: [Int]
    ) {
        precondition(rank >= 2 && lengths.count == shape[0], "accumulatePositions: \(shape), \(lengths.count) lengths")
        let rows = shape[0], n = shape[1], w = rows * n == 0 ? 0 : count / (rows * n)
        let need = offset + n
        if sums.count < need * w { sums += [Double](repeating: 0, count: need * w - sums.count) }
        if counts.count < need { counts += [Int](repeating: 0, count: need - counts.count) }
        for r in 0..<rows {
            for p in 0..<n where offset + p < lengths[r] {
                let at = offset + p
                counts[at] += 1
                for j in 0..<w { sums[at * w + j] += Double(storage[(r * n + p) * w + j]) }
            }
        }
    }
}

extension Tensor {
    /// Each slice along the first axis times the reciprocal of its scale (`scales` holds one
    /// scale, or one per slice): a quantised weight's rows brought back to floats, `x · (1/s)` in
    /// Float as CTranslate2 dequantises.
    public func dividingRows(by scales: Tensor) -> Tensor {
        let rows = shape.first ?? 0
        precondition(scales.count == 1 || scales.count == rows, "dividingRows: \(scales.count) scales for \(rows) rows")
        let cols = count / Swift.max(1, rows)
        var out = self
        for r in 0..<rows {
            let inv = 1 / (scales.count == 1 ? scales.storage[0] : scales.storage[r])
            for c in 0..<cols { out.storage[r * cols + c] *= inv }
        }
        return out
    }
}

extension Tensor {
    /// Each row along the last axis minus `v` (its width), element by element in Float.
    public func subtractingRows(_ v: Tensor) -> Tensor {
        let d = shape.last ?? 0
        precondition(v.count == d, "subtractingRows: \(v.shape) from rows of \(d)")
        var out = self
        for r in 0..<(d == 0 ? 0 : count / d) { for j in 0..<d { out.storage[r * d + j] -= v.storage[j] } }
        return out
    }

    /// `v` repeated as `rows` rows: `[rows, v.count]`.
    public static func repeating(row v: Tensor, count rows: Int) -> Tensor {
        Tensor(shape: [rows, v.count]) { out in
            v.storage.withUnsafeBufferPointer { vp in
                for r in 0..<rows { (out.baseAddress! + r * v.count).initialize(from: vp.baseAddress!, count: v.count) }
            }
        }
    }

    /// Σ x² over every element, in Float with 8 partial sums (a gradient's squared L2 norm).
    public var sumOfSquares: Float {
        storage.withUnsafeBufferPointer { RowMath.dot($0.count, $0.baseAddress!, $0.baseAddress!) }
    }

    /// Removes from each row of `[m, d]` its component along the same row of `directions`
    /// `[m, d]` (unit rows), in place: `g ← g − (g · w) w`, keeping a step on the unit sphere.
    public mutating func removeComponents(alongRowsOf directions: Tensor) {
        precondition(rank == 2 && directions.shape == shape, "removeComponents: \(shape) along \(directions.shape)")
        let m = shape[0], d = shape[1]
        directions.storage.withUnsafeBufferPointer { w in
            storage.withUnsafeMutableBufferPointer { g in
                for i in 0..<m {
                    let wi = w.baseAddress! + i * d, gi = g.baseAddress! + i * d
                    RowMath.axpy(d, -RowMath.dot(d, gi, wi), wi, gi)
                }
            }
        }
    }

    /// Divides each row of `[m, d]` by its L2 norm (at least `minimumNorm`), in place.
    public mutating func normalizeRows(minimumNorm: Float = 1e-12) {
        precondition(rank == 2, "normalizeRows: \(shape)")
        let m = shape[0], d = shape[1]
        storage.withUnsafeMutableBufferPointer { w in
            for i in 0..<m {
                let wi = w.baseAddress! + i * d
                let n = Swift.max(RowMath.dot(d, wi, wi).squareRoot(), minimumNorm)
                for j in 0..<d { wi[j] /= n }
            }
        }
    }
}
