import AuscultTensor
import Foundation
import Testing

/// Each backward operation against central finite differences of its forward operation, and the
/// CPU backend's against the reference backend's, on random shapes.
///
/// The scalar differentiated is L = Σ r ⊙ f(x) for a random r (so dy = r), summed in Double;
/// with a step of 1e-2 on float32 forwards, differences agree to about 1e-3 of the gradient's
/// scale (truncation O(h²), rounding ~1e-7/h); the checks allow 1e-2.
@Suite("Backward operations: finite differences, and the CPU backend against the reference")
struct BackwardTests {
    let cpu = CPUBackend(), reference = ReferenceBackend()

    func random(_ shape: [Int], _ range: ClosedRange<Float> = -1...1, seed: UInt64) -> Tensor {
        var rng = SeededGenerator(seed)
        return Tensor(shape: shape, storage: (0..<shape.reduce(1, *)).map { _ in Float.random(in: range, using: &rng) })
    }

    /// Checks `grad` (dL/dx for L = Σ r ⊙ f(x)) at a spread of elements against central differences.
    func finiteDifferences(
        _ x: Tensor, _ grad: Tensor, r: Tensor, _ what: String, step h: Float = 1e-2,
        sourceLocation: SourceLocation = #_sourceLocation, _ f: (Tensor) -> Tensor
    ) {
        func loss(_ x: Tensor) -> Double {
            let y = f(x)
            return zip(y.scalars, r.scalars).reduce(0) { $0 + Double($1.0) * Double($1.1) }
        }
        let scale = Double(grad.scalars.map(abs).max()!)
        #expect(scale > 0, "\(what): the gradient is all zero", sourceLocation: sourceLocation)
        for i in stride(from: 0, to: x.count, by: max(1, x.count / 17)) {
            var up = x, down = x
            up.storage[i] += h; down.storage[i] -= h
            let numeric = (loss(up) - loss(down)) / Double(2 * h)
            #expect(
                abs(Double(grad.storage[i]) - numeric) <= 1e-2 * scale,
                "\(what)[\(i)]: \(grad.storage[i]) vs \(numeric)",
                sourceLocation: sourceLocation)
        }
    }

    /// Expects the CPU backend's gradient within 1e-5 of the reference's scale.
    func agree(_ a: Tensor, _ b: Tensor, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let scale = b.scalars.map(abs).max() ?? 0
        let (diff, _) = a.maxAbsDifference(to: b)
        #expect(scale > 0 && diff <= 1e-5 * scale, "\(what): \(diff) of \(scale)", sourceLocation: sourceLocation)
    }

    @Test("linear, LayerNorm and GELU")
    func rows() {
        let x = random([3, 5, 16], -2...2, seed: 1), w = random([7, 16], seed: 2), b = random([7], seed: 3)
        let r = random([3, 5, 7], seed: 4)
        let layer = reference.prepare(weight: w, bias: b)
        let dx = reference.linearBackward(r, layer)
        finiteDifferences(x, dx, r: r, "linear") { reference.linear($0, layer) }
        agree(cpu.linearBackward(r, cpu.prepare(weight: w, bias: b)), dx, "linear, CPU")

        let y = random([4, 24], -3...3, seed: 5), rn = random([4, 24], seed: 6)
        let norm = NormWeights(gamma: random([24], 0.5...1.5, seed: 7), beta: random([24], seed: 8))
        let dn = reference.layerNormBackward(rn, input: y, norm)
        finiteDifferences(y, dn, r: rn, "LayerNorm") { reference.layerNorm($0, norm, withScale: false).y }
        agree(cpu.layerNormBackward(rn, input: y, norm), dn, "LayerNorm, CPU")

        let z = random([60], -4...4, seed: 9), rg = random([60], seed: 10)
        let dg = reference.geluBackward(rg, input: z)
        finiteDifferences(z, dg, r: rg, "GELU") {
            var t = $0; reference.gelu(&t); return t
        }
    }

    @Test("both convolutions: channels first at step 1, frames first at step 2")
    func convolutions() {
        let mel = random([6, 20], -2...2, seed: 11), w1 = random([5, 6, 3], -0.5...0.5, seed: 12),
            b1 = random([5], seed: 13)
        let r1 = random([20, 5], seed: 14)
        let d1 = reference.conv1dBackward(
            r1, inputShape: mel.shape, weight: w1, stride: 1, padding: 1, framesFirst: false)
        finiteDifferences(mel, d1, r: r1, "conv1") {
            reference.conv1d($0, weight: w1, bias: b1, stride: 1, padding: 1, framesFirst: false)
        }
        agree(
            cpu.conv1dBackward(r1, inputShape: mel.shape, weight: w1, stride: 1, padding: 1, framesFirst: false), d1,
            "conv1, CPU")
        let h = random([20, 5], -2...2, seed: 15), w2 = random([4, 5, 3], -0.5...0.5, seed: 16),
            b2 = random([4], seed: 17)
        let r2 = random([10, 4], seed: 18)
        let d2 = reference.conv1dBackward(r2, inputShape: h.shape, weight: w2, stride: 2, padding: 1, framesFirst: true)
        finiteDifferences(h, d2, r: r2, "conv2") {
            reference.conv1d($0, weight: w2, bias: b2, stride: 2, padding: 1, framesFirst: true)
        }
        agree(
            cpu.conv1dBackward(r2, inputShape: h.shape, weight: w2, stride: 2, padding: 1, framesFirst: true), d2,
            "conv2, CPU")
    }

    @Test("attention over other keys (cross), and causal self-attention through the cache", arguments: [1, 2])
    func attention(heads: Int) {
        let d = 8, nq = 5, nk = 7
        let q = random([nq, d], -1.5...1.5, seed: 20), k = random([nk, d], -1.5...1.5, seed: 21)
        let v = random([nk, d], seed: 22), r = random([1, nq, d], seed: 23)
        func cross(_ q: Tensor, _ k: Tensor, _ v: Tensor) -> (z: Tensor, pattern: Tensor) {
            let kv = Tensor(shape: [1, nk, 2 * d], storage: (0..<nk).flatMap { k.row($0).scalars + v.row($0).scalars })
            let out = reference.crossAttention(
                q.reshaped([1, nq, d]), reference.keysValues(projected: kv, heads: heads), clipOf: [0], heads: heads,
                record: .pattern)
            return (out.z, out.pattern!)
        }
        let pattern = cross(q, k, v).pattern.reshaped([heads, nq, nk])
        let dz = r.reshaped([nq, d])
        let g = reference.attentionBackward(dz, q: q, k: k, v: v, pattern: pattern, heads: heads)
        finiteDifferences(q, g.dq, r: r, "cross dq") { cross($0, k, v).z }
        finiteDifferences(k, g.dk, r: r, "cross dk") { cross(q, $0, v).z }
        finiteDifferences(v, g.dv, r: r, "cross dv") { cross(q, k, $0).z }
        let c = cpu.attentionBackward(dz, q: q, k: k, v: v, pattern: pattern, heads: heads)
        agree(c.dq, g.dq, "dq, CPU"); agree(c.dk, g.dk, "dk, CPU"); agree(c.dv, g.dv, "dv, CPU")

        // Causal: n positions of one sequence, each seeing itself and the ones before.
        let n = 6
        let qs = random([n, d], -1.5...1.5, seed: 24), ks = random([n, d], -1.5...1.5, seed: 25)
        let vs = random([n, d], seed: 26), rs = random([1, n, d], seed: 27)
        func causal(_ q: Tensor, _ k: Tensor, _ v: Tensor) -> (z: Tensor, pattern: Tensor) {
            let qkv = Tensor(
                shape: [1, n, 3 * d],
                storage: (0..<n).flatMap { q.row($0).scalars + k.row($0).scalars + v.row($0).scalars })
            let cache = reference.makeKeyValueCache(sequences: 1, capacity: n, width: d)
            let out = reference.cachedSelfAttention(qkv, cache: cache, length: 0, heads: heads, record: .pattern)
            return (out.z, out.pattern!)
        }
        let causalPattern = causal(qs, ks, vs).pattern.reshaped([heads, n, n])
        #expect(causalPattern[0, 0, 1] == 0, "the first position does not see the second")
        let gc = reference.attentionBackward(
            rs.reshaped([n, d]), q: qs, k: ks, v: vs, pattern: causalPattern, heads: heads)
        finiteDifferences(qs, gc.dq, r: rs, "causal dq") { causal($0, ks, vs).z }
        finiteDifferences(ks, gc.dk, r: rs, "causal dk") { causal(qs, $0, vs).z }
        finiteDifferences(vs, gc.dv, r: rs, "causal dv") { causal(qs, ks, $0).z }
    }
}
