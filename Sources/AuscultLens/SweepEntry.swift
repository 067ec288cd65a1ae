// One row of a sweep's results (the `results.json` contract of ablate and layers) and the
// per-condition summary a report ranks components by.
import AuscultTensor
import Foundation

/// The outcome of one condition on one clip.
public struct SweepEntry: Codable, Sendable, Equatable {
    public var clip: String
    /// In the CLI's intervention syntax: `clean`, `skip encoder.blocks.3`, `swap decoder.blocks.1`, …
    public var condition: String
    public var mode: String?
    /// The ablated component (`encoder.blocks.3`, a hook name), nil for clean.
    public var component: String?
    public var side: String?
    /// Donor draw and donor clip of a resample condition.
    public var draw: Int
    public var donor: String?
    /// Sampled token ids, prompt and end-of-text excluded.
    public var tokens: [Int]
    public var text: String
    /// Word error rate of `text` against the clip's reference transcript, or against the clean
    /// run's transcript when the dataset has none.
    public var wer: Double
    /// Word error rate of `text` against the clean run's transcript.
    public var werVsClean: Double
    /// Word errors and reference words behind `wer` (corpus WER sums these).
    public var wordErrors: Int
    public var referenceWords: Int
    /// Mean cross-entropy (nats per token) of the clean run's transcript, end-of-text included,
    /// teacher-forced under this condition.
    public var ce: Double
    /// `ce` minus the clean model's cross-entropy on the same tokens.
    public var ceDelta: Double
    /// How often the most repeated 4-gram of tokens occurs (≥ 3 suggests a repetition loop).
    public var maxRepeat: Int
    /// Decoding stopped at the sample-length limit instead of end-of-text.
    public var hitLimit: Bool

    enum CodingKeys: String, CodingKey {
        case clip, condition, mode, component, side, draw, donor, tokens, text, wer
        case werVsClean = "wer_vs_clean", wordErrors = "word_errors", referenceWords = "reference_words"
        case ce, ceDelta = "ce_delta", maxRepeat = "max_repeat", hitLimit = "hit_limit"
    }

    /// Whether this entry shows a repetition loop or ran into the length limit.
    public var degenerate: Bool { maxRepeat >= 3 || hitLimit }
}

/// A condition's results over all clips.
public struct ConditionSummary: Codable, Sendable {
    public var condition: String
    public var mode: String?
    public var component: String?
    public var side: String?
    public var clips: Int
    /// Corpus WER (Σ errors / Σ reference words) over every clip and donor draw.
    public var wer: Double
    public var meanCE: Double
    public var meanCEDelta: Double
    /// Clips whose transcript differs from the clean one.
    public var changed: Int
    /// Clips with a repetition loop or that hit the length limit.
    public var degenerate: Int
    /// The median of the per-clip WERs: corpus WER is swamped by a few clips looping to the
    /// length limit (one such clip adds ~100 errors), the median is not.
    public var medianWER: Double
    /// The share of runs still readable: per-clip WER at most 50 %, no repetition loop, not cut
    /// at the length limit.
    public var readable: Double

    enum CodingKeys: String, CodingKey {
        case condition, mode, component, side, clips, wer, changed, degenerate, readable
        case meanCE = "mean_ce", meanCEDelta = "mean_ce_delta", medianWER = "median_wer"
    }

    /// The WER at or below which a run counts as readable.
    public static let readableWER = 0.5

    /// Summaries of `entries` grouped by condition, most damaging (largest mean CE increase) first,
    /// the clean condition last.
    public static func rank(_ entries: [SweepEntry]) -> [ConditionSummary] {
        var order = [String]()
        var groups = [String: [SweepEntry]]()
        for e in entries {
            if groups[e.condition] == nil { order.append(e.condition) }
            groups[e.condition, default: []].append(e)
        }
        let cleanTokens = Dictionary(
            entries.filter { $0.condition == "clean" }.map { ($0.clip, $0.tokens) }, uniquingKeysWith: { a, _ in a })
        let out = order.map { c -> ConditionSummary in
            let g = groups[c]!
            let refWords = g.reduce(0) { $0 + $1.referenceWords }, errs = g.reduce(0) { $0 + $1.wordErrors }
            return ConditionSummary(
                condition: c, mode: g[0].mode, component: g[0].component, side: g[0].side,
                clips: Set(g.map(\.clip)).count,
                wer: refWords == 0 ? 0 : Double(errs) / Double(refWords),
                meanCE: g.map(\.ce).reduce(0, +) / Double(g.count),
                meanCEDelta: g.map(\.ceDelta).reduce(0, +) / Double(g.count),
                changed: g.filter { e in cleanTokens[e.clip].map { $0 != e.tokens } ?? false }.count,
                degenerate: g.filter(\.degenerate).count, medianWER: Statistics.median(g.map(\.wer)),
                readable: Double(g.filter { $0.wer <= readableWER && !$0.degenerate }.count) / Double(g.count))
        }
        return out.sorted { a, b in
            if (a.condition == "clean") != (b.condition == "clean") { return b.condition == "clean" }
            return a.meanCEDelta > b.meanCEDelta
        }
    }
}

extension SweepEntry {
    /// Occurrences of the most frequent n-gram of `tokens`.
    static func maxRepeat(_ tokens: [Int], n: Int = 4) -> Int {
        guard tokens.count >= n else { return tokens.isEmpty ? 0 : 1 }
        var counts = [[Int]: Int]()
        for i in 0...(tokens.count - n) { counts[Array(tokens[i..<(i + n)]), default: 0] += 1 }
        return counts.values.max() ?? 0
    }
}
