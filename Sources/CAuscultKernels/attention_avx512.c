// Fused encoder self-attention for dh = 64 on AVX-512: QKᵀ, exp and PV for six query rows at a
// time, with K (in panels of 16 keys) and V packed once per call so both stream from L2.
//
// Follows openai-whisper model.py `qkv_attention` (softmax(q kᵀ / √dh) v, no mask) and the
// arithmetic of AuscultTensor's `Attention.forward`: the 1/√dh scale on the scores, unnormalised
// e^(s − max) with `FastMath.exp`'s polynomial, P·V, then the 64-wide output rows
// multiplied by 1/Σ. OpenBLAS calls on 128-row blocks re-packed K, V and the probabilities for
// every block (k = 64 and n = 64 are its worst shapes): 23.5 ms per tiny.en layer on two cores
// against 14 here (QKᵀ at ~200 GFLOP/s per core, near the FMA peak).
#include "CAuscultKernels.h"

enum { DH = 64, ROWS = 6, BLOCK = 48, KEYS = 256 };

static long padded_keys(long nk) { return (nk + 15) / 16 * 16; }

long auscult_attention_packed_floats(long nk) { return DH * padded_keys(nk) + nk * DH; }

long auscult_attention_tile_floats(long nk) { return BLOCK * padded_keys(nk) + BLOCK * DH + 16; }

long auscult_attention_scratch(long nk) { return auscult_attention_packed_floats(nk) + ROWS * padded_keys(nk) + ROWS * DH + 16; }

void auscult_attention_pack(const float *k, long ldk, const float *v, long ldv, long nk, float *packed) {
    const long ld = padded_keys(nk);
    float *kt = packed;              // [ld/16][64][16], K in panels of 16 keys, zero past nk
    float *vp = kt + DH * ld;        // [nk][64], V contiguous
    for (long j = nk; j < ld; j++)
        for (int d = 0; d < DH; d++) kt[(j / 16) * 16 * DH + d * 16 + j % 16] = 0;
    for (long j = 0; j < nk; j++) {
        const float *kr = k + j * ldk;
        float *panel = kt + (j / 16) * 16 * DH + j % 16;
        for (int d = 0; d < DH; d++) panel[d * 16] = kr[d];
        const float *vr = v + j * ldv;
        for (int d = 0; d < DH; d++) vp[j * DH + d] = vr[d];
    }
}

#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include "exp_avx512.h"

int auscult_has_avx512(void) {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") ? 1 : 0;
}

/// s[i][j] = alpha · Σ_d q[i][d] · k[j][d] for `rows` (≤ 6) query rows and keys j0 ≤ j < j1
/// (multiples of 16). K comes packed in panels of 16 keys, `kp[j / 16][d][j % 16]`, so a 64-key
/// tile reads 16 KB contiguously; keys past nk are zero and never read back.
__attribute__((target("avx512f,fma"), always_inline))
static inline void scores_tile_n(const float *q, long ldq, const int rows, const float *kp, long ld, float alpha, float *s,
                                 long j0, long j1) {
    const __m512 a = _mm512_set1_ps(alpha);
    long j = j0;
    for (; j + 64 <= j1; j += 64) {
        __m512 c[ROWS][4];
        for (int i = 0; i < ROWS; i++) for (int t = 0; t < 4; t++) c[i][t] = _mm512_setzero_ps();
        const float *p = kp + j * DH;
        for (int d = 0; d < DH; d++) {
            __m512 b0 = _mm512_loadu_ps(p + 16 * d), b1 = _mm512_loadu_ps(p + 16 * DH + 16 * d);
            __m512 b2 = _mm512_loadu_ps(p + 32 * DH + 16 * d), b3 = _mm512_loadu_ps(p + 48 * DH + 16 * d);
            for (int i = 0; i < ROWS; i++) {
                if (i < rows) {
                    __m512 qi = _mm512_set1_ps(q[i * ldq + d]);
                    c[i][0] = _mm512_fmadd_ps(qi, b0, c[i][0]);
                    c[i][1] = _mm512_fmadd_ps(qi, b1, c[i][1]);
                    c[i][2] = _mm512_fmadd_ps(qi, b2, c[i][2]);
                    c[i][3] = _mm512_fmadd_ps(qi, b3, c[i][3]);
                }
            }
        }
        for (int i = 0; i < ROWS && i < rows; i++)
            for (int t = 0; t < 4; t++) _mm512_storeu_ps(s + i * ld + j + 16 * t, _mm512_mul_ps(c[i][t], a));
    }
    for (; j < j1; j += 16) {
        __m512 c[ROWS];
        for (int i = 0; i < ROWS; i++) c[i] = _mm512_setzero_ps();
        const float *p = kp + j * DH;
        for (int d = 0; d < DH; d++) {
            __m512 b0 = _mm512_loadu_ps(p + 16 * d);
            for (int i = 0; i < ROWS; i++)
                if (i < rows) c[i] = _mm512_fmadd_ps(_mm512_set1_ps(q[i * ldq + d]), b0, c[i]);
        }
        for (int i = 0; i < ROWS && i < rows; i++) _mm512_storeu_ps(s + i * ld + j, _mm512_mul_ps(c[i], a));
    }
}

