// A sweep run into its output directory: what is already there is kept and skipped, new entries
// are appended batch by batch, and the whole set comes back in run order.
import AuscultWhisper
import Foundation

/// The entries of a sweep run (those resumed from the directory and the new ones) in run order:
/// clean first, then the conditions as listed, each donor draw, clips in dataset order.
public struct SweepRun: Sendable {
    public var entries: [SweepEntry]
    /// Entries that were already in the directory.
    public var resumed: Int
    /// Time spent computing in this run, in seconds.
    public var seconds: Double
}

extension Sweep {
    /// Entries of this sweep's clips already in `store` (what a run into it skips).
    public func finished(in store: SweepStore) -> [SweepEntry] {
        let valid = Set(items.map(\.id))
        return store.load().filter { valid.contains($0.clip) }
    }

    /// Runs into `store`: entries already there are skipped (`resuming` is told how many, before
    /// any work), new ones appended as each batch is ready, so an interrupted run loses at most
    /// the batch in flight.
    public func run(
        into store: SweepStore, progress: ProgressReporter? = nil, resuming: ((Int) -> Void)? = nil
    ) throws -> SweepRun {
        var entries = finished(in: store)
        let resumed = entries.count
        if resumed > 0 { resuming?(resumed) }
        let started = Date()
        try run(skipping: Set(entries.map(\.key)), progress: progress) { batch in
            try store.append(batch)
            entries += batch
        }
        let seconds = Date().timeIntervalSince(started)
        let order: [String: Int] = Dictionary(
            (["clean"] + options.conditions.map(\.description)).enumerated().map { ($1, $0) },
            uniquingKeysWith: { a, _ in a })
        let clipOrder: [String: Int] = Dictionary(
            items.enumerated().map { ($1.id, $0) }, uniquingKeysWith: { a, _ in a })
        func rank(_ e: SweepEntry) -> [Int] { [order[e.condition] ?? 0, e.draw, clipOrder[e.clip] ?? 0] }
        entries.sort { rank($0).lexicographicallyPrecedes(rank($1)) }
        return SweepRun(entries: entries, resumed: resumed, seconds: seconds)
    }
}

extension ConditionSummary {
    /// The `top` most damaging conditions and the clean one as text lines: condition, WER %,
    /// mean change of cross-entropy, clips whose transcript changed.
    public static func table(_ entries: [SweepEntry], top: Int = 8) -> [String] {
        let ranked = rank(entries)
        let rows = ranked.filter { $0.condition != "clean" }.prefix(top) + ranked.filter { $0.condition == "clean" }
        // Wide enough for the longest condition shown, never cut.
        let width = max(44, rows.map(\.condition.count).max() ?? 0)
        var lines = [
            "condition".padding(toLength: width, withPad: " ", startingAt: 0)
                + "   WER %  median  readable   Δ CE   changed"
        ]
        for s in rows {
            lines.append(
                s.condition.padding(toLength: width, withPad: " ", startingAt: 0)
                    + String(
                        format: "  %6.2f  %6.2f  %7.0f%%  %+6.3f   %d/%d", s.wer * 100, s.medianWER * 100,
                        s.readable * 100, s.meanCEDelta, s.changed, s.clips))
        }
        return lines
    }
}
