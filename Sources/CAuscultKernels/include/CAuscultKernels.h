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

/// Floats of one head's packed keys and values (`auscult_attention_pack`) for `nk` keys.
long auscult_attention_packed_floats(long nk);

/// Floats of scratch `auscult_attention_packed_avx512` needs for `nk` keys.
long auscult_attention_tile_floats(long nk);

/// Packs one head's keys and values (dh = 64; rows of stride ldk, ldv) for repeated attention:
/// K in panels of 16 keys, then V contiguous. Portable C.
void auscult_attention_pack(const float *k, long ldk, const float *v, long ldv, long nk, float *packed);

/// Non-causal attention of `nq` query rows (dh = 64) against one head packed by
/// `auscult_attention_pack`: out[r] = softmax(alpha · q[r] · kᵀ) · v. `scratch` holds
/// `auscult_attention_tile_floats(nk)` floats; pattern_out, when not NULL, receives the softmax
/// `[nq, nk]`. Each row's arithmetic is independent of the other rows. Requires AVX-512F.
void auscult_attention_packed_avx512(const float *q, long ldq, const float *packed, long nq, long nk, float alpha,
                                     float *out, long ldo, float *scratch, float *pattern_out);

/// Non-causal attention of one head with dh = 64, for query rows `r0 ..< r1`:
/// out[r, 0..<64] = softmax(alpha · q[r] · kᵀ) · v. Rows of q, k, v, out have strides
/// ldq, ldk, ldv, ldo (in floats); `scratch` holds `auscult_attention_scratch(nk)` floats.
/// scores_out / pattern_out, when not NULL, receive rows r0 ..< r1 of the pre-softmax scores and
/// of the softmax pattern, `[nq, nk]` row-major starting at row 0. Requires AVX-512F.
void auscult_attention_rows_avx512(const float *q, long ldq, const float *k, long ldk,
                                   const float *v, long ldv, long r0, long r1, long nk, float alpha,
                                   float *out, long ldo, float *scratch,
                                   float *scores_out, float *pattern_out);

/// Floats `auscult_pack_panels` writes for an `[n, k]` matrix: n rounded up to 16, times k.
long auscult_packed_floats(long n, long k);

/// Packs `w` `[n, k]` (row stride ldw) into panels of 16 rows, `out[p][kk][c] = w[16p + c][kk]`,
/// rows past n zero. Portable C.
void auscult_pack_panels(const float *w, long ldw, long n, long k, float *out);

/// C[i][j] = Σ_kk x[i][kk] · w[j][kk] for i < m and the columns of panels p0 ..< p1 (j < n),
/// with `wp` from `auscult_pack_panels`. C is overwritten, not accumulated. Requires AVX-512F.
void auscult_gemm_packed_avx512(const float *x, long m, long ldx, const float *wp, long n, long k,
                                long p0, long p1, float *c, long ldc);

/// Packs the columns of `b` `[k, n]` (row stride ldb) as `auscult_pack_panels` packs the rows of
/// its transpose: `out[p][kk][c] = b[kk][16p + c]`, columns past n zero (`auscult_packed_floats(n, k)`
/// floats). For products against a matrix stored `[in, out]` (attention's values). Portable C.
void auscult_pack_columns(const float *b, long ldb, long k, long n, float *out);

/// C[i][j] = Σ_kk x[i][kk] · w[j][kk] (+ bias[j] when bias is not NULL) for i < m and the
/// columns of panels p0 ..< p1 (j < n), `wp` from `auscult_pack_panels`: one fused multiply-add
/// per term from zero in order of kk, then the bias added once, so a row's result never depends
/// on the other rows of the call (`auscult_gemm_packed_avx512` does the same arithmetic). AVX2
/// and FMA on x86-64 (the build baseline); plain C elsewhere.
void auscult_gemm_packed_avx2(const float *x, long m, long ldx, const float *wp, long n, long k,
                              long p0, long p1, const float *bias, float *c, long ldc);

/// C[i][j] = Σ_kk x[i][kk] · w[kk][j] for i < m, j < n, with w `[k][ldw]` unpacked: the
/// arithmetic of `auscult_gemm_packed_avx2` against the packed transpose of w (the same bits),
/// reading 16-column panels straight from w. For attention against a cache that grows by a
/// column (keys stored transposed) or a row (values) per step, which packing would copy whole at
/// every step. Reads columns up to n rounded up to 16 (they must be readable; their products
/// are not written). AVX2 and FMA on x86-64; plain C elsewhere.
void auscult_gemm_strided_avx2(const float *x, long m, long ldx, const float *w, long ldw, long n, long k,
                               float *c, long ldc);

