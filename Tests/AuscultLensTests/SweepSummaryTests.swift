import Foundation
import Testing

@testable import AuscultLens

@Suite("Sweep summaries")
struct SweepSummaryTests {
    func entry(
        _ clip: String, _ condition: String, wer: Double, words: Int = 10, repeats: Int = 1, limit: Bool = false
    )
        -> SweepEntry
    {
        SweepEntry(
            clip: clip, condition: condition, mode: nil, component: nil, side: nil, draw: 0, donor: nil, tokens: [],
            text: "", wer: wer, werVsClean: wer, wordErrors: Int((wer * Double(words)).rounded()),
            referenceWords: words, ce: 0, ceDelta: 0, maxRepeat: repeats, hitLimit: limit)
    }

    @Test("a condition reports the median per-clip WER and the share of runs still readable beside corpus WER")
    func medianAndReadable() throws {
        // One clip looping to the length limit (150 words of errors on a 10-word reference)
        // swamps corpus WER; the median and the readable share are not moved by it.
        let entries = [
            entry("a", "skip x", wer: 0.1), entry("b", "skip x", wer: 0.2), entry("c", "skip x", wer: 0.4),
            entry("d", "skip x", wer: 15, repeats: 40, limit: true), entry("a", "clean", wer: 0),
            entry("b", "clean", wer: 0.6), entry("c", "clean", wer: 0.1, repeats: 3),
        ]
        let summary = ConditionSummary.rank(entries)
        let skip = try #require(summary.first { $0.condition == "skip x" })
        #expect(abs(skip.wer - (1 + 2 + 4 + 150) / 40.0) < 1e-12)
        #expect(abs(skip.medianWER - 0.3) < 1e-12)
        #expect(skip.readable == 0.75 && skip.degenerate == 1)
        let clean = try #require(summary.first { $0.condition == "clean" })
        #expect(abs(clean.medianWER - 0.1) < 1e-12)
        #expect(abs(clean.readable - 1.0 / 3) < 1e-12, "0.6 is over 50 %, a repetition loop is not readable")
        let json = try JSONSerialization.jsonObject(with: JSONEncoder().encode(skip)) as? [String: Any]
        #expect(abs((json?["median_wer"] as? Double ?? -1) - 0.3) < 1e-12, "\(json ?? [:])")
        #expect(json?["readable"] as? Double == 0.75)
        let lines = ConditionSummary.table(entries)
        #expect(lines[0].contains("median") && lines[0].contains("readable"))
        #expect(lines[1].hasPrefix("skip x") && lines[1].contains("30.00") && lines[1].contains("75%"))
    }
}
