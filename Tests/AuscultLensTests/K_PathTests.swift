import AuscultLens
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

/// What make_path_reference.py computed with PyTorch on openai-whisper.
private struct PathReference: Decodable {
    var tokens: [Int]
    var losses: [String: [Double]]
    var direct: [[Double]]
    var direct_logit: [[Double]]
    var centred: [Double]
    var bias: [Double]
    var patch_total: [[Double]]
    var patch_direct: [[Double]]
    static func load() throws -> PathReference {
        try JSONDecoder().decode(
            PathReference.self,
            from: Data(contentsOf: URL(fileURLWithPath: Fixtures.reference + "/tiny.en/paths_jfk.json")))
    }
}

@Suite("Audio or language: per-token loss and direct contributions", .serialized)
struct PathTests {
    @Test("on jfk every loss and direct contribution agrees with PyTorch, and the contributions add up")
    func agreesWithPyTorch() async throws {
        let reference = try PathReference.load()
        let r = try await offCooperativePool {
            try PathAnalysis(loaded: try Fixtures.loaded("tiny.en")).run(
                clips: [DatasetItem(id: "jfk", path: Fixtures.clip("jfk"), reference: nil)])
        }
        let clip = try #require(r.clips.first)
        #expect(r.conditions.map(\.name) == PathAnalysis.conditionNames)
        for (k, name) in PathAnalysis.conditionNames.prefix(3).enumerated() {
            let expected = try #require(reference.losses[name])
            #expect(clip.losses[k].count == expected.count)
            let worst = zip(clip.losses[k], expected).map { abs($0 - $1) }.max() ?? .infinity
            #expect(worst < 2e-3, "\(name): differs by \(worst)")
        }
        #expect(r.components.count == reference.direct.count)
        var worst = 0.0
        for (mine, theirs) in zip(clip.direct, reference.direct) {
            for (a, b) in zip(mine, theirs) { worst = max(worst, abs(a - b)) }
        }
        #expect(worst < 2e-3, "direct contributions differ by \(worst)")
        for (c, theirs) in zip(r.components, reference.direct_logit) {
            let mean = theirs.reduce(0, +) / Double(theirs.count)
            #expect(abs(c.directLogit - mean) < 2e-3, "\(c.name): raw-logit contribution \(c.directLogit) vs \(mean)")
        }
        // Σ contributions + β term = logit(target) − E_p[logit], here and in PyTorch.
        #expect(r.sumError < 1e-3)
        for p in reference.centred.indices {
            let total = reference.direct.reduce(reference.bias[p]) { $0 + $1[p] }
            #expect(abs(total - reference.centred[p]) < 1e-5)  // PyTorch's logits are float32
        }
        // Without the audio the clean transcript costs far more, and no cross-attention at all the most.
        let loss = r.conditions.map(\.loss)
        #expect(loss[0] < 0.5 && loss[1] > loss[0] + 2 && loss[2] > loss[1])
        // Path patching with the silence run's values, total and direct, as PyTorch's hooks give it.
        #expect(r.patching.count == reference.patch_total.count)
        for (k, p) in r.patching.enumerated() {
            let total = reference.patch_total[k].reduce(0, +) / Double(reference.patch_total[k].count)
            let direct = reference.patch_direct[k].reduce(0, +) / Double(reference.patch_direct[k].count)
            #expect(abs(p.total - total) < 2e-3, "\(p.name): total \(p.total) vs \(total)")
            #expect(abs(p.direct - direct) < 2e-3, "\(p.name): direct \(p.direct) vs \(direct)")
            #expect(abs(p.indirect - (p.total - p.direct)) < 1e-12)
        }
        // Block 0's self-attention reads only token embeddings: silence cannot change it. Nothing
        // after the last MLP but the read-out: its whole effect is direct.
        #expect(r.patching[0].total == 0 && r.patching[0].direct == 0)
        #expect(abs(r.patching[11].indirect) < 1e-4, "\(r.patching[11])")
        #expect(r.patching[10].total > 0.3, "the last cross-attention carries the audio: \(r.patching[10])")
    }

