// Matrix products through CBLAS (Debian's OpenBLAS).
import CAuscultBLAS
import Dispatch
import Foundation

#if canImport(Glibc)
import Glibc
/// glibc's `mallopt` (malloc.h is not part of the Glibc module).
#endif

/// The three operands of a product, handed to workers that write disjoint parts of `c`.
struct GemmPointers: @unchecked Sendable {
    let a: UnsafePointer<Float>, w: UnsafePointer<Float>, c: UnsafeMutablePointer<Float>
}

extension DispatchQueue {
    /// `concurrentPerform`, or a plain call when there is one part.
    public static func concurrentPerformIfNeeded(_ parts: Int, _ body: @Sendable (Int) -> Void) {
        if parts <= 1 { body(0) } else { concurrentPerform(iterations: parts, execute: body) }
    }
}

/// Thin wrappers over `cblas_sgemm` / `cblas_sgemv` with PyTorch's `[out, in]` weight layout.
///
/// Weights stay `[out, in]` and are passed with `CblasTrans`: OpenBLAS packs B either way, so the
/// transpose costs nothing (~220 GFLOP/s per core on Whisper shapes, measured, docs/performance.md).
public enum BLAS {
    /// `C[M,N] = alpha * A[M,K] · B[N,K]ᵀ + beta * C`, with leading dimensions for strided views.
    @inlinable
    public static func gemmNT(
        m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        sgemm(CblasNoTrans, CblasTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }

    /// `C[M,N] = alpha · A[K,M]ᵀ · B[K,N] + beta · C` (gradients of weights: Σ over rows).
    @inlinable
    public static func gemmTN(
        m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        sgemm(CblasTrans, CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }

    /// `C[M,N] = alpha * A[M,K] · B[K,N] + beta * C`.
    @inlinable
    public static func gemmNN(
        m: Int, n: Int, k: Int, alpha: Float = 1,
        a: UnsafePointer<Float>, lda: Int,
        b: UnsafePointer<Float>, ldb: Int,
        beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        sgemm(CblasNoTrans, CblasNoTrans, m, n, k, alpha, a, lda, b, ldb, beta, c, ldc)
    }

    /// The one `cblas_sgemm` call the three products above make, row-major, after OpenBLAS is put
    /// in single-threaded mode (concurrent callers race otherwise).
    @usableFromInline
    static func sgemm(
        _ transA: CBLAS_TRANSPOSE, _ transB: CBLAS_TRANSPOSE, _ m: Int, _ n: Int, _ k: Int, _ alpha: Float,
        _ a: UnsafePointer<Float>, _ lda: Int, _ b: UnsafePointer<Float>, _ ldb: Int, _ beta: Float,
        _ c: UnsafeMutablePointer<Float>, _ ldc: Int
    ) {
        _ = configured
        cblas_sgemm(
            CblasRowMajor, transA, transB, Int32(m), Int32(n), Int32(k), alpha, a, Int32(lda), b, Int32(ldb), beta, c,
            Int32(ldc))
    }

    /// `y[N] = W[N,K] · x[K] + beta * y`: the M=1 product. OpenBLAS 0.3.21 gets ~22 GFLOP/s from
    /// `sgemv` here against ~7 from `sgemm` with M=1 (docs/performance.md).
    @inlinable
    public static func gemv(
        n: Int, k: Int, alpha: Float = 1, w: UnsafePointer<Float>, ldw: Int,
        x: UnsafePointer<Float>, beta: Float = 0, y: UnsafeMutablePointer<Float>
    ) {
        _ = configured
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), alpha, w, Int32(ldw), x, 1, beta, y, 1)
    }

    /// `y[K] = W[N,K]ᵀ · x[N] + beta * y`: a row vector times a matrix.
    @inlinable
    public static func gemvT(
        n: Int, k: Int, w: UnsafePointer<Float>, ldw: Int,
        x: UnsafePointer<Float>, beta: Float = 0, y: UnsafeMutablePointer<Float>
    ) {
        _ = configured
        cblas_sgemv(CblasRowMajor, CblasTrans, Int32(n), Int32(k), 1, w, Int32(ldw), x, 1, beta, y, 1)
    }

