// `auscult index` builds a feature index (SQLite); `auscult features` queries it.
import ArgumentParser
import AuscultAudio
import AuscultReport
import AuscultSAE
import AuscultWhisper
import Foundation

struct Index: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Index SAE latents or raw neurons: top and most negative clips per feature, densities, words (SQLite).",
        discussion: """
            For every feature (an SAE's latents with --sae, or each value of an encoder
            hook point with --neurons) the index keeps the frames where it is largest
            across the dataset (several per clip, at least 100 ms apart), with the time,
            value and the word spoken there (word timing from the alignment heads'
            cross-attention, as openai-whisper's word timestamps), the most negative
            frames (SAE: by pre-activation), and how often it fires. Each
            batch of clips is committed; running the command again resumes. Tables: meta,
            clips, words, features, examples (see the README).

            Examples:
              auscult index --sae sae/ --data data/clips --out features.sqlite
              auscult index --neurons encoder.blocks.2.mlp.hook_post --data data/clips \\
                  --out neurons.sqlite
            """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup(title: "Prompt and prefix (the transcripts that label examples)") var promptOptions: PromptOptions
    @Option(help: ArgumentHelp("SAE checkpoint directory: index its latents.", valueName: "dir")) var sae: String?
    @Option(help: ArgumentHelp("Hook point (default: the SAE's hook_name).", valueName: "name")) var saeHook: String?
    @Option(help: ArgumentHelp("Encoder hook point whose raw values (neurons) to index.", valueName: "hook"))
    var neurons: String?
    @Option(help: "Dataset folder.") var data: String
    @Option(help: "Use only the first N clips.") var limit: Int?
    @Option(help: "Index file (SQLite).") var out: String
    @Option(help: "Examples kept per feature and direction.") var top: Int = 20
    @Option(help: "Clips per batch.") var batchSize: Int = 8
    @Flag(help: "Rebuild instead of resuming.") var fresh = false

    func run() throws {
        guard (sae == nil) != (neurons == nil) else { throw ValidationError("give either --sae DIR or --neurons HOOK") }
        guard top >= 1 else { throw ValidationError("--top must be at least 1") }
        let loaded = try LoadedModel(modelOptions.model)
        let source: FeatureSource
        if let sae {
            guard let hook = saeHook ?? SAECheckpoint.origin(sae).hook else {
                throw ValidationError("\(sae)/cfg.json names no hook_name; give --sae-hook")
            }
            source = .sae(try SAECheckpoint.load(sae), hook: hook, path: (sae as NSString).standardizingPath)
        } else {
            source = .neurons(hook: neurons!)
        }
        var builder = try FeatureIndexBuilder(loaded: loaded, source: source)
        builder.top = top; builder.batchSize = max(1, batchSize)
        try promptOptions.apply(to: &builder.decoding, loaded)
        var items = try Dataset.load(data).items
        if let limit { items = Array(items.prefix(max(1, limit))) }
        let started = Date()
        try builder.build(
            items, path: out, fresh: fresh, progress: ProgressReporter(total: items.count, label: "clips")
        ) { item, error in
            FileHandle.standardError.write("skipping \(item.path): \(error)\n".data(using: .utf8)!)
        }
        let index = try FeatureIndex(path: out)
        let dead = try index.db.rows("SELECT COUNT(*) FROM features WHERE fired = 0")[0][0].int ?? 0
        print(
            String(
                format: "%d features of %@ over %@ frames (%d never fired) → %@ in %.1f s", builder.width, builder.hook,
                index.meta["rows"] ?? "?", dead, out, Date().timeIntervalSince(started)))
    }
}

