import AuscultTensor
import Foundation
import Testing
import _TestSupport

/// Each operation of the CPU backend against the reference backend (plain loops, Double sums), as
/// ggml's test-backend-ops checks every backend against its CPU one: random operands, shapes that
/// reach each code path (one row, few rows, rows split across workers; head width 64, which the
/// fused AVX-512 kernels take, and 32, which they do not).
///
/// Tolerances: float32 sums of k products against Double ones differ by about √k·2⁻²⁴ of the
/// terms' size; every check allows 2e-5 of the result's scale, ten times what these shapes need.
@Suite("Backend seam: every CPU operation agrees with the reference backend")
struct BackendTests {
    let cpu = CPUBackend(), reference = ReferenceBackend()

    func random(_ shape: [Int], _ range: ClosedRange<Float> = -1...1, seed: UInt64) -> Tensor {
        var rng = SeededGenerator(seed)
        return Tensor(shape: shape, storage: (0..<shape.reduce(1, *)).map { _ in Float.random(in: range, using: &rng) })
    }

    /// Expects `a` within 2e-5 of `b`'s largest magnitude (and `b` not all zero, which would hide a miss).
    func agree(_ a: Tensor, _ b: Tensor, _ what: String, sourceLocation: SourceLocation = #_sourceLocation) {
        let scale = b.storage.map(abs).max() ?? 0
        #expect(scale > 0, "\(what): the reference is all zero", sourceLocation: sourceLocation)
        expectClose(a, b, rtol: 0, atol: 2e-5 * scale, what, sourceLocation: sourceLocation)
    }

    @Test("linear layers, per-head projections and logits, from one row to rows split across workers")
    func products() {
        for (rows, k, n) in [(1, 64, 48), (7, 384, 1536), (30, 96, 200), (300, 384, 384)] {
            let x = random([rows, k], seed: UInt64(rows))
            let w = random([n, k], seed: 2), b = random([n], seed: 3)
            agree(
                cpu.linear(x, cpu.prepare(weight: w, bias: b)),
                reference.linear(x, reference.prepare(weight: w, bias: b)),
                "linear \(rows)×\(k)→\(n)")
            agree(
                cpu.logits(x, cpu.prepare(weight: w, bias: nil)),
                reference.logits(x, reference.prepare(weight: w, bias: nil)),
                "logits \(rows)×\(k)→\(n)")
            let heads = k / 32
            let results = cpu.headResults(x, cpu.prepare(weight: w, bias: b), heads: heads)
            #expect(results.shape == [rows, heads, n])
            agree(
                results, reference.headResults(x, reference.prepare(weight: w, bias: b), heads: heads), "head results")
            // Summed over heads, plus the bias, they are the projection.
            var summed = results.sum(axis: 1)
            reference.add(&summed, Tensor.stack([Tensor](repeating: b, count: rows)))
            agree(summed, reference.linear(x, reference.prepare(weight: w, bias: b)), "Σ head results + bias")
        }
    }

    @Test("LayerNorm (with each row's 1/σ), GELU, the residual add and both convolution layouts")
    func elementwise() {
        let x = random([5, 3, 384], -4...4, seed: 11)
        let norm = NormWeights(gamma: random([384], 0.5...1.5, seed: 12), beta: random([384], seed: 13))
        let (y, inv) = cpu.layerNorm(x, norm, withScale: true)
        let (ry, rinv) = reference.layerNorm(x, norm, withScale: true)
        agree(y, ry, "LayerNorm")
        agree(Tensor(inv!), Tensor(rinv!), "LayerNorm 1/σ")
        #expect(cpu.layerNorm(x, norm, withScale: false).inverseScale == nil)
        var g = random([2, 1000], -6...6, seed: 14), rg = g
        cpu.gelu(&g); reference.gelu(&rg)
        agree(g, rg, "GELU")
        var a = random([4, 33], seed: 15), ra = a
        let b = random([4, 33], seed: 16)
        cpu.add(&a, b); reference.add(&ra, b)
        #expect(a == ra, "the add rounds once either way")
        let mel = random([80, 200], -2...2, seed: 17), w1 = random([64, 80, 3], -0.2...0.2, seed: 18)
        let b1 = random([64], seed: 19)
        let c1 = cpu.conv1d(mel, weight: w1, bias: b1, stride: 1, padding: 1, framesFirst: false)
        #expect(c1.shape == [200, 64])
        agree(c1, reference.conv1d(mel, weight: w1, bias: b1, stride: 1, padding: 1, framesFirst: false), "conv1")
        let w2 = random([64, 64, 3], -0.2...0.2, seed: 20)
        let c2 = cpu.conv1d(c1, weight: w2, bias: b1, stride: 2, padding: 1, framesFirst: true)
        #expect(c2.shape == [100, 64])
        agree(c2, reference.conv1d(c1, weight: w2, bias: b1, stride: 2, padding: 1, framesFirst: true), "conv2")
    }