    /// Threads OpenBLAS may use (it reads `OPENBLAS_NUM_THREADS` at start-up otherwise).
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }

    /// Puts OpenBLAS in single-threaded mode once per process; Auscult splits large products
    /// across `Threading.workers` itself. OpenBLAS's own pool spins in `sched_yield` between
    /// calls and took ~27 % of the encoder's CPU from the Swift kernels running in between.
    ///
    /// It changes nothing else in the process: the allocator policy of long jobs is
    /// `Memory.retainFreedMemory`, and `ProcessSetup.configure` is the one call that sets both.
    public static let configured: Bool = {
        openblas_set_num_threads(1)
        return true
    }()

    /// The OpenBLAS core type this process should use when OpenBLAS fell back to its generic
    /// Prescott kernels on a CPU with AVX-512 ("SkylakeX") or AVX2 ("Haswell") and the user set no
    /// `OPENBLAS_CORETYPE`; nil when nothing needs changing.
    public static func preferredCoreType() -> String? {
        guard ProcessInfo.processInfo.environment["OPENBLAS_CORETYPE"] == nil, coreName == "Prescott",
            let info = try? String(contentsOfFile: "/proc/cpuinfo", encoding: .utf8),
            let flagsLine = info.split(separator: "\n").first(where: { $0.hasPrefix("flags") })
        else { return nil }
        let flags = Set(flagsLine.split(separator: " ").map(String.init))
        if flags.contains("avx512f") && flags.contains("avx512bw") && flags.contains("avx512vl") { return "SkylakeX" }
        if flags.contains("avx2") && flags.contains("fma") { return "Haswell" }
        return nil
    }

    /// Which kernel family OpenBLAS picked for this CPU (e.g. "SkylakeX", "Haswell", "Prescott").
    public static var coreName: String { String(cString: openblas_get_corename()) }
    /// Threads OpenBLAS uses now.
    public static var threads: Int { Int(openblas_get_num_threads()) }
}

extension Tensor {
    /// `self[M,K] · weight[N,K]ᵀ + bias[N]` → `[M, N]`: a PyTorch `nn.Linear` over the rows.
    ///
    /// `self` may have any leading shape; its last axis is K. On x86-64 the weight is packed for
    /// this call and the product is `linear(PackedWeight, bias:)`, whose rows do not depend on
    /// each other (pack a weight used repeatedly once instead). Elsewhere M=1 goes through `sgemv`.
    public func linear(_ weight: Tensor, bias: Tensor? = nil) -> Tensor {
        if let packed = PackedWeight(weight) { return linear(packed, bias: bias) }
        let k = shape[shape.count - 1]
        let n = weight.shape[0]
        precondition(
            weight.shape.count == 2 && weight.shape[1] == k,
            "linear: input \(shape) does not match weight \(weight.shape)")
        let m = count / k
        var outShape = shape
        outShape[outShape.count - 1] = n
        var out = Tensor(shape: outShape) { buf in
            if let bias {
                for r in 0..<m {
                    bias.storage.withUnsafeBufferPointer { b in
                        (buf.baseAddress! + r * n).initialize(from: b.baseAddress!, count: n)
                    }
                }
            } else {
                buf.initialize(repeating: 0)
            }
        }
        _ = BLAS.configured
        // Split rows (or, for M=1, weight rows) across workers when the product is large.
        let workers = m * n * k >= 1 << 21 ? Threading.workers : 1
        storage.withUnsafeBufferPointer { ab in
            weight.storage.withUnsafeBufferPointer { wb in
                out.storage.withUnsafeMutableBufferPointer { cb in
                    let p = GemmPointers(a: ab.baseAddress!, w: wb.baseAddress!, c: cb.baseAddress!)
                    if m == 1 {
                        DispatchQueue.concurrentPerformIfNeeded(workers) { i in
                            let n0 = n * i / workers, n1 = n * (i + 1) / workers
                            BLAS.gemv(n: n1 - n0, k: k, w: p.w + n0 * k, ldw: k, x: p.a, beta: 1, y: p.c + n0)
                        }
                    } else if m <= 16 && k % 8 == 0 && n * k >= 1 << 20 {
                        // Few rows, big weight: no packing (see Kernels.gemmNTSmall), weight rows split.
                        DispatchQueue.concurrentPerformIfNeeded(workers) { i in
                            let n0 = (n * i / workers) & ~3, n1 = i == workers - 1 ? n : (n * (i + 1) / workers) & ~3
                            Kernels.gemmNTSmall(
                                m: m, n: n1 - n0, k: k, a: p.a, lda: k, w: p.w + n0 * k, ldw: k, c: p.c + n0, ldc: n)
                        }
                    } else if m >= 2 * workers && n < 8 * m {
                        DispatchQueue.concurrentPerformIfNeeded(workers) { i in
                            let m0 = m * i / workers, m1 = m * (i + 1) / workers
                            BLAS.gemmNT(
                                m: m1 - m0, n: n, k: k, a: p.a + m0 * k, lda: k, b: p.w, ldb: k,
                                beta: 1, c: p.c + m0 * n, ldc: n)
                        }
                    } else {
                        DispatchQueue.concurrentPerformIfNeeded(workers) { i in
                            let n0 = n * i / workers, n1 = n * (i + 1) / workers
                            BLAS.gemmNT(
                                m: m, n: n1 - n0, k: k, a: p.a, lda: k, b: p.w + n0 * k, ldb: k,
                                beta: 1, c: p.c + n0, ldc: n)
                        }
                    }
                }
            }
        }
        return out
    }
}

extension Tensor {
    /// `selfᵀ · other`: `[N, a]` and `[N, b]` give `[a, b]`, the sum over rows of outer products
    /// (a weight's gradient from the layer's output gradient and its input).
    public func transposedMatmul(_ other: Tensor) -> Tensor {
        precondition(
            rank == 2 && other.rank == 2 && shape[0] == other.shape[0],
            "transposedMatmul: \(shape)ᵀ · \(other.shape)")
        var out = Tensor(zeros: [shape[1], other.shape[1]])
        Tensor.multiply(self, other, transposeA: true, into: &out)
        return out
    }
}