struct Features: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Query a feature index: one feature's top and negative examples, or features ranked or by word.",
        discussion: """
            Examples:
              auscult features --index features.sqlite --feature 17
              auscult features --index features.sqlite --sort density --limit 20
              auscult features --index features.sqlite --word country
              auscult features --index features.sqlite --feature 17 --format json
              auscult features --index features.sqlite --sort max_value --limit 20 \\
                  --html features.html
              # the phonemes and words the first 60 neurons fire on, against a null
              auscult features --index out/neurons.sqlite --label --sort id --limit 60

            --label scores, for the top and the most negative examples separately, the
            word and the phoneme each example falls on (CMUdict pronunciations spread
            evenly over the word's time span from the index's word timing: approximate)
            and the share of the most common one, against a null of random frames of the
            same clips (p from 1000 draws).
            """)

    @Option(help: "Index file (from auscult index).") var index: String
    @Option(help: "Show these features' examples.") var feature: [Int] = []
    @Option(help: "List features whose top examples fall on this word.") var word: String?
    @Option(help: "Rank features by density, max_value, mean_active, fired, or id (the first ones).")
    var sort: String = "max_value"
    @Option(help: "Features to list, or examples to show per feature.") var limit: Int = 10
    @Option(help: "text or json.") var format: String = "text"
    @Option(
        help: ArgumentHelp(
            "Also write an HTML page of the features shown (or the --limit highest ranked): density histogram, "
                + "examples with words and audio snippets to listen to.",
            valueName: "file"))
    var html: String?
    @Flag(help: "Label the features shown (or the --limit ranked): the phoneme and word their examples fall on.")
    var label = false
    @Option(help: ArgumentHelp("Pronouncing dictionary for --label (default: models/cmudict.dict).", valueName: "file"))
    var dictionary: String?

    func run() throws {
        guard format == "text" || format == "json" else { throw ValidationError("--format is text or json") }
        let idx = try FeatureIndex(path: index)
        if let html { try writePage(idx, to: html) }
        if label { return try printLabels(idx) }
        let header =
            "\(idx.meta["kind"] ?? "?") features of \(idx.meta["hook"] ?? "?") (\(idx.meta["source"] ?? "?")), "
            + "\(idx.width) features, \(idx.meta["rows"] ?? "?") frames"
        if !feature.isEmpty {
            var records = [FeaturePage]()
            for f in feature {
                guard let r = try idx.page(f, examples: limit) else {
                    throw ValidationError("feature \(f) is not in the index (it has 0…\(idx.width - 1))")
                }
                records.append(r)
            }
            // The same pages the Studio's GET /api/indexes/{index}/features/{feature} returns.
            if format == "json" { return try printJSON(records) }
            print(header)
            for r in records {
                print(
                    String(
                        format: "\nfeature %d: fires in %d frames (density %.4g), mean when active %@", r.feature,
                        r.fired, r.density,
                        r.meanActive.map { String(format: "%.3f", $0) } ?? "n/a"))
                for (title, list) in [("top", r.top), ("most negative", r.negative)] where !list.isEmpty {
                    print("  \(title):")
                    for e in list {
                        print(
                            String(
                                format: "    %9.3f  %@  %6.2f s  frame %4d  %@", e.value,
                                e.clip.padding(toLength: max(e.clip.count, 28), withPad: " ", startingAt: 0),
                                e.time, e.frame, e.word.map { "“\($0)”" } ?? "(between words)"))
                    }
                }
                if !r.coactive.isEmpty {
                    print(
                        "  fires together with: "
                            + r.coactive.prefix(5).map { "#\($0.feature) (\($0.examples)×)" }
                            .joined(separator: ", "))
                }
            }
            return
        }
        if let word {
            let hits = try idx.features(onWord: word, limit: limit)
            if format == "json" { return try printJSON(hits.map { ["feature": $0.feature, "examples": $0.examples] }) }
            print(header)
            if hits.isEmpty { print("no feature has a top example on “\(word)”") }
            for h in hits {
                print(String(format: "feature %6d  %3d top examples on “%@”", h.feature, h.examples, word))
            }
            return
        }
        let ranked = try idx.ranked(by: sort, limit: limit)
        if format == "json" {
            return try printJSON(
                ranked.map {
                    ["feature": $0.feature, "density": $0.density, "max_value": $0.maxValue ?? 0] as [String: Any]
                })
        }
        print(header)
        for r in ranked {
            print(
                String(
                    format: "feature %6d  density %.4g  max %@", r.feature, r.density,
                    r.maxValue.map { String(format: "%.3f", $0) } ?? "n/a"))
        }
    }

    /// --label: each feature's phoneme and word labels with their null p-values, then how many beat it.
    func printLabels(_ idx: FeatureIndex) throws {
        guard let path = dictionary ?? PronouncingDictionary.installedPath else {
            throw ValidationError("--label needs a pronouncing dictionary: run scripts/setup.sh, or give --dictionary")
        }
        let labeler = try FeatureLabeler(index: idx, dictionary: try PronouncingDictionary(contentsOf: path))
        let ids = feature.isEmpty ? try idx.ranked(by: sort, limit: limit).map(\.feature) : feature
        var all = [FeatureLabels]()
        for f in ids {
            guard let l = try labeler.labels(f) else {
                throw ValidationError("feature \(f) is not in the index (it has 0…\(idx.width - 1))")
            }
            all.append(l)
        }
        if format == "json" { return try printJSON(all) }
        func show(_ s: LabelScore?) -> String {
            guard let s else { return "n/a".padding(toLength: 26, withPad: " ", startingAt: 0) }
            return String(
                format: "%@ %3.0f %% of %2d p %.3f", s.label.padding(toLength: 6, withPad: " ", startingAt: 0),
                100 * s.share, s.examples, s.p)
        }
        print("feature  top phoneme                top word                           most negative phoneme")
        for l in all {
            let word =
                l.topWord.map {
                    String(
                        format: "%@ %3.0f %% p %.3f", $0.label.padding(toLength: 12, withPad: " ", startingAt: 0),
                        100 * $0.share, $0.p)
                } ?? "n/a"
            print(
                String(format: "%7d  ", l.feature) + show(l.topPhoneme) + "  "
                    + word.padding(toLength: 33, withPad: " ", startingAt: 0) + "  " + show(l.negativePhoneme))
        }
        for (name, pick) in [
            ("top", { (l: FeatureLabels) in l.topPhoneme }), ("most negative", { $0.negativePhoneme }),
        ] {
            let p = all.compactMap { pick($0)?.p }
            print(
                "\(name) phonemes beat the null at 1 %: \(p.filter { $0 < 0.01 }.count) of \(all.count); at 5 %: "
                    + "\(p.filter { $0 < 0.05 }.count) of \(all.count)")
        }
        let same = all.filter { $0.topPhoneme != nil && $0.topPhoneme?.label == $0.negativePhoneme?.label }.count
        print("most negative examples on the same phoneme as the top ones: \(same) of \(all.count)")
    }

    /// The HTML page of the --feature list, or of the --limit features ranked by --sort.
    func writePage(_ idx: FeatureIndex, to path: String) throws {
        let ids = feature.isEmpty ? try idx.ranked(by: sort, limit: limit).map(\.feature) : feature
        let records = try ids.compactMap { try idx.feature($0, examples: min(limit, 10)) }
        var clips = [String: [Float]]()
        let page = FeatureReport.page(idx, records: records, densities: try idx.densities()) { clip, time in
            if clips[clip] == nil, let p = try? idx.clipPath(clip) {
                clips[clip] = (try? AudioClip(contentsOf: p))?.samples
            }
            guard let s = clips[clip], !s.isEmpty else { return nil }
            let a = max(0, Int((time - 0.4) * 16_000)), b = min(s.count, Int((time + 0.4) * 16_000))
            return a < b ? WAV.pcm16(Array(s[a..<b]), rate: 16_000) : nil
        }
        try page.write(to: path)
        FileHandle.standardError.write("wrote \(path) (\(records.count) features)\n".data(using: .utf8)!)
    }
}
