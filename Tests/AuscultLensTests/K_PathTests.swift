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
