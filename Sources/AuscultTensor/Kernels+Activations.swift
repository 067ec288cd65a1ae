// In-place element-wise kernels over raw buffers: GELU, softmax, LayerNorm, add.
import CAuscultKernels
import Dispatch

/// Kernels over contiguous Float32 rows. All work in place on caller-owned memory.
public enum Kernels {
    /// GELU (exact erf form) over `n` floats in place (`auscult_gelu`: AVX2 where the CPU has it,
    /// else portable C of the same arithmetic), split across workers above 2¹⁸ floats (an encoder
    /// MLP's 1500×1536 took 2.5 ms on one core). Element-wise, so the split changes no bit.
    public static func gelu(_ x: UnsafeMutablePointer<Float>, count n: Int) {
        let workers = n >= 1 << 18 ? Threading.workers : 1
        let p = UnsafeMutableSendablePointer(x)
        DispatchQueue.concurrentPerformIfNeeded(workers) { w in
            let lo = n * w / workers, hi = n * (w + 1) / workers
            auscult_gelu(p.pointer + lo, hi - lo)
        }
    }

    /// Softmax of each of `rows` rows of `cols` floats (stride `stride`), in place.
    /// `-infinity` entries get probability 0; a row of all `-infinity` gives NaN as in PyTorch.
    public static func softmaxRows(_ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int, stride: Int) {
        let inv = UnsafeMutablePointer<Float>.allocate(capacity: rows)
        defer { inv.deallocate() }
        expRows(x, rows: rows, cols: cols, stride: stride, inverseSums: inv)
        for r in 0..<rows { scale(x + r * stride, count: cols, by: inv[r]) }
    }

    /// The unnormalised half of softmax: each row becomes `exp(x − max)` in place and
    /// `inverseSums[r]` receives `1 / Σ exp(x − max)` (`auscult_exp_rows`, `FastMath.exp`'s
    /// polynomial on eight lanes).
    ///
    /// Attention multiplies these by V first and scales the 64-wide result rows instead of the
    /// 1500-wide probability rows, which saves a pass (~1/3 of the softmax work) per block.
    public static func expRows(
        _ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int, stride: Int,
        inverseSums: UnsafeMutablePointer<Float>
    ) {
        auscult_exp_rows(x, rows, cols, stride, inverseSums)
    }

    /// `x[i] *= factor` for `count` floats.
    @inlinable
    public static func scale(_ x: UnsafeMutablePointer<Float>, count: Int, by factor: Float) {
        for i in 0..<count { x[i] *= factor }
    }

    /// LayerNorm over rows of `d` floats: `(x − mean) / sqrt(var + eps) · gamma + beta`
    /// (`auscult_layer_norm`). When `scaleOut` is given it receives each row's `1/sqrt(var + eps)`
    /// (the `ln.hook_scale`).
    public static func layerNorm(
        _ x: UnsafePointer<Float>, rows: Int, d: Int,
        gamma: UnsafePointer<Float>, beta: UnsafePointer<Float>, eps: Float = 1e-5,
        out: UnsafeMutablePointer<Float>, scaleOut: UnsafeMutablePointer<Float>? = nil
    ) {
        auscult_layer_norm(x, rows, d, gamma, beta, eps, out, scaleOut)
    }

    /// `y[i] += x[i]` for `n` floats.
    @inlinable
    public static func add(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, count n: Int) {
        for i in 0..<n { y[i] += x[i] }
    }

    /// Adds `bias[n]` to each of `rows` rows of `n` floats.
    @inlinable
    public static func addRowBias(_ bias: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, rows: Int, n: Int)
    {
        for r in 0..<rows {
            let yr = y + r * n
            for j in 0..<n { yr[j] += bias[j] }
        }
    }
}

extension Tensor {
    /// Exact GELU applied element-wise.
    public func gelu() -> Tensor {
        var t = self
        t.storage.withUnsafeMutableBufferPointer { Kernels.gelu($0.baseAddress!, count: $0.count) }
        return t
    }

    /// Softmax over the last axis.
    public func softmax() -> Tensor {
        var t = self
        let c = shape.last!
        t.storage.withUnsafeMutableBufferPointer {
            Kernels.softmaxRows($0.baseAddress!, rows: $0.count / c, cols: c, stride: c)
        }
        return t
    }

    /// LayerNorm over the last axis with affine `gamma`, `beta` (each `[d]`).
    public func layerNorm(gamma: Tensor, beta: Tensor, eps: Float = 1e-5) -> Tensor {
        let d = shape.last!
        return Tensor(shape: shape) { out in
            storage.withUnsafeBufferPointer { x in
                gamma.storage.withUnsafeBufferPointer { g in
                    beta.storage.withUnsafeBufferPointer { b in
                        Kernels.layerNorm(
                            x.baseAddress!, rows: count / d, d: d, gamma: g.baseAddress!,
                            beta: b.baseAddress!, eps: eps, out: out.baseAddress!)
                    }
                }
            }
        }
    }

    /// Element-wise sum of two tensors of the same shape.
    public static func + (lhs: Tensor, rhs: Tensor) -> Tensor {
        precondition(lhs.shape == rhs.shape, "add: \(lhs.shape) vs \(rhs.shape)")
        var t = lhs
        t.storage.withUnsafeMutableBufferPointer { y in
            rhs.storage.withUnsafeBufferPointer { Kernels.add($0.baseAddress!, into: y.baseAddress!, count: y.count) }
        }
        return t
    }

    /// Element-wise difference of two tensors of the same shape.
    public static func - (lhs: Tensor, rhs: Tensor) -> Tensor {
        precondition(lhs.shape == rhs.shape, "subtract: \(lhs.shape) vs \(rhs.shape)")
        var t = lhs
        for i in t.storage.indices { t.storage[i] -= rhs.storage[i] }
        return t
    }

    /// In-place element-wise sum.
    public static func += (lhs: inout Tensor, rhs: Tensor) { lhs = lhs + rhs }

    /// Every element times `factor` (in Float, as `x *= factor` element by element).
    public static func * (lhs: Tensor, factor: Float) -> Tensor {
        var t = lhs
        t *= factor
        return t
    }

    /// Multiplies every element by `factor` in place.
    public static func *= (lhs: inout Tensor, factor: Float) {
        lhs.storage.withUnsafeMutableBufferPointer { x in
            for i in x.indices { x[i] *= factor }
        }
    }
}
