import AuscultAudio
import AuscultLens
import AuscultTensor
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

@Suite("Lenses and attribution")
struct LensTests {
    @Test("the decoder logit lens's top-1 per block equals openai-whisper's on jfk")
    func logitLensMatchesReference() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let ref = try Fixtures.jfkActivations()
        let tokens = try ref.integers("decoder.tokens")
        let (r, _) = try Lens(loaded: loaded).run(Fixtures.clip("jfk"), tokens: tokens)
        #expect(r.decoderLens.count == 1 + loaded.model.dims.n_text_layer)
        for i in 0..<loaded.model.dims.n_text_layer {
            let expected = try ref.integers("lens.decoder.blocks.\(i).top1")
            let got = r.decoderLens[i + 1].top1
            #expect(got == expected, "decoder.blocks.\(i)")
        }
        // The last layer is the model's own prediction: KL 0, rank 0, and the final token's probability is the top one.
        let last = r.decoderLens.last!
        #expect(last.kl.allSatisfy { abs($0) < 1e-6 })
        #expect(last.finalRank.allSatisfy { $0 == 0 })
        // Earlier layers are further from the final distribution on average.
        let meanKL = r.decoderLens.map { $0.kl.reduce(0, +) / Double($0.kl.count) }
        #expect(meanKL[1] > meanKL[meanKL.count - 1])
    }

    @Test("with a prompt and a prefix the lens reads the transcript decoded after them, and a resume must match")
    func promptAndPrefix() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        var lens = Lens(loaded: loaded)
        lens.decoding.prompt = loaded.promptTokens("A speech in Washington.")
        lens.decoding.prefix = loaded.promptTokens("And so my")
        let (r, _) = try lens.run(Fixtures.clip("jfk"))
        let start = loaded.prompt(lens.decoding)
        #expect(start.first == loaded.tokenizer.sotPrev && start.suffix(3) == lens.decoding.prefix![...])
        let free = try loaded.run(.file(Fixtures.clip("jfk")), options: lens.decoding)
        #expect(r.tokens == start + free.tokens + [loaded.tokenizer.eot])
        // The last layer's top-1 is the model's own next token wherever the transcript continues.
        let last = try #require(r.decoderLens.last)
        for p in (start.count - 1)..<(r.tokens.count - 1) { #expect(last.top1[p] == r.tokens[p + 1], "position \(p)") }
        // A lens directory made without the context refuses a run with it, naming what differs.
        let dir = try Fixtures.temporaryDirectory()
        let item = DatasetItem(id: "jfk", path: Fixtures.clip("jfk"), reference: nil)
        var job = LensJob(lens: Lens(loaded: loaded), directory: dir)
        job.attention = false
        _ = try job.run([item])
        job.lens = lens
        #expect { _ = try job.run([item]) } throws: {
            ($0 as? LensError)?.code == .conflictingRun && "\($0)".contains("prefix")
        }
    }

    @Test("direct logit attribution: every component plus the LayerNorm bias term sums to the logit")
    func attributionSums() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let (r, _) = try Lens(loaded: loaded).run(Fixtures.clip("jfk"))
        let a = r.attribution
        let heads = loaded.model.dims.n_text_head, layers = loaded.model.dims.n_text_layer
        #expect(a.components.count == 1 + layers * (2 * (heads + 1) + 1))
        for p in a.targets.indices {
            let sum = a.values.reduce(0.0) { $0 + $1[p] } + a.bias[p]
            expectClose(sum, a.logits[p], tolerance: 2e-3 * max(1, abs(a.logits[p])), "position \(p)")
        }
        // The encoder lens on the last block is the ordinary transcript.
        let mel = LogMel(nMels: loaded.model.dims.n_mels).window(
            try AudioClip(contentsOf: Fixtures.clip("jfk")).samples)
        let plain = try loaded.decoder.decode(audio: loaded.model.encode(mel.reshaped([1] + mel.shape)))[0]
        #expect(r.encoderLens.last!.tokens == plain.tokens)
        #expect(r.encoderLens.count == loaded.model.dims.n_audio_layer)
    }
}

@Suite("Tuned lens")
struct TunedLensTests {
    @Test("the KL gradient through LayerNorm and unembedding matches finite differences")
    func gradientCheck() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let lens = Lens(loaded: loaded)
        let (layers, final) = try lens.streams(Fixtures.clip("ls_1089-134691-0000"))
        let h = layers[2].rows(0..<3)
        let f = final.rows(0..<3)
        let (_, grad) = try TunedLens.kl(model: loaded.model, translated: h, finalLogp: f, gradient: true)
        for (r, j) in [(0, 5), (1, 100), (2, 383)] {
            let eps: Float = 1e-2
            var up = h, down = h
            up.storage[r * 384 + j] += eps; down.storage[r * 384 + j] -= eps
            let numeric =
                (try TunedLens.kl(model: loaded.model, translated: up, finalLogp: f).loss
                    - (try TunedLens.kl(model: loaded.model, translated: down, finalLogp: f).loss)) / Double(2 * eps)
            expectClose(
                Double(grad!.storage[r * 384 + j]), numeric, tolerance: 2e-3 + 0.05 * abs(numeric), "d/dh[\(r)][\(j)]")
        }
    }

    @Test("training lowers each intermediate layer's KL to the final distribution and leaves the last at zero")
    func training() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let (_, s) = try Lens(loaded: loaded).tuned([Fixtures.clip("jfk")], steps: 30)
        #expect(s.trainClips == s.evalClips)
        #expect(s.layers.count == 1 + loaded.model.dims.n_text_layer)
        for i in 0..<(s.layers.count - 1) { #expect(s.klTunedLens[i] < 0.8 * s.klLogitLens[i], "\(s.layers[i])") }
        #expect(abs(s.klLogitLens.last!) < 1e-6)
        #expect(s.top1LogitLens.last! == 1)
    }
}
