// The page of `auscult features --html`: the density histogram, the features ranked, and for each
// chosen feature its top and most negative examples with the word spoken there and a short audio
// snippet around the frame to listen to.
import AuscultReport
import Foundation

public enum FeatureReport {
    /// `snippet(clip, time)` returns WAV bytes around `time` seconds of `clip` (nil: no player).
    public static func page(
        _ index: FeatureIndex, records: [FeatureRecord], densities: [Double],
        snippet: (String, Double) -> Data?
    ) -> HTMLDocument {
        let m = index.meta
        var doc = HTMLDocument(
            title: "Features — \(m["hook"] ?? "?")",
            subtitle:
                "\(m["kind"] ?? "?") · \(m["source"] ?? "?") · \(index.width) features over \(m["rows"] ?? "?") frames")
        doc.section(
            "Feature density", SAEReport.densityBars(SAEEvaluation.histogram(densities), of: "features"),
            note:
                "Fraction of frames in which each feature is positive, binned by half decades (first bar: never "
                + "positive)."
        )
        doc.section(
            "Features shown",
            HTMLDocument.table(
                ["feature", "fires in frames", "density", "mean when active", "largest value"],
                records.map { r in
                    [
                        "<a href=\"#f\(r.feature)\">\(r.feature)</a>", "\(r.fired)", String(format: "%.4g", r.density),
                        r.meanActive.map { String(format: "%.3f", $0) } ?? "–",
                        r.top.first.map { String(format: "%.3f", $0.value) } ?? "–",
                    ]
                }))
        for r in records {
            var html = "<a id=\"f\(r.feature)\"></a>"
            for (title, list) in [("Top examples", r.top), ("Most negative examples", r.negative)] where !list.isEmpty {
                html +=
                    "<h3>\(title)</h3>"
                    + HTMLDocument.table(
                        ["value", "clip", "time", "word", "listen (±0.4 s)"],
                        list.enumerated().map { rank, e in
                            // Players for the first five of each list keep the page a few MB.
                            let player =
                                (rank < 5 ? snippet(e.clip, e.time) : nil).map {
                                    "<audio controls preload=\"none\" "
                                        + "src=\"data:audio/wav;base64,\($0.base64EncodedString())\"></audio>"
                                } ?? "–"
                            return [
                                String(format: "%.3f", e.value), htmlEscape(e.clip),
                                String(format: "%.2f s (frame %d)", e.time, e.frame),
                                e.word.map { "“\(htmlEscape($0))”" } ?? "(between words)", player,
                            ]
                        })
            }
            html += Plot.bars(
                r.top.map { (label: "\($0.clip) @ \(String(format: "%.2f", $0.time)) s", value: Double($0.value)) },
                title: "Top activations of feature \(r.feature)")
            doc.section(String(format: "Feature %d — density %.4g", r.feature, r.density), html)
        }
        return doc
    }
}

/// 16-bit PCM WAV encoding, for audio players embedded in reports.
public enum WAV {
    /// Mono `samples` in [-1, 1] at `rate` Hz as a WAV file.
    public static func pcm16(_ samples: [Float], rate: Int) -> Data {
        var d = Data()
        func u32(_ v: UInt32) { for k in 0..<4 { d.append(UInt8(truncatingIfNeeded: v >> (8 * k))) } }
        func u16(_ v: UInt16) { for k in 0..<2 { d.append(UInt8(truncatingIfNeeded: v >> (8 * k))) } }
        let bytes = UInt32(samples.count * 2)
        d.append(contentsOf: Array("RIFF".utf8)); u32(36 + bytes); d.append(contentsOf: Array("WAVE".utf8))
        d.append(contentsOf: Array("fmt ".utf8)); u32(16); u16(1); u16(1); u32(UInt32(rate)); u32(UInt32(rate * 2));
        u16(2); u16(16)
        d.append(contentsOf: Array("data".utf8)); u32(bytes)
        for s in samples { u16(UInt16(bitPattern: Int16(max(-1, min(1, s)) * 32767))) }
        return d
    }
}
