// Reductions over one long row (a row of logits).
import CAuscultKernels
import Foundation

extension Kernels {
    /// log Σ exp(x[0..<n]) (max-shifted, the sum in double) and the first index of the maximum
    /// (0 when every entry is −∞, whose log-sum-exp is −∞).
    ///
    /// Greedy decoding needs both for every row at every step; over 51 864 logits the scalar
    /// loops took 10 % of a sweep's decoder phase, the AVX-512 kernel a fraction of that.
    public static func argmaxLogSumExp(_ x: UnsafePointer<Float>, count n: Int) -> (index: Int, logSumExp: Double) {
        if avx512 {
            var lse = 0.0
            let i = auscult_argmax_logsumexp_avx512(x, n, &lse, 1)
            return (i, lse)
        }
        var best = -Float.infinity, pick = 0
        for t in 0..<n where x[t] > best { best = x[t]; pick = t }
        return (pick, logSumExp(x, count: n))
    }

    /// log Σ exp(x[0..<n]), max-shifted: exponentials in float (`FastMath.exp`), the sum in double.
    public static func logSumExp(_ x: UnsafePointer<Float>, count n: Int) -> Double {
        if avx512 {
            var lse = 0.0
            _ = auscult_argmax_logsumexp_avx512(x, n, &lse, 0)
            return lse
        }
        var m = -Float.infinity
        for i in 0..<n { m = max(m, x[i]) }
        if m == -.infinity { return -.infinity }
        var s = 0.0
        var i = 0
        let mm = SIMD8<Float>(repeating: m)
        while i + 8 <= n {
            s += Double(FastMath.exp(UnsafeRawPointer(x + i).loadUnaligned(as: SIMD8<Float>.self) - mm).sum())
            i += 8
        }
        while i < n { s += Double(FastMath.exp(x[i] - m)); i += 1 }
        return Double(m) + Foundation.log(s)
    }
}
