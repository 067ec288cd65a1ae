// Products with few rows and a large weight (decoder logits: M sequences × 51 864 × 384).
//
// OpenBLAS packs the whole weight on every sgemm call; with M = 8 rows copying the 80 MB
// embedding costs more than the 160 M multiply-adds themselves, so a decoding step of a small
// batch spent over half its logits time in `sgemm_incopy`. This kernel reads each weight row
// once per 2 input rows straight from its `[out, in]` layout, no packing.

extension Kernels {
    /// `c[i][j] += Σ_k a[i][k] · w[j][k]` for i < m, j < n (row-major, `k` contiguous in both).
    ///
    /// Blocks of 2 input rows × 4 weight rows keep 8 SIMD8 accumulators and 6 loads in the 16
    /// AVX2 registers; `k` must be a multiple of 8.
    public static func gemmNTSmall(
        m: Int, n: Int, k: Int, a: UnsafePointer<Float>, lda: Int,
        w: UnsafePointer<Float>, ldw: Int, c: UnsafeMutablePointer<Float>, ldc: Int
    ) {
        precondition(k % 8 == 0)
        @inline(__always) func load(_ p: UnsafePointer<Float>) -> SIMD8<Float> {
            UnsafeRawPointer(p).loadUnaligned(as: SIMD8<Float>.self)
        }
        var j = 0
        while j + 4 <= n {
            let w0 = w + j * ldw, w1 = w0 + ldw, w2 = w1 + ldw, w3 = w2 + ldw
            var i = 0
            while i + 2 <= m {
                let a0 = a + i * lda, a1 = a0 + lda
                var s00 = SIMD8<Float>(), s01 = SIMD8<Float>(), s02 = SIMD8<Float>(), s03 = SIMD8<Float>()
                var s10 = SIMD8<Float>(), s11 = SIMD8<Float>(), s12 = SIMD8<Float>(), s13 = SIMD8<Float>()
                var kk = 0
                while kk < k {
                    let x0 = load(a0 + kk), x1 = load(a1 + kk)
                    let v0 = load(w0 + kk), v1 = load(w1 + kk), v2 = load(w2 + kk), v3 = load(w3 + kk)
                    s00.addProduct(x0, v0); s01.addProduct(x0, v1); s02.addProduct(x0, v2); s03.addProduct(x0, v3)
                    s10.addProduct(x1, v0); s11.addProduct(x1, v1); s12.addProduct(x1, v2); s13.addProduct(x1, v3)
                    kk += 8
                }
                let c0 = c + i * ldc + j, c1 = c0 + ldc
                c0[0] += s00.sum(); c0[1] += s01.sum(); c0[2] += s02.sum(); c0[3] += s03.sum()
                c1[0] += s10.sum(); c1[1] += s11.sum(); c1[2] += s12.sum(); c1[3] += s13.sum()
                i += 2
            }
            if i < m {
                let a0 = a + i * lda
                var s0 = SIMD8<Float>(), s1 = SIMD8<Float>(), s2 = SIMD8<Float>(), s3 = SIMD8<Float>()
                var kk = 0
                while kk < k {
                    let x0 = load(a0 + kk)
                    s0.addProduct(x0, load(w0 + kk)); s1.addProduct(x0, load(w1 + kk))
                    s2.addProduct(x0, load(w2 + kk)); s3.addProduct(x0, load(w3 + kk))
                    kk += 8
                }
                let c0 = c + i * ldc + j
                c0[0] += s0.sum(); c0[1] += s1.sum(); c0[2] += s2.sum(); c0[3] += s3.sum()
            }
            j += 4
        }
        while j < n {
            for i in 0..<m {
                var s = SIMD8<Float>()
                var kk = 0
                while kk < k { s.addProduct(load(a + i * lda + kk), load(w + j * ldw + kk)); kk += 8 }
                c[i * ldc + j] += s.sum()
            }
            j += 1
        }
    }
}
