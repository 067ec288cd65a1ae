// Hand-vectorised kernels that Swift's SIMD types cannot express well (register-blocked
// micro-kernels). Each has a portable caller-side fallback in AuscultTensor.
#ifndef CAUSCULT_KERNELS_H
#define CAUSCULT_KERNELS_H

#ifdef __cplusplus
extern "C" {
#endif

/// 1 when the running CPU has AVX-512F, else 0 (asks cpuid: call once and keep the answer).
int auscult_has_avx512(void);

/// Floats of scratch `auscult_attention_rows_avx512` needs for `nk` keys (dh = 64).
long auscult_attention_scratch(long nk);

/// Non-causal attention of one head with dh = 64, for query rows `r0 ..< r1`:
/// out[r, 0..<64] = softmax(alpha · q[r] · kᵀ) · v. Rows of q, k, v, out have strides
/// ldq, ldk, ldv, ldo (in floats); `scratch` holds `auscult_attention_scratch(nk)` floats.
/// scores_out / pattern_out, when not NULL, receive rows r0 ..< r1 of the pre-softmax scores and
/// of the softmax pattern, `[nq, nk]` row-major starting at row 0. Requires AVX-512F.
void auscult_attention_rows_avx512(const float *q, long ldq, const float *k, long ldk,
                                   const float *v, long ldv, long r0, long r1, long nk, float alpha,
                                   float *out, long ldo, float *scratch,
                                   float *scores_out, float *pattern_out);

#ifdef __cplusplus
}
#endif
#endif
