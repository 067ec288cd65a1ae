// Row kernels of the forward pass (softmax's exponentials, LayerNorm, GELU) with an AVX2 + FMA
// body chosen at run time and a portable body of the same arithmetic, so the library needs no
// CPU flags at build time (SwiftPM refuses unsafe flags in a versioned dependency) and gives the
// same bits on every x86-64 CPU. They were Swift SIMD loops that needed `-target-cpu haswell`:
// built for baseline x86-64, the SIMD8 fused multiply-adds became eight `fmaf` calls each.
//
// No expression may be contracted into a fused multiply-add behind our back: every fused step is
// written as one (`fmadd`, `fmaf`), every other product and sum stays two roundings.
#pragma clang fp contract(off)
#include "CAuscultKernels.h"
#include <math.h>
#include <string.h>

// MARK: Portable bodies (the reference arithmetic)

/// e^x, the scalar form (`FastMath.exp`): Cody–Waite reduction, degree-6 polynomial, 2ⁿ by
/// exponent bits; 0 below −87.3.
static float exp_scalar(float x) {
    float xc = x < -87.3f ? -87.3f : x;
    xc = xc > 88.7f ? 88.7f : xc;
    const float shifted = xc * 1.44269504088896341f + 12582912.0f;
    const float n = shifted - 12582912.0f;
    float r = xc - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = 1.9875691500e-4f;
    p = p * r + 1.3981999507e-3f;
    p = p * r + 8.3334519073e-3f;
    p = p * r + 4.1665795894e-2f;
    p = p * r + 1.6666665459e-1f;
    p = p * r + 5.0000001201e-1f;
    const float e = (p * r * r + r) + 1.0f;
    unsigned int bits;
    memcpy(&bits, &shifted, 4);
    bits = (bits + 127u) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return x < -87.3f ? 0.0f : e * scale;
}

/// e^x of one lane as the eight-lane form computes it (fused polynomial steps).
static float exp_lane(float x) {
    float xc = x < -87.3f ? -87.3f : x;
    xc = xc > 88.7f ? 88.7f : xc;
    const float shifted = xc * 1.44269504088896341f + 12582912.0f;
    const float n = shifted - 12582912.0f;
    float r = xc - n * 0.693359375f;
    r = r + n * 2.12194440e-4f;
    float p = fmaf(1.9875691500e-4f, r, 1.3981999507e-3f);
    p = fmaf(p, r, 8.3334519073e-3f);
    p = fmaf(p, r, 4.1665795894e-2f);
    p = fmaf(p, r, 1.6666665459e-1f);
    p = fmaf(p, r, 5.0000001201e-1f);
    const float e = fmaf(p, r * r, r) + 1.0f;
    unsigned int bits;
    memcpy(&bits, &shifted, 4);
    bits = (bits + 127u) << 23;
    float scale;
    memcpy(&scale, &bits, 4);
    return x < -87.3f ? 0.0f : e * scale;
}

/// Rows of softmax's exponentials with a body's two eight-lane passes over the first `vec`
/// elements of a row (`max_lanes`: the lanes' maximum; `exp_lanes`: exp(x − m) in place and the
/// lanes' sum, lane 0 to 7 from −0); the tail past `vec` is scalar in every body.
typedef float (*max_lanes_fn)(const float *p, long vec);
typedef float (*exp_lanes_fn)(float *p, long vec, float m);

static void exp_rows_with(float *x, long rows, long cols, long stride, float *inv_sums,
                          max_lanes_fn max_lanes, exp_lanes_fn exp_lanes) {
    const long vec = cols / 8 * 8;
    for (long r = 0; r < rows; r++) {
        float *p = x + r * stride;
        float m = max_lanes(p, vec);
        for (long j = vec; j < cols; j++) if (p[j] >= m) m = p[j];
        float s = exp_lanes(p, vec, m);
        for (long j = vec; j < cols; j++) { const float e = exp_scalar(p[j] - m); p[j] = e; s += e; }
        inv_sums[r] = 1.0f / s;
    }
}

static float max_lanes_portable(const float *p, long vec) {
    float mv[8];
    for (int l = 0; l < 8; l++) mv[l] = -INFINITY;
    for (long j = 0; j < vec; j += 8)
        for (int l = 0; l < 8; l++) if (p[j + l] > mv[l]) mv[l] = p[j + l];
    float m = mv[0];
    for (int l = 1; l < 8; l++) if (mv[l] > m) m = mv[l];
    return m;
}

