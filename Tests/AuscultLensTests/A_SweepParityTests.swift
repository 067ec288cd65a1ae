import AuscultLens
import AuscultTensor
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

/// One line of `reference/sweep.jsonl` (openai-whisper with PyTorch forward hooks, the plain way).
struct ReferenceSweepEntry: Decodable {
    var clip: String
    var condition: String
    var donor: String?
    var tokens: [Int]
    var ce: Double
}

/// The ablation sweep against the same interventions done in PyTorch, one run per clip and condition.
@Suite("Ablation sweep parity with PyTorch")
struct SweepParityTests {
    static let clips = ["jfk", "ls_1089-134686-0001", "ls_1089-134691-0000", "ps_cards_003"]

    static func items() -> [DatasetItem] { clips.map { DatasetItem(id: $0, path: Fixtures.clip($0), reference: nil) } }

    static func fullSweep(_ loaded: LoadedModel) throws -> SweepOptions {
        let comps = try Component.parse(["encoder", "decoder"], registry: HookRegistry(dims: loaded.model.dims))
        return SweepOptions(conditions: comps.flatMap { [Condition($0, .zero), Condition($0, .resample)] })
    }

    static func reference() throws -> [ReferenceSweepEntry] {
        let text = try String(contentsOfFile: "\(Fixtures.reference)/sweep.jsonl", encoding: .utf8)
        return try text.split(separator: "\n").map {
            try JSONDecoder().decode(ReferenceSweepEntry.self, from: Data($0.utf8))
        }
    }

    @Test("every block skipped and swapped: tokens identical to PyTorch, cross-entropy within 2e-3 nats")
    func parity() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let sweep = try Sweep(
            loaded: loaded, items: Self.items(), options: try Self.fullSweep(loaded),
            normalizer: EnglishTextNormalizer(spelling: [:]))
        var entries = [SweepEntry]()
        try sweep.run { entries += $0 }
        let reference = try Self.reference()
        #expect(entries.count == reference.count)
        #expect(reference.count == 4 * (1 + 16))
        let byKey = Dictionary(uniqueKeysWithValues: entries.map { ($0.clip + "|" + $0.condition, $0) })
        for r in reference {
            guard let e = byKey[r.clip + "|" + r.condition] else {
                Issue.record("no result for \(r.clip) / \(r.condition)")
                continue
            }
            #expect(e.tokens == r.tokens, "\(r.clip) / \(r.condition)")
            #expect(e.donor == r.donor, "\(r.clip) / \(r.condition) donor")
            #expect(abs(e.ce - r.ce) < 2e-3, "\(r.clip) / \(r.condition): ce \(e.ce) vs \(r.ce)")
        }
        // The sweep is not vacuous: ablations change transcripts.
        let changed = entries.filter { e in e.condition != "clean" && e.tokens != byKey[e.clip + "|clean"]!.tokens }
        #expect(changed.count > 20)
    }

    @Test("a block skipped in a sweep transcribes as --skip does through the plain intervention path")
    func skipMatchesInterventions() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let comps = try Component.parse(
            ["encoder.blocks.1", "decoder.blocks.2"], registry: HookRegistry(dims: loaded.model.dims))
        let sweep = try Sweep(
            loaded: loaded, items: Self.items(), options: SweepOptions(conditions: comps.map { Condition($0, .zero) }),
            normalizer: EnglishTextNormalizer(spelling: [:]))
        var entries = [SweepEntry]()
        try sweep.run { entries += $0 }
        for block in ["encoder.blocks.1", "decoder.blocks.2"] {
            let handler = try Interventions([Intervention(hook: block, kind: .skip)], model: loaded.model)
            var plain = [[Int]]()
            try BatchTranscriber(loaded: loaded, options: DecodingOptions(), batchSize: 4, hooks: { _ in handler })
                .run(Self.items()) { _, r in plain.append(try r.get().tokens) }
            let swept = Self.clips.map { c in entries.first { $0.clip == c && $0.condition == "skip \(block)" }!.tokens
            }
            #expect(swept == plain, "\(block)")
        }
    }
}

