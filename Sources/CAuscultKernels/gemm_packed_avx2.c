// C[m, n] = X[m, k] · W[n, k]ᵀ (+ bias) with W packed once into panels of 16 rows
// (`auscult_pack_panels`), for every linear layer of the model on CPUs with AVX2 and FMA (the
// project's build baseline, x86-64-v3).
//
// Why not OpenBLAS: its Haswell/Zen sgemm gives a row a different rounding depending on where
// the row falls in its micro-tiles and on how many rows the call has (measured: a 1500-row
// product and the same rows inside a 4500-row one differ in 35 % of their entries once offset by
// 7 rows), and `linear` itself chose sgemv, a small-M kernel or sgemm by the row count. So a
// clip's activations changed with the clips batched beside it, and a decoder sequence's with the
// sequences beside it. Here every output is one fused multiply-add per term from zero in order
// of k, then the bias added once — the arithmetic of `auscult_gemm_packed_avx512` too — whatever
// the tile, the row count or the split across workers: a row's result depends on that row alone.
//
// Tiles: 6 rows × 16 columns (12 accumulators, as BLIS's Haswell kernel) when there are many rows;
// with fewer rows, more panels per tile (one row × 6 panels), so that twelve independent chains
// hide the FMA latency either way. Rows are taken in blocks that stay in L2, and the weight in
// groups of panels that stay in L2 while every row of the block passes over them, so the weight
// is read from memory once per block of rows, not once per six rows.
//
// `auscult_gemm_strided_avx2` runs the same tiles over an unpacked `[k, n]` operand read in
// 16-column slices (a row stride instead of the panel's 16): the decoder's self-attention cache,
// which grows by a key column and a value row per step, is multiplied where it lies.
#include "CAuscultKernels.h"

void auscult_pack_columns(const float *b, long ldb, long k, long n, float *out) {
    const long panels = (n + 15) / 16;
    for (long p = 0; p < panels; p++) {
        float *dst = out + p * 16 * k;
        const long width = n - p * 16 < 16 ? n - p * 16 : 16;
        for (long kk = 0; kk < k; kk++) {
            const float *src = b + kk * ldb + p * 16;
            long c = 0;
            for (; c < width; c++) dst[kk * 16 + c] = src[c];
            for (; c < 16; c++) dst[kk * 16 + c] = 0.0f;
        }
    }
}

#if defined(__x86_64__)
#include <immintrin.h>
// AVX2 + FMA for every function up to the matching pop: chosen at run time (auscult_has_avx2).
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)

enum { MR = 6, NPMAX = 6 };
#define UNROLL _Pragma("clang loop unroll(full)")

/// Rows 0 ..< rows of x against `np` consecutive panels from `w0` (term kk of column j of panel t
/// at w0[t · wpanel + kk · wrow + j]); writes the 16·np columns from `col` (those at or past n
/// are not written), adding bias[col + j] when bias is not NULL.
__attribute__((always_inline))
static inline void tile(const float *x, long ldx, const int rows, const float *w0, long wrow, long wpanel, long k,
                        const int np, long col, long n, const float *bias, float *c, long ldc) {
    __m256 acc[MR][2 * NPMAX];
    // Every loop over rows and panels unrolled whole, so that `acc` lives in registers: SwiftPM
    // builds C at -O2, whose unrolling threshold left the 6 × 2 accumulators of a full tile in
    // memory (the encoder forward 243 → 276 ms on tiny.en against the -O3 build).
    UNROLL for (int i = 0; i < MR; i++) UNROLL for (int t = 0; t < 2 * NPMAX; t++) acc[i][t] = _mm256_setzero_ps();
    for (long kk = 0; kk < k; kk++) {
        __m256 b[2 * NPMAX];
        UNROLL for (int t = 0; t < np; t++) {
            b[2 * t] = _mm256_loadu_ps(w0 + t * wpanel + kk * wrow);
            b[2 * t + 1] = _mm256_loadu_ps(w0 + t * wpanel + kk * wrow + 8);
        }
        UNROLL for (int i = 0; i < rows; i++) {
            const __m256 xi = _mm256_broadcast_ss(x + i * ldx + kk);
            UNROLL for (int t = 0; t < 2 * np; t++) acc[i][t] = _mm256_fmadd_ps(xi, b[t], acc[i][t]);
        }
    }
    for (int t = 0; t < 2 * np; t++) {
        const long c0 = col + 8 * t;
        if (c0 >= n) break;
        const long left = n - c0;
        if (left >= 8) {
            const __m256 bv = bias ? _mm256_loadu_ps(bias + c0) : _mm256_setzero_ps();
            for (int i = 0; i < rows; i++)
                _mm256_storeu_ps(c + i * ldc + c0, bias ? _mm256_add_ps(acc[i][t], bv) : acc[i][t]);
        } else {
            float lanes[8];
            for (int i = 0; i < rows; i++) {
                _mm256_storeu_ps(lanes, acc[i][t]);
                for (long j = 0; j < left; j++) c[i * ldc + c0 + j] = bias ? lanes[j] + bias[c0 + j] : lanes[j];
            }
        }
    }
}

