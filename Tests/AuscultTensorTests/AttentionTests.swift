import AuscultTensor
import Foundation
import Testing
import _TestSupport

@Suite("Encoder attention agrees with softmax(q kᵀ / √dh) v in double precision")
struct AttentionTests {
    /// q, k, v as column blocks of one `[n, 3·heads·dh]` buffer, as the encoder's fused QKV GEMM leaves them.
    static func qkv(n: Int, heads: Int, dh: Int) -> [Float] {
        (0..<(n * 3 * heads * dh)).map { Float(sin(Double($0) * 0.731) * 2.5) }
    }

    /// Scores, pattern and output of every head, straight from the formula.
    static func reference(
        _ x: [Float], n: Int, heads: Int, dh: Int
    ) -> (scores: [Float], pattern: [Float], out: [Float]) {
        let d = heads * dh, ld = 3 * d, scale = 1 / Double(dh).squareRoot()
        var scores = [Float](repeating: 0, count: heads * n * n), pattern = scores
        var out = [Float](repeating: 0, count: n * d)
        for h in 0..<heads {
            for r in 0..<n {
                var s = [Double](repeating: 0, count: n)
                for j in 0..<n {
                    var t = 0.0
                    for c in 0..<dh { t += Double(x[r * ld + h * dh + c]) * Double(x[j * ld + d + h * dh + c]) }
                    s[j] = t * scale
                }
                let m = s.max()!
                let e = s.map { Foundation.exp($0 - m) }, z = e.reduce(0, +)
                for j in 0..<n {
                    scores[(h * n + r) * n + j] = Float(s[j])
                    pattern[(h * n + r) * n + j] = Float(e[j] / z)
                }
                for c in 0..<dh {
                    var o = 0.0
                    for j in 0..<n { o += e[j] / z * Double(x[j * ld + 2 * d + h * dh + c]) }
                    out[r * d + h * dh + c] = Float(o)
                }
            }
        }
        return (scores, pattern, out)
    }

    @Test(
        "forwardHeadsParallel gives the formula's output, scores and pattern (dh 64: the fused kernel where the CPU has AVX-512; dh 32: the BLAS path)",
        arguments: [(n: 77, heads: 3, dh: 64), (n: 131, heads: 2, dh: 32), (n: 5, heads: 1, dh: 64)])
    func headsParallel(_ shape: (n: Int, heads: Int, dh: Int)) {
        let (n, heads, dh) = shape
        let d = heads * dh
        let x = Self.qkv(n: n, heads: heads, dh: dh)
        let want = Self.reference(x, n: n, heads: heads, dh: dh)
        var out = [Float](repeating: .nan, count: n * d)
        var scores = [Float](repeating: .nan, count: heads * n * n), pattern = scores
        x.withUnsafeBufferPointer { a in
            Attention.forwardHeadsParallel(
                q: a.baseAddress!, ldq: 3 * d, k: a.baseAddress! + d, ldk: 3 * d,
                v: a.baseAddress! + 2 * d, ldv: 3 * d, n: n, heads: heads, dh: dh,
                out: &out, ldo: d, patternOut: &pattern, scoresOut: &scores)
        }
        expectClose(
            Tensor(shape: [n, d], storage: out), Tensor(shape: [n, d], storage: want.out), rtol: 1e-4, atol: 2e-5,
            "attention output")
        expectClose(
            Tensor(shape: [heads * n * n], storage: scores), Tensor(shape: [heads * n * n], storage: want.scores),
            rtol: 1e-4, atol: 1e-4, "scores")
        expectClose(
            Tensor(shape: [heads * n * n], storage: pattern), Tensor(shape: [heads * n * n], storage: want.pattern),
            rtol: 1e-4, atol: 1e-6, "pattern")
    }

    @Test("asking for the pattern does not change a bit of the output")
    func observingIsFree() {
        let n = 61, heads = 2, dh = 64, d = heads * dh
        let x = Self.qkv(n: n, heads: heads, dh: dh)
        var plain = [Float](repeating: 0, count: n * d), watched = plain
        var pattern = [Float](repeating: 0, count: heads * n * n)
        x.withUnsafeBufferPointer { a in
            let q = a.baseAddress!
            Attention.forwardHeadsParallel(
                q: q, ldq: 3 * d, k: q + d, ldk: 3 * d, v: q + 2 * d, ldv: 3 * d, n: n, heads: heads, dh: dh,
                out: &plain, ldo: d)
            Attention.forwardHeadsParallel(
                q: q, ldq: 3 * d, k: q + d, ldk: 3 * d, v: q + 2 * d, ldv: 3 * d, n: n, heads: heads, dh: dh,
                out: &watched, ldo: d, patternOut: &pattern)
        }
        #expect(plain == watched)
    }

