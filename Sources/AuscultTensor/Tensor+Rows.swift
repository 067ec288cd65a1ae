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