/// `tile` compiled for each shape the driver uses (rows × panels: 6–4 × 1, 3 × 1–2, 2 × 1–3,
/// 1 × 1–6), so full tiles carry no tests inside.
static void tile_any(const float *x, long ldx, int rows, const float *w0, long wrow, long wpanel, long k, int np,
                     long col, long n, const float *bias, float *c, long ldc) {
    switch (rows * 8 + np) {
    case 6 * 8 + 1: tile(x, ldx, 6, w0, wrow, wpanel, k, 1, col, n, bias, c, ldc); break;
    case 5 * 8 + 1: tile(x, ldx, 5, w0, wrow, wpanel, k, 1, col, n, bias, c, ldc); break;
    case 4 * 8 + 1: tile(x, ldx, 4, w0, wrow, wpanel, k, 1, col, n, bias, c, ldc); break;
    case 3 * 8 + 2: tile(x, ldx, 3, w0, wrow, wpanel, k, 2, col, n, bias, c, ldc); break;
    case 3 * 8 + 1: tile(x, ldx, 3, w0, wrow, wpanel, k, 1, col, n, bias, c, ldc); break;
    case 2 * 8 + 3: tile(x, ldx, 2, w0, wrow, wpanel, k, 3, col, n, bias, c, ldc); break;
    case 2 * 8 + 2: tile(x, ldx, 2, w0, wrow, wpanel, k, 2, col, n, bias, c, ldc); break;
    case 2 * 8 + 1: tile(x, ldx, 2, w0, wrow, wpanel, k, 1, col, n, bias, c, ldc); break;
    case 1 * 8 + 6: tile(x, ldx, 1, w0, wrow, wpanel, k, 6, col, n, bias, c, ldc); break;
    case 1 * 8 + 5: tile(x, ldx, 1, w0, wrow, wpanel, k, 5, col, n, bias, c, ldc); break;
    case 1 * 8 + 4: tile(x, ldx, 1, w0, wrow, wpanel, k, 4, col, n, bias, c, ldc); break;
    case 1 * 8 + 3: tile(x, ldx, 1, w0, wrow, wpanel, k, 3, col, n, bias, c, ldc); break;
    case 1 * 8 + 2: tile(x, ldx, 1, w0, wrow, wpanel, k, 2, col, n, bias, c, ldc); break;
    default: tile(x, ldx, 1, w0, wrow, wpanel, k, 1, col, n, bias, c, ldc); break;
    }
}

