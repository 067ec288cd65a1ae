// Cross-attention of query rows against a clip's audio features, without forming its keys and
// values: for every head h, with u_h = W_k,hᵀ q_h (the query pulled back through the key weight)
// and y_h = Σ_j p_hj x_j (the features averaged with the attention weights),
//
//     s_hj = alpha · u_h · x_j,   p_h = softmax_j(s_h),   z_h = W_v,h y_h + b_v,h
//
// which is openai-whisper model.py `qkv_attention` with k = x W_kᵀ and v = x W_vᵀ + b_v
// multiplied out in the other order (the key has no bias; a key bias would shift every score of
// a head equally and cancel in the softmax). The caller forms u before and z after this kernel.
//
// Why: a decoding step of a sequence that is alone on its clip (a sweep's encoder conditions)
// otherwise reads that clip's keys and values, 2 · F · d floats per layer, from memory that no
// cache holds (18 MB per row and step for tiny.en, 160 rows to a wave); here it reads the F · d
// features, the same for every layer, and needs no key/value projection (3.5 GFLOP per clip) and
// no memory for them. The price is heads-fold arithmetic, cheap against those bytes.
//
// Query rows come several at a time (teacher forcing scores a whole transcript): each (row, head)
// pair is a row of u, and the features stream from memory once per call for all of them, in
// blocks of 128 frames that stay in L2 while every pair passes over them, for its scores and
// then for its weighted sum. e^x is `exp16`, and 1/Σ is applied to the output row.
#include "CAuscultKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include "exp_avx512.h"

enum { FR = 4, PB = 6, KC = 4, JB = 128, PF = 8 };

/// s[p][j0 + f] = alpha · Σ_k u[p][k] x[j0 + f][k] for nfr ≤ FR frames and np ≤ PB pairs.
__attribute__((target("avx512f,fma"), always_inline))
static inline void scores_tile(const float *u, long d, const float *x, long ldx, long j0, int nfr, int np,
                               float alpha, float *s, long nf, int prefetch) {
    __m512 acc[PB * FR];
    for (int i = 0; i < np * nfr; i++) acc[i] = _mm512_setzero_ps();
    for (long k = 0; k < d; k += 16) {
        __m512 xv[FR];
        for (int f = 0; f < nfr; f++) xv[f] = _mm512_loadu_ps(x + (j0 + f) * ldx + k);
        // The frames two tiles ahead, a line per frame and step: one core's stream from memory
        // went from 5.5 to 7.7 GB/s (the hardware prefetcher alone does not reach far enough).
        if (prefetch)
            for (int f = 0; f < nfr; f++) _mm_prefetch((const char *)(x + (j0 + PF + f) * ldx + k), _MM_HINT_T0);
        for (int p = 0; p < np; p++) {
            __m512 uv = _mm512_loadu_ps(u + p * d + k);
            for (int f = 0; f < nfr; f++) acc[p * FR + f] = _mm512_fmadd_ps(xv[f], uv, acc[p * FR + f]);
        }
    }
    for (int p = 0; p < np; p++)
        for (int f = 0; f < nfr; f++) s[p * nf + j0 + f] = alpha * _mm512_reduce_add_ps(acc[p * FR + f]);
}

/// One frame tile against every pair, PB pairs at a time (the tile stays in L1).
__attribute__((target("avx512f,fma")))
static void scores_frames(const float *u, long pairs, long d, const float *x, long ldx, long j0, int nfr,
                          float alpha, float *s, long nf) {
    long p = 0;
    if (nfr == FR) {
        // Prefetch on the first pass over the tile only, and not past the last frame.
        const int ahead = j0 + PF + FR <= nf;
        for (; p + PB <= pairs; p += PB) scores_tile(u + p * d, d, x, ldx, j0, FR, PB, alpha, s + p * nf, nf, ahead && p == 0);
        for (; p < pairs; p++) scores_tile(u + p * d, d, x, ldx, j0, FR, 1, alpha, s + p * nf, nf, ahead && p == 0);
    } else {
        for (; p < pairs; p++)
            for (int f = 0; f < nfr; f++) scores_tile(u + p * d, d, x, ldx, j0 + f, 1, 1, alpha, s + p * nf, nf, 0);
    }
}

/// Σ_j e[p][j] x[j][k0 ..< k0 + 16·nc] for j0 ≤ j < j1 added to y[p][k0 ...], np ≤ PB pairs,
/// nc ≤ KC column chunks; e[p] has row stride ld.
__attribute__((target("avx512f,fma"), always_inline))
static inline void pv_tile(const float *e, long ld, const float *x, long ldx, long j0, long j1, long k0,
                           int nc, int np, float *y, long d) {
    __m512 acc[PB * KC];
    for (int p = 0; p < np; p++)
        for (int c = 0; c < nc; c++) acc[p * KC + c] = _mm512_loadu_ps(y + p * d + k0 + 16 * c);
    for (long j = j0; j < j1; j++) {
        __m512 xv[KC];
        for (int c = 0; c < nc; c++) xv[c] = _mm512_loadu_ps(x + j * ldx + k0 + 16 * c);
        for (int p = 0; p < np; p++) {
            __m512 ep = _mm512_set1_ps(e[p * ld + j - j0]);
            for (int c = 0; c < nc; c++) acc[p * KC + c] = _mm512_fmadd_ps(ep, xv[c], acc[p * KC + c]);
        }
    }
    for (int p = 0; p < np; p++)
        for (int c = 0; c < nc; c++) _mm512_storeu_ps(y + p * d + k0 + 16 * c, acc[p * KC + c]);
}

