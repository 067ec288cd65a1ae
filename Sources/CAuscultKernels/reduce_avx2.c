// One row of logits → its argmax and log Σ exp on CPUs with AVX2: the algorithm of
// reduce_avx512.c on eight lanes.
//
// The Swift fallback took a scalar pass for the maximum and summed each eight exponentials into a
// double: 7 % of a sweep's decoder-condition time on an AVX2 machine, one row per sequence and step.
#include "CAuscultKernels.h"
#include <math.h>

#if defined(__x86_64__)
#include <immintrin.h>
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)
#include "exp_avx2.h"

static long argmax_logsumexp_x86(const float *x, long n, double *lse, int want_index) {
    const long vec = n / 8 * 8;
    __m256 mv = _mm256_set1_ps(-INFINITY);
    long j = 0;
    for (; j < vec; j += 8) mv = _mm256_max_ps(mv, _mm256_loadu_ps(x + j));
    float lanes[8];
    _mm256_storeu_ps(lanes, mv);
    float m = lanes[0];
    for (int i = 1; i < 8; i++) m = lanes[i] > m ? lanes[i] : m;
    for (long t = vec; t < n; t++) m = x[t] > m ? x[t] : m;
    if (m == -INFINITY) { *lse = -INFINITY; return 0; }
    // The first index holding the maximum (the scalar loop's `>` keeps the first of ties).
    long index = 0;
    if (want_index) {
        const __m256 mm = _mm256_set1_ps(m);
        index = -1;
        for (j = 0; j < vec; j += 8) {
            const int hit = _mm256_movemask_ps(_mm256_cmp_ps(_mm256_loadu_ps(x + j), mm, _CMP_EQ_OQ));
            if (hit) { index = j + __builtin_ctz((unsigned)hit); break; }
        }
        for (long t = vec; index < 0 && t < n; t++) if (x[t] == m) index = t;
    }
    // Σ e^(x − m): float lanes over 256 entries at a time, then into a double.
    const __m256 mm = _mm256_set1_ps(m);
    double s = 0;
    for (j = 0; j < vec;) {
        __m256 sv = _mm256_setzero_ps();
        const long end = vec - j < 256 ? vec : j + 256;
        for (; j < end; j += 8) sv = _mm256_add_ps(sv, exp8(_mm256_sub_ps(_mm256_loadu_ps(x + j), mm)));
        s += sum8(sv);
    }
    if (vec < n) {
        float in[8], out[8];
        for (int i = 0; i < 8; i++) in[i] = vec + i < n ? x[vec + i] - m : -INFINITY;
        _mm256_storeu_ps(out, exp8(_mm256_loadu_ps(in)));
        float t = 0;
        for (long i = 0; vec + i < n; i++) t += out[i];
        s += t;
    }
    *lse = (double)m + log(s);
    return index;
}

#pragma clang attribute pop
#endif

/// The portable body: a scalar maximum, the sum in double.
static long argmax_logsumexp_portable(const float *x, long n, double *lse, int want_index) {
    float m = -INFINITY;
    long index = 0;
    for (long t = 0; t < n; t++) if (x[t] > m) { m = x[t]; index = t; }
    if (m == -INFINITY) { *lse = -INFINITY; return 0; }
    double s = 0;
    for (long t = 0; t < n; t++) s += exp((double)(x[t] - m));
    *lse = (double)m + log(s);
    return want_index ? index : 0;
}
long auscult_argmax_logsumexp_avx2(const float *x, long n, double *lse, int want_index) {
#if defined(__x86_64__)
    if (auscult_has_avx2()) return argmax_logsumexp_x86(x, n, lse, want_index);
#endif
    return argmax_logsumexp_portable(x, n, lse, want_index);
}