    @Test("self-attention over every frame records the same output, pattern and scores", arguments: [2, 4])
    func selfAttention(heads: Int) {
        // d = 128: head width 64 with 2 heads (the fused kernel's), 32 with 4.
        let qkv = random([2, 150, 384], -2...2, seed: UInt64(heads))
        let a = cpu.selfAttention(qkv, heads: heads, record: [.pattern, .scores])
        let r = reference.selfAttention(qkv, heads: heads, record: [.pattern, .scores])
        agree(a.z, r.z, "z")
        agree(a.pattern!, r.pattern!, "pattern")
        agree(a.scores!, r.scores!, "scores")
        #expect(cpu.selfAttention(qkv, heads: heads, record: []).pattern == nil)
        #expect(cpu.selfAttention(qkv, heads: heads, record: []).z == a.z, "recording changes no bit")
    }

    @Test("cached causal self-attention over steps, pruning and reordering of sequences", arguments: [2, 4])
    func cachedSelfAttention(heads: Int) {
        let d = 128
        let cpuCache = cpu.makeKeyValueCache(sequences: 3, capacity: 20, width: d)
        let refCache = reference.makeKeyValueCache(sequences: 3, capacity: 20, width: d)
        var length = 0, sequences = 3
        for (step, n) in [4, 1, 1, 2].enumerated() {
            let qkv = random([sequences, n, 3 * d], -2...2, seed: UInt64(10 * heads + step))
            let a = cpu.cachedSelfAttention(qkv, cache: cpuCache, length: length, heads: heads, record: .pattern)
            let r = reference.cachedSelfAttention(qkv, cache: refCache, length: length, heads: heads, record: .pattern)
            #expect(a.pattern!.shape == [sequences, heads, n, length + n])
            agree(a.z, r.z, "step \(step) z")
            agree(a.pattern!, r.pattern!, "step \(step) pattern")
            length += n
            // After step 1 prune to sequences 0 and 2; after step 2 gather 1, 0, 0.
            let source = step == 1 ? [0, 2] : step == 2 ? [1, 0, 0] : nil
            if let source {
                cpuCache.reorder(source, length: length); refCache.reorder(source, length: length)
                sequences = source.count
            }
            #expect(cpuCache.sequences == sequences && refCache.sequences == sequences)
        }
    }

    @Test("cross-attention packed, projected and from the features, sequences sharing clips")
    func crossAttention() {
        let d = 384, heads = 6, clipOf = [1, 0, 1, 1]
        let features = random([2, 60, d], -2...2, seed: 30)
        let kvLayer = random([2 * d, d], -0.1...0.1, seed: 31), kvBias = random([2 * d], seed: 32)
        let q = random([4, 3, d], -2...2, seed: 33)
        let refLayer = reference.prepare(weight: kvLayer, bias: kvBias)
        let r = reference.crossAttention(
            q, features: features, refLayer, clipOf: clipOf, heads: heads, record: .pattern)
        for backend in [CPUBackend(), CPUBackend(packsKeysValues: false)] {
            let layer = backend.prepare(weight: kvLayer, bias: kvBias)
            let kv = backend.keysValues(features: features, layer, heads: heads)
            #expect((kv.payload is Tensor) == !backend.packsKeysValues)
            for record: AttentionRecord in [[], .pattern] {
                let a = backend.crossAttention(q, kv, clipOf: clipOf, heads: heads, record: record)
                agree(a.z, r.z, "keys and values (packed: \(backend.packsKeysValues)) z")
                if record.contains(.pattern) { agree(a.pattern!, r.pattern!, "pattern") }
            }
            #expect(backend.readsFeatures(width: d, heads: heads) == backend.packsKeysValues)
            let f = backend.crossAttention(q, features: features, layer, clipOf: clipOf, heads: heads, record: .pattern)
            agree(f.z, r.z, "from features (packed: \(backend.packsKeysValues)) z")
            agree(f.pattern!, r.pattern!, "from features pattern")
        }
    }
}