/// In place: s[i][j] ← e^(s[i][j] − max_j s[i]) for j < nk; returns 1/Σ_j in inv[i].
__attribute__((target("avx512f,fma")))
static void exp_rows(float *s, long ld, long rows, long nk, float *inv) {
    const long vec = nk / 16 * 16;
    const __mmask16 tail = (__mmask16)((1u << (nk - vec)) - 1);
    for (long i = 0; i < rows; i++) {
        float *p = s + i * ld;
        __m512 mv = _mm512_set1_ps(-INFINITY);
        long j = 0;
        for (; j < vec; j += 16) mv = _mm512_max_ps(mv, _mm512_loadu_ps(p + j));
        if (tail) mv = _mm512_mask_max_ps(mv, tail, mv, _mm512_maskz_loadu_ps(tail, p + j));
        __m512 m = _mm512_set1_ps(_mm512_reduce_max_ps(mv));
        __m512 sv = _mm512_setzero_ps();
        for (j = 0; j < vec; j += 16) {
            __m512 e = exp16(_mm512_sub_ps(_mm512_loadu_ps(p + j), m));
            _mm512_storeu_ps(p + j, e);
            sv = _mm512_add_ps(sv, e);
        }
        if (tail) {
            __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, p + j), m));
            e = _mm512_maskz_mov_ps(tail, e);
            _mm512_mask_storeu_ps(p + j, tail, e);
            sv = _mm512_add_ps(sv, e);
        }
        inv[i] = 1.0f / _mm512_reduce_add_ps(sv);
    }
}

