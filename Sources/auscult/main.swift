import ArgumentParser
import AuscultTensor
import Foundation

// OpenBLAS 0.3.21 (Debian 12) does not recognise recent Xeons and falls back to its Prescott
// (SSE3) kernels, 2-4x slower than the AVX-512/AVX2 ones. Its kernel choice is fixed when the
// library loads, so when that happened and the user did not choose, restart with the right one.
if let core = BLAS.preferredCoreType(), ProcessInfo.processInfo.environment["AUSCULT_NO_REEXEC"] == nil {
    setenv("OPENBLAS_CORETYPE", core, 1)
    setenv("AUSCULT_NO_REEXEC", "1", 1)
    let args = CommandLine.arguments.map { strdup($0) } + [nil]
    execv("/proc/self/exe", args)
}
Memory.retainFreedMemory()
Auscult.main()
