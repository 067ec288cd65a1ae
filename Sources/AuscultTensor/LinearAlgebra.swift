// Dense linear algebra the analyses need beyond matrix products: eigenvalues of a small
// general matrix (LAPACK's dgeev through OpenBLAS).
import CAuscultBLAS

/// A complex number as LAPACK returns eigenvalues: real and imaginary parts.
public struct Complex: Sendable, Equatable, Codable {
    public var re: Double
    public var im: Double
    public init(re: Double, im: Double) { self.re = re; self.im = im }
    /// |z|.
    public var magnitude: Double { (re * re + im * im).squareRoot() }
}

/// A linear-algebra routine refused its input or did not converge.
public struct LinearAlgebraError: AuscultError, Sendable {
    public enum Code: String, Sendable { case invalidInput, noConvergence }
    public var code: Code
    public var message: String
    public var underlying: (any Error)? { nil }
}

public enum LinearAlgebra {
    /// The eigenvalues of the general square matrix `a` (`[n, n]`, row-major, real), in LAPACK's
    /// order (complex ones as conjugate pairs). Meant for small matrices (an attention head's
    /// `d_head × d_head` circuit: 64 × 64 takes well under a millisecond).
    public static func eigenvalues(_ a: [Double], n: Int) throws -> [Complex] {
        guard n >= 1, a.count == n * n else {
            throw LinearAlgebraError(
                code: .invalidInput, message: "eigenvalues: \(a.count) values do not make a \(n) × \(n) matrix")
        }
        guard a.allSatisfy(\.isFinite) else {
            throw LinearAlgebraError(code: .invalidInput, message: "eigenvalues: the matrix holds a NaN or infinity")
        }
        // LAPACK is column-major: pass the transpose (same eigenvalues).
        var m = a
        var nn = Int32(n), lda = Int32(n), one: Int32 = 1, oneR: Int32 = 1, info: Int32 = 0
        var wr = [Double](repeating: 0, count: n), wi = [Double](repeating: 0, count: n)
        var vl = [Double](repeating: 0, count: 1), vr = [Double](repeating: 0, count: 1)
        var query = [Double](repeating: 0, count: 1), lwork: Int32 = -1
        let no = Int8(UInt8(ascii: "N"))
        var jobvl = no, jobvr = no
        dgeev_(&jobvl, &jobvr, &nn, &m, &lda, &wr, &wi, &vl, &one, &vr, &oneR, &query, &lwork, &info)
        lwork = Int32(max(Double(4 * n), query[0]))
        var work = [Double](repeating: 0, count: Int(lwork))
        dgeev_(&jobvl, &jobvr, &nn, &m, &lda, &wr, &wi, &vl, &one, &vr, &oneR, &work, &lwork, &info)
        guard info == 0 else {
            throw LinearAlgebraError(
                code: info > 0 ? .noConvergence : .invalidInput,
                message: "eigenvalues of a \(n) × \(n) matrix: LAPACK dgeev returned info \(info)")
        }
        return (0..<n).map { Complex(re: wr[$0], im: wi[$0]) }
    }
}

extension LinearAlgebra {
    /// The Gram matrix AᵀA `[d, d]` of `a` `[n, d]`, in double (one float GEMM over the rows: the
    /// 51 864 × 384 token embedding of tiny.en takes ~0.1 s).
    public static func gram(_ a: Tensor) -> [Double] {
        precondition(a.rank == 2, "gram wants a matrix, got shape \(a.shape)")
        let n = a.shape[0], d = a.shape[1]
        var g = [Float](repeating: 0, count: d * d)
        a.storage.withUnsafeBufferPointer { p in
            g.withUnsafeMutableBufferPointer { c in
                BLAS.gemmTN(
                    m: d, n: d, k: n, a: p.baseAddress!, lda: d, b: p.baseAddress!, ldb: d, c: c.baseAddress!, ldc: d)
            }
        }
        return g.map(Double.init)
    }
}

extension LinearAlgebra {
    /// Eigenvalues (largest first) and unit eigenvectors (`vectors[k]` belongs to `values[k]`) of
    /// the symmetric matrix `a` (`[n, n]`, row-major), by LAPACK's dsyev. For PCA through a small
    /// Gram matrix (points × points).
    public static func symmetricEigen(_ a: [Double], n: Int) throws -> (values: [Double], vectors: [[Double]]) {
        guard n >= 1, a.count == n * n, a.allSatisfy(\.isFinite) else {
            throw LinearAlgebraError(
                code: .invalidInput, message: "symmetric eigen: \(a.count) values for a \(n) × \(n) finite matrix")
        }
        var m = a, w = [Double](repeating: 0, count: n)
        var nn = Int32(n), lda = Int32(n), info: Int32 = 0, lwork: Int32 = -1
        var query = [Double](repeating: 0, count: 1)
        var jobz = Int8(UInt8(ascii: "V")), uplo = Int8(UInt8(ascii: "U"))
        dsyev_(&jobz, &uplo, &nn, &m, &lda, &w, &query, &lwork, &info)
        lwork = Int32(max(Double(3 * n), query[0]))
        var work = [Double](repeating: 0, count: Int(lwork))
        dsyev_(&jobz, &uplo, &nn, &m, &lda, &w, &work, &lwork, &info)
        guard info == 0 else {
            throw LinearAlgebraError(
                code: info > 0 ? .noConvergence : .invalidInput,
                message: "symmetric eigen of a \(n) × \(n) matrix: LAPACK dsyev returned info \(info)")
        }
        // Column-major result: eigenvector k is m[k*n ..< (k+1)*n] (the matrix is symmetric, so
        // reading the row-major input as column-major changed nothing).
        let order = (0..<n).sorted { w[$0] > w[$1] }
        return (order.map { w[$0] }, order.map { Array(m[($0 * n)..<(($0 + 1) * n)]) })
    }
}