    @Test("a query row's attention is the same bits alone or among other rows, masked or not")
    func rowsIndependent() {
        let nk = 150, heads = 2, dh = 64, d = heads * dh, nq = 13
        let kv = (0..<(nk * 2 * d)).map { Float(cos(Double($0) * 0.377) * 2) }
        let q = (0..<(nq * d)).map { Float(sin(Double($0) * 1.13) * 2) }
        for causal in [nil, 100] as [Int?] {
            var all = [Float](repeating: .nan, count: nq * d), scores = [Float](repeating: 0, count: nq * nk)
            q.withUnsafeBufferPointer { qp in
                kv.withUnsafeBufferPointer { kp in
                    Attention.forward(
                        q: qp.baseAddress!, ldq: d, k: kp.baseAddress!, ldk: 2 * d, v: kp.baseAddress! + d, ldv: 2 * d,
                        nq: nq, nk: nk, heads: heads, dh: dh, causalOffset: causal, out: &all, ldo: d, scores: &scores)
                    for r in [0, 6, 12] {
                        var one = [Float](repeating: .nan, count: d)
                        Attention.forward(
                            q: qp.baseAddress! + r * d, ldq: d, k: kp.baseAddress!, ldk: 2 * d, v: kp.baseAddress! + d,
                            ldv: 2 * d,
                            nq: 1, nk: nk, heads: heads, dh: dh, causalOffset: causal.map { $0 + r }, out: &one, ldo: d,
                            scores: &scores)
                        #if arch(x86_64)
                        #expect(
                            Array(all[(r * d)..<((r + 1) * d)]) == one, "row \(r), causal \(String(describing: causal))"
                        )
                        #else
                        expectClose(
                            Tensor(shape: [d], storage: Array(all[(r * d)..<((r + 1) * d)])),
                            Tensor(shape: [d], storage: one),
                            rtol: 1e-5, atol: 1e-6, "row \(r)")
                        #endif
                    }
                }
            }
        }
    }

    @Test(
        "attention read in place from a decoder cache (keys transposed) is the same bits as packing them, for 1 to 20 rows at any step",
        arguments: [1, 7, 20])
    func cachedSelfAttention(_ nq: Int) {
        let heads = 3, dh = 64, d = heads * dh, stride = 240
        for nk in [nq, 17, 100, 227] where nk >= nq {
            let kv = (0..<(nk * 2 * d)).map { Float(cos(Double($0) * 0.377) * 2) }
            let q = (0..<(nq * d)).map { Float(sin(Double($0) * 1.13) * 2) }
            // The cache's layout: keys [d, stride] (column j = key j), values [nk, d].
            var keysT = [Float](repeating: .nan, count: d * stride), values = [Float](repeating: 0, count: nk * d)
            for j in 0..<nk {
                for c in 0..<d { keysT[c * stride + j] = kv[j * 2 * d + c]; values[j * d + c] = kv[j * 2 * d + d + c] }
            }
            let causal = nk - nq
            var got = [Float](repeating: .nan, count: nq * d), want = got,
                scores = [Float](repeating: 0, count: nq * nk)
            var pattern = [Float](repeating: .nan, count: heads * nq * nk), wantPattern = pattern
            q.withUnsafeBufferPointer { qp in
                kv.withUnsafeBufferPointer { kp in
                    Attention.forwardCached(
                        q: qp.baseAddress!, ldq: d, keysT: keysT, ldkT: stride, v: values, ldv: d, nq: nq, nk: nk,
                        heads: heads, dh: dh, causalOffset: causal, out: &got, ldo: d, scores: &scores,
                        patternOut: &pattern)
                    Attention.forward(
                        q: qp.baseAddress!, ldq: d, k: kp.baseAddress!, ldk: 2 * d, v: kp.baseAddress! + d, ldv: 2 * d,
                        nq: nq, nk: nk, heads: heads, dh: dh, causalOffset: causal, out: &want, ldo: d, scores: &scores,
                        patternOut: &wantPattern)
                }
            }
            #if arch(x86_64)
            // Unused key columns hold NaN: read by the kernel, never kept.
            #expect(got == want, "\(nq) rows against \(nk) keys")
            #expect(pattern == wantPattern, "pattern, \(nq) rows against \(nk) keys")
            #else
            expectClose(
                Tensor(shape: [nq, d], storage: got), Tensor(shape: [nq, d], storage: want), rtol: 1e-5, atol: 1e-6,
                "cached")
            #endif
        }
    }

    @Test(
        "keys and values packed once give the same attention for any number of query rows (the decoder's cross-attention groups)",
        arguments: [1, 13, 50])
    func packedCrossAttention(_ nq: Int) throws {
        let nk = 77, heads = 2, dh = 64, d = heads * dh
        let kv = (0..<(nk * 2 * d)).map { Float(cos(Double($0) * 0.377) * 2) }
        let q = (0..<(nq * d)).map { Float(sin(Double($0) * 1.13) * 2) }
        guard
            let packed = kv.withUnsafeBufferPointer({ p in
                Attention.packHeads(
                    k: p.baseAddress!, ldk: 2 * d, v: p.baseAddress! + d, ldv: 2 * d, nk: nk, heads: heads, dh: dh)
            })
        else {
            // Only without AVX-512 (or with AUSCULT_PORTABLE=1): then nothing is packed and callers use `forward`.
            #expect(!Kernels.avx512)
            return
        }
        var got = [Float](repeating: .nan, count: nq * d), want = got
        q.withUnsafeBufferPointer { qp in
            kv.withUnsafeBufferPointer { kp in
                packed.withUnsafeBufferPointer { pp in
                    Attention.forwardPacked(
                        q: qp.baseAddress!, ldq: d, packed: pp.baseAddress!, nq: nq, nk: nk, heads: heads,
                        out: &got, ldo: d)
                    var scores = [Float](repeating: 0, count: nq * nk)
                    Attention.forward(
                        q: qp.baseAddress!, ldq: d, k: kp.baseAddress!, ldk: 2 * d, v: kp.baseAddress! + d, ldv: 2 * d,
                        nq: nq, nk: nk, heads: heads, dh: dh, causalOffset: nil, out: &want, ldo: d, scores: &scores)
                }
            }
        }
        expectClose(
            Tensor(shape: [nq, d], storage: got), Tensor(shape: [nq, d], storage: want), rtol: 1e-5, atol: 1e-6,
            "packed attention")
    }

    @Test(
        "attention straight from the features gives the formula's output and pattern for every (row, head) pair",
        arguments: [
            (rows: 1, heads: 6, nf: 1500, d: 384), (rows: 3, heads: 8, nf: 37, d: 512),
            (rows: 2, heads: 5, nf: 200, d: 48),
        ])
    func fromFeatures(_ shape: (rows: Int, heads: Int, nf: Int, d: Int)) throws {
        let (rows, heads, nf, d) = shape
        // Off x86-64 nothing calls it (CrossAttentionForm falls back to keys and values).
        guard Attention.readsFeatures(d: d) else { #expect(!Kernels.avx512); return }
        let x = (0..<(nf * d)).map { Float(cos(Double($0) * 0.377) * 1.5) }
        let u = (0..<(rows * heads * d)).map { Float(sin(Double($0) * 1.13) * 0.2) }
        let alpha: Float = 0.125, pairs = rows * heads
        var y = [Float](repeating: .nan, count: pairs * d), pattern = [Float](repeating: .nan, count: heads * rows * nf)
        var scratch = [Float](repeating: 0, count: Attention.fromFeaturesScratch(rows: rows, heads: heads, nf: nf))
        u.withUnsafeBufferPointer { up in
            x.withUnsafeBufferPointer { xp in
                Attention.fromFeatures(
                    u: up.baseAddress!, rows: rows, heads: heads, x: xp.baseAddress!, ldx: d, nf: nf, d: d,
                    alpha: alpha,
                    y: &y, scratch: &scratch, patternOut: &pattern, headStride: rows * nf, rowStride: nf)
            }
        }
        var wantY = [Float](repeating: 0, count: pairs * d), wantP = [Float](repeating: 0, count: heads * rows * nf)
        for p in 0..<pairs {
            let s = (0..<nf).map { j in
                Double(alpha) * (0..<d).reduce(0.0) { $0 + Double(u[p * d + $1]) * Double(x[j * d + $1]) }
            }
            let m = s.max()!, e = s.map { Foundation.exp($0 - m) }, z = e.reduce(0, +)
            for j in 0..<nf { wantP[(p % heads) * rows * nf + (p / heads) * nf + j] = Float(e[j] / z) }
            for c in 0..<d { wantY[p * d + c] = Float((0..<nf).reduce(0.0) { $0 + e[$1] / z * Double(x[$1 * d + c]) }) }
        }
        expectClose(
            Tensor(shape: [pairs, d], storage: y), Tensor(shape: [pairs, d], storage: wantY), rtol: 1e-4, atol: 2e-5,
            "output")
        expectClose(
            Tensor(shape: [heads * rows * nf], storage: pattern), Tensor(shape: [heads * rows * nf], storage: wantP),
            rtol: 1e-4, atol: 1e-6, "pattern")
        // A row's result does not depend on the rows computed with it.
        var alone = [Float](repeating: .nan, count: heads * d)
        u.withUnsafeBufferPointer { up in
            x.withUnsafeBufferPointer { xp in
                Attention.fromFeatures(
                    u: up.baseAddress! + (rows - 1) * heads * d, rows: 1, heads: heads, x: xp.baseAddress!, ldx: d,
                    nf: nf,
                    d: d, alpha: alpha, y: &alone, scratch: &scratch)
            }
        }
        #expect(alone == Array(y[((rows - 1) * heads * d)...]))
    }
}
