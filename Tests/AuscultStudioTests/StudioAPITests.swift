import AuscultAudio
import AuscultSAE
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

@testable import AuscultStudio

@Suite("Studio API")
struct StudioAPITests {
    @Test("the indexes are listed, and a feature page is the same data the index and auscult features give")
    func featurePages() async throws {
        let base = try await StudioFixture.shared.server()
        let built = try await StudioFixture.shared.indexes()
        let list = try await http(base + "api/indexes")
        #expect(list.status == 200 && list.type.hasPrefix("application/json"))
        let indexes = try #require(try list.json() as? [[String: Any]])
        #expect(indexes.map { $0["id"] as? String } == ["neurons", "latents"])
        #expect(indexes.map { $0["width"] as? Int } == [1536, 768])
        #expect(indexes.map { $0["clips"] as? Int } == [3, 3])
        // The highest-ranked neuron's page equals the library's and the CLI's.
        let ranked = try #require(
            try await http(base + "api/indexes/neurons/features?limit=3").json() as? [[String: Any]])
        let feature = try #require(ranked.first?["feature"] as? Int)
        let index = try FeatureIndex(path: built.neurons)
        #expect(
            ranked.compactMap { $0["feature"] as? Int } == (try index.ranked(by: "max_value", limit: 3).map(\.feature)))
        let served = try JSONDecoder().decode(
            FeaturePage.self, from: try await http(base + "api/indexes/neurons/features/\(feature)?examples=4").body)
        #expect(served == (try index.page(feature, examples: 4)))
        #expect(served.top.count >= 1 && served.top.count <= 4 && !served.sample.isEmpty)
        let cli = try AuscultCLI.run([
            "features", "--index", built.neurons, "--feature", "\(feature)", "--limit", "4", "--format", "json",
        ])
        #expect(cli.status == 0, "\(cli.err)")
        #expect(try JSONDecoder().decode([FeaturePage].self, from: Data(cli.out.utf8)) == [served])
        // Word search finds features whose top examples fall on words containing the text.
        let word = try #require(served.top.compactMap(\.word).first { $0.count >= 2 })
        let fragment = String(word.lowercased().prefix(2))
        let hits = try #require(
            try await http(base + "api/indexes/neurons/features?word=\(fragment)&limit=2000").json() as? [[String: Any]]
        )
        #expect(hits.contains { $0["feature"] as? Int == feature }, "feature \(feature) fires on “\(word)”")
    }

    @Test("a feature's labels are those auscult features --label gives; an unknown feature is a 404")
    func labels() async throws {
        let base = try await StudioFixture.shared.server()
        let built = try await StudioFixture.shared.indexes()
        let served = try await http(base + "api/indexes/neurons/features/25/labels")
        #expect(served.status == 200, "\(served.text)")
        let mine = try JSONDecoder().decode(FeatureLabels.self, from: served.body)
        let cli = try AuscultCLI.run([
            "features", "--index", built.neurons, "--feature", "25", "--label", "--format", "json",
        ])
        #expect(cli.status == 0, "\(cli.err)")
        #expect(try JSONDecoder().decode([FeatureLabels].self, from: Data(cli.out.utf8)) == [mine])
        #expect(mine.feature == 25 && (mine.topWord?.examples ?? 0) >= 2, "\(mine)")
        let missing = try await http(base + "api/indexes/neurons/features/99999/labels")
        #expect(missing.status == 404 && missing.text.contains("99999"))
    }

    @Test("a trace is the feature's activation over the window, with the clip's spectrogram and words")
    func traces() async throws {
        let base = try await StudioFixture.shared.server()
        let loaded = try Fixtures.loaded("tiny.en")
        let acts = try loaded.activation(HookName(StudioFixture.neuronHook), on: .file(Fixtures.clip("jfk")))
        let answer = try await http(base + "api/indexes/neurons/clips/jfk/trace?feature=25&start=1&end=3")
        #expect(answer.status == 200, "\(answer.text)")
        let trace = try #require(try answer.json() as? [String: Any])
        let values = try #require(trace["activation"] as? [Double])
        #expect(trace["first_frame"] as? Int == 50 && values.count == 100)
        for (i, v) in values.enumerated() {
            #expect(abs(v - Double(acts.storage[(50 + i) * 1536 + 25])) < 1e-5)
        }
        let mel = try #require(trace["mel"] as? [String: Any])
        #expect(mel["bins"] as? Int == 80 && mel["frames"] as? Int == 200)
        #expect(Data(base64Encoded: mel["data"] as? String ?? "")?.count == 80 * 200)
        let words = try #require(trace["words"] as? [[String: Any]])
        #expect(!words.isEmpty && words.allSatisfy { ($0["end"] as! Double) > 1 && ($0["start"] as! Double) < 3 })
        // A window shorter than a frame is empty, its spectrogram's scale still numbers (schemathesis found "inf").
        let empty = try #require(
            try await http(base + "api/indexes/neurons/clips/jfk/trace?feature=0&start=0&end=4.5e-236").json()
                as? [String: Any])
        let emptyMel = try #require(empty["mel"] as? [String: Any])
        #expect((empty["activation"] as? [Double])?.isEmpty == true && emptyMel["frames"] as? Int == 0)
        #expect(emptyMel["min"] as? Double == 0 && emptyMel["max"] as? Double == 1)
        // The audio of the same window: 2 s of 16 kHz 16-bit mono after a 44-byte header.
        let audio = try await http(base + "api/indexes/neurons/clips/jfk/audio?start=1&end=3")
        #expect(audio.status == 200 && audio.type == "audio/wav" && audio.body.count == 44 + 2 * 32_000)
    }

    @Test("no request path reaches the file system: traversal in every form is refused")
    func traversal() async throws {
        let base = try await StudioFixture.shared.server()
        let root = String(base.dropLast())
        for path in [
            "/../../../../etc/passwd", "/%2e%2e/%2e%2e/etc/passwd", "/studio.js/../../../etc/passwd",
            "/api/indexes/neurons/clips/..%2F..%2F..%2Fetc%2Fpasswd/audio",
            "/api/indexes/neurons/clips/%2Fetc%2Fpasswd/audio", "/api/indexes/..%2F..%2Fetc/features",
            "/api/indexes/neurons/clips/../../../etc/passwd", "//etc/passwd", "/api/uploads/..%2Fneurons.sqlite/audio",
            "/Web/index.html", "/openapi.json/..", "/api/indexes/neurons/clips/jfk.wav/audio",
        ] {
            let r = try await http(root + path)
            #expect([400, 404].contains(r.status), "\(path) → \(r.status)")
            #expect(r.error != nil, "\(path): \(r.text.prefix(200))")
            #expect(!r.text.contains("root:") && !r.text.contains("SQLite format"), "\(path)")
        }
    }

    @Test("uploads: audio is inspected; oversized, overlong, empty and non-audio bodies get a 4xx with a message")
    func uploads() async throws {
        let base = try await StudioFixture.shared.server()
        let loaded = try Fixtures.loaded("tiny.en")
        let ok = try await http(
            base + "api/indexes/latents/inspect?name=jfk.wav", method: "POST", bodyFile: Fixtures.clip("jfk"),
            headers: ["Content-Type: application/octet-stream"])
        #expect(ok.status == 200, "\(ok.text)")
        let inspection = try #require(try ok.json() as? [String: Any])
        #expect(inspection["transcript"] as? String == (try loaded.run(.file(Fixtures.clip("jfk"))).text))
        #expect((inspection["features"] as? [Any])?.count == 12 && inspection["upload"] as? Bool == true)
        let id = try #require(inspection["clip"] as? String)
        let audio = try await http(base + "api/uploads/\(id)/audio")
        let samples = try AudioClip(contentsOf: Fixtures.clip("jfk")).samples.count
        #expect(audio.status == 200 && audio.body.count == 44 + 2 * samples)
        let dir = try Fixtures.temporaryDirectory()
        // Over the 2 MB this server takes.
        try Data(repeating: 7, count: 3 << 20).write(to: URL(fileURLWithPath: dir + "/big.bin"))
        // A valid WAV of 40 s (1.28 MB, under the byte limit, over the 30 s one).
        try writeWAV(dir + "/long.wav", samples: [Float](repeating: 0.01, count: 16_000 * 40), rate: 16_000)
        try Data("this is not audio".utf8).write(to: URL(fileURLWithPath: dir + "/text.wav"))
        try Data().write(to: URL(fileURLWithPath: dir + "/empty.wav"))
        for (file, status, says) in [
            ("big.bin", 413, "bytes"), ("long.wav", 413, "40.0 s"), ("text.wav", 415, "not audio"),
            ("empty.wav", 415, "not audio"),
        ] {
            let r = try await http(
                base + "api/indexes/latents/inspect", method: "POST", bodyFile: dir + "/" + file,
                headers: ["Content-Type: application/octet-stream"])
            #expect(r.status == status, "\(file): \(r.status) \(r.text)")
            #expect(r.error?.message.contains(says) == true, "\(file): \(r.text)")
        }
    }

    @Test("unknown indexes, features, clips and uploads are 404; bad parameters are 400, each with a message")
    func unknownsAndBadParameters() async throws {
        let base = try await StudioFixture.shared.server()
        for (path, status) in [
            ("api/indexes/nope/features", 404), ("api/indexes/neurons/features/1536", 404),
            ("api/indexes/neurons/features/-1", 404), ("api/indexes/neurons/clips/nope", 404),
            ("api/indexes/neurons/clips/nope/trace?feature=1&start=0&end=1", 404),
            ("api/uploads/00000000-0000-0000-0000-000000000000/audio", 404), ("api/nothing", 404),
            ("api/indexes/neurons/features/abc", 400), ("api/indexes/neurons/features?limit=0", 400),
            ("api/indexes/neurons/features?sort=name", 400),
            ("api/indexes/neurons/clips/jfk/trace?feature=1&start=nan&end=1", 400),
            ("api/indexes/neurons/clips/jfk/trace?feature=1&start=2&end=1", 400),
            ("api/indexes/neurons/clips/jfk/trace?feature=1&start=0&end=11", 400),
            ("api/indexes/neurons/clips/jfk/trace?feature=9999&start=0&end=1", 400),
            ("api/indexes/neurons/clips/jfk/trace?start=0&end=1", 400),
            ("api/indexes/neurons/clips/jfk/audio?start=-1", 400),
        ] {
            let r = try await http(base + path)
            #expect(r.status == status, "\(path): \(r.status) \(r.text)")
            #expect(r.error.map { !$0.message.isEmpty } == true, "\(path): \(r.text)")
        }
        let badSteer = try await http(
            base + "api/steer", method: "POST",
            body: #"{"index":"latents","clip":"jfk","feature":3,"mode":"twist","value":1}"#)
        #expect(badSteer.status == 400 && badSteer.error?.message.contains("scale or clamp") == true)
        let notJSON = try await http(
            base + "api/steer", method: "POST", body: "index=latents")
        #expect(notJSON.status == 400 && notJSON.error?.message.contains("JSON") == true)
    }

    @Test("with a token every request needs it (401 without or with a wrong one); a public host needs a token")
    func token() async throws {
        let token = "studio-test-token-1234"
        let base = try await StudioFixture.shared.server(token: token)
        #expect(try await http(base + "api/indexes").status == 401)
        #expect(try await http(base).status == 401)
        #expect(try await http(base + "api/indexes", headers: ["Authorization: Bearer wrong-token-0000"]).status == 401)
        #expect(try await http(base + "api/indexes?token=wrong").status == 401)
        #expect(try await http(base + "api/indexes", headers: ["Authorization: Bearer \(token)"]).status == 200)
        #expect(try await http(base + "api/indexes/neurons/features?limit=2&token=\(token)").status == 200)
        var open = StudioConfiguration(indexes: ["x.sqlite"])
        open.host = "0.0.0.0"
        #expect(throws: StudioError.self) { try open.validate() }
        open.token = token
        #expect(throws: Never.self) { try open.validate() }
    }

    @Test("steering: clamping a latent changes the transcript with a word-level diff; scaling by 1 changes nothing")
    func steering() async throws {
        let base = try await StudioFixture.shared.server()
        let loaded = try Fixtures.loaded("tiny.en")
        let clean = try loaded.run(.file(Fixtures.clip("jfk"))).text
        let strong = try await http(
            base + "api/steer", method: "POST",
            body: #"{"index":"latents","clip":"jfk","feature":5,"mode":"clamp","value":400,"keep_error":true}"#)
        #expect(strong.status == 200, "\(strong.text)")
        let s = try #require(try strong.json() as? [String: Any])
        #expect(((s["clean"] as? [String: Any])?["text"] as? String) == clean)
        #expect(s["changed"] as? Bool == true)
        let diff = try #require(s["diff"] as? [[String: Any]])
        #expect(diff.contains { $0["op"] as? String != "same" })
        let steeredText = (s["steered"] as? [String: Any])?["text"] as? String
        #expect(steeredText != clean)
        let identity = try await http(
            base + "api/steer", method: "POST",
            body: #"{"index":"neurons","clip":"jfk","feature":25,"mode":"scale","value":1}"#)
        let i = try #require(try identity.json() as? [String: Any])
        #expect(i["changed"] as? Bool == false)
        #expect((i["diff"] as? [[String: Any]])?.allSatisfy { $0["op"] as? String == "same" } == true)
    }

    @Test("an attention view is the head's pattern over the frames holding audio, for indexed clips and uploads")
    func attention() async throws {
        let base = try await StudioFixture.shared.server()
        let loaded = try Fixtures.loaded("tiny.en")
        let hook = "decoder.blocks.3.cross_attn.hook_pattern"
        let (run, cache) = try loaded.runWithCache(.file(Fixtures.clip("jfk")), names: [HookName(hook)])
        let pattern = try cache.tensor(HookName(hook))  // [heads, T, 1500]
        let answer = try await http(base + "api/indexes/neurons/clips/jfk/attention?kind=cross&layer=3&head=2")
        #expect(answer.status == 200, "\(answer.text)")
        let view = try #require(try answer.json() as? [String: Any])
        let rows = try #require(view["rows"] as? Int), cols = try #require(view["cols"] as? Int)
        #expect(rows == run.inputTokens.count && cols == 550)
        #expect((view["tokens"] as? [String])?.count == rows)
        let levels = try #require(Data(base64Encoded: view["data"] as? String ?? ""))
        #expect(levels.count == rows * cols)
        var worst: Float = 0
        for i in 0..<rows {
            for j in 0..<cols {
                let expected = pattern.storage[(2 * pattern.shape[1] + i) * 1500 + j]
                worst = max(worst, abs(Float(levels[i * cols + j]) / 255 - expected))
            }
        }
        #expect(worst <= 0.5 / 255 + 1e-6, "largest difference \(worst)")
        let encoder = try await http(base + "api/indexes/neurons/clips/jfk/attention?kind=encoder&layer=0&head=5")
        let e = try #require(try encoder.json() as? [String: Any])
        #expect(e["rows"] as? Int == 550 && e["cols"] as? Int == 550 && (e["tokens"] as? [String])?.isEmpty == true)
        for bad in ["kind=decoder", "layer=4", "head=6", "layer=-1"] {
            let r = try await http(base + "api/indexes/neurons/clips/jfk/attention?\(bad)")
            #expect(r.status == 400 && r.error != nil, "\(bad): \(r.text)")
        }
    }

    @Test("concurrent feature-page requests are all answered")
    func concurrentPages() async throws {
        let base = try await StudioFixture.shared.server()
        let statuses = try await withThrowingTaskGroup(of: Int.self) { group in
            for f in 0..<16 { group.addTask { try await http(base + "api/indexes/latents/features/\(f * 40)").status } }
            return try await group.reduce(into: [Int]()) { $0.append($1) }
        }
        #expect(statuses.count == 16 && statuses.allSatisfy { $0 == 200 })
    }

    @Test("word diffs line up words compared without case or punctuation")
    func wordDiff() {
        func w(_ s: String) -> [WordSpan] {
            s.split(separator: " ").enumerated().map {
                WordSpan(word: String($1), start: Double($0), end: Double($0) + 1)
            }
        }
        let d = Studio.wordDiff(w("ask not what your country"), w("Ask what my country,"))
        #expect(d.map(\.op) == ["same", "removed", "same", "removed", "added", "same"])
        #expect(d.map(\.word) == ["Ask", "not", "what", "your", "my", "country,"])
    }
}
