// Cross-attention straight from a clip's audio features on CPUs with AVX2 and FMA: the algorithm
// of cross_features_avx512.c (see there for the formula and why) on eight lanes.
//
// Scores: tiles of 4 frames × 3 (row, head) pairs, twelve accumulators, each a fused
// multiply-add chain in order of k reduced across lanes the same way for every pair. Weighted
// sums: 3 pairs × 32 columns. One pass over the features in blocks of 128 frames with an online
// softmax. A pair's arithmetic does not depend on the other pairs of the call.
#include "CAuscultKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#include "exp_avx2.h"

enum { FR = 4, PB = 3, KC = 4, JB = 128, PF = 8 };

/// s[p][j0 + f] = alpha · Σ_k u[p][k] x[j0 + f][k] for nfr ≤ FR frames and np ≤ PB pairs.
__attribute__((always_inline))
static inline void scores_tile(const float *u, long d, const float *x, long ldx, long j0, int nfr, int np,
                               float alpha, float *s, long nf, int prefetch) {
    __m256 acc[PB * FR];
    for (int i = 0; i < PB * FR; i++) acc[i] = _mm256_setzero_ps();
    for (long k = 0; k < d; k += 8) {
        __m256 xv[FR];
        for (int f = 0; f < nfr; f++) xv[f] = _mm256_loadu_ps(x + (j0 + f) * ldx + k);
        if (prefetch && k % 16 == 0)
            for (int f = 0; f < nfr; f++) _mm_prefetch((const char *)(x + (j0 + PF + f) * ldx + k), _MM_HINT_T0);
        for (int p = 0; p < np; p++) {
            const __m256 uv = _mm256_loadu_ps(u + p * d + k);
            for (int f = 0; f < nfr; f++) acc[p * FR + f] = _mm256_fmadd_ps(xv[f], uv, acc[p * FR + f]);
        }
    }
    for (int p = 0; p < np; p++)
        for (int f = 0; f < nfr; f++) s[p * nf + j0 + f] = alpha * sum8(acc[p * FR + f]);
}

/// One frame tile against every pair, PB pairs at a time.
static void scores_frames(const float *u, long pairs, long d, const float *x, long ldx, long j0, int nfr,
                          float alpha, float *s, long nf) {
    long p = 0;
    if (nfr == FR) {
        const int ahead = j0 + PF + FR <= nf;
        for (; p + PB <= pairs; p += PB) scores_tile(u + p * d, d, x, ldx, j0, FR, PB, alpha, s + p * nf, nf, ahead && p == 0);
        for (; p < pairs; p++) scores_tile(u + p * d, d, x, ldx, j0, FR, 1, alpha, s + p * nf, nf, ahead && p == 0);
    } else {
        for (; p < pairs; p++)
            for (int f = 0; f < nfr; f++) scores_tile(u + p * d, d, x, ldx, j0 + f, 1, 1, alpha, s + p * nf, nf, 0);
    }
}

/// Σ_j e[p][j] x[j][k0 ..< k0 + 8·nc] for j0 ≤ j < j1 added to y[p][k0 ...], np ≤ PB pairs.
__attribute__((always_inline))
static inline void pv_tile(const float *e, long ld, const float *x, long ldx, long j0, long j1, long k0,
                           int nc, int np, float *y, long d) {
    __m256 acc[PB * KC];
    for (int p = 0; p < np; p++)
        for (int c = 0; c < nc; c++) acc[p * KC + c] = _mm256_loadu_ps(y + p * d + k0 + 8 * c);
    for (long j = j0; j < j1; j++) {
        __m256 xv[KC];
        for (int c = 0; c < nc; c++) xv[c] = _mm256_loadu_ps(x + j * ldx + k0 + 8 * c);
        for (int p = 0; p < np; p++) {
            const __m256 ep = _mm256_broadcast_ss(e + p * ld + j - j0);
            for (int c = 0; c < nc; c++) acc[p * KC + c] = _mm256_fmadd_ps(ep, xv[c], acc[p * KC + c]);
        }
    }
    for (int p = 0; p < np; p++)
        for (int c = 0; c < nc; c++) _mm256_storeu_ps(y + p * d + k0 + 8 * c, acc[p * KC + c]);
}

