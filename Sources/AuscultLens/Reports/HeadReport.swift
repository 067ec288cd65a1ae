// The page of `auscult heads`: the discovered alignment heads, a layer × head heatmap per score,
// and every head's pattern on an example.
import AuscultReport
import Foundation

public enum HeadReport {
    /// The `k` highest-scoring heads of `map` (undefined ones left out).
    public static func top(_ map: HeadScoreMap, _ k: Int) -> [(HeadRef, Double)] {
        var all = [(HeadRef, Double)]()
        for (l, row) in map.values.enumerated() {
            for (h, v) in row.enumerated() { if let v { all.append((HeadRef(layer: l, head: h), v)) } }
        }
        return Array(all.sorted { $0.1 > $1.1 }.prefix(k))
    }

    static let kinds: [(AttentionKind, String)] = [
        (.decoderSelf, "Decoder self-attention"), (.encoderSelf, "Encoder self-attention"), (.cross, "Cross-attention"),
    ]

    public static func page(_ r: HeadScanResult, title: String) -> HTMLDocument {
        let o = r.detection
        var doc = HTMLDocument(
            title: title,
            subtitle: "\(r.clips.count) clip(s) · \(r.randomSequences) random sequences of \(r.randomLength) tokens · "
                + "measure \(o.measure.rawValue)\(o.excludeBOS ? ", BOS excluded" : "")"
                + "\(o.excludeCurrentToken ? ", current token excluded" : "")")
        let a = r.alignment
        let rows = a.ranked.prefix(max(a.k * 2, 10)).enumerated().map { i, c in
            [
                String(i + 1), "L\(c.layer).H\(c.head)", String(format: "%.3f", c.agreement),
                String(format: "%.0f", c.errorMs), c.monotonicity.map { String(format: "%.3f", $0) } ?? "n/a",
                a.known == nil ? "n/a" : (c.known ? "yes" : "no"),
            ]
        }
        var note = String(
            format: "Each cross-attention head alone times the words (openai-whisper's find_alignment with that head); "
                + "agreement is the share of %d word boundaries within %.0f ms of the reference: %@. ", 2 * a.words,
            a.toleranceSeconds * 1000, a.reference)
        if let p = a.precisionAtK, let known = a.known {
            note += String(
                format: "Precision at %d against openai-whisper's list (%@): %.2f.", a.k,
                known.map(\.description).joined(separator: ", "), p)
        }
        doc.section(
            "Discovered alignment heads",
            HTMLDocument.table(
                ["rank", "head", "agreement", "error (ms)", "monotonicity", "openai-whisper list"], rows),
            note: note)
        for (kind, heading) in kinds {
            var html = ""
            for map in r.maps where map.attention == kind {
                let values = map.values.map { $0.map { $0 ?? .nan } }
                let layers = values.indices.map { "layer \($0)" }, heads = (values.first ?? []).indices.map { "H\($0)" }
                let finite = values.flatMap { $0 }.filter(\.isFinite)
                let signed = (finite.min() ?? 0) < 0
                let m = finite.map(Swift.abs).max() ?? 1
                html +=
                    "<div class=\"map\">"
                    + Plot.heatmap(
                        values, rowLabels: layers, colLabels: heads, title: map.name,
                        scale: signed ? .diverging : .sequential, range: signed ? (-m, m) : nil,
                        cellText: { i, j in
                            "L\(i).H\(j) \(map.name): "
                                + (values[i][j].isFinite ? String(format: "%.4f", values[i][j]) : "n/a")
                        }, cell: 26)
                    + "<p class=\"note\">\(htmlEscape(map.description))</p></div>"
            }
            doc.section(heading, "<div class=\"maps\">\(html)</div>")
        }
        for (kind, heading) in kinds {
            let examples = r.examples.filter { $0.attention == kind }
            guard !examples.isEmpty else { continue }
            var html = ""
            for e in examples {
                let v = e.values.map { $0.map(Double.init) }
                html += Plot.heatmap(
                    v, rowLabels: [], colLabels: [], title: "L\(e.layer).H\(e.head)",
                    range: (0, v.flatMap { $0 }.max() ?? 1),
                    cell: max(2, 150 / max(1, e.values.first?.count ?? 1)), image: true)
            }
            let what: String
            switch kind {
            case .decoderSelf: what = "the first random sequence repeated twice (queries down, keys across)"
            case .encoderSelf: what = "the first clip's frames holding audio (pooled; queries down, keys across)"
            case .cross: what = "the first transcribed clip (text tokens down, its audio across, pooled)"
            }
            doc.section("\(heading): each head's pattern", "<div class=\"maps\">\(html)</div>", note: "On \(what).")
        }
        return doc
    }
}
