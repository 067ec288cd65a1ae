import AuscultAudio
import AuscultSAE
import AuscultTensor
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

@Suite("Feature index")
struct FeatureIndexTests {
    static let hook = "encoder.blocks.2.mlp.hook_post"
    static let clips = ["jfk", "ps_cards_003"]
    static func items() throws -> [DatasetItem] {
        let all = try Dataset.load(Fixtures.clips).items
        return clips.map { id in all.first { $0.id == id }! }
    }

    @Test("neuron examples, densities and words agree with the activations and word timings computed directly")
    func neuronsAgree() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let path = try Fixtures.temporaryDirectory() + "/n.sqlite"
        var builder = try FeatureIndexBuilder(loaded: loaded, source: .neurons(hook: Self.hook))
        builder.top = 3
        try builder.build(try Self.items(), path: path)
        let index = try FeatureIndex(path: path)
        #expect(index.width == 1536)
        // The same activations, clip by clip, on the frames that hold audio.
        var acts = [String: Tensor](), words = [String: [WordTiming]]()
        for id in Self.clips {
            let samples = try AudioClip(contentsOf: Fixtures.clip(id)).samples
            let frames = LoadedClip.validFrames(samples: samples.count, maxFrames: 1500)
            acts[id] = try loaded.activation(HookName(Self.hook), on: .file(Fixtures.clip(id))).rows(0..<frames)
            let mel = LogMel(nMels: 80).window(samples)
            let audio = try loaded.model.encode(mel.reshaped([1] + mel.shape))
            let tokens = try loaded.decoder.decode(audio: audio)[0].tokens
            words[id] = try loaded.alignWords(audio: audio, textTokens: tokens, samples: samples.count)
        }
        let rows = acts.values.reduce(0) { $0 + $1.shape[0] }
        #expect(index.meta["rows"] == "\(rows)")
        for f in [0, 7, 700, 1535] {
            let r = try #require(try index.feature(f, examples: 3))
            let column = { (id: String) in (0..<acts[id]!.shape[0]).map { acts[id]!.storage[$0 * 1536 + f] } }
            let fired = Self.clips.reduce(0) { $0 + column($1).filter { $0 > 0 }.count }
            #expect(r.fired == fired)
            expectClose(r.density, Double(fired) / Double(rows), tolerance: 1e-12, "density \(f)")
            // The frames where it is largest across the clips, best first, none within 5 frames of a
            // better one of the same clip (earlier clips and frames first among equals).
            func strongest(_ sign: Float) -> [(clip: String, frame: Int)] {
                var all = [(clip: String, frame: Int, value: Float)]()
                for id in Self.clips {
                    let col = column(id)
                    var kept = [Int]()
                    for fr in col.indices.filter({ sign * col[$0] > 0 }).sorted(by: {
                        col[$0] != col[$1] ? sign * col[$0] > sign * col[$1] : $0 < $1
                    }) where !kept.contains(where: { abs($0 - fr) <= 5 }) {
                        kept.append(fr)
                    }
                    all += kept.map { (id, $0, col[$0]) }
                }
                let order = all.indices.sorted {
                    all[$0].value != all[$1].value ? sign * all[$0].value > sign * all[$1].value : $0 < $1
                }
                return order.prefix(3).map { (all[$0].clip, all[$0].frame) }
            }
            let expectedTop = strongest(1), expectedNegative = strongest(-1)
            #expect(
                r.top.map { "\($0.clip)/\($0.frame)" } == expectedTop.map { "\($0.clip)/\($0.frame)" }, "feature \(f)")
            #expect(
                r.negative.map { "\($0.clip)/\($0.frame)" } == expectedNegative.map { "\($0.clip)/\($0.frame)" },
                "feature \(f)")
            for e in r.top {
                #expect(abs(column(e.clip)[e.frame] - e.value) < 1e-4 && e.value > 0)
                let spoken = words[e.clip]!.first { $0.start <= e.time && e.time < $0.end }
                #expect(
                    e.word == spoken?.word.trimmingCharacters(in: .whitespaces), "feature \(f) at \(e.clip) \(e.time) s"
                )
            }
            for e in r.negative { #expect(abs(column(e.clip)[e.frame] - e.value) < 1e-4 && e.value < 0) }
            // The page: a sample of frames where it fires, and the features co-active at its peaks.
            let page = try #require(try index.page(f, examples: 3, groups: 4, perGroup: 2))
            #expect(page.sample.count == min(fired, builder.samples))
            #expect(page.sample == page.sample.sorted() && page.sample.allSatisfy { $0 > 0 })
            let sampled = try index.examples(f, "sample", limit: 1000).map(\.0)
            #expect(Set(sampled.map { "\($0.clip)/\($0.frame)" }).count == sampled.count, "frames sampled once")
            for e in sampled { #expect(abs(column(e.clip)[e.frame] - e.value) < 1e-4 && e.value > 0) }
            #expect(page.quantiles.count == min(4, page.sample.count))
            for (a, b) in zip(page.quantiles, page.quantiles.dropFirst()) { #expect(a.low >= b.high) }
            for (e, co) in try index.examples(f, "top", limit: 3) {
                let row = (0..<1536).map { acts[e.clip]!.storage[e.frame * 1536 + $0] }
                let expected = (0..<1536).filter { $0 != f && row[$0] > 0 }.sorted { row[$0] > row[$1] }.prefix(8)
                #expect(co.map(\.feature) == Array(expected), "co-active features at \(e.clip) frame \(e.frame)")
            }
            let counted = page.coactive.map(\.examples)
            #expect(counted == counted.sorted(by: >) && counted.allSatisfy { $0 >= 1 && $0 <= page.top.count })
        }
    }

    @Test("an interrupted build resumes to the same index as an uninterrupted one; other settings are refused")
    func resumes() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let dir = try Fixtures.temporaryDirectory()
        var builder = try FeatureIndexBuilder(loaded: loaded, source: .neurons(hook: Self.hook))
        builder.top = 2; builder.batchSize = 1
        let items = try Self.items()
        try builder.build(Array(items.prefix(1)), path: dir + "/resumed.sqlite")  // stopped after the first clip
        try builder.build(items, path: dir + "/resumed.sqlite")
        try builder.build(items, path: dir + "/whole.sqlite")
        let a = try FeatureIndex(path: dir + "/resumed.sqlite"), b = try FeatureIndex(path: dir + "/whole.sqlite")
        for sql in [
            "SELECT * FROM features ORDER BY id", "SELECT * FROM examples ORDER BY feature, kind, rank",
            "SELECT name, frames, transcript FROM clips ORDER BY id", "SELECT * FROM words ORDER BY clip, idx",
        ] {
            #expect(try a.db.rows(sql) == b.db.rows(sql), "\(sql)")
        }
        #expect(try a.db.rows("SELECT COUNT(*) FROM clips")[0][0] == .int(2))
        builder.top = 5
        #expect(throws: StoreError.self) { try builder.build(items, path: dir + "/whole.sqlite") }
        // Transcripts decoded after a prefix label another index; resuming across is refused by name.
        builder.top = 2
        builder.decoding.prefix = loaded.promptTokens("And so my")
        #expect { try builder.build(items, path: dir + "/whole.sqlite") } throws: {
            ($0 as? StoreError)?.code == .occupied && "\($0)".contains("prefix")
        }
        try builder.build(Array(items.prefix(1)), path: dir + "/prefixed.sqlite")
        let prefixed = try FeatureIndex(path: dir + "/prefixed.sqlite")
        let text = try prefixed.db.rows("SELECT transcript FROM clips ORDER BY id")[0][0].text ?? ""
        let expected = try loaded.run(.file(items[0].path), options: builder.decoding).text
        #expect(text == expected, "\(text) vs \(expected)")
        // An SAE retrained in place (same path, other weights) makes another index: refused by name.
        var sae = SparseAutoencoder(config: SAEConfig(architecture: .topk, dIn: 1536, dSAE: 32, k: 4), seed: 1)
        var saeBuilder = try FeatureIndexBuilder(loaded: loaded, source: .sae(sae, hook: Self.hook, path: "sae/"))
        saeBuilder.top = 2
        try saeBuilder.build(Array(items.prefix(1)), path: dir + "/sae.sqlite")
        sae.bEnc = Tensor(zeros: [32], value: 0.5)
        saeBuilder = try FeatureIndexBuilder(loaded: loaded, source: .sae(sae, hook: Self.hook, path: "sae/"))
        saeBuilder.top = 2
        #expect { try saeBuilder.build(items, path: dir + "/sae.sqlite") } throws: {
            ($0 as? StoreError)?.code == .occupied && "\($0)".contains("sae_sha256")
        }
    }

    @Test("auscult index and features: a latent's examples as text and JSON, clear errors for bad queries")
    func commandLine() throws {
        let dir = try Fixtures.temporaryDirectory()
        try SAECheckpoint.save(
            identitySAE(384), to: dir + "/sae", hook: "encoder.blocks.2.hook_resid_post", model: "tiny.en")
        let data = try Fixtures.dataset(["jfk"])
        let built = try AuscultCLI.run([
            "index", "--sae", dir + "/sae", "--data", data, "--out", dir + "/f.sqlite", "--top", "3",
        ])
        #expect(built.status == 0, "\(built.err)")
        #expect(built.out.contains("768 features"))
        let text = try AuscultCLI.run(["features", "--index", dir + "/f.sqlite", "--feature", "5"])
        #expect(text.status == 0 && text.out.contains("feature 5:") && text.out.contains("jfk"))
        let json = try AuscultCLI.run(["features", "--index", dir + "/f.sqlite", "--feature", "5", "--format", "json"])
        let records = try JSONSerialization.jsonObject(with: Data(json.out.utf8)) as? [[String: Any]]
        // Top frames across the data: here three of the one clip, more than 100 ms apart.
        let top = (records?.first?["top"] as? [[String: Any]]) ?? []
        let frames = top.compactMap { $0["frame"] as? Int }
        #expect(frames.count == 3, "\(top)")
        for (i, a) in frames.enumerated() { for b in frames[(i + 1)...] { #expect(abs(a - b) > 5) } }
        let ranked = try AuscultCLI.run(["features", "--index", dir + "/f.sqlite", "--sort", "density", "--limit", "3"])
        #expect(ranked.out.split(separator: "\n").count == 4)
        let bad = try AuscultCLI.run(["features", "--index", dir + "/f.sqlite", "--feature", "9999"])
        #expect(bad.status != 0 && bad.err.contains("0…767"))
        let missing = try AuscultCLI.run(["features", "--index", dir + "/none.sqlite"])
        #expect(missing.status != 0 && missing.err.contains("auscult index"))
        let both = try AuscultCLI.run([
            "index", "--sae", dir + "/sae", "--neurons", Self.hook, "--data", data, "--out", dir + "/g.sqlite",
        ])
        #expect(both.status != 0 && both.err.contains("either --sae"))
    }
}
