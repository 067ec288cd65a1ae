// Attention against a decoder's self-attention cache, read where it lies: no packing per step.
import CAuscultKernels

extension Attention {
    /// `Attention.forward` for keys stored transposed: `keysT` `[heads·dh, ldkT]` (key j of head h
    /// in column j of rows h·dh ..< (h+1)·dh), values `[nk, ·]` rows of stride ldv.
    ///
    /// A decoder's cache grows by one key column and one value row per step, so both products read
    /// it in place (`auscult_gemm_strided_avx2`) with the arithmetic of the packed kernel: the same
    /// bits as `forward` on the same keys and values, a row's result independent of the rows beside
    /// it. `forward` packed every head's keys and values again at every step of every sequence
    /// (12 % of a sweep's decoder-condition time). `ldkT` must be a multiple of 16 (the kernel reads
    /// columns up to nk rounded up to 16).
    public static func forwardCached(
        q: UnsafePointer<Float>, ldq: Int, keysT: UnsafePointer<Float>, ldkT: Int,
        v: UnsafePointer<Float>, ldv: Int, nq: Int, nk: Int, heads: Int, dh: Int,
        causalOffset: Int?, out: UnsafeMutablePointer<Float>, ldo: Int,
        scores: UnsafeMutablePointer<Float>,
        patternOut: UnsafeMutablePointer<Float>? = nil,
        parallelSoftmax: Bool = true
    ) {
        precondition(ldkT % 16 == 0 && ldkT >= nk, "forwardCached: key stride \(ldkT) for \(nk) keys")
        // The strided kernel on x86-64 (its slices are 16 columns wide); CBLAS otherwise.
        #if arch(x86_64)
        let strided = dh % 16 == 0
        #else
        let strided = false
        #endif
        for h in 0..<heads {
            let kh = keysT + h * dh * ldkT, vh = v + h * dh
            attendHead(
                q: q + h * dh, ldq: ldq, nq: nq, nk: nk, dh: dh, causalOffset: causalOffset, out: out + h * dh,
                ldo: ldo,
                scores: scores, patternOut: patternOut.map { $0 + h * nq * nk }, scoresOut: nil,
                parallelSoftmax: parallelSoftmax,
                scoresProduct: { qs, s in
                    if strided {
                        auscult_gemm_strided_avx2(qs, nq, dh, kh, ldkT, nk, dh, s, nk)
                    } else {
                        BLAS.gemmNN(m: nq, n: nk, k: dh, a: qs, lda: dh, b: kh, ldb: ldkT, c: s, ldc: nk)
                    }
                },
                valuesProduct: { p, o in
                    if strided {
                        auscult_gemm_strided_avx2(p, nq, nk, vh, ldv, dh, nk, o, ldo)
                    } else {
                        BLAS.gemmNN(m: nq, n: dh, k: nk, a: p, lda: nk, b: vh, ldb: ldv, c: o, ldc: ldo)
                    }
                })
        }
    }
}