/// acc[i][0..<64] (+)= Σ_{j0 ≤ j < j1} p[i][j] · v[j][0..<64] for `rows` (≤ 6) rows, starting from
/// zero when `first`; when `last`, writes inv[i] · acc[i] to out[i] instead of back to acc.
__attribute__((target("avx512f,fma"), always_inline))
static inline void pv_tile_n(const float *p, long ld, const int rows, const float *vp, long j0, long j1, float *acc,
                             int first, int last, const float *inv, float *out, long ldo) {
    __m512 c[ROWS][4];
    for (int i = 0; i < ROWS; i++)
        for (int t = 0; t < 4; t++) c[i][t] = (first || i >= rows) ? _mm512_setzero_ps() : _mm512_loadu_ps(acc + i * DH + 16 * t);
    const float *vj = vp + j0 * DH;
    for (long j = j0; j < j1; j++) {
        __m512 b0 = _mm512_loadu_ps(vj), b1 = _mm512_loadu_ps(vj + 16);
        __m512 b2 = _mm512_loadu_ps(vj + 32), b3 = _mm512_loadu_ps(vj + 48);
        for (int i = 0; i < ROWS; i++) {
            if (i < rows) {
                __m512 pi = _mm512_set1_ps(p[i * ld + j]);
                c[i][0] = _mm512_fmadd_ps(pi, b0, c[i][0]);
                c[i][1] = _mm512_fmadd_ps(pi, b1, c[i][1]);
                c[i][2] = _mm512_fmadd_ps(pi, b2, c[i][2]);
                c[i][3] = _mm512_fmadd_ps(pi, b3, c[i][3]);
            }
        }
        vj += DH;
    }
    for (int i = 0; i < ROWS && i < rows; i++) {
        if (last) {
            __m512 sc = _mm512_set1_ps(inv[i]);
            for (int t = 0; t < 4; t++) _mm512_storeu_ps(out + i * ldo + 16 * t, _mm512_mul_ps(c[i][t], sc));
        } else {
            for (int t = 0; t < 4; t++) _mm512_storeu_ps(acc + i * DH + 16 * t, c[i][t]);
        }
    }
}

/// `scores_tile_n` and `pv_tile_n` compiled once per row count, so the full six-row tile has no
/// per-row test in its inner loop.
__attribute__((target("avx512f,fma")))
static void scores_tile(const float *q, long ldq, long rows, const float *kt, long ld, float alpha, float *s,
                        long j0, long j1) {
    switch (rows) {
    case 6: scores_tile_n(q, ldq, 6, kt, ld, alpha, s, j0, j1); break;
    case 5: scores_tile_n(q, ldq, 5, kt, ld, alpha, s, j0, j1); break;
    case 4: scores_tile_n(q, ldq, 4, kt, ld, alpha, s, j0, j1); break;
    case 3: scores_tile_n(q, ldq, 3, kt, ld, alpha, s, j0, j1); break;
    case 2: scores_tile_n(q, ldq, 2, kt, ld, alpha, s, j0, j1); break;
    default: scores_tile_n(q, ldq, 1, kt, ld, alpha, s, j0, j1); break;
    }
}

__attribute__((target("avx512f,fma")))
static void pv_tile(const float *p, long ld, long rows, const float *vp, long j0, long j1, float *acc,
                    int first, int last, const float *inv, float *out, long ldo) {
    switch (rows) {
    case 6: pv_tile_n(p, ld, 6, vp, j0, j1, acc, first, last, inv, out, ldo); break;
    case 5: pv_tile_n(p, ld, 5, vp, j0, j1, acc, first, last, inv, out, ldo); break;
    case 4: pv_tile_n(p, ld, 4, vp, j0, j1, acc, first, last, inv, out, ldo); break;
    case 3: pv_tile_n(p, ld, 3, vp, j0, j1, acc, first, last, inv, out, ldo); break;
    case 2: pv_tile_n(p, ld, 2, vp, j0, j1, acc, first, last, inv, out, ldo); break;
    default: pv_tile_n(p, ld, 1, vp, j0, j1, acc, first, last, inv, out, ldo); break;
    }
}

