// One attention head against keys and values packed for the row-invariant product kernel.
import CAuscultKernels
import Dispatch

#if arch(x86_64)
/// One head's keys `[nk, dh]` and values `[nk, dh]` packed into panels for
/// `auscult_gemm_packed_avx2`, and attention of query rows against them.
///
/// Both products (scores = q·Kᵀ, out = P·V) are one fused multiply-add per term in order, so a
/// query row's result does not depend on the rows beside it: sequences attending together
/// (a sweep's conditions, a patched run and its baseline) give the bits each gives alone. CBLAS
/// rounded a row by its place in the call's tiles, and sgemv (one row) differently again.
/// Packing costs one copy of the head (384 KB for 1500 keys at dh = 64), shared by every block
/// of query rows of an encoder head.
struct PackedHead: @unchecked Sendable {
    let nk: Int, dh: Int
    /// Keys as the rows of a weight `[nk, dh]` (`auscult_pack_panels`).
    let keys: UnsafeMutablePointer<Float>
    /// Values as the rows of a weight `[dh, nk]`, their transpose (`auscult_pack_columns`).
    let values: UnsafeMutablePointer<Float>

    /// Floats of one packed head: keys, then values.
    static func floats(nk: Int, dh: Int) -> Int { auscult_packed_floats(nk, dh) + auscult_packed_floats(dh, nk) }

    /// A head of its own, freed by `deallocate`.
    init(nk: Int, dh: Int) {
        self.init(nk: nk, dh: dh, at: .allocate(capacity: PackedHead.floats(nk: nk, dh: dh)))
    }

    /// A view of a head packed at `base` (`floats(nk:dh:)` floats, keys first).
    init(nk: Int, dh: Int, at base: UnsafeMutablePointer<Float>) {
        self.nk = nk; self.dh = dh
        keys = base
        values = base + auscult_packed_floats(nk, dh)
    }

    /// Frees a head made by `init(nk:dh:)`.
    func deallocate() { keys.deallocate() }

    /// Packs one head's keys and values (rows of stride ldk, ldv).
    func pack(k: UnsafePointer<Float>, ldk: Int, v: UnsafePointer<Float>, ldv: Int) {
        auscult_pack_panels(k, ldk, nk, dh, keys)
        auscult_pack_columns(v, ldv, nk, dh, values)
    }

    /// `out[nq, dh] = softmax(q kᵀ / √dh + mask) v` for query rows of stride ldq (see
    /// `Attention.forward` for the mask, scratch and outputs).
    func attend(
        q: UnsafePointer<Float>, ldq: Int, nq: Int, causalOffset: Int?, out: UnsafeMutablePointer<Float>, ldo: Int,
        scores: UnsafeMutablePointer<Float>, patternOut: UnsafeMutablePointer<Float>?,
        scoresOut: UnsafeMutablePointer<Float>?, parallelSoftmax: Bool
    ) {
        let (nk, dh, keys, values) = (nk, dh, keys, values)
        Attention.attendHead(
            q: q, ldq: ldq, nq: nq, nk: nk, dh: dh, causalOffset: causalOffset, out: out, ldo: ldo,
            scores: scores, patternOut: patternOut, scoresOut: scoresOut, parallelSoftmax: parallelSoftmax,
            scoresProduct: { qs, s in auscult_gemm_packed_avx2(qs, nq, dh, keys, nk, dh, 0, (nk + 15) / 16, nil, s, nk)
            },
            valuesProduct: { p, o in auscult_gemm_packed_avx2(p, nq, nk, values, dh, nk, 0, (dh + 15) / 16, nil, o, ldo)
            })
    }
}
#endif

extension Attention {
    /// One head's attention with its two products given: `scoresProduct(qs, scores)` writes
    /// `scores[nq, nk] = qs · kᵀ` for the queries already scaled by 1/√dh (`[nq, dh]`), and
    /// `valuesProduct(p, out)` writes `out[nq, dh] (stride ldo) = p · v` for the unnormalised
    /// probabilities `[nq, nk]`. With the packed or strided kernels (x86-64) a row's result does
    /// not depend on the rows beside it; with CBLAS it may.
    static func attendHead(
        q: UnsafePointer<Float>, ldq: Int, nq: Int, nk: Int, dh: Int, causalOffset: Int?,
        out: UnsafeMutablePointer<Float>, ldo: Int, scores: UnsafeMutablePointer<Float>,
        patternOut: UnsafeMutablePointer<Float>?, scoresOut: UnsafeMutablePointer<Float>?,
        parallelSoftmax: Bool,
        scoresProduct: (UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void,
        valuesProduct: (UnsafePointer<Float>, UnsafeMutablePointer<Float>) -> Void
    ) {
        let alpha = 1 / Float(dh).squareRoot()
        let qs = UnsafeMutablePointer<Float>.allocate(capacity: nq * dh),
            inv = UnsafeMutablePointer<Float>.allocate(capacity: nq)
        defer { qs.deallocate(); inv.deallocate() }
        for r in 0..<nq { for c in 0..<dh { qs[r * dh + c] = q[r * ldq + c] * alpha } }
        scoresProduct(qs, scores)
        if let off = causalOffset {
            for r in 0..<nq {
                let first = off + r + 1
                if first < nk { for j in first..<nk { scores[r * nk + j] = -.infinity } }
            }
        }
        if let s = scoresOut { s.update(from: scores, count: nq * nk) }
        // Unnormalised exp, PV, then the dh-wide output rows scaled by 1/Σ: one pass fewer over
        // the nq×nk block than normalising first. The same arithmetic runs whether or not a
        // pattern is requested, so observing a run never changes its output.
        if parallelSoftmax {
            Attention.expRowsParallel(scores, rows: nq, cols: nk, inverseSums: inv)
        } else {
            Kernels.expRows(scores, rows: nq, cols: nk, stride: nk, inverseSums: inv)
        }
        if let p = patternOut {
            for r in 0..<nq { for j in 0..<nk { p[r * nk + j] = scores[r * nk + j] * inv[r] } }
        }
        valuesProduct(scores, out)
        for r in 0..<nq { Kernels.scale(out + r * ldo, count: dh, by: inv[r]) }
    }
}