/// log Σ exp(x[0..<n]) in *lse (max-shifted; −∞ when every entry is −∞) and, when want_index is
/// not 0, the first index of the maximum as the result (else 0). Requires AVX-512F.
long auscult_argmax_logsumexp_avx512(const float *x, long n, double *lse, int want_index);

/// `auscult_argmax_logsumexp_avx512` on eight lanes: AVX2 and FMA on x86-64; plain C elsewhere.
long auscult_argmax_logsumexp_avx2(const float *x, long n, double *lse, int want_index);

/// Cross-attention straight from a clip's features x `[nf][ldx]` (row width d, a multiple of 16)
/// for `pairs` (query row, head) pairs: y[p] = Σ_j softmax_j(alpha · u[p]·x[j]) x[j], with u
/// `[pairs][d]` each query head pulled back through the key weight (pair p = row p / heads, head
/// p % heads) and y `[pairs][d]`. scratch holds pairs·(nf + 130) floats. pattern_out (or NULL)
/// receives the softmax, pair p's row at (p % heads)·ld_head + (p / heads)·ld_row. AVX-512F.
void auscult_cross_features_avx512(const float *u, long pairs, const float *x, long ldx, long nf, long d,
                                   float alpha, float *y, float *scratch,
                                   float *pattern_out, long heads, long ld_head, long ld_row);

/// `auscult_cross_features_avx512` on eight lanes (d a multiple of 8; same arguments and scratch).
/// A pair's result does not depend on the other pairs of the call. AVX2 and FMA.
void auscult_cross_features_avx2(const float *u, long pairs, const float *x, long ldx, long nf, long d,
                                 float alpha, float *y, float *scratch,
                                 float *pattern_out, long heads, long ld_head, long ld_row);

/// 1 when the running CPU has AVX2 and FMA, else 0 (asks cpuid once). Every `*_avx2` entry point
/// dispatches on it to its AVX2 + FMA body or to portable C of the same arithmetic.
int auscult_has_avx2(void);

/// 1 when the CPU has AVX2 and FMA, whatever `auscult_use_avx2` says.
int auscult_cpu_has_avx2(void);

/// With 0, the `*_avx2` entry points that have a portable body take it (tests compare both: the
/// same bits, so other threads running kernels meanwhile only run slower); with 1, the CPU decides
/// again. `auscult_cross_features_avx2` has no portable body and ignores it.
void auscult_use_avx2(int enabled);

/// Each of `rows` rows of `cols` floats (row stride `stride`) becomes exp(x − max) in place and
/// inv_sums[r] receives 1 / Σ exp(x − max): the unnormalised half of softmax. AVX2 + FMA where the
/// CPU has them, else portable C of the same arithmetic (same bits).
void auscult_exp_rows(float *x, long rows, long cols, long stride, float *inv_sums);

/// LayerNorm over rows of d floats, (x − mean) / sqrt(var + eps) · gamma + beta, with each row's
/// 1/sqrt(var + eps) in scale_out when not NULL. AVX2 + FMA or portable C, same bits.
void auscult_layer_norm(const float *x, long rows, long d, const float *gamma, const float *beta, float eps,
                        float *out, float *scale_out);

/// Exact-erf GELU over n floats in place (erf as a rational function on [−4, 4]). AVX2 or
/// portable C, same bits.
void auscult_gelu(float *x, long n);

/// GELU's backward over n floats: dx = dy · (Φ(x) + x·φ(x)), Φ through the same erf as
/// `auscult_gelu`, φ through the softmax's exponential. AVX2 or portable C, same bits.
void auscult_gelu_backward(const float *x, const float *dy, float *dx, long n);

/// Converts n little-endian IEEE half-precision values at src (any alignment) to float: F16C where
/// the CPU has it, else exact bit manipulation (the same values).
void auscult_half_to_float(const void *src, long n, float *dst);

/// glibc: serve every allocation from the heap and never trim it, so freed tensor memory is
/// reused instead of faulted in and zeroed again (`Memory.retainFreedMemory`). No-op elsewhere.
void auscult_retain_freed_memory(void);

/// Bytes glibc holds in blocks it mapped on their own (`mallinfo2().hblkhd`; −1 off glibc): 0 for
/// every block allocated after `auscult_retain_freed_memory`.
long auscult_mapped_allocation_bytes(void);

#ifdef __cplusplus
}
#endif
#endif
