// Reductions over one long row (a row of logits).
import CAuscultKernels

extension Kernels {
    /// log Σ exp(x[0..<n]) (max-shifted, the sum in double) and the first index of the maximum
    /// (0 when every entry is −∞, whose log-sum-exp is −∞).
    ///
    /// Greedy decoding needs both for every row at every step; over 51 864 logits the scalar
    /// loops took 10 % of a sweep's decoder phase, the vector kernels (AVX-512, or AVX2 on every
    /// other x86-64 CPU) a fraction of that: exponentials in float lanes, summed in float over
    /// 256 entries at a time, then in double.
    public static func argmaxLogSumExp(_ x: UnsafePointer<Float>, count n: Int) -> (index: Int, logSumExp: Double) {
        var lse = 0.0
        let i = avx512 ? auscult_argmax_logsumexp_avx512(x, n, &lse, 1) : auscult_argmax_logsumexp_avx2(x, n, &lse, 1)
        return (i, lse)
    }

    /// log Σ exp(x[0..<n]), max-shifted (see `argmaxLogSumExp`).
    public static func logSumExp(_ x: UnsafePointer<Float>, count n: Int) -> Double {
        var lse = 0.0
        _ = avx512 ? auscult_argmax_logsumexp_avx512(x, n, &lse, 0) : auscult_argmax_logsumexp_avx2(x, n, &lse, 0)
        return lse
    }
}