    @Test("after a prefix, paths scores the transcript that follows it; a reference is not cut by one")
    func prefix() async throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let prefix = loaded.promptTokens("And so my")
        let item = DatasetItem(id: "jfk", path: Fixtures.clip("jfk"), reference: "And so my fellow Americans")
        let r = try await offCooperativePool {
            var analysis = PathAnalysis(loaded: loaded)
            analysis.decoding.prefix = prefix
            return try analysis.run(clips: [item])
        }
        var analysis = PathAnalysis(loaded: loaded)
        analysis.decoding.prefix = prefix
        let clip = try #require(r.clips.first)
        let free = try loaded.run(.file(Fixtures.clip("jfk")), options: analysis.decoding)
        #expect(clip.tokens.count == free.tokens.count + 1 && clip.tokens.first == " fellow", "\(clip.tokens)")
        #expect(r.sumError < 1e-3)
        analysis.onReference = true
        #expect(throws: LensError.self) { try analysis.run(clips: [item]) }
    }

    @Test("a token repeats when the pair it closes occurred earlier in the text")
    func repeatedTokens() {
        #expect(
            PathAnalysis.repeats([7, 1, 2, 3, 1, 2, 4, 2]) == [false, false, false, false, false, true, false, false])
        #expect(PathAnalysis.repeats([5, 5, 5, 5]) == [false, false, true, true])
        #expect(PathAnalysis.repeats([]) == [])
    }

    @Test("a sweep's length-limit run is replayed with its condition and its tokens grouped as repeated or new")
    func sweepLimitHits() async throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let sweep = try Fixtures.temporaryDirectory()
        func line(_ condition: String, mode: String) -> String {
            #"{"clip":"jfk","condition":"\#(condition)","mode":"\#(mode)","draw":0,"tokens":[],"text":"","wer":1,"#
                + #""wer_vs_clean":1,"word_errors":1,"reference_words":1,"ce":0,"ce_delta":0,"max_repeat":5,"#
                + #""hit_limit":true}"#
        }
        let lines = [line("skip decoder.blocks.2", mode: "zero"), line("swap decoder.blocks.1", mode: "resample")]
        try (lines.joined(separator: "\n") + "\n").write(
            toFile: sweep + "/results.jsonl", atomically: true, encoding: .utf8)
        let items = [DatasetItem(id: "jfk", path: Fixtures.clip("jfk"), reference: nil)]
        let (inputs, skipped) = try PathInput.limitHits(sweep: sweep, items: items, loaded: loaded)
        #expect(
            inputs.count == 1 && inputs[0].source == "length-limit hits"
                && inputs[0].id == "jfk · skip decoder.blocks.2")
        #expect(skipped.count == 1 && skipped[0].contains("swap"), "\(skipped)")
        // The zeros make the same run as the skip.
        let skipRun = try loaded.run(.file(Fixtures.clip("jfk")), interventions: [.skip(.decoder(2))])
        let zeroRun = try loaded.run(.file(Fixtures.clip("jfk")), interventions: inputs[0].interventions)
        #expect(skipRun.tokens == zeroRun.tokens && !skipRun.tokens.isEmpty)
        let r = try await offCooperativePool { try PathAnalysis(loaded: loaded).run(inputs: inputs) }
        let clip = try #require(r.clips.first)
        #expect(clip.condition == "skip decoder.blocks.2" && clip.tokens.count >= skipRun.tokens.count)
        #expect(r.sumError < 1e-3, "the decomposition adds up under the replayed condition: \(r.sumError)")
        // Block 2 writes nothing, so patching it changes nothing.
        for p in r.patching where p.name.hasPrefix("decoder.blocks.2.") { #expect(p.total == 0 && p.direct == 0) }
        let grouped = r.groups.reduce(0) { $0 + $1.tokens }
        #expect(grouped == clip.tokens.count && r.groups.allSatisfy { $0.source == "length-limit hits" })
        #expect(r.groups.first { $0.repeated }?.tokens ?? 0 == clip.repeated.filter { $0 }.count)
        // A sweep made with another model is refused by name.
        try #"{"model": "/elsewhere/base"}"#.write(toFile: sweep + "/run.json", atomically: true, encoding: .utf8)
        #expect(throws: LensError.self) { try PathInput.limitHits(sweep: sweep, items: items, loaded: loaded) }
        // Recorded by content, the same weights elsewhere are accepted and other weights refused.
        let same = #"{"model": "/elsewhere/tiny.en", "model_sha256": "\#(loaded.contentHash)"}"#
        try same.write(toFile: sweep + "/run.json", atomically: true, encoding: .utf8)
        #expect(try PathInput.limitHits(sweep: sweep, items: items, loaded: loaded).inputs.count == 1)
        try #"{"model": "\#(loaded.path)", "model_sha256": "00"}"#.write(
            toFile: sweep + "/run.json", atomically: true, encoding: .utf8)
        #expect(throws: LensError.self) { try PathInput.limitHits(sweep: sweep, items: items, loaded: loaded) }
    }

    @Test("silence, white noise and a tone are the synthetic inputs; others are refused by name")
    func syntheticInputs() throws {
        let inputs = try PathInput.synthetic(["silence", "noise", "tone"], seconds: 2)
        #expect(
            inputs.map(\.source) == ["silence", "noise", "tone"] && inputs.allSatisfy { $0.samples.count == 32_000 })
        #expect(inputs[0].samples.allSatisfy { $0 == 0 })
        let noise = inputs[1].samples.map(Double.init)
        let rms = (noise.reduce(0) { $0 + $1 * $1 } / Double(noise.count)).squareRoot()
        #expect(abs(rms - 0.1) < 0.005, "noise RMS \(rms)")
        #expect(abs(inputs[2].samples[10] - Float(0.25 * sin(2 * Double.pi * 440 * 10 / 16_000))) < 1e-6)
        #expect(throws: LensError.self) { try PathInput.synthetic(["hum"]) }
        #expect(throws: LensError.self) { try PathInput.synthetic(["noise"], seconds: 31) }
    }

    @Test("the unigram baseline scores a clip by the other clips' counts, with add-α smoothing")
    func unigramLeavesTheClipOut() async throws {
        let r = try await offCooperativePool {
            var analysis = PathAnalysis(loaded: try Fixtures.loaded("tiny.en"))
            analysis.unigramSmoothing = 0.5
            let items = ["jfk", "ps_cards_003"].map { DatasetItem(id: $0, path: Fixtures.clip($0), reference: nil) }
            return try analysis.run(clips: items)
        }
        let jfk = r.clips[0], cards = r.clips[1]
        let v = Double(try Fixtures.loaded("tiny.en").model.dims.n_vocab)
        let unseen = -log(0.5 / (Double(cards.tokens.count) + 0.5 * v))
        for (token, loss) in zip(jfk.tokens, jfk.losses[3]) where !cards.tokens.contains(token) {
            #expect(abs(loss - unseen) < 1e-9, "\(token)")
        }
        // End-of-text closes both texts: seen once in the other clip.
        let seenOnce = -log(1.5 / (Double(cards.tokens.count) + 0.5 * v))
        #expect(abs(jfk.losses[3].last! - seenOnce) < 1e-9)
    }

    @Test("auscult paths writes results and a report that opens in Chromium; bad options are refused by name")
    func commandLine() throws {
        let dir = try Fixtures.temporaryDirectory()
        let data = try Fixtures.dataset(["jfk", "ps_cards_003"])
        let r = try AuscultCLI.run(["paths", "--data", data, "--out", dir])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("no audio (silence)") && r.out.contains("adds up within"), "\(r.out)")
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/results.json")))
                as? [String: Any])
        #expect(json["kind"] as? String == "paths")
        let (dom, log) = try Browser.render(dir + "/report.html")
        let rendered = Int(Browser.bodyAttribute(dom, "data-rendered") ?? "") ?? -1
        #expect(rendered >= 4 + 2 * 2, "\(rendered) plots drew")
        #expect(Browser.bodyAttribute(dom, "data-errors") == "0")
        #expect(log.split(separator: "\n").filter { $0.contains("CONSOLE") }.isEmpty)
        let bad = try AuscultCLI.run(["paths", "--data", data, "--smoothing", "0", "--out", dir])
        #expect(bad.status != 0 && bad.err.contains("--smoothing"))
        // A folder of audio without transcripts has nothing to score with --reference.
        let bare = try Fixtures.temporaryDirectory()
        try FileManager.default.copyItem(atPath: Fixtures.clip("jfk"), toPath: bare + "/jfk.wav")
        let noReference = try AuscultCLI.run(["paths", "--data", bare, "--reference", "--out", dir + "/none"])
        #expect(noReference.status != 0 && noReference.err.contains("no clip has a transcript"), "\(noReference.err)")
    }
}
