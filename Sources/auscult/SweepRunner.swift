// What `ablate` and `layers` share: the dataset options, loading clips (bad ones reported and
// left out), running a sweep into an output directory with resume, and the final summary.
import ArgumentParser
import AuscultAudio
import AuscultLens
import AuscultReport
import AuscultWhisper
import Foundation

struct DataOptions: ParsableArguments {
    @Option(
        help:
            "Dataset folder (LibriSpeech *.trans.txt, metadata.csv or a CSV/JSONL manifest), or a folder of audio files."
    )
    var data: String
    @Option(help: "Use only the first N clips.") var limit: Int?
    @Option(help: "Output directory (results.jsonl while running, then results.json, summary.json, report.html).")
    var out: String
    @Flag(help: "Discard results already in --out instead of resuming from them.") var fresh = false

    func validate() throws {
        if let l = limit, l < 1 { throw ValidationError("--limit must be at least 1") }
    }

    /// The clips of the dataset that can be read; unreadable ones are reported and skipped.
    func items() throws -> [DatasetItem] {
        var items = try Dataset.load(data).items
        if let limit { items = Array(items.prefix(limit)) }
        var ok = [DatasetItem]()
        for item in items {
            do { _ = try AudioClip(contentsOf: item.path); ok.append(item) } catch {
                FileHandle.standardError.write("skipping \(item.path): \(error)\n".data(using: .utf8)!)
            }
        }
        guard !ok.isEmpty else { throw LensError(.noClips, "no readable clips in \(data)") }
        return ok
    }
}

enum SweepRunner {
    /// Runs `options` over `items` into `data.out`, resuming from results already there, and
    /// returns every entry (old and new) in run order.
    static func run(
        _ loaded: LoadedModel, items: [DatasetItem], options: SweepOptions, data: DataOptions,
        settings: [String: String]
    ) throws -> (entries: [SweepEntry], store: SweepStore, seconds: Double) {
        let store = try SweepStore(directory: data.out, settings: settings, fresh: data.fresh)
        var entries = store.load()
        let valid = Set(items.map(\.id))
        entries = entries.filter { valid.contains($0.clip) }
        let done = Set(entries.map(\.key))
        let sweep = try Sweep(loaded: loaded, items: items, options: options, normalizer: try EnglishTextNormalizer())
        if !done.isEmpty {
            FileHandle.standardError.write(
                "resuming: \(done.count) of \(sweep.totalEntries) results already in \(data.out)\n".data(using: .utf8)!)
        }
        let progress = ProgressReporter(total: sweep.totalEntries, label: "conditions × clips")
        let started = Date()
        try sweep.run(skipping: done, progress: progress) { batch in
            try store.append(batch)
            entries += batch
        }
        let seconds = Date().timeIntervalSince(started)
        // Run order: clean first, then conditions as listed (resumed runs interleave otherwise).
        let order: [String: Int] = Dictionary(
            uniqueKeysWithValues: (["clean"] + sweep.runConditionNames).enumerated().map { ($1, $0) })
        let clipOrder: [String: Int] = Dictionary(
            items.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { a, _ in a })
        func rank(_ e: SweepEntry) -> [Int] { [order[e.condition] ?? 0, e.draw, clipOrder[e.clip] ?? 0] }
        entries.sort { rank($0).lexicographicallyPrecedes(rank($1)) }
        return (entries, store, seconds)
    }

    /// Prints the most damaging conditions and where the files are.
    static func printSummary(_ entries: [SweepEntry], store: SweepStore, seconds: Double, top: Int = 8) {
        let ranked = ConditionSummary.rank(entries)
        print(String(format: "%d results in %.1f s (this run)", entries.count, seconds))
        print("condition".padding(toLength: 44, withPad: " ", startingAt: 0) + "   WER %   Δ CE   changed")
        let rows = ranked.filter { $0.condition != "clean" }.prefix(top) + ranked.filter { $0.condition == "clean" }
        for s in rows {
            print(
                s.condition.padding(toLength: 44, withPad: " ", startingAt: 0)
                    + String(format: "  %6.2f  %+6.3f   %d/%d", s.wer * 100, s.meanCEDelta, s.changed, s.clips))
        }
        print("results: \(store.resultsPath)\nreport:  \(store.reportPath)")
    }
}

extension Sweep {
    /// Condition names in run order (for sorting results).
    var runConditionNames: [String] {
        var seen = Set<String>(), out = [String]()
        for c in options.conditions where seen.insert(c.description).inserted { out.append(c.description) }
        return out
    }
}
