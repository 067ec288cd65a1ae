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
        help: ArgumentHelp(
            "Dataset folder (LibriSpeech *.trans.txt, metadata.csv or a CSV/JSONL manifest), or a folder of audio "
                + "files.")
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
    func items() throws -> [DatasetItem] { try Self.readableClips(data, limit: limit) }

    /// The first `limit` clips of the dataset at `data` that can be read (every command that takes
    /// a dataset folder reads it this way); unreadable ones are reported and skipped, and a
    /// dataset with none left is refused.
    static func readableClips(_ data: String, limit: Int?) throws -> [DatasetItem] {
        var items = try Dataset.load(data).items
        if let limit { items = Array(items.prefix(limit)) }
        let (ok, skipped) = Dataset.readable(items)
        for (item, error) in skipped {
            FileHandle.standardError.write("skipping \(item.path): \(error)\n".data(using: .utf8)!)
        }
        guard !ok.isEmpty else { throw LensError(.noClips, "no readable clips in \(data)") }
        return ok
    }
}

enum SweepRunner {
    /// Runs `options` over `items` into `data.out`, resuming from results already there.
    static func run(
        _ loaded: LoadedModel, items: [DatasetItem], options: SweepOptions, data: DataOptions,
        settings: [String: String]
    ) throws -> (entries: [SweepEntry], store: SweepStore, seconds: Double) {
        let store = try SweepStore(directory: data.out, settings: settings, fresh: data.fresh)
        let sweep = try Sweep(loaded: loaded, items: items, options: options, normalizer: try EnglishTextNormalizer())
        let run = try sweep.run(
            into: store, progress: ProgressReporter(total: sweep.totalEntries, label: "conditions × clips")
        ) { resumed in
            FileHandle.standardError.write(
                "resuming: \(resumed) of \(sweep.totalEntries) results already in \(data.out)\n".data(using: .utf8)!)
        }
        return (run.entries, store, run.seconds)
    }

    /// Prints the most damaging conditions and where the files are.
    static func printSummary(_ entries: [SweepEntry], store: SweepStore, seconds: Double, top: Int = 8) {
        print(String(format: "%d results in %.1f s (this run)", entries.count, seconds))
        for line in ConditionSummary.table(entries, top: top) { print(line) }
        print("results: \(store.resultsPath)\nreport:  \(store.reportPath)")
    }
}