static float exp_lanes_portable(float *p, long vec, float m) {
    float sv[8] = {0, 0, 0, 0, 0, 0, 0, 0};
    for (long j = 0; j < vec; j += 8)
        for (int l = 0; l < 8; l++) { const float e = exp_lane(p[j + l] - m); p[j + l] = e; sv[l] += e; }
    float s = -0.0f;
    for (int l = 0; l < 8; l++) s += sv[l];
    return s;
}

/// The order LLVM's loop vectorizer gave the Swift loop this replaces (8 lanes × 4 accumulators
/// over blocks of 32, the accumulators added 1+0, +2, +3, the lanes as a tree 0–3 + 4–7, 0–1 + 2–3,
/// 0 + 1), kept so that LayerNorm's bits did not change when it moved here; the tail (d not a
/// multiple of 32) is added one by one. `fused` makes each term a fused multiply-add of c·c.
static float reduce32(const float *x, long d, float mean, int fused, long *done) {
    float acc[4][8] = {{0}};
    const long vec = d / 32 * 32;
    for (long j = 0; j < vec; j += 32)
        for (int a = 0; a < 4; a++)
            for (int l = 0; l < 8; l++) {
                const float v = x[j + 8 * a + l];
                if (fused) { const float c = v - mean; acc[a][l] = fmaf(c, c, acc[a][l]); } else acc[a][l] += v;
            }
    float t[8];
    for (int l = 0; l < 8; l++) t[l] = ((acc[1][l] + acc[0][l]) + acc[2][l]) + acc[3][l];
    float h4[4], h2[2];
    for (int l = 0; l < 4; l++) h4[l] = t[l] + t[l + 4];
    for (int l = 0; l < 2; l++) h2[l] = h4[l] + h4[l + 2];
    *done = vec;
    return 0.0f + (h2[0] + h2[1]);
}

/// LayerNorm rows with a body's `reduce32` and its pass writing (x − mean) · inv · γ + β.
typedef float (*reduce_fn)(const float *x, long d, float mean, int fused, long *done);
typedef void (*normalize_fn)(const float *x, long d, float mean, float inv, const float *gamma, const float *beta,
                             float *y);

static void layer_norm_with(const float *x, long rows, long d, const float *gamma, const float *beta, float eps,
                            float *out, float *scale_out, reduce_fn reduce, normalize_fn normalize) {
    const float inv_d = 1.0f / (float)d;
    for (long r = 0; r < rows; r++) {
        const float *xr = x + r * d;
        long j;
        float s = reduce(xr, d, 0, 0, &j);
        for (; j < d; j++) s += xr[j];
        const float mean = s * inv_d;
        float v = reduce(xr, d, mean, 1, &j);
        for (; j < d; j++) { const float c = xr[j] - mean; v = fmaf(c, c, v); }
        const float inv = 1.0f / sqrtf(v * inv_d + eps);
        if (scale_out) scale_out[r] = inv;
        normalize(xr, d, mean, inv, gamma, beta, out + r * d);
    }
}

static void normalize_portable(const float *x, long d, float mean, float inv, const float *gamma, const float *beta,
                               float *y) {
    for (long j = 0; j < d; j++) y[j] = (x[j] - mean) * inv * gamma[j] + beta[j];
}

/// erf(x0) as a rational function on [−4, 4] (`FastMath.erf`).
static float erf_scalar(float x0) {
    const float x = x0 < -4.0f ? -4.0f : (x0 > 4.0f ? 4.0f : x0);
    const float x2 = x * x;
    float p = -2.72614225801306e-10f;
    p = p * x2 + 2.77068142495902e-08f;
    p = p * x2 + -2.10102402082508e-06f;
    p = p * x2 + -5.69250639462346e-05f;
    p = p * x2 + -7.34990630326855e-04f;
    p = p * x2 + -2.95459980854025e-03f;
    p = p * x2 + -1.60960333262415e-02f;
    p = p * x;
    float q = -1.45660718464996e-05f;
    q = q * x2 + -2.13374055278905e-04f;
    q = q * x2 + -1.68282697438203e-03f;
    q = q * x2 + -7.37332916720468e-03f;
    q = q * x2 + -1.42647390514189e-02f;
    return p / q;
}

/// The exact-erf GELU.
static float gelu_scalar(float a) { return 0.5f * a * (1.0f + erf_scalar(a * 0.70710678118654752f)); }

/// GELU's derivative times dy: dy · (Φ(a) + a·φ(a)), Φ(a) = ½(1 + erf(a/√2)), φ(a) = e^(−a²/2)/√(2π).
static float gelu_backward_scalar(float a, float dy) {
    const float cdf = 0.5f * (1.0f + erf_scalar(a * 0.70710678118654752f));
    const float pdf = exp_lane(-0.5f * (a * a)) * 0.39894228040143268f;
    return dy * (cdf + a * pdf);
}

