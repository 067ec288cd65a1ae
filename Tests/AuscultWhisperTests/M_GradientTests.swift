import AuscultTensor
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

/// Gradients through the whole model against PyTorch autograd on openai-whisper
/// (Tests/Fixtures/reference/make_gradient_reference.py), and the metrics' definitions.
@Suite("Gradients: the backward pass against PyTorch autograd")
struct GradientTests {
    /// Largest |Auscult − PyTorch| over PyTorch's largest magnitude, per tensor (measured on an
    /// AVX-512 CPU: 7.5e-4 at worst, at decoder block 0; 4.2e-4 at the log-mel).
    static let tolerance: Float = 1.5e-3

    @Test(
        "the transcript's cross-entropy has PyTorch's gradient at every encoder block, every decoder block and the log-mel (tiny.en, jfk)"
    )
    func parityWithAutograd() throws {
        let file = try SafeTensorsFile(path: Fixtures.reference + "/tiny.en/gradients_jfk.safetensors")
        let tokens = try JSONDecoder().decode([Int].self, from: Data(file.metadata["tokens"]!.utf8))
        let loaded = try Fixtures.loaded("tiny.en")
        let dims = loaded.model.dims
        var names: [HookName] = [.mel]
        for l in 0..<dims.n_audio_layer { names.append(HookName.encoder(l).residPost) }
        for l in 0..<dims.n_text_layer { names.append(HookName.decoder(l).residPre) }
        let (_, cache) = try loaded.runWithCache(
            .file(Fixtures.clip("jfk")), names: names, tokens: tokens, backward: .crossEntropy())
        let ce = Double(file.metadata["ce"]!)!
        expectClose(cache.metric!, ce, tolerance: 5e-4 * ce, "cross-entropy")
        var worst = Float(0)
        for name in names {
            var ours = try cache.gradient(name)
            // The fixture keeps every 5th frame of the encoder's streams and of the log-mel.
            if name == .mel {
                ours = Tensor(shape: [80, 600], storage: (0..<80).flatMap { m in (0..<600).map { ours[m, 5 * $0] } })
            } else if name.name.hasPrefix("encoder") {
                ours = ours.gather(rows: Array(stride(from: 0, to: 1500, by: 5)))
            }
            let theirs = try file.tensor(name.name)
            let (diff, scale) = ours.maxAbsDifference(to: theirs)
            #expect(scale > 0 && diff <= Self.tolerance * scale, "\(name.name): \(diff) of \(scale)")
            worst = max(worst, diff / scale)
            print("gradient parity: \(name.name) \(diff / scale)")
        }
        print("gradient parity: largest relative difference \(worst) (tolerance \(Self.tolerance))")
    }

    @Test("metrics: log-probability and logit difference give their gradients; bad positions and tokens are refused")
    func metrics() throws {
        let logits = Tensor(shape: [2, 3], storage: [1, 2, 3, 0, 0, 0])
        let (lp, g) = try GradientMetric.logProbability(positions: [0], tokens: [2]).evaluate(
            logits, tokens: [], promptCount: 1)
        let lse = log(exp(1.0) + exp(2.0) + exp(3.0))
        expectClose(lp, 3 - lse, tolerance: 1e-6, "log p")
        expectClose(Double(g[0, 2]), 1 - exp(3 - lse), tolerance: 1e-6, "d log p / d logit of the token")
        expectClose(Double(g[0, 0]), -exp(1 - lse), tolerance: 1e-6, "d log p / d another logit")
        #expect(g[1, 0] == 0, "rows not scored have no gradient")
        let (diff, gd) = try GradientMetric.logitDifference(position: 1, token: 0, versus: 2).evaluate(
            logits, tokens: [], promptCount: 1)
        #expect(diff == 0 && gd[1, 0] == 1 && gd[1, 2] == -1 && gd[0, 0] == 0)
        let (ce, gc) = try GradientMetric.crossEntropy(from: 0).evaluate(logits, tokens: [5, 1], promptCount: 1)
        expectClose(ce, lse - 2, tolerance: 1e-6, "cross-entropy of token 1 after position 0")
        expectClose(Double(gc[0, 1]), exp(2 - lse) - 1, tolerance: 1e-6, "its gradient")
        #expect(throws: GradientError.self) {
            try GradientMetric.logitDifference(position: 2, token: 0, versus: 1).evaluate(
                logits, tokens: [], promptCount: 1)
        }
        #expect(throws: GradientError.self) {
            try GradientMetric.logProbability(positions: [0], tokens: [9]).evaluate(logits, tokens: [], promptCount: 1)
        }
        #expect(throws: GradientError.self) {
            try GradientMetric.crossEntropy(from: 1).evaluate(logits, tokens: [5, 1], promptCount: 1)
        }
    }

    @Test(
        "a backward hook sees each gradient and its replacement flows on: zeroing one decoder block's gradient zeroes the log-mel's"
    )
    func backwardHook() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let audio = AudioInput.samples([Float](repeating: 0.01, count: 16_000))
        let tokens = loaded.prompt() + [440, 1022]
        var seen = [String]()
        let (_, clean) = try loaded.runWithCache(audio, names: [.mel], tokens: tokens, backward: .crossEntropy())
        #expect(try clean.gradient(.mel).scalars.contains { $0 != 0 })
        let lock = NSLock()
        let (_, cut) = try loaded.runWithCache(
            audio, names: [.mel, HookName.encoder(3).residPost], tokens: tokens, backward: .crossEntropy(),
            backwardHook: { name, g in
                lock.lock(); seen.append(name); lock.unlock()
                if name == HookName.encoder(3).residPost.name { g = Tensor(zeros: g.shape) }
            })
        #expect(seen.first == HookName.logits.name && seen.last == HookName.mel.name)
        #expect(try cut.gradient(.mel).scalars.allSatisfy { $0 == 0 }, "nothing flows past a zeroed stream")
        #expect(throws: HookError.self) { try clean.gradient(HookName.decoder(0).residPre) }
        // A hook that returns a gradient of another shape is named in the error.
        do {
            _ = try loaded.runWithCache(
                audio, names: [.mel], tokens: tokens, backward: .crossEntropy(),
                backwardHook: { name, g in if name == HookName.decoder(1).mlp.post.name { g = Tensor(zeros: [3]) } })
            Issue.record("a misshapen gradient was accepted")
        } catch let e as GradientError {
            #expect(e.code == .shapeMismatch && e.message.contains("decoder.blocks.1.mlp.hook_post"), "\(e.message)")
        }
        // A metric on a token outside the vocabulary, or past the sequence, is refused by name.
        #expect(throws: GradientError.self) {
            try loaded.runWithCache(audio, tokens: tokens, backward: .logitDifference(position: 9, token: 0, versus: 1))
        }
    }
}
