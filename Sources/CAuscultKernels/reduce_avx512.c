// One row of logits → its argmax and log Σ exp: the per-step read-out of greedy decoding.
//
// The Swift loops took three scalar passes over the 51 864 logits of a row (max, argmax, exp-sum):
// 10 % of a sweep's decoder phase. Here: one vector pass for the maximum, a masked compare that
// stops at its first index, and one vector pass of e^(x − max).
#include "CAuscultKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>

/// e^x for x ≤ 0 (as in attention_avx512.c; kept local so each file stands alone).
__attribute__((target("avx512f,fma")))
static inline __m512 exp16_nonpositive(__m512 x) {
    const __m512 lo = _mm512_set1_ps(-87.3f);
    __m512 xc = _mm512_max_ps(x, lo);
    __m512 n = _mm512_roundscale_ps(_mm512_mul_ps(xc, _mm512_set1_ps(1.44269504088896341f)),
                                    _MM_FROUND_TO_NEAREST_INT | _MM_FROUND_NO_EXC);
    __m512 r = _mm512_fnmadd_ps(n, _mm512_set1_ps(0.693359375f), xc);
    r = _mm512_fnmadd_ps(n, _mm512_set1_ps(-2.12194440e-4f), r);
    __m512 p = _mm512_fmadd_ps(_mm512_set1_ps(1.9875691500e-4f), r, _mm512_set1_ps(1.3981999507e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(8.3334519073e-3f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(4.1665795894e-2f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(1.6666665459e-1f));
    p = _mm512_fmadd_ps(p, r, _mm512_set1_ps(5.0000001201e-1f));
    __m512 e = _mm512_add_ps(_mm512_fmadd_ps(p, _mm512_mul_ps(r, r), r), _mm512_set1_ps(1.0f));
    __m512 y = _mm512_scalef_ps(e, n);
    __mmask16 under = _mm512_cmp_ps_mask(x, lo, _CMP_LT_OQ);
    return _mm512_mask_mov_ps(y, under, _mm512_setzero_ps());
}

__attribute__((target("avx512f,fma")))
long auscult_argmax_logsumexp_avx512(const float *x, long n, double *lse, int want_index) {
    const long vec = n / 16 * 16;
    const __mmask16 tail = (__mmask16)((1u << (n - vec)) - 1);
    __m512 mv = _mm512_set1_ps(-INFINITY);
    long j = 0;
    for (; j < vec; j += 16) mv = _mm512_max_ps(mv, _mm512_loadu_ps(x + j));
    if (tail) mv = _mm512_mask_max_ps(mv, tail, mv, _mm512_maskz_loadu_ps(tail, x + j));
    const float m = _mm512_reduce_max_ps(mv);
    if (m == -INFINITY) { *lse = -INFINITY; return 0; }
    // The first index holding the maximum (the scalar loop's `>` keeps the first of ties).
    const __m512 mm = _mm512_set1_ps(m);
    long index = 0;
    for (j = 0; want_index && j < n; j += 16) {
        const __mmask16 valid = n - j >= 16 ? (__mmask16)0xFFFF : tail;
        const __mmask16 hit = _mm512_mask_cmp_ps_mask(valid, _mm512_maskz_loadu_ps(valid, x + j), mm, _CMP_EQ_OQ);
        if (hit) { index = j + __builtin_ctz(hit); break; }
    }
    // Σ e^(x − m): float lanes over 256 entries at a time, then into a double.
    double s = 0;
    for (j = 0; j < vec;) {
        __m512 sv = _mm512_setzero_ps();
        const long end = vec - j < 256 ? vec : j + 256;
        for (; j < end; j += 16) sv = _mm512_add_ps(sv, exp16_nonpositive(_mm512_sub_ps(_mm512_loadu_ps(x + j), mm)));
        s += _mm512_reduce_add_ps(sv);
    }
    if (tail) {
        __m512 e = exp16_nonpositive(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + j), mm));
        s += _mm512_reduce_add_ps(_mm512_maskz_mov_ps(tail, e));
    }
    *lse = (double)m + log(s);
    return index;
}

#else
long auscult_argmax_logsumexp_avx512(const float *x, long n, double *lse, int want_index) {
    (void)x; (void)n; (void)lse; (void)want_index;
    __builtin_trap();
}
#endif
