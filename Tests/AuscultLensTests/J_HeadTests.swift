import AuscultAudio
import AuscultLens
import AuscultTensor
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

/// A pattern `[n, n]` with row i putting all its attention on key `target(i)`.
private func onePerRow(_ n: Int, _ target: (Int) -> Int) -> [Float] {
    var p = [Float](repeating: 0, count: n * n)
    for i in 0..<n { p[i * n + target(i)] = 1 }
    return p
}

/// Two-token prompt, then `length` distinct tokens repeated twice.
private func repeated(_ length: Int) -> [Int] {
    let r = (0..<length).map { 1000 + 7 * $0 }
    return [50257, 50362] + r + r
}

@Suite("Head detectors on hand-built patterns")
struct HeadDetectorTests {
    @Test("a previous-token pattern scores 1 on previous-token and about 0 on induction and duplicate-token")
    func previousToken() throws {
        let tokens = repeated(20), n = tokens.count
        let p = onePerRow(n) { max(0, $0 - 1) }
        let bos = HeadDetector.Options(excludeBOS: true)
        let prev = try HeadDetector.score(
            pattern: p, detection: HeadDetector.previousTokenPattern(count: n), n: n, options: bos)
        #expect(prev == 1.0)
        // Without exclusions row 0 (which can only attend to itself) counts against it, as in TransformerLens.
        let plain = try HeadDetector.score(pattern: p, detection: HeadDetector.previousTokenPattern(count: n), n: n)
        #expect(abs(plain! - Double(n - 1) / Double(n)) < 1e-12)
        let ind = try HeadDetector.score(
            pattern: p, detection: HeadDetector.inductionPattern(tokens), n: n, options: bos)
        #expect(ind! < 0.05)
        let dup = try HeadDetector.score(pattern: p, detection: HeadDetector.duplicateTokenPattern(tokens), n: n)
        #expect(dup! < 0.05)
        let abs = try HeadDetector.score(
            pattern: p, detection: HeadDetector.previousTokenPattern(count: n), n: n,
            options: HeadDetector.Options(measure: .abs, excludeBOS: true))
        #expect(abs == 1.0)
        #expect(HeadDetector.prefixMatching(pattern: p, n: n, start: 2, length: 20) == 0)
    }

    @Test("an induction-diagonal pattern scores 1 on induction and prefix matching, about 0 on previous-token")
    func induction() throws {
        let length = 20, tokens = repeated(length), n = tokens.count, second = 2 + length
        // The second copy attends to the token after its first occurrence; everything else to BOS.
        let p = onePerRow(n) { $0 >= second ? $0 - length + 1 : 0 }
        let bos = HeadDetector.Options(excludeBOS: true)
        let ind = try HeadDetector.score(
            pattern: p, detection: HeadDetector.inductionPattern(tokens), n: n, options: bos)
        #expect(ind == 1.0)
        #expect(HeadDetector.prefixMatching(pattern: p, n: n, start: 2, length: length) == 1.0)
        let prev = try HeadDetector.score(
            pattern: p, detection: HeadDetector.previousTokenPattern(count: n), n: n, options: bos)
        #expect(prev! < 0.05)
        // Half the rows are the second copy: without excluding BOS half the attention is off the pattern.
        let plain = try HeadDetector.score(pattern: p, detection: HeadDetector.inductionPattern(tokens), n: n)
        #expect(abs(plain! - Double(length) / Double(n)) < 1e-12)
    }

    @Test("detection patterns follow TransformerLens: duplicates below the diagonal, induction shifted one key right")
    func detectionPatterns() {
        let tokens = [5, 7, 5, 7]
        let dup = HeadDetector.duplicateTokenPattern(tokens), ind = HeadDetector.inductionPattern(tokens)
        #expect(dup == [0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0, 0])
        #expect(ind == [0, 0, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0, 0, 0, 1, 0])
        #expect(HeadDetector.previousTokenPattern(count: 3) == [0, 0, 0, 1, 0, 0, 0, 1, 0])
    }

