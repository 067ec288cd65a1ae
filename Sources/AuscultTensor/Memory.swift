// How the process keeps the memory of freed tensors (glibc malloc settings).
import CAuscultKernels
import Foundation

/// The allocator policy of a long tensor job.
public enum Memory {
    /// Keeps freed memory in the process so the next tensor of that size reuses it.
    ///
    /// By default glibc serves every block over 32 MB (and, at first, over 128 KB) with its own
    /// `mmap` and returns it on `free`, so each new activation, key/value cache or logits buffer
    /// is memory the kernel must fault in and zero again. On this project's virtual machines that
    /// costs about 2 s per GB touched: a tiny.en sweep spent a fifth of its time in the kernel's
    /// `clear_page`. Serving everything from the heap and never trimming it makes a buffer of a
    /// size seen before free. The cost is that the process keeps its peak footprint until it
    /// exits, which suits a command-line job. Call it once, before the first large tensor.
    public static func retainFreedMemory() {
        auscult_retain_freed_memory()
    }

    /// The process's peak resident memory so far in MB (`VmHWM` of /proc/self/status), nil where
    /// the system does not say.
    public static func peakResidentMegabytes() -> Double? {
        guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
            let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }),
            let kb = Double(line.split(whereSeparator: { $0 == " " || $0 == "\t" }).dropFirst().first ?? "")
        else { return nil }
        return kb / 1024
    }
}

/// What a long tensor job sets up once, before any work: the one public call for it. Importing
/// the library changes no process setting; only this call (or `Memory.retainFreedMemory`) does.
public enum ProcessSetup {
    /// Keeps freed tensor memory in the process (`Memory.retainFreedMemory`) and, when OpenBLAS
    /// fell back to its generic kernels on a CPU it does not know and the user chose no
    /// `OPENBLAS_CORETYPE`, restarts the program with the kernels the CPU supports
    /// (`BLAS.preferredCoreType`; OpenBLAS fixes its choice when it loads). `reexec: false` only
    /// reports the core type it would set.
    @discardableResult
    public static func configure(reexec: Bool = true) -> String? {
        let core = BLAS.preferredCoreType()
        if let core, reexec, ProcessInfo.processInfo.environment["AUSCULT_NO_REEXEC"] == nil {
            setenv("OPENBLAS_CORETYPE", core, 1)
            setenv("AUSCULT_NO_REEXEC", "1", 1)
            let args = CommandLine.arguments.map { strdup($0) } + [nil]
            execv("/proc/self/exe", args)
        }
        Memory.retainFreedMemory()
        return core
    }
}
