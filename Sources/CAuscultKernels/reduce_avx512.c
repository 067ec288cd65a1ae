// One row of logits → its argmax and log Σ exp: the per-step read-out of greedy decoding.
//
// The Swift loops took three scalar passes over the 51 864 logits of a row (max, argmax, exp-sum):
// 10 % of a sweep's decoder phase. Here: one vector pass for the maximum, a masked compare that
// stops at its first index, and one vector pass of e^(x − max).
#include "CAuscultKernels.h"

#if defined(__x86_64__)
#include <immintrin.h>
#include <math.h>
#include "exp_avx512.h"

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
        for (; j < end; j += 16) sv = _mm512_add_ps(sv, exp16(_mm512_sub_ps(_mm512_loadu_ps(x + j), mm)));
        s += _mm512_reduce_add_ps(sv);
    }
    if (tail) {
        __m512 e = exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(tail, x + j), mm));
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