/// Maximum of s[0 ..< n].
static float max_range(const float *s, long n) {
    __m256 mv = _mm256_set1_ps(-INFINITY);
    long j = 0;
    for (; j + 8 <= n; j += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(s + j));
    float lanes[8], m = -INFINITY;
    _mm256_storeu_ps(lanes, mv);
    for (int i = 0; i < 8; i++) m = lanes[i] > m ? lanes[i] : m;
    for (; j < n; j++) m = s[j] > m ? s[j] : m;
    return m;
}

/// e[j] = e^(s[j] − m) for j < n; returns their sum (8 lanes, then across lanes, then the tail).
static float exp_range(const float *s, long n, float m, float *e) {
    const __m256 mv = _mm256_set1_ps(m);
    __m256 sv = _mm256_setzero_ps();
    long j = 0;
    for (; j + 8 <= n; j += 8) {
        const __m256 v = exp8(_mm256_sub_ps(_mm256_loadu_ps(s + j), mv));
        _mm256_storeu_ps(e + j, v);
        sv = _mm256_add_ps(sv, v);
    }
    float total = sum8(sv);
    if (j < n) {
        float in[8], out[8];
        for (int i = 0; i < 8; i++) in[i] = j + i < n ? s[j + i] - m : -INFINITY;
        _mm256_storeu_ps(out, exp8(_mm256_loadu_ps(in)));
        for (long i = 0; j + i < n; i++) { e[j + i] = out[i]; total += out[i]; }
    }
    return total;
}

static float exp1(float x) {
    float out[8];
    _mm256_storeu_ps(out, exp8(_mm256_set1_ps(x)));
    return out[0];
}

static void cross_features_x86(const float *u, long pairs, const float *x, long ldx, long nf, long d,
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
                    const __m256 cv = _mm256_set1_ps(c);
                    for (long k = 0; k < d; k += 8) _mm256_storeu_ps(y + p * d + k, _mm256_mul_ps(_mm256_loadu_ps(y + p * d + k), cv));
                }
                m[p] = mb;
            }
            sum[p] += exp_range(s + p * nf + j0, nb, m[p], e + p * JB);
        }
        for (long k = 0; k < d; k += 8 * KC) {
            const int nc = (int)((d - k) / 8 < KC ? (d - k) / 8 : KC);
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
        const __m256 sc = _mm256_set1_ps(inv);
        for (long k = 0; k < d; k += 8) _mm256_storeu_ps(y + p * d + k, _mm256_mul_ps(_mm256_loadu_ps(y + p * d + k), sc));
        if (pattern_out) {
            float *row = pattern_out + (p % heads) * ld_head + (p / heads) * ld_row;
            exp_range(s + p * nf, nf, m[p], row);
            for (long jj = 0; jj < nf; jj++) row[jj] *= inv;
        }
    }
}

#pragma clang attribute pop
#endif

/// Needs AVX2 and FMA (callers ask first: Attention.readsFeatures).
void auscult_cross_features_avx2(const float *u, long pairs, const float *x, long ldx, long nf, long d,
                                 float alpha, float *y, float *scratch,
                                 float *pattern_out, long heads, long ld_head, long ld_row) {
#if defined(__x86_64__)
    if (auscult_cpu_has_avx2()) {
        cross_features_x86(u, pairs, x, ldx, nf, d, alpha, y, scratch, pattern_out, heads, ld_head, ld_row);
        return;
    }
#endif
    (void)u; (void)pairs; (void)x; (void)ldx; (void)nf; (void)d; (void)alpha; (void)y; (void)scratch;
    (void)pattern_out; (void)heads; (void)ld_head; (void)ld_row;
    __builtin_trap();
}