    @Test("the abs measure refuses a detection pattern that looks ahead, and mismatched sizes are refused")
    func refusals() throws {
        var d = HeadDetector.previousTokenPattern(count: 3)
        d[1] = 1
        #expect(throws: LensError.self) {
            try HeadDetector.score(
                pattern: onePerRow(3) { $0 }, detection: d, n: 3, options: HeadDetector.Options(measure: .abs))
        }
        #expect(throws: LensError.self) {
            try HeadDetector.score(pattern: [1], detection: HeadDetector.previousTokenPattern(count: 3), n: 3)
        }
    }

    @Test("copying scores: all-positive eigenvalues give 1, a negated identity −1, a rotation 0")
    func copying() throws {
        let identity = try LinearAlgebra.eigenvalues([2, 0, 0, 3], n: 2)
        #expect(HeadDetector.copyingScore(eigenvalues: identity) == 1)
        #expect(HeadDetector.copyingScore(eigenvalues: try LinearAlgebra.eigenvalues([-1, 0, 0, -1], n: 2)) == -1)
        let rotation = try LinearAlgebra.eigenvalues([0, -1, 1, 0], n: 2)
        #expect(rotation.allSatisfy { abs($0.re) < 1e-12 && abs(abs($0.im) - 1) < 1e-12 })
        #expect(abs(HeadDetector.copyingScore(eigenvalues: rotation)!) < 1e-12)
        // A non-symmetric matrix with known eigenvalues 2 and 5 (upper triangular).
        let tri = try LinearAlgebra.eigenvalues([2, 7, 0, 5], n: 2).map(\.re).sorted()
        #expect(abs(tri[0] - 2) < 1e-12 && abs(tri[1] - 5) < 1e-12)
        #expect(throws: LinearAlgebraError.self) { try LinearAlgebra.eigenvalues([1, 2, 3], n: 2) }
    }

    @Test("encoder statistics: a ±1-frame band, the previous frame, padding and frame-0 sinks")
    func encoderStats() {
        let f = 40, a = 30
        // Each audio frame: 0.25 on i−1, 0.25 on i, 0.25 on i+1, 0.25 on the last padding frame.
        var p = [Float](repeating: 0, count: f * f)
        for i in 0..<f {
            for j in [max(0, i - 1), i, min(f - 1, i + 1)] { p[i * f + j] += 0.25 }
            p[i * f + f - 1] += 0.25
        }
        let s = HeadDetector.encoderStats(pattern: p[...], frames: f, audioFrames: a)
        #expect(abs(s.previousFrame - 0.25) < 1e-6)
        #expect(s.bandWidth == 1)
        // The last audio frame's i+1 is padding too.
        #expect(abs(s.paddingShare - (0.25 * Double(a) + 0.25) / Double(a)) < 1e-6)
        #expect(abs(s.localShare - 0.75) < 1e-6)
        #expect(abs(s.firstFrameShare - 0.75 / Double(a)) < 1e-6)  // frame 0 takes 0.5 of row 0 and 0.25 of row 1
    }

    @Test("a diagonal cross-attention pattern is perfectly monotonic, a reversed one −1, a constant one undefined")
    func monotonicity() {
        let t = 10, f = 30
        func pattern(_ target: (Int) -> Int) -> [Float] {
            var p = [Float](repeating: 0, count: t * f)
            for i in 0..<t { p[i * f + target(i)] = 1 }
            return p
        }
        #expect(
            HeadDetector.monotonicity(pattern: pattern { 2 * $0 }[...], rows: 2..<9, frames: f, audioFrames: 25) == 1)
        let reversed = HeadDetector.monotonicity(
            pattern: pattern { 20 - 2 * $0 }[...], rows: 2..<9, frames: f, audioFrames: 25)
        #expect(abs(reversed! + 1) < 1e-12)
        #expect(
            HeadDetector.monotonicity(pattern: pattern { _ in 4 }[...], rows: 2..<9, frames: f, audioFrames: 25) == nil)
        #expect(HeadDetector.monotonicity(pattern: pattern { $0 }[...], rows: 2..<4, frames: f, audioFrames: 25) == nil)
    }
}

/// What make_head_reference.py computed with PyTorch on openai-whisper.
private struct HeadReference: Decodable {
    var prompt: [Int]
    var random: [[Int]]
    var scores: [String: [[Double]]]
    var jfk_tokens: [Int]
    var jfk_encoder: [String: [[Double]]]
    var jfk_decoder: [String: [[Double]]?]
    var jfk_monotonicity: [[Double?]]
    var jfk_word_timing: [[[[Value]]]]
    enum Value: Decodable {
        case text(String), number(Double)
        init(from decoder: any Decoder) throws {
            let c = try decoder.singleValueContainer()
            if let s = try? c.decode(String.self) { self = .text(s) } else { self = .number(try c.decode(Double.self)) }
        }
        var number: Double { if case .number(let v) = self { return v } else { return .nan } }
    }
    static func load() throws -> HeadReference {
        try JSONDecoder().decode(
            HeadReference.self,
            from: Data(contentsOf: URL(fileURLWithPath: Fixtures.reference + "/tiny.en/heads_jfk.json")))
    }
}

