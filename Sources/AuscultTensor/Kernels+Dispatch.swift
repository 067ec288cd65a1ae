// Which kernels run on this CPU: the hand-vectorised C ones or the portable Swift/BLAS ones.
import CAuscultKernels
import Foundation

extension Kernels {
    /// Whether the hand-vectorised AVX-512 kernels of `CAuscultKernels` run (attention for
    /// dh = 64, products against a `PackedWeight`, `argmaxLogSumExp` and `logSumExp`): the CPU has AVX-512F
    /// and `AUSCULT_PORTABLE` is not set to 1, which keeps the portable Swift/BLAS paths everywhere.
    public static let avx512: Bool = {
        if ProcessInfo.processInfo.environment["AUSCULT_PORTABLE"] == "1" { return false }
        return auscult_has_avx512() != 0
    }()
}

extension Kernels {
    /// Whether the CPU has AVX2 and FMA, which the packed products, row kernels, the AVX2 read-out
    /// and attention straight from features use; without them each `*_avx2` entry point runs
    /// portable C of the same arithmetic (the same bits, slower), chosen at run time, so the
    /// library builds without CPU flags.
    public static let avx2: Bool = auscult_cpu_has_avx2() != 0
}