/// Rows r0 ..< r1 against one head's packed K and V, `block` rows at a time (a multiple of 6,
/// at most BLOCK): each block's scores fill `s` (block · ld floats) and its unnormalised outputs
/// `acc` (block · 64), while K and V pass in chunks of KEYS keys that every six-row tile of the
/// block reuses from L1. One row block reads K and V once, however many rows it holds.
__attribute__((target("avx512f,fma")))
static void rows_packed(const float *q, long ldq, const float *packed, long r0, long r1, long nk, float alpha,
                        float *out, long ldo, float *s, float *acc, long block, float *scores_out, float *pattern_out) {
    const long ld = padded_keys(nk);
    const float *kt = packed, *vp = packed + DH * ld;
    float inv[BLOCK];
    for (long b0 = r0; b0 < r1; b0 += block) {
        const long rows = r1 - b0 < block ? r1 - b0 : block;
        for (long j0 = 0; j0 < ld; j0 += KEYS) {
            const long j1 = ld - j0 < KEYS ? ld : j0 + KEYS;
            for (long c = 0; c < rows; c += ROWS)
                scores_tile(q + (b0 + c) * ldq, ldq, rows - c < ROWS ? rows - c : ROWS, kt, ld, alpha, s + c * ld, j0, j1);
        }
        if (scores_out)
            for (long i = 0; i < rows; i++)
                for (long j = 0; j < nk; j++) scores_out[(b0 + i) * nk + j] = s[i * ld + j];
        exp_rows(s, ld, rows, nk, inv);
        if (pattern_out)
            for (long i = 0; i < rows; i++)
                for (long j = 0; j < nk; j++) pattern_out[(b0 + i) * nk + j] = s[i * ld + j] * inv[i];
        for (long j0 = 0; j0 < nk; j0 += KEYS) {
            const long j1 = nk - j0 < KEYS ? nk : j0 + KEYS;
            for (long c = 0; c < rows; c += ROWS)
                pv_tile(s + c * ld, ld, rows - c < ROWS ? rows - c : ROWS, vp, j0, j1, acc + c * DH,
                        j0 == 0, j1 == nk, inv + c, out + (b0 + c) * ldo, ldo);
        }
    }
}

__attribute__((target("avx512f,fma")))
void auscult_attention_rows_avx512(const float *q, long ldq, const float *k, long ldk,
                                   const float *v, long ldv, long r0, long r1, long nk, float alpha,
                                   float *out, long ldo, float *scratch,
                                   float *scores_out, float *pattern_out) {
    // Six rows per block: their scores (36 KB) stay in L1 and K, V (768 KB) in L2.
    float *tile = scratch + auscult_attention_packed_floats(nk);
    auscult_attention_pack(k, ldk, v, ldv, nk, scratch);
    rows_packed(q, ldq, scratch, r0, r1, nk, alpha, out, ldo, tile, tile + ROWS * padded_keys(nk), ROWS,
                scores_out, pattern_out);
}

__attribute__((target("avx512f,fma")))
void auscult_attention_packed_avx512(const float *q, long ldq, const float *packed, long nq, long nk, float alpha,
                                     float *out, long ldo, float *scratch, float *pattern_out) {
    // Up to 48 rows per block (scores 0.3 MB in L2): the rows of a clip's sequences share each
    // pass over its keys and values, which come from memory.
    rows_packed(q, ldq, packed, 0, nq, nk, alpha, out, ldo, scratch, scratch + BLOCK * padded_keys(nk), BLOCK, 0, pattern_out);
}

#else
// Not x86-64: callers take the portable Swift path.
int auscult_has_avx512(void) { return 0; }

void auscult_attention_rows_avx512(const float *q, long ldq, const float *k, long ldk,
                                   const float *v, long ldv, long r0, long r1, long nk, float alpha,
                                   float *out, long ldo, float *scratch,
                                   float *scores_out, float *pattern_out) {
    (void)q; (void)ldq; (void)k; (void)ldk; (void)v; (void)ldv; (void)r0; (void)r1; (void)nk; (void)alpha;
    (void)out; (void)ldo; (void)scratch; (void)scores_out; (void)pattern_out;
    __builtin_trap();
}

void auscult_attention_packed_avx512(const float *q, long ldq, const float *packed, long nq, long nk, float alpha,
                                     float *out, long ldo, float *scratch, float *pattern_out) {
    (void)q; (void)ldq; (void)packed; (void)nq; (void)nk; (void)alpha; (void)out; (void)ldo; (void)scratch; (void)pattern_out;
    __builtin_trap();
}
#endif