@Suite("Head scores against PyTorch on openai-whisper", .serialized)
struct HeadParityTests {
    /// Largest difference between two layer × head maps (nil entries must agree).
    private func maxDifference(_ a: [[Double?]], _ b: [[Double?]]) -> Double {
        var worst = 0.0
        for (ra, rb) in zip(a, b) {
            for (x, y) in zip(ra, rb) {
                switch (x, y) {
                case (let x?, let y?): worst = max(worst, abs(x - y))
                case (nil, nil): break
                default: return .infinity
                }
            }
        }
        return worst
    }

    @Test("tiny.en on random repeated tokens and the jfk clip: every score agrees with the PyTorch computation")
    func scoresAgree() async throws {
        let reference = try HeadReference.load()
        let loaded = try Fixtures.loaded("tiny.en")
        var scan = HeadScan(loaded: loaded)
        scan.randomSequences = 2
        #expect(scan.randomInputs() == reference.random)
        #expect(loaded.prompt() == reference.prompt)
        let r = try await offCooperativePool {
            var scan = HeadScan(loaded: loaded)
            scan.randomSequences = 2
            return try scan.run(clips: [DatasetItem(id: "jfk", path: Fixtures.clip("jfk"), reference: nil)])
        }
        for name in ["previous_token", "duplicate_token", "induction", "prefix_matching", "copying"] {
            let mine = try #require(r.map(name, .decoderSelf)).values
            let diff = maxDifference(mine, reference.scores[name]!.map { $0.map(Optional.some) })
            #expect(diff < 1e-4, "\(name): differs by \(diff)")
        }
        for (name, values) in reference.jfk_encoder {
            let mine = try #require(r.map(name, .encoderSelf)).values
            let diff = maxDifference(mine, values.map { $0.map(Optional.some) })
            #expect(diff < (name == "band_width" ? 0.5 : 1e-4), "\(name): differs by \(diff)")
        }
        let prevText = try #require(r.map("previous_token_text", .decoderSelf)).values
        let refPrev = try #require(reference.jfk_decoder["previous_token_text"] ?? nil)
        #expect(maxDifference(prevText, refPrev.map { $0.map(Optional.some) }) < 1e-4)
        let mono = try #require(r.map("monotonicity", .cross)).values
        #expect(maxDifference(mono, reference.jfk_monotonicity) < 1e-6)
    }

    @Test("each cross-attention head alone times jfk's words as openai-whisper's find_alignment does with that head")
    func singleHeadTiming() throws {
        let reference = try HeadReference.load()
        let loaded = try Fixtures.loaded("tiny.en")
        let samples = try AudioClip(contentsOf: Fixtures.clip("jfk")).samples
        let greedy = try loaded.run(.samples(samples))
        #expect(greedy.tokens == reference.jfk_tokens)
        let tokens = loaded.prompt() + greedy.tokens + [loaded.tokenizer.eot]
        let d = loaded.model.dims
        let names = (0..<d.n_text_layer).map { AttentionKind.cross.pattern($0) }
        let (_, cache) = try loaded.runWithCache(.samples(samples), names: names, tokens: tokens)
        var boundaries = 0, exact = 0, worst = 0.0
        for l in 0..<d.n_text_layer {
            for h in 0..<d.n_text_head {
                let evidence = try loaded.alignmentEvidence(
                    crossAttention: { try? cache.tensor(names[$0]) }, inputTokens: tokens,
                    promptCount: loaded.prompt().count, samples: samples.count, layer: l, head: h)
                let words = try loaded.timeWords(
                    evidence: [evidence], inputTokens: tokens, promptCount: loaded.prompt().count)
                let expected = reference.jfk_word_timing[l][h]
                #expect(words.count == expected.count)
                for (w, e) in zip(words, expected) {
                    for (mine, theirs) in [(w.start, e[1].number), (w.end, e[2].number)] {
                        boundaries += 1
                        if abs(mine - theirs) < 1e-9 { exact += 1 }
                        worst = max(worst, abs(mine - theirs))
                    }
                }
            }
        }
        #expect(boundaries > 24 * 2 * 10)
        #expect(exact == boundaries, "\(exact) of \(boundaries) boundaries equal; worst \(worst) s")
    }
}