// MARK: AVX2 + FMA bodies (the same arithmetic on eight lanes)

#if defined(__x86_64__)
#include <immintrin.h>
#pragma clang attribute push(__attribute__((target("avx2,fma"))), apply_to = function)

/// `exp_lane` on eight lanes. Not exp_avx2.h's `exp8`, which the features kernel and the read-out
/// use: that one rounds n with `_mm256_round_ps` and reduces with fused steps, other bits; this one
/// keeps the bits of the Swift softmax it replaced (the shifted-integer trick, unfused reduction).
static inline __m256 exp8_lanes(__m256 x) {
    const __m256 lo = _mm256_set1_ps(-87.3f), hi = _mm256_set1_ps(88.7f);
    __m256 xc = _mm256_blendv_ps(x, lo, _mm256_cmp_ps(x, lo, _CMP_LT_OQ));
    xc = _mm256_blendv_ps(xc, hi, _mm256_cmp_ps(xc, hi, _CMP_GT_OQ));
    const __m256 big = _mm256_set1_ps(12582912.0f);
    const __m256 shifted = _mm256_add_ps(_mm256_mul_ps(xc, _mm256_set1_ps(1.44269504088896341f)), big);
    const __m256 n = _mm256_sub_ps(shifted, big);
    __m256 r = _mm256_sub_ps(xc, _mm256_mul_ps(n, _mm256_set1_ps(0.693359375f)));
    r = _mm256_add_ps(r, _mm256_mul_ps(n, _mm256_set1_ps(2.12194440e-4f)));
    __m256 p = _mm256_fmadd_ps(_mm256_set1_ps(1.9875691500e-4f), r, _mm256_set1_ps(1.3981999507e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(8.3334519073e-3f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(4.1665795894e-2f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(1.6666665459e-1f));
    p = _mm256_fmadd_ps(p, r, _mm256_set1_ps(5.0000001201e-1f));
    const __m256 e = _mm256_add_ps(_mm256_fmadd_ps(p, _mm256_mul_ps(r, r), r), _mm256_set1_ps(1.0f));
    const __m256i bits = _mm256_slli_epi32(_mm256_add_epi32(_mm256_castps_si256(shifted), _mm256_set1_epi32(127)), 23);
    const __m256 y = _mm256_mul_ps(e, _mm256_castsi256_ps(bits));
    return _mm256_andnot_ps(_mm256_cmp_ps(x, lo, _CMP_LT_OQ), y);
}

/// Lane 0 + lane 1 + … + lane 7, from −0 (the order of the portable body).
static inline float sum8_in_order(__m256 v) {
    float lanes[8];
    _mm256_storeu_ps(lanes, v);
    float s = -0.0f;
    for (int l = 0; l < 8; l++) s += lanes[l];
    return s;
}

static float max_lanes_avx2(const float *p, long vec) {
    __m256 mv = _mm256_set1_ps(-INFINITY);
    for (long j = 0; j < vec; j += 8) mv = _mm256_max_ps(_mm256_loadu_ps(p + j), mv);
    float lanes[8];
    _mm256_storeu_ps(lanes, mv);
    float m = lanes[0];
    for (int l = 1; l < 8; l++) if (lanes[l] > m) m = lanes[l];
    return m;
}

static float exp_lanes_avx2(float *p, long vec, float m) {
    const __m256 mm = _mm256_set1_ps(m);
    __m256 sv = _mm256_setzero_ps();
    for (long j = 0; j < vec; j += 8) {
        const __m256 e = exp8_lanes(_mm256_sub_ps(_mm256_loadu_ps(p + j), mm));
        _mm256_storeu_ps(p + j, e);
        sv = _mm256_add_ps(sv, e);
    }
    return sum8_in_order(sv);
}

/// `reduce32` on AVX2 registers: the four 8-lane accumulators, then the same tree.
static float reduce32_avx2(const float *x, long d, float mean, int fused, long *done) {
    __m256 a0 = _mm256_setzero_ps(), a1 = a0, a2 = a0, a3 = a0;
    const __m256 mv = _mm256_set1_ps(mean);
    const long vec = d / 32 * 32;
    for (long j = 0; j < vec; j += 32) {
        __m256 v0 = _mm256_loadu_ps(x + j), v1 = _mm256_loadu_ps(x + j + 8);
        __m256 v2 = _mm256_loadu_ps(x + j + 16), v3 = _mm256_loadu_ps(x + j + 24);
        if (fused) {
            v0 = _mm256_sub_ps(v0, mv); v1 = _mm256_sub_ps(v1, mv); v2 = _mm256_sub_ps(v2, mv); v3 = _mm256_sub_ps(v3, mv);
            a0 = _mm256_fmadd_ps(v0, v0, a0); a1 = _mm256_fmadd_ps(v1, v1, a1);
            a2 = _mm256_fmadd_ps(v2, v2, a2); a3 = _mm256_fmadd_ps(v3, v3, a3);
        } else {
            a0 = _mm256_add_ps(a0, v0); a1 = _mm256_add_ps(a1, v1); a2 = _mm256_add_ps(a2, v2); a3 = _mm256_add_ps(a3, v3);
        }
    }
    const __m256 t = _mm256_add_ps(a3, _mm256_add_ps(a2, _mm256_add_ps(a1, a0)));
    const __m128 h4 = _mm_add_ps(_mm256_castps256_ps128(t), _mm256_extractf128_ps(t, 1));
    const __m128 h2 = _mm_add_ps(h4, _mm_movehl_ps(h4, h4));
    const __m128 h1 = _mm_add_ss(h2, _mm_shuffle_ps(h2, h2, 1));
    *done = vec;
    return 0.0f + _mm_cvtss_f32(h1);
}

static void normalize_avx2(const float *x, long d, float mean, float inv, const float *gamma, const float *beta,
                           float *y) {
    const __m256 mv = _mm256_set1_ps(mean), iv = _mm256_set1_ps(inv);
    long j = 0;
    for (; j + 8 <= d; j += 8) {
        const __m256 t = _mm256_mul_ps(_mm256_mul_ps(_mm256_sub_ps(_mm256_loadu_ps(x + j), mv), iv),
                                       _mm256_loadu_ps(gamma + j));
        _mm256_storeu_ps(y + j, _mm256_add_ps(t, _mm256_loadu_ps(beta + j)));
    }
    for (; j < d; j++) y[j] = (x[j] - mean) * inv * gamma[j] + beta[j];
}

/// `erf_scalar` on eight lanes (the same unfused steps).
static inline __m256 erf8(__m256 x0) {
#define C(v) _mm256_set1_ps(v)
    const __m256 xs = _mm256_min_ps(_mm256_max_ps(x0, C(-4.0f)), C(4.0f));
    const __m256 x2 = _mm256_mul_ps(xs, xs);
    __m256 p = C(-2.72614225801306e-10f);
    p = _mm256_add_ps(_mm256_mul_ps(p, x2), C(2.77068142495902e-08f));
    p = _mm256_add_ps(_mm256_mul_ps(p, x2), C(-2.10102402082508e-06f));
    p = _mm256_add_ps(_mm256_mul_ps(p, x2), C(-5.69250639462346e-05f));
    p = _mm256_add_ps(_mm256_mul_ps(p, x2), C(-7.34990630326855e-04f));
    p = _mm256_add_ps(_mm256_mul_ps(p, x2), C(-2.95459980854025e-03f));
    p = _mm256_add_ps(_mm256_mul_ps(p, x2), C(-1.60960333262415e-02f));
    p = _mm256_mul_ps(p, xs);
    __m256 q = C(-1.45660718464996e-05f);
    q = _mm256_add_ps(_mm256_mul_ps(q, x2), C(-2.13374055278905e-04f));
    q = _mm256_add_ps(_mm256_mul_ps(q, x2), C(-1.68282697438203e-03f));
    q = _mm256_add_ps(_mm256_mul_ps(q, x2), C(-7.37332916720468e-03f));
    q = _mm256_add_ps(_mm256_mul_ps(q, x2), C(-1.42647390514189e-02f));
    return _mm256_div_ps(p, q);
}

static void gelu_avx2(float *x, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 a = _mm256_loadu_ps(x + i);
        const __m256 erf = erf8(_mm256_mul_ps(a, C(0.70710678118654752f)));
        _mm256_storeu_ps(x + i, _mm256_mul_ps(_mm256_mul_ps(C(0.5f), a), _mm256_add_ps(C(1.0f), erf)));
    }
    for (; i < n; i++) x[i] = gelu_scalar(x[i]);
}

static void gelu_backward_avx2(const float *x, const float *dy, float *dx, long n) {
    long i = 0;
    for (; i + 8 <= n; i += 8) {
        const __m256 a = _mm256_loadu_ps(x + i);
        const __m256 cdf = _mm256_mul_ps(C(0.5f), _mm256_add_ps(C(1.0f), erf8(_mm256_mul_ps(a, C(0.70710678118654752f)))));
        const __m256 pdf = _mm256_mul_ps(exp8_lanes(_mm256_mul_ps(C(-0.5f), _mm256_mul_ps(a, a))), C(0.39894228040143268f));
        _mm256_storeu_ps(dx + i, _mm256_mul_ps(_mm256_loadu_ps(dy + i), _mm256_add_ps(cdf, _mm256_mul_ps(a, pdf))));
    }
#undef C
    for (; i < n; i++) dx[i] = gelu_backward_scalar(x[i], dy[i]);
}

#pragma clang attribute pop

static int cpu_avx2 = -1, forced_portable = 0;

void auscult_use_avx2(int enabled) { forced_portable = !enabled; }

int auscult_cpu_has_avx2(void) {
    if (cpu_avx2 < 0) {
        __builtin_cpu_init();
        cpu_avx2 = __builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") ? 1 : 0;
    }
    return cpu_avx2;
}

int auscult_has_avx2(void) { return !forced_portable && auscult_cpu_has_avx2(); }
#else
void auscult_use_avx2(int enabled) { (void)enabled; }
int auscult_cpu_has_avx2(void) { return 0; }
int auscult_has_avx2(void) { return 0; }
#endif

// MARK: Entry points

void auscult_exp_rows(float *x, long rows, long cols, long stride, float *inv_sums) {
#if defined(__x86_64__)
    if (auscult_has_avx2()) { exp_rows_with(x, rows, cols, stride, inv_sums, max_lanes_avx2, exp_lanes_avx2); return; }
#endif
    exp_rows_with(x, rows, cols, stride, inv_sums, max_lanes_portable, exp_lanes_portable);
}

void auscult_layer_norm(const float *x, long rows, long d, const float *gamma, const float *beta, float eps,
                        float *out, float *scale_out) {
#if defined(__x86_64__)
    if (auscult_has_avx2()) {
        layer_norm_with(x, rows, d, gamma, beta, eps, out, scale_out, reduce32_avx2, normalize_avx2);
        return;
    }
#endif
    layer_norm_with(x, rows, d, gamma, beta, eps, out, scale_out, reduce32, normalize_portable);
}

void auscult_gelu(float *x, long n) {
#if defined(__x86_64__)
    if (auscult_has_avx2()) { gelu_avx2(x, n); return; }
#endif
    for (long i = 0; i < n; i++) x[i] = gelu_scalar(x[i]);
}

void auscult_gelu_backward(const float *x, const float *dy, float *dx, long n) {
#if defined(__x86_64__)
    if (auscult_has_avx2()) { gelu_backward_avx2(x, dy, dx, n); return; }
#endif
    for (long i = 0; i < n; i++) dx[i] = gelu_backward_scalar(x[i], dy[i]);
}

// MARK: Half precision

static float half_to_float(unsigned short h) {
    const unsigned int sign = (unsigned int)(h & 0x8000) << 16;
    unsigned int exp = (h >> 10) & 0x1f, mant = h & 0x3ff, bits;
    if (exp == 0x1f) bits = sign | 0x7f800000u | (mant << 13);          // inf, NaN
    else if (exp != 0) bits = sign | ((exp + 112) << 23) | (mant << 13); // normal
    else if (mant == 0) bits = sign;                                      // ±0
    else {                                                                // subnormal: normalise
        exp = 113;
        while (!(mant & 0x400)) { mant <<= 1; exp--; }
        bits = sign | (exp << 23) | ((mant & 0x3ff) << 13);
    }
    float f;
    memcpy(&f, &bits, 4);
    return f;
}

#if defined(__x86_64__)
__attribute__((target("avx2,f16c")))
static void half_to_float_f16c(const unsigned short *src, long n, float *dst) {
    long i = 0;
    for (; i + 8 <= n; i += 8)
        _mm256_storeu_ps(dst + i, _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(src + i))));
    for (; i < n; i++) dst[i] = half_to_float(src[i]);
}
#endif

void auscult_half_to_float(const void *src, long n, float *dst) {
    const unsigned short *h = (const unsigned short *)src;
#if defined(__x86_64__)
    static int f16c = -1;
    if (f16c < 0) { __builtin_cpu_init(); f16c = __builtin_cpu_supports("f16c") && auscult_cpu_has_avx2(); }
    if (f16c && !forced_portable) { half_to_float_f16c(h, n, dst); return; }
#endif
    for (long i = 0; i < n; i++) {
        unsigned short v;
        memcpy(&v, h + i, 2);
        dst[i] = half_to_float(v);
    }
}