/// The driver over panels p0 ..< p1 laid out as `tile` reads them.
static void gemm(const float *x, long m, long ldx, const float *wp, long wrow, long wpanel, long n, long k,
                 long p0, long p1, const float *bias, float *c, long ldc) {
    // Rows per block: the block's share of x (mc · k floats) in about 128 KB of L2.
    const long kk = k > 0 ? k : 1;
    long mc = (128 * 1024 / 4) / kk;
    mc = mc < MR ? MR : mc / MR * MR;
    // Panels per group: a group (16 · k floats a panel) in about 192 KB of L2, so that all the
    // block's rows pass over it before the next group is read. Without groups every six rows
    // streamed the whole weight: 80 MB of tiny.en's token embedding from memory per six rows at
    // each decoding step, which made the sweep's batched logits memory-bound.
    long group = (192 * 1024 / 4) / (16 * kk);
    if (group < 1) group = 1;
    for (long i0 = 0; i0 < m; i0 += mc) {
        const long i1 = i0 + mc < m ? i0 + mc : m;
        const long full = i0 + (i1 - i0) / MR * MR;
        for (long g0 = p0; g0 < p1 && full > i0; g0 += group) {
            const long g1 = g0 + group < p1 ? g0 + group : p1;
            for (long i = i0; i < full; i += MR)
                for (long p = g0; p < g1; p++)
                    tile_any(x + i * ldx, ldx, MR, wp + p * wpanel, wrow, wpanel, k, 1, p * 16, n, bias, c + i * ldc, ldc);
        }
        if (full < i1) {
            // The rows left when fewer than six (only in the last block) take more panels per
            // tile, twelve accumulators in all, in one pass over the weight.
            const int rows = (int)(i1 - full);
            const int per = rows >= 4 ? 1 : rows == 3 ? 2 : rows == 2 ? 3 : NPMAX;
            for (long p = p0; p < p1; p += per) {
                const int np = (int)(p1 - p < per ? p1 - p : per);
                tile_any(x + full * ldx, ldx, rows, wp + p * wpanel, wrow, wpanel, k, np, p * 16, n, bias, c + full * ldc, ldc);
            }
        }
    }
}

#pragma clang attribute pop
#endif

/// The portable body: the same fused multiply-add per term in order of kk, then the bias (the
/// same bits as the AVX2 tiles).
static void gemm_packed_portable(const float *x, long m, long ldx, const float *wp, long n, long k,
                                 long p0, long p1, const float *bias, float *c, long ldc) {
    for (long i = 0; i < m; i++)
        for (long j = p0 * 16; j < p1 * 16 && j < n; j++) {
            const float *w = wp + (j / 16) * 16 * k + j % 16;
            float acc = 0;
            for (long kk = 0; kk < k; kk++) acc = __builtin_fmaf(x[i * ldx + kk], w[kk * 16], acc);
            c[i * ldc + j] = bias ? acc + bias[j] : acc;
        }
}

static void gemm_strided_portable(const float *x, long m, long ldx, const float *w, long ldw, long n, long k,
                                  float *c, long ldc) {
    for (long i = 0; i < m; i++)
        for (long j = 0; j < n; j++) {
            float acc = 0;
            for (long kk = 0; kk < k; kk++) acc = __builtin_fmaf(x[i * ldx + kk], w[kk * ldw + j], acc);
            c[i * ldc + j] = acc;
        }
}
void auscult_gemm_packed_avx2(const float *x, long m, long ldx, const float *wp, long n, long k,
                              long p0, long p1, const float *bias, float *c, long ldc) {
#if defined(__x86_64__)
    if (auscult_has_avx2()) { gemm(x, m, ldx, wp, 16, 16 * k, n, k, p0, p1, bias, c, ldc); return; }
#endif
    gemm_packed_portable(x, m, ldx, wp, n, k, p0, p1, bias, c, ldc);
}

void auscult_gemm_strided_avx2(const float *x, long m, long ldx, const float *w, long ldw, long n, long k,
                               float *c, long ldc) {
#if defined(__x86_64__)
    if (auscult_has_avx2()) { gemm(x, m, ldx, w, ldw, 16, n, k, 0, (n + 15) / 16, NULL, c, ldc); return; }
#endif
    gemm_strided_portable(x, m, ldx, w, ldw, n, k, c, ldc);
}
