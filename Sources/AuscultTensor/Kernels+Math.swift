// Scalar maths that vectorise: no libm calls inside hot loops (docs/performance.md).

/// Branch-free elementary functions for Float32: the reference forms of the polynomials the
/// C kernels (`rows_avx2.c`) evaluate on eight lanes.
///
/// A libm `erff` call per element makes GELU over 1500×1536 take ~33 ms; these rational and
/// polynomial forms take ~0.5 ms and stay within a few ulp of the libm results (tested).
public enum FastMath {
    /// e^x for x in Float range: Cody–Waite range reduction, degree-6 polynomial, 2^n by exponent bits.
    /// Relative error < 3e-7 on [-87.3, 88.7]; 0 below (so a −∞ mask gives exactly 0, as PyTorch),
    /// saturating above.
    @inlinable @inline(__always)
    public static func exp(_ x: Float) -> Float {
        let xc = min(max(x, -87.3), 88.7)
        // Adding 1.5·2²³ rounds to an integer held in the low mantissa bits: no float→int
        // conversion (which would carry a range check and stop vectorisation).
        let shifted = xc * 1.44269504088896341 + 12_582_912
        let n = shifted - 12_582_912
        var r = xc - n * 0.693359375
        r = r + n * 2.12194440e-4
        // Taylor-like minimax coefficients for e^r on |r| <= ln2/2.
        var p: Float = 1.9875691500e-4
        p = p * r + 1.3981999507e-3
        p = p * r + 8.3334519073e-3
        p = p * r + 4.1665795894e-2
        p = p * r + 1.6666665459e-1
        p = p * r + 5.0000001201e-1
        let e = (p * r * r + r) + 1
        let bits = (shifted.bitPattern &+ 127) &<< 23
        return x < -87.3 ? 0 : e * Float(bitPattern: bits)
    }

    /// erf(x) as a rational function clamped to [-4, 4] (outside that erf rounds to ±1 in Float32).
    @inlinable @inline(__always)
    public static func erf(_ a: Float) -> Float {
        let x = min(max(a, -4), 4)
        let x2 = x * x
        var p: Float = -2.72614225801306e-10
        p = p * x2 + 2.77068142495902e-08
        p = p * x2 + -2.10102402082508e-06
        p = p * x2 + -5.69250639462346e-05
        p = p * x2 + -7.34990630326855e-04
        p = p * x2 + -2.95459980854025e-03
        p = p * x2 + -1.60960333262415e-02
        p = p * x
        var q: Float = -1.45660718464996e-05
        q = q * x2 + -2.13374055278905e-04
        q = q * x2 + -1.68282697438203e-03
        q = q * x2 + -7.37332916720468e-03
        q = q * x2 + -1.42647390514189e-02
        return p / q
    }

    /// Exact (erf) GELU: x · ½ · (1 + erf(x/√2)), as PyTorch's `F.gelu` default.
    @inlinable @inline(__always)
    public static func gelu(_ x: Float) -> Float {
        0.5 * x * (1 + erf(x * 0.70710678118654752))
    }
}