@Suite("Several hook points ablated at once in a sweep")
struct TogetherSweepTests {
    @Test("every cross-attention zeroed together transcribes as the front door does, and scores as paths does")
    func crossAttentionTogether() async throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let registry = HookRegistry(dims: loaded.model.dims)
        let items = ["jfk", "ps_cards_003"].map { DatasetItem(id: $0, path: Fixtures.clip($0), reference: nil) }
        let conditions =
            try Condition.from(
                ConditionSpec(parsing: "zero decoder.blocks.*.hook_cross_attn_out together"), registry: registry)
            + Condition.from(ConditionSpec(parsing: "mean encoder.blocks.*.hook_mlp_out together"), registry: registry)
        #expect(conditions.count == 2)
        let (entries, paths) = try await offCooperativePool {
            let sweep = try Sweep(
                loaded: loaded, items: items, options: SweepOptions(conditions: conditions),
                normalizer: EnglishTextNormalizer(spelling: [:]))
            var entries = [SweepEntry]()
            try sweep.run { entries += $0 }
            return (entries, try PathAnalysis(loaded: loaded).run(clips: items))
        }
        let clips = items.map { AudioInput.file($0.path) }
        for (k, item) in items.enumerated() {
            let crossOff = try #require(
                entries.first { $0.clip == item.id && $0.condition == conditions[0].description })
            let plain = try loaded.run(clips[k], interventions: [.zero("decoder.blocks.*.hook_cross_attn_out")])
            // Sweep entries keep special tokens the model sampled; a run's tokens are text only.
            let eot = loaded.tokenizer.eot
            #expect(crossOff.tokens.filter { $0 < eot } == plain.tokens, "\(item.id)")
            // The sweep's cross-entropy of the clean transcript is paths' "no cross-attention" loss.
            let noCross = paths.clips[k].losses[2]
            let mean = noCross.reduce(0, +) / Double(noCross.count)
            #expect(abs(crossOff.ce - mean) < 1e-3, "\(item.id): \(crossOff.ce) vs \(mean)")
            // Every encoder MLP replaced by its mean over the two clips at once.
            let means = try (0..<4).map { l in
                try Intervention.mean(.encoder(l).mlpOut, over: clips, model: loaded)
            }
            let meaned = try #require(entries.first { $0.clip == item.id && $0.condition == conditions[1].description })
            let meanRun = try loaded.run(clips[k], interventions: means)
            #expect(meaned.tokens.filter { $0 < eot } == meanRun.tokens && !meanRun.tokens.isEmpty, "\(item.id)")
        }
    }
}

@Suite("Sweep results on disk")
struct SweepStoreTests {
    @Test("an entry with a NaN cross-entropy is appended and read back, not lost with its batch")
    func nonFiniteEntries() throws {
        let dir = try Fixtures.temporaryDirectory()
        let store = try SweepStore(directory: dir, settings: ["command": "test"], fresh: false)
        let line =
            #"{"clip":"jfk","condition":"skip decoder.blocks.2","draw":0,"tokens":[1],"text":"x","wer":1,"#
            + #""wer_vs_clean":1,"word_errors":1,"reference_words":1,"ce":"NaN","ce_delta":"Infinity","#
            + #""max_repeat":1,"hit_limit":false}"#
        let entry = try JSONDecoder.results().decode(SweepEntry.self, from: Data(line.utf8))
        try store.append([entry, entry])
        let back = store.load()
        #expect(back.count == 2 && back[0].ce.isNaN && back[1].ceDelta == .infinity)
        try store.finish(back)
        let results = try String(contentsOfFile: store.resultsPath, encoding: .utf8)
        #expect(results.contains(#""ce" : "NaN""#), "\(results.prefix(300))")
    }

    @Test("an interrupted sweep resumes without losing or duplicating results")
    func resume() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let items = SweepParityTests.items()
        let comps = try Component.parse(
            ["encoder.blocks.3", "decoder.blocks.3"], registry: HookRegistry(dims: loaded.model.dims))
        var options = SweepOptions(conditions: comps.flatMap { [Condition($0, .zero), Condition($0, .resample)] })
        options.decodeRows = 4
        options.decoderClips = 2
        let dir = try Fixtures.temporaryDirectory()
        let settings = ["model": "tiny.en", "test": "resume"]
        struct Interrupted: Error {}
        // First run: stops (as a kill would) after two batches were written.
        let store = try SweepStore(directory: dir, settings: settings, fresh: false)
        var batches = 0
        let sweep = try Sweep(
            loaded: loaded, items: items, options: options, normalizer: EnglishTextNormalizer(spelling: [:]))
        #expect(throws: Interrupted.self) {
            try sweep.run { batch in
                if batches == 2 { throw Interrupted() }
                try store.append(batch)
                batches += 1
            }
        }
        // A torn line, as a kill in the middle of a write leaves it.
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/results.jsonl"))
        try h.seekToEnd(); try h.write(contentsOf: Data("{\"clip\":\"jf".utf8)); try h.close()
        let first = store.load()
        #expect(!first.isEmpty && first.count < sweep.totalEntries)
        // Second run: skips what is on disk.
        let again = try SweepStore(directory: dir, settings: settings, fresh: false)
        var added = [SweepEntry]()
        try sweep.run(skipping: Set(again.load().map(\.key))) { batch in
            try again.append(batch); added += batch
        }
        let all = again.load()
        #expect(all.count == sweep.totalEntries)
        #expect(Set(all.map(\.key)).count == all.count)
        #expect(added.count == sweep.totalEntries - first.count)
        // Same results as an uninterrupted run.
        var full = [SweepEntry]()
        try sweep.run { full += $0 }
        let byKey = Dictionary(uniqueKeysWithValues: all.map { ($0.key, $0.tokens) })
        for e in full { #expect(byKey[e.key] == e.tokens, "\(e.clip) / \(e.condition)") }
        // A directory holding another run's results is refused, naming what differs.
        // The library names no command-line flag; the CLI adds "--fresh" (E_CLIContractTests).
        #expect {
            try SweepStore(directory: dir, settings: ["model": "base", "test": "resume"], fresh: false)
        } throws: {
            ($0 as? LensError)?.code == .conflictingRun && "\($0)".contains("model") && !"\($0)".contains("--")
        }
    }
}
