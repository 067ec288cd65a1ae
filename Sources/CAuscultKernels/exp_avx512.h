// e^x on sixteen lanes for the AVX-512 kernels (internal to CAuscultKernels).
#ifndef CAUSCULT_EXP_AVX512_H
#define CAUSCULT_EXP_AVX512_H
#if defined(__x86_64__)
#include <immintrin.h>

/// e^x on 16 lanes for x ≤ 0 (softmax arguments): `FastMath.exp`'s reduction and polynomial, with
/// n rounded by `vrndscaleps` and 2ⁿ applied by `vscalefps` (16 µops against 22); relative error
/// below 1e-7 against double `exp` on [−87, 0] (measured: 8.2e-8).
/// Below −87.3 the result is exactly 0, so a −∞ score gives probability 0.
__attribute__((target("avx512f,fma")))
static inline __m512 exp16(__m512 x) {
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

#endif
#endif
