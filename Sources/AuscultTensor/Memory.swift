// How the process keeps the memory of freed tensors (glibc malloc settings).
import CAuscultKernels

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
}
