// C[m, n] = X[m, k] · W[n, k]ᵀ with W packed once into panels of 16 rows: the decoder's logits
// against the token embedding (n = 51 864 for Whisper's vocabulary).
//
// OpenBLAS re-packs its whole B operand on every call; for the logits that is the 80 MB
// embedding of tiny.en once per decoding step, and a sweep spent 15 % of its time in that copy.
// Packed here once at load, the matrix streams from memory exactly once per call: each block of
// 48 embedding rows (72 KB at k = 384) stays in L2 while every row of X passes over it.
#include "CAuscultKernels.h"

long auscult_packed_floats(long n, long k) { return (n + 15) / 16 * 16 * k; }

void auscult_pack_panels(const float *w, long ldw, long n, long k, float *out) {
    const long panels = (n + 15) / 16;
    for (long p = 0; p < panels; p++) {
        float *dst = out + p * 16 * k;
        for (long kk = 0; kk < k; kk++)
            for (long c = 0; c < 16; c++) {
                const long row = p * 16 + c;
                dst[kk * 16 + c] = row < n ? w[row * ldw + kk] : 0.0f;
            }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>

enum { MR = 8 };
// Loops over rows and panels unrolled whole so `acc` lives in registers (SwiftPM builds C at -O2).
#define UNROLL _Pragma("clang loop unroll(full)")

/// Rows i0 ..< i0 + rows (≤ 8) of C for `np` (1…3) consecutive panels starting at panel `p0`.
/// Columns at or past n (the zero padding of the last panel) are not written.
__attribute__((target("avx512f,fma"), always_inline))
static inline void tile(const float *x, long ldx, const int rows, const float *wp, long k, long p0, const int np,
                        long n, float *c, long ldc) {
    __m512 acc[MR][3];
    UNROLL for (int i = 0; i < MR; i++) UNROLL for (int t = 0; t < 3; t++) acc[i][t] = _mm512_setzero_ps();
    const float *w0 = wp + p0 * 16 * k;
    for (long kk = 0; kk < k; kk++) {
        __m512 b[3];
        UNROLL for (int t = 0; t < 3; t++) if (t < np) b[t] = _mm512_loadu_ps(w0 + t * 16 * k + kk * 16);
        UNROLL for (int i = 0; i < MR; i++) {
            if (i < rows) {
                __m512 xi = _mm512_set1_ps(x[i * ldx + kk]);
                UNROLL for (int t = 0; t < 3; t++) if (t < np) acc[i][t] = _mm512_fmadd_ps(xi, b[t], acc[i][t]);
            }
        }
    }
    for (int t = 0; t < 3 && t < np; t++) {
        const long col = (p0 + t) * 16;
        const long left = n - col;
        const __mmask16 m = left >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << left) - 1);
        for (int i = 0; i < MR && i < rows; i++) _mm512_mask_storeu_ps(c + i * ldc + col, m, acc[i][t]);
    }
}

/// `tile` compiled for each row count and panel count, so full tiles carry no tests inside.
__attribute__((target("avx512f,fma")))
static void tile_any(const float *x, long ldx, long rows, const float *wp, long k, long p0, long np, long n,
                     float *c, long ldc) {
#define AUSCULT_TILE_ROWS(R) \
    switch (np) { \
    case 3: tile(x, ldx, R, wp, k, p0, 3, n, c, ldc); break; \
    case 2: tile(x, ldx, R, wp, k, p0, 2, n, c, ldc); break; \
    default: tile(x, ldx, R, wp, k, p0, 1, n, c, ldc); break; \
    }
    switch (rows) {
    case 8: AUSCULT_TILE_ROWS(8) break;
    case 7: AUSCULT_TILE_ROWS(7) break;
    case 6: AUSCULT_TILE_ROWS(6) break;
    case 5: AUSCULT_TILE_ROWS(5) break;
    case 4: AUSCULT_TILE_ROWS(4) break;
    case 3: AUSCULT_TILE_ROWS(3) break;
    case 2: AUSCULT_TILE_ROWS(2) break;
    default: AUSCULT_TILE_ROWS(1) break;
    }
#undef AUSCULT_TILE_ROWS
}

__attribute__((target("avx512f,fma")))
void auscult_gemm_packed_avx512(const float *x, long m, long ldx, const float *wp, long n, long k,
                                long p0, long p1, float *c, long ldc) {
    for (long p = p0; p < p1; p += 3) {
        const long np = p1 - p < 3 ? p1 - p : 3;
        for (long i = 0; i < m; i += MR) {
            const long rows = m - i < MR ? m - i : MR;
            tile_any(x + i * ldx, ldx, rows, wp, k, p, np, n, c + i * ldc, ldc);
        }
    }
}

#else
void auscult_gemm_packed_avx512(const float *x, long m, long ldx, const float *wp, long n, long k,
                                long p0, long p1, float *c, long ldc) {
    (void)x; (void)m; (void)ldx; (void)wp; (void)n; (void)k; (void)p0; (void)p1; (void)c; (void)ldc;
    __builtin_trap();
}
#endif