/// Maximum of s[j0 ..< j1].
__attribute__((target("avx512f,fma")))
static float max_range(const float *s, long n) {
    __m512 mv = _mm512_set1_ps(-INFINITY);
    long j = 0;
    for (; j + 16 <= n; j += 16) mv = _mm512_max_ps(mv, _mm512_loadu_ps(s + j));
    if (j < n) {
        const __mmask16 tail = (__mmask16)((1u << (n - j)) - 1);
        mv = _mm512_mask_max_ps(mv, tail, mv, _mm512_maskz_loadu_ps(tail, s + j));
    }
    return _mm512_reduce_max_ps(mv);
}

/// e[j] = e^(s[j] − m) for j < n; returns their sum (16 lanes, then across lanes).
__attribute__((target("avx512f,fma")))
static float exp_range(const float *s, long n, float m, float *e) {
    const __m512 mv = _mm512_set1_ps(m);
    __m512 sv = _mm512_setzero_ps();
    long j = 0;
    for (; j + 16 <= n; j += 16) {
        __m512 v = exp16(_mm512_sub_ps(_mm512_loadu_ps(s + j), mv));
        _mm512_storeu_ps(e + j, v);
        sv = _mm512_add_ps(sv, v);
    }
    if (j < n) {
        const __mmask16 tail = (__mmask16)((1u << (n - j)) - 1);
        __m512 v = _mm512_maskz_mov_ps(tail, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, s + j), mv)));
        _mm512_mask_storeu_ps(e + j, tail, v);
        sv = _mm512_add_ps(sv, v);
    }
    return _mm512_reduce_add_ps(sv);
}

__attribute__((target("avx512f,fma")))
static float exp1(float x) {
    float out[16];
    _mm512_storeu_ps(out, exp16(_mm512_set1_ps(x)));
    return out[0];
}

// One pass over the features in blocks of JB frames (192 KB for d = 384, held in L2 between the
// scores and the weighted sum): the softmax runs online, as flash attention and PyTorch's
// scaled_dot_product_attention do. When a block raises a pair's maximum, its sum and partial y
// are rescaled by e^(old − new). Two passes (all scores, then P·X) read the features twice and
// left a sweep's generation bound by memory at 12.6 GB/s.
__attribute__((target("avx512f,fma")))
void auscult_cross_features_avx512(const float *u, long pairs, const float *x, long ldx, long nf, long d,
                                   float alpha, float *y, float *scratch,
                                   float *pattern_out, long heads, long ld_head, long ld_row) {
    float *s = scratch;                     // [pairs][nf] scores
    float *e = s + pairs * nf;              // [pairs][JB] this block's e^(s − m)
    float *m = e + pairs * JB;              // [pairs] running maximum
    float *sum = m + pairs;                 // [pairs] running Σ e
    for (long p = 0; p < pairs; p++) { m[p] = -INFINITY; sum[p] = 0; }
    for (long i = 0; i < pairs * d; i++) y[i] = 0;
    for (long j0 = 0; j0 < nf; j0 += JB) {
        const long j1 = j0 + JB < nf ? j0 + JB : nf, nb = j1 - j0;
        long j = j0;
        for (; j + FR <= j1; j += FR) scores_frames(u, pairs, d, x, ldx, j, FR, alpha, s, nf);
        if (j < j1) scores_frames(u, pairs, d, x, ldx, j, (int)(j1 - j), alpha, s, nf);
        for (long p = 0; p < pairs; p++) {
            const float mb = max_range(s + p * nf + j0, nb);
            if (mb > m[p]) {
                if (j0 > 0) {
                    const float c = exp1(m[p] - mb);
                    sum[p] *= c;
                    const __m512 cv = _mm512_set1_ps(c);
                    for (long k = 0; k < d; k += 16) _mm512_storeu_ps(y + p * d + k, _mm512_mul_ps(_mm512_loadu_ps(y + p * d + k), cv));
                }
                m[p] = mb;
            }
            sum[p] += exp_range(s + p * nf + j0, nb, m[p], e + p * JB);
        }
        for (long k = 0; k < d; k += 16 * KC) {
            const int nc = (int)((d - k) / 16 < KC ? (d - k) / 16 : KC);
            long p = 0;
            for (; p + PB <= pairs; p += PB) {
                if (nc == KC) pv_tile(e + p * JB, JB, x, ldx, j0, j1, k, KC, PB, y + p * d, d);
                else pv_tile(e + p * JB, JB, x, ldx, j0, j1, k, nc, PB, y + p * d, d);
            }
            for (; p < pairs; p++) pv_tile(e + p * JB, JB, x, ldx, j0, j1, k, nc, 1, y + p * d, d);
        }
    }
    for (long p = 0; p < pairs; p++) {
        const float inv = 1.0f / sum[p];
        const __m512 sc = _mm512_set1_ps(inv);
        for (long k = 0; k < d; k += 16) _mm512_storeu_ps(y + p * d + k, _mm512_mul_ps(_mm512_loadu_ps(y + p * d + k), sc));
        if (pattern_out) {
            float *row = pattern_out + (p % heads) * ld_head + (p / heads) * ld_row;
            exp_range(s + p * nf, nf, m[p], row);
            for (long jj = 0; jj < nf; jj++) row[jj] *= inv;
        }
    }
}

#else
void auscult_cross_features_avx512(const float *u, long pairs, const float *x, long ldx, long nf, long d,
                                   float alpha, float *y, float *scratch,
                                   float *pattern_out, long heads, long ld_head, long ld_row) {
    (void)u; (void)pairs; (void)x; (void)ldx; (void)nf; (void)d; (void)alpha; (void)y; (void)scratch;
    (void)pattern_out; (void)heads; (void)ld_head; (void)ld_row;
}
#endif
