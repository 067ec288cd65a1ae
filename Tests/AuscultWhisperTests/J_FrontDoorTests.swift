import AuscultAudio
import AuscultTensor
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

/// The library's front door: `run`, `runWithCache`, `ActivationCache`, typed hook names and
/// interventions as values, checked against the reference and against each other.
@Suite("Front door: run, runWithCache and the activation cache")
struct FrontDoorTests {
    static let jfk = AudioInput.file(Fixtures.clip("jfk"))

    @Test(
        "the registry's names and shapes are exactly the ones the forward pass produces",
        arguments: ["tiny.en", "base"])
    func registryEqualsForward(model: String) throws {
        let loaded = try Fixtures.loaded(model)
        let registry = HookRegistry(dims: loaded.model.dims)
        let tokens = loaded.prompt() + [440, 1022]
        let (_, cache) = try loaded.runWithCache(
            .samples([Float](repeating: 0.01, count: 16_000)), names: ["*"], tokens: tokens)
        #expect(cache.names == registry.names.sorted())
        for point in registry.points {
            let want = point.shape.map { $0 == "F" ? 1500 : $0 == "T" ? tokens.count : Int($0)! }
            #expect(cache.activations[point.name]?.shape == want, "\(point.name)")
        }
    }

    @Test("every typed hook name is a hook point of the registry")
    func typedNames() throws {
        let registry = HookRegistry(dims: try Fixtures.loaded("tiny.en").model.dims)
        var names: [HookName] = [
            .mel, .convOut, .encoderPosEmbed, .lnPost.scale, .lnPost.normalized, .embed, .posEmbed,
            .lnFinal.scale, .lnFinal.normalized, .logits,
        ]
        for b in [HookName.encoder(1), HookName.decoder(2)] {
            names += [
                b.residPre, b.ln1.scale, b.ln1.normalized, b.attn.q, b.attn.k, b.attn.v, b.attn.z, b.attn.pattern,
                b.attn.result, b.attnOut, b.residMid, b.ln2.normalized, b.mlpLN.normalized, b.mlp.pre, b.mlp.post,
                b.mlpOut, b.residPost,
            ]
        }
        let d = HookName.decoder(3)
        names += [
            d.crossAttn.q, d.crossAttn.k, d.crossAttn.z, d.crossAttn.pattern, d.crossAttnOut, d.residMidCross,
            d.ln3.scale,
        ]
        for n in names { #expect(registry.point(n.name) != nil, "\(n)") }
        #expect(HookName.decoder(1).attn.z.name == "decoder.blocks.1.attn.hook_z")
        #expect(HookName.encoder(2).mlpLN.normalized.name == "encoder.blocks.2.ln2.hook_normalized")
        #expect(HookName.decoder(2).mlpLN.normalized.name == "decoder.blocks.2.ln3.hook_normalized")
        #expect(try registry.resolve(HookName.encoder(2).block.name) == ["encoder.blocks.2.hook_resid_post"])
    }

    @Test("run gives the reference transcript; teacher-forced on it, the logits agree with generation's and pick it")
    func runAndLogits() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let want = try Fixtures.transcripts("tiny.en").first { $0.id == "jfk" }!
        let clean = try loaded.run(Self.jfk, logits: true)
        #expect(clean.tokens == want.tokens.filter { $0 < loaded.tokenizer.eot })
        #expect(clean.text == want.text)
        #expect(clean.inputTokens == loaded.prompt() + clean.tokens)
        let samples = try AudioClip(contentsOf: Fixtures.clip("jfk")).samples.count
        #expect(clean.audioFrames == (samples + 319) / 320 && clean.audioFrames < 1500)
        let forced = try loaded.run(Self.jfk, tokens: clean.inputTokens, logits: true)
        #expect(forced.tokens == clean.tokens && forced.text == clean.text)
        let (a, b) = (try #require(clean.logits), try #require(forced.logits))
        #expect(a.shape == [clean.inputTokens.count, 51864])
        expectClose(b, a, rtol: 1e-4, atol: 1e-3, "teacher-forced vs generated logits")
        // Each position's argmax is the next token (the prompt's last position picks the first text token).
        let picks = b.argmax(axis: -1)
        #expect(Array(picks[(loaded.prompt().count - 1)...].dropLast()) == clean.tokens)
    }

    @Test("the hello world: zeroing one decoder head changes the logits, and only from where it acts")
    func helloWorld() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let (clean, cache) = try loaded.runWithCache(
            Self.jfk, names: ["decoder.blocks.*.hook_resid_post"], logits: true)
        #expect(cache.names == (0..<4).map { "decoder.blocks.\($0).hook_resid_post" })  // logits: in the result
        let zeroed = try loaded.run(
            Self.jfk, tokens: clean.inputTokens,
            interventions: [.zero(.decoder(1).attn.z, heads: [3], positions: [5, 6])], logits: true)
        let a = try #require(clean.logits), b = try #require(zeroed.logits)
        let v = 51864
        func rowDiff(_ p: Int) -> Float { (0..<v).map { abs(a[p, $0] - b[p, $0]) }.max()! }
        for p in 0..<5 { #expect(rowDiff(p) < 1e-3, "position \(p) comes before the ablation") }
        #expect(rowDiff(5) > 1e-2 && rowDiff(6) > 1e-2)
        // The same head zeroed in its per-head result gives the same logits.
        let viaResult = try loaded.run(
            Self.jfk, tokens: clean.inputTokens,
            interventions: [.zero(.decoder(1).attn.result, heads: [3], positions: [5, 6])], logits: true)
        expectClose(try #require(viaResult.logits), b, rtol: 1e-4, atol: 2e-3, "z vs result")
    }

    @Test("cache analysis: the decomposition sums to the stream, LayerNorm and attributions rebuild the logits")
    func analysis() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let names: [HookName] = [
            "decoder.*", "encoder.hook_*", "encoder.blocks.*.hook_attn_out", "encoder.blocks.*.hook_mlp_out",
            .encoder(3).residPost,
        ]
        let (run, cache) = try loaded.runWithCache(
            Self.jfk, names: names, tokens: loaded.prompt() + [400, 1029, 3399], logits: true)
        let t = run.inputTokens.count, d = 384
        // Accumulated: 4 block inputs, then the last output.
        let (acc, accLabels) = try cache.accumulatedResid(.decoder)
        #expect(acc.shape == [5, t, d])
        #expect(
            accLabels.first == "decoder.blocks.0.hook_resid_pre" && accLabels.last == "decoder.blocks.3.hook_resid_post"
        )
        let (parts, labels) = try cache.decomposeResid(.decoder)
        #expect(labels.count == 2 + 3 * 4 && labels[0] == "embed" && labels[2] == "decoder.blocks.0.hook_attn_out")
        expectClose(parts.sum(axis: 0), acc.select(-1, axis: 0), rtol: 1e-5, atol: 1e-4, "Σ decoder components")
        let (encParts, _) = try cache.decomposeResid(.encoder)
        expectClose(
            encParts.sum(axis: 0), try cache.tensor(.encoder(3).residPost), rtol: 1e-5, atol: 2e-4,
            "Σ encoder components")
        // The final LayerNorm of the stream, with γ and β applied, is the cached normalized stream.
        let normed = try cache.applyLNToStack(acc.slice(4..<5, axis: 0)).select(0, axis: 0)
        let gamma = loaded.model.weights["decoder.ln.weight"], beta = loaded.model.weights["decoder.ln.bias"]
        let affine = Tensor(shape: [t, d]) { o in
            for i in 0..<(t * d) { o[i] = normed.storage[i] * gamma.storage[i % d] + beta.storage[i % d] }
        }
        expectClose(affine, try cache.tensor(.lnFinal.normalized), rtol: 1e-4, atol: 1e-4, "ln_final")
        // Attribution over heads, biases and MLPs plus β·W_U rebuilds each next-token logit.
        let targets = Array(run.inputTokens.dropFirst()) + [run.inputTokens.last!]
        let (heads, headLabels) = try cache.headDecomposition()
        #expect(headLabels.count == 1 + 4 * (6 + 1 + 6 + 1 + 1))
        let attrs = try cache.logitAttrs(try cache.applyLNToStack(heads), tokens: targets)
        let bias = try cache.logitBias(tokens: targets)
        let logits = try #require(run.logits)
        for p in 0..<t {
            let total = Double(attrs.sum(axis: 0)[p]) + bias[p]
            #expect(abs(total - Double(logits[p, targets[p]])) < 2e-3, "position \(p)")
        }
        // A logit difference is the difference of two attributions.
        let other = [Int](repeating: 13, count: t)
        let diff = try cache.logitAttrs(try cache.applyLNToStack(heads), tokens: targets, incorrect: other)
        let second = try cache.logitAttrs(try cache.applyLNToStack(heads), tokens: other)
        expectClose(diff, attrs - second, rtol: 1e-4, atol: 1e-4, "logit difference")
        // Per-head results need to be cached: the error names the hook.
        let (_, small) = try loaded.runWithCache(Self.jfk, names: [.decoder(0).residPost], tokens: loaded.prompt())
        #expect { try small.stackHeadResults() } throws: { "\($0)".contains("decoder.blocks.0.attn.hook_result") }
        #expect { try cache.logitAttrs(heads, tokens: targets.map { _ in 99_999 }) } throws: {
            "\($0)".contains("99999")
        }
    }

    @Test(
        "interventions as values: patching from a clean cache restores its transcript; mean and skip as the engine does them"
    )
    func interventionValues() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let (clean, cache) = try loaded.runWithCache(Self.jfk, names: [.lnPost.normalized])
        let silence = AudioInput.samples([Float](repeating: 0, count: 16_000 * 5))
        #expect(try loaded.run(silence).tokens != clean.tokens)
        let patched = try loaded.run(silence, interventions: [try .patch(.lnPost.normalized, from: cache)])
        #expect(patched.tokens == clean.tokens)
        // The mean over two clips is the elementwise mean of their activations.
        let clips: [AudioInput] = [Self.jfk, .file(Fixtures.clip("ps_cards_003"))]
        let hook: HookName = .encoder(1).mlpOut
        let m = try Intervention.mean(hook, over: clips, model: loaded)
        guard case .mean(let value) = m.kind else { Issue.record("mean is not a mean"); return }
        let a = try loaded.activation(hook, on: clips[0]), b = try loaded.activation(hook, on: clips[1])
        #expect(value.shape == [1500, 384])
        #expect(abs(value[700, 5] - (a[700, 5] + b[700, 5]) / 2) < 1e-6)
        let skipped = try loaded.run(Self.jfk, interventions: [.skip(.decoder(3))])
        let viaEngine = try loaded.run(Self.jfk, interventions: [Intervention(hook: "decoder.blocks.3", kind: .skip)])
        #expect(skipped.tokens == viaEngine.tokens && skipped.tokens != clean.tokens)
        #expect { try loaded.activation(.decoder(0).mlpOut, on: Self.jfk) } throws: { "\($0)".contains("tokens") }
    }

    @Test("bad input is refused with a message naming the value and what is allowed")
    func badInput() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        #expect { try loaded.run(Self.jfk, tokens: [50257, 999_999]) } throws: {
            "\($0)".contains("999999") && "\($0)".contains("51864")
        }
        #expect { try loaded.run(Self.jfk, tokens: [-5]) } throws: { "\($0)".contains("-5") }
        #expect { try loaded.run(Self.jfk, tokens: []) } throws: { "\($0)".contains("1…448") }
        #expect { try loaded.run(.logMel(Tensor(zeros: [80, 100]))) } throws: { "\($0)".contains("[80, 3000]") }
        #expect { try loaded.run(.logMel(Tensor(zeros: [80, 3000]), audioFrames: 0)) } throws: {
            "\($0)".contains("audioFrames 0")
        }
        var samples = [Float](repeating: 0, count: 16_000)
        samples[123] = .nan
        #expect { try loaded.run(.samples(samples)) } throws: {
            "\($0)".contains("sample 123") && "\($0)".contains("nan")
        }
        #expect { try loaded.runWithCache(Self.jfk, names: ["decoder.blocks.1.atn.hook_z"]) } throws: {
            "\($0)".contains("decoder.blocks.1.attn.hook_z")
        }
    }
}

