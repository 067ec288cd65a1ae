// Matrix products through CBLAS (Debian's OpenBLAS).
import CAuscultBLAS

/// Thin wrappers over `cblas_sgemm` / `cblas_sgemv` with PyTorch's `[out, in]` weight layout.
///
/// Weights stay `[out, in]` and are passed with `CblasTrans`: OpenBLAS packs B either way, so the
/// transpose costs nothing (~220 GFLOP/s per core on Whisper shapes, measured, DESIGN.md §6).
public enum BLAS {
    /// `C[M,N] = alpha * A[M,K] · B[N,K]ᵀ + beta * C`, with leading dimensions for strided views.
    @inlinable
    public static func gemmNT(m: Int, n: Int, k: Int, alpha: Float = 1,
                              a: UnsafePointer<Float>, lda: Int,
                              b: UnsafePointer<Float>, ldb: Int,
                              beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// `C[M,N] = alpha * A[M,K] · B[K,N] + beta * C`.
    @inlinable
    public static func gemmNN(m: Int, n: Int, k: Int, alpha: Float = 1,
                              a: UnsafePointer<Float>, lda: Int,
                              b: UnsafePointer<Float>, ldb: Int,
                              beta: Float = 0, c: UnsafeMutablePointer<Float>, ldc: Int) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k),
                    alpha, a, Int32(lda), b, Int32(ldb), beta, c, Int32(ldc))
    }

    /// `y[N] = W[N,K] · x[K] + beta * y`: the M=1 product. OpenBLAS 0.3.21 gets ~22 GFLOP/s from
    /// `sgemv` here against ~7 from `sgemm` with M=1 (DESIGN.md §6).
    @inlinable
    public static func gemv(n: Int, k: Int, alpha: Float = 1, w: UnsafePointer<Float>, ldw: Int,
                            x: UnsafePointer<Float>, beta: Float = 0, y: UnsafeMutablePointer<Float>) {
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(n), Int32(k), alpha, w, Int32(ldw), x, 1, beta, y, 1)
    }

    /// `y[K] = W[N,K]ᵀ · x[N] + beta * y`: a row vector times a matrix.
    @inlinable
    public static func gemvT(n: Int, k: Int, w: UnsafePointer<Float>, ldw: Int,
                             x: UnsafePointer<Float>, beta: Float = 0, y: UnsafeMutablePointer<Float>) {
        cblas_sgemv(CblasRowMajor, CblasTrans, Int32(n), Int32(k), 1, w, Int32(ldw), x, 1, beta, y, 1)
    }

    /// Threads OpenBLAS may use (it reads `OPENBLAS_NUM_THREADS` at start-up otherwise).
    public static func setThreads(_ n: Int) { openblas_set_num_threads(Int32(n)) }
    /// Threads OpenBLAS uses now.
    public static var threads: Int { Int(openblas_get_num_threads()) }
}

extension Tensor {
    /// `self[M,K] · weight[N,K]ᵀ + bias[N]` → `[M, N]`: a PyTorch `nn.Linear` over the rows.
    ///
    /// `self` may have any leading shape; its last axis is K. M=1 goes through `sgemv`.
    public func linear(_ weight: Tensor, bias: Tensor? = nil) -> Tensor {
        let k = shape[shape.count - 1]
        let n = weight.shape[0]
        precondition(weight.shape.count == 2 && weight.shape[1] == k,
                     "linear: input \(shape) does not match weight \(weight.shape)")
        let m = count / k
        var outShape = shape
        outShape[outShape.count - 1] = n
        var out = Tensor(shape: outShape) { buf in
            if let bias {
                for r in 0..<m { bias.storage.withUnsafeBufferPointer { b in
                    (buf.baseAddress! + r * n).initialize(from: b.baseAddress!, count: n) } }
            } else {
                buf.initialize(repeating: 0)
            }
        }
        storage.withUnsafeBufferPointer { a in
            weight.storage.withUnsafeBufferPointer { w in
                out.storage.withUnsafeMutableBufferPointer { c in
                    if m == 1 {
                        BLAS.gemv(n: n, k: k, w: w.baseAddress!, ldw: k, x: a.baseAddress!, beta: 1, y: c.baseAddress!)
                    } else {
                        BLAS.gemmNT(m: m, n: n, k: k, a: a.baseAddress!, lda: k, b: w.baseAddress!, ldb: k,
                                    beta: 1, c: c.baseAddress!, ldc: n)
                    }
                }
            }
        }
        return out
    }
}