extension Tensor {
    /// `self · w + bias`: `[B, k]` times `w` `[k, n]` (not PyTorch's `[out, in]`: an SAE's
    /// W_enc and W_dec) plus `bias` `[n]` on every row (nil: none) → `[B, n]`.
    ///
    /// With `splittingRows`, rows go to `Threading.workers` separate products when B ≥ 64 and
    /// the product is large (OpenBLAS runs single-threaded here, `BLAS.configured`).
    public func matmul(_ w: Tensor, bias: Tensor? = nil, splittingRows: Bool = false) -> Tensor {
        precondition(rank == 2 && w.rank == 2 && w.shape[0] == shape[1], "matmul: \(shape) · \(w.shape)")
        let b = shape[0], k = shape[1], n = w.shape[1]
        precondition(bias.map { $0.count == n } ?? true, "matmul: bias of \(bias?.count ?? 0) for \(n) columns")
        var out = Tensor(shape: [b, n]) { out in
            if let bias {
                bias.storage.withUnsafeBufferPointer { bp in
                    for r in 0..<b { (out.baseAddress! + r * n).initialize(from: bp.baseAddress!, count: n) }
                }
            } else {
                out.initialize(repeating: 0)
            }
        }
        guard b > 0 && n > 0 else { return out }
        _ = BLAS.configured
        let workers = splittingRows && b >= 64 && b * n * k >= 1 << 22 ? Threading.workers : 1
        storage.withUnsafeBufferPointer { xp in
            w.storage.withUnsafeBufferPointer { wp in
                out.storage.withUnsafeMutableBufferPointer { op in
                    let p = GemmPointers(a: xp.baseAddress!, w: wp.baseAddress!, c: op.baseAddress!)
                    DispatchQueue.concurrentPerformIfNeeded(workers) { i in
                        let r0 = b * i / workers, r1 = b * (i + 1) / workers
                        BLAS.gemmNN(
                            m: r1 - r0, n: n, k: k, a: p.a + r0 * k, lda: k, b: p.w, ldb: n, beta: 1,
                            c: p.c + r0 * n, ldc: n)
                    }
                }
            }
        }
        return out
    }

    /// `c = op(a) · op(b)` (or `c += …` with `accumulate`) for 2-d tensors, op a transpose where
    /// asked; `c`'s shape is the product's.
    public static func multiply(
        _ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false, into c: inout Tensor,
        accumulate: Bool = false
    ) {
        precondition(a.rank == 2 && b.rank == 2 && c.rank == 2 && !(transposeA && transposeB), "multiply: shapes")
        let m = c.shape[0], n = c.shape[1]
        let k = transposeA ? a.shape[0] : a.shape[1]
        precondition(
            (transposeA ? a.shape[1] : a.shape[0]) == m && (transposeB ? b.shape[1] : b.shape[0]) == k
                && (transposeB ? b.shape[0] : b.shape[1]) == n,
            "multiply: \(a.shape) · \(b.shape) into \(c.shape)")
        _ = BLAS.configured
        a.storage.withUnsafeBufferPointer { ap in
            b.storage.withUnsafeBufferPointer { bp in
                c.storage.withUnsafeMutableBufferPointer { cp in
                    let beta: Float = accumulate ? 1 : 0
                    if !accumulate { cp.update(repeating: 0) }
                    if transposeA {
                        BLAS.gemmTN(
                            m: m, n: n, k: k, a: ap.baseAddress!, lda: a.shape[1], b: bp.baseAddress!, ldb: b.shape[1],
                            beta: beta, c: cp.baseAddress!, ldc: n)
                    } else if transposeB {
                        BLAS.gemmNT(
                            m: m, n: n, k: k, a: ap.baseAddress!, lda: a.shape[1], b: bp.baseAddress!, ldb: b.shape[1],
                            beta: beta, c: cp.baseAddress!, ldc: n)
                    } else {
                        BLAS.gemmNN(
                            m: m, n: n, k: k, a: ap.baseAddress!, lda: a.shape[1], b: bp.baseAddress!, ldb: b.shape[1],
                            beta: beta, c: cp.baseAddress!, ldc: n)
                    }
                }
            }
        }
    }

    /// `self += alpha · w · x` for `self` `[n]`, `w` `[n, k]` and `x` `[k]` (one BLAS sgemv).
    public mutating func addProduct(_ w: Tensor, _ x: Tensor, alpha: Float = 1) {
        precondition(w.rank == 2 && w.shape[0] == count && w.shape[1] == x.count, "addProduct: \(w.shape) · \(x.shape)")
        _ = BLAS.configured
        let n = count, k = x.count
        w.storage.withUnsafeBufferPointer { wp in
            x.storage.withUnsafeBufferPointer { xp in
                storage.withUnsafeMutableBufferPointer { yp in
                    BLAS.gemv(
                        n: n, k: k, alpha: alpha, w: wp.baseAddress!, ldw: k, x: xp.baseAddress!, beta: 1,
                        y: yp.baseAddress!)
                }
            }
        }
    }
}