@Suite("Tensor conveniences")
struct TensorAccessTests {
    @Test("subscripts, slices, selection, sums and conversions address the elements they name")
    func access() {
        var t = Tensor(Array(0..<24).map(Float.init), shape: [2, 3, 4])
        #expect(t[1, 2, 3] == 23 && t[0, -1, 0] == 8)
        t[0, 0, 1] = 100
        #expect(t.storage[1] == 100)
        #expect(t[at: -1].shape == [3, 4] && t[at: 1][0, 0] == 12)
        #expect(t.slice(1..<3, axis: 1).scalars == [4, 5, 6, 7, 8, 9, 10, 11, 16, 17, 18, 19, 20, 21, 22, 23])
        #expect(t.select(2, axis: 2).shape == [2, 3] && t.select(2, axis: 2).scalars == [2, 6, 10, 14, 18, 22])
        #expect(t.sum(axis: 0).shape == [3, 4] && t.sum(axis: 0)[2, 3] == 11 + 23)
        #expect(Tensor(rows: [[1, 2], [3, 4]]).shape == [2, 2] && Tensor([5]).scalar == 5)
    }

    @Test("argmax and top-k rank largest first, earlier index on ties, never NaN")
    func ranking() {
        let t = Tensor(rows: [[1, 5, 5, -1], [.nan, 2, 9, 9], [0, 0, 0, 0]])
        #expect(t.argmax() == [1, 2, 0])
        let (values, indices) = t.topK(3)
        #expect(indices == [[1, 2, 0], [2, 3, 1], [0, 1, 2]])
        #expect(values[1] == [9, 9, 2])
        #expect(t.argmax(axis: 0) == [0, 0, 1, 1])
    }
}