@Suite("Alignment heads discovered, not looked up", .serialized)
struct AlignmentDiscoveryTests {
    /// Precision at k of the heads ranked by their own word timing, over every bundled clip
    /// (computed off the cooperative pool: it takes a minute or two).
    private func precision(_ model: String) async throws -> AlignmentDiscovery {
        try await offCooperativePool {
            let items = Dataset.readable(try Dataset.load(Fixtures.clips).items).readable
            var scan = HeadScan(loaded: try Fixtures.loaded(model))
            scan.randomSequences = 1
            return try scan.run(clips: items).alignment
        }
    }

    @Test("tiny.en: at least 6 of the top 8 are in openai-whisper's list (measured 0.75)")
    func tiny() async throws {
        let a = try await precision("tiny.en")
        #expect(a.k == 8)
        #expect(try #require(a.precisionAtK) >= 0.75, "\(a.ranked.prefix(8).map { "L\($0.layer).H\($0.head)" })")
        // Every listed head ranks in the top half.
        let ranks = a.ranked.enumerated().filter(\.element.known).map(\.offset)
        #expect(ranks.allSatisfy { $0 < 12 }, "\(ranks)")
    }

    @Test("base: at least 5 of the top 8 are in openai-whisper's list (measured 0.62)")
    func base() async throws {
        let a = try await precision("base")
        #expect(a.k == 8)
        #expect(try #require(a.precisionAtK) >= 0.625, "\(a.ranked.prefix(8).map { "L\($0.layer).H\($0.head)" })")
    }
}

@Suite("auscult heads on the command line")
struct HeadsCommandTests {
    @Test("writes results.json and a report that opens in Chromium with every map drawn and no console messages")
    func report() throws {
        let dir = try Fixtures.temporaryDirectory()
        let data = try Fixtures.dataset(["jfk", "ps_cards_003"])
        let r = try AuscultCLI.run(["heads", "--data", data, "--random-sequences", "1", "--out", dir])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("alignment heads discovered") && r.out.contains("precision at 8"), "\(r.out)")
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/results.json")))
                as? [String: Any])
        #expect(json["kind"] as? String == "heads")
        let maps = try #require(json["maps"] as? [[String: Any]])
        #expect(maps.count == 16, "\(maps.map { $0["name"] ?? "?" })")
        let (dom, log) = try Browser.render(dir + "/report.html")
        let rendered = Int(Browser.bodyAttribute(dom, "data-rendered") ?? "") ?? -1
        #expect(rendered >= 16 + 3 * 24, "\(rendered) plots drew")  // the maps, and each head's example pattern
        #expect(Browser.bodyAttribute(dom, "data-errors") == "0")
        #expect(log.split(separator: "\n").filter { $0.contains("CONSOLE") }.isEmpty)
        #expect(dom.contains("Discovered alignment heads"))
    }

    @Test("bad options and custom patterns of the wrong size are refused by name; a right-sized one is scored")
    func options() throws {
        let dir = try Fixtures.temporaryDirectory()
        let data = try Fixtures.dataset(["jfk"])
        let measure = try AuscultCLI.run(["heads", "--data", data, "--measure", "dot", "--out", dir])
        #expect(measure.status != 0 && measure.err.contains("--measure") && measure.err.contains("dot"))
        let tolerance = try AuscultCLI.run(["heads", "--data", data, "--tolerance-ms", "0", "--out", dir])
        #expect(tolerance.status != 0 && tolerance.err.contains("--tolerance-ms"))
        let small = dir + "/small.json"
        try #"{"name": "diag", "text": " hello world", "pattern": [[1]]}"#.write(
            toFile: small, atomically: true, encoding: .utf8)
        let wrong = try AuscultCLI.run(["heads", "--data", data, "--pattern", small, "--out", dir])
        #expect(wrong.status != 0 && wrong.err.contains("--pattern") && wrong.err.contains("×"), "\(wrong.err)")
        // The current-token pattern over the prompt and " hello world": the diagonal.
        let loaded = try Fixtures.loaded("tiny.en")
        let n = loaded.prompt().count + loaded.tokenizer.encode(" hello world").count
        let diagonal = (0..<n).map { i in (0..<n).map { $0 == i ? 1 : 0 } }
        let file = dir + "/diag.json"
        try JSONSerialization.data(withJSONObject: ["name": "diag", "text": " hello world", "pattern": diagonal])
            .write(to: URL(fileURLWithPath: file))
        let ok = try AuscultCLI.run([
            "heads", "--data", data, "--random-sequences", "1", "--pattern", file, "--out", dir + "/custom",
        ])
        #expect(ok.status == 0, "\(ok.err)")
        #expect(ok.out.contains("decoder_self diag:"), "\(ok.out)")
    }
}
