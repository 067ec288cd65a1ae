// Word error rate after openai-whisper's English text normalisation (as jiwer computes it:
// Levenshtein alignment over words, S + D + I over the reference word count).

/// Word-level edit counts between references and hypotheses.
public struct WordErrorRate: Sendable, Equatable, Codable {
    public var substitutions = 0, deletions = 0, insertions = 0, referenceWords = 0
    public init() {}

    /// Errors over reference words (0 when there are none).
    public var rate: Double {
        referenceWords == 0 ? 0 : Double(substitutions + deletions + insertions) / Double(referenceWords)
    }

    /// Counts for one pair of already-normalised word sequences (minimum edits; among equal-cost
    /// alignments, substitutions are preferred, as jiwer/rapidfuzz report them).
    public static func align(reference r: [Substring], hypothesis h: [Substring]) -> WordErrorRate {
        let n = r.count, m = h.count
        // cost, then (s, d, i) of the chosen path
        var prev = (0...m).map { (cost: $0, s: 0, d: 0, i: $0) }
        for a in 1...max(n, 1) where n > 0 {
            var cur = [(cost: Int, s: Int, d: Int, i: Int)](repeating: (0, 0, 0, 0), count: m + 1)
            cur[0] = (a, 0, a, 0)
            for b in 1...max(m, 1) where m > 0 {
                let same = r[a - 1] == h[b - 1]
                let diag = prev[b - 1]
                var best = (cost: diag.cost + (same ? 0 : 1), s: diag.s + (same ? 0 : 1), d: diag.d, i: diag.i)
                let del = prev[b]
                if del.cost + 1 < best.cost { best = (del.cost + 1, del.s, del.d + 1, del.i) }
                let ins = cur[b - 1]
                if ins.cost + 1 < best.cost { best = (ins.cost + 1, ins.s, ins.d, ins.i + 1) }
                cur[b] = best
            }
            prev = cur
        }
        var w = WordErrorRate()
        let end = n == 0 ? (cost: m, s: 0, d: 0, i: m) : prev[m]
        w.substitutions = end.s; w.deletions = end.d; w.insertions = end.i; w.referenceWords = n
        return w
    }

    /// Corpus WER over (reference, hypothesis) pairs, both normalised with `EnglishTextNormalizer`.
    public static func corpus(
        _ pairs: [(reference: String, hypothesis: String)],
        normalizer: EnglishTextNormalizer
    ) -> WordErrorRate {
        var total = WordErrorRate()
        for (r, h) in pairs {
            total += align(
                reference: normalizer(r).split(separator: " "), hypothesis: normalizer(h).split(separator: " "))
        }
        return total
    }

    public static func += (a: inout WordErrorRate, b: WordErrorRate) {
        a.substitutions += b.substitutions; a.deletions += b.deletions
        a.insertions += b.insertions; a.referenceWords += b.referenceWords
    }
}
