// The page of `auscult lens`: per clip, the decoder logit lens as a layer × position grid, the
// encoder lens transcripts, direct logit attribution, and attention patterns as images.
import AuscultReport
import AuscultTensor
import Foundation

public enum LensReport {
    /// The HTML fragment for one clip (written beside the results so a resumed run can reuse it).
    public static func clipSection(_ r: LensResult, maps: AttentionMaps?) -> String {
        var s =
            "<h3>Decoder logit lens</h3><p class=\"note\">Each cell: the most likely next token when the residual "
            + "stream after that layer is read through the final LayerNorm and unembedding. Colour: probability of "
            + "the token the final layer predicts; hover for the top "
            + "\(r.decoderLens.first?.topk.first?.count ?? 0) and KL to the final distribution.</p>"
        s += lensTable(r)
        s += "<div class=\"plots\">"
        s += Plot.heatmap(
            r.decoderLens.map(\.kl), rowLabels: r.decoderLens.map(\.layer), colLabels: positionLabels(r),
            title: "KL(final ‖ layer), nats")
        s += Plot.heatmap(
            r.decoderLens.map { $0.finalRank.map { log10(Double($0) + 1) } }, rowLabels: r.decoderLens.map(\.layer),
            colLabels: positionLabels(r), title: "log10(1 + rank of the final token)")
        s += "</div>"
        s +=
            "<h3>Encoder lens</h3><p class=\"note\">The decoder reads ln_post of each encoder block's output (the "
            + "blocks after it removed).</p>"
        s += HTMLDocument.table(
            ["encoder output of", "transcript"], r.encoderLens.map { ["block \($0.layer)", htmlEscape($0.text)] })
        s +=
            "<h3>Direct logit attribution</h3><p class=\"note\">Each head's and MLP's direct contribution to the logit "
            + "of the transcript's next token, through the final LayerNorm scale; the parts plus the LayerNorm "
            + "bias term sum to the logit.</p>"
        let a = r.attribution
        let totals = a.components.indices.map { (a.components[$0], a.values[$0].reduce(0, +)) }
        let top = totals.sorted { abs($0.1) > abs($1.1) }.prefix(14)
        s += "<div class=\"plots\">"
        s += Plot.bars(top.map { ($0.0, $0.1) }, title: "Largest total contributions (summed over positions)")
        s += Plot.heatmap(
            a.values, rowLabels: a.components,
            colLabels: a.targets.indices.map {
                "\($0):" + shortToken(r.tokenText[$0 + 1 < r.tokens.count ? $0 + 1 : $0])
            },
            title: "Contribution to the next token's logit", scale: .diverging, cell: 14)
        s += "</div>"
        if let maps { s += attention(maps, r) }
        return s
    }

    /// KL and top-1 agreement per layer, logit lens against tuned lens.
    public static func tunedSection(_ s: TunedLensSummary) -> String {
        let x = s.layers.indices.map(Double.init)
        return "<div class=\"plots\">"
            + Plot.lines(
                [("logit lens", Array(zip(x, s.klLogitLens))), ("tuned lens", Array(zip(x, s.klTunedLens)))],
                title: "KL(final ‖ lens) by layer", xLabel: "layer (0 = embeddings)", yLabel: "nats")
            + Plot.lines(
                [("logit lens", Array(zip(x, s.top1LogitLens))), ("tuned lens", Array(zip(x, s.top1TunedLens)))],
                title: "Top-1 agreement with the final layer", xLabel: "layer (0 = embeddings)", yLabel: "fraction")
            + "</div>"
            + HTMLDocument.table(
                ["layer", "KL logit lens", "KL tuned lens", "top-1 logit lens", "top-1 tuned lens"],
                s.layers.indices.map { i in
                    [
                        htmlEscape(s.layers[i]), String(format: "%.3f", s.klLogitLens[i]),
                        String(format: "%.3f", s.klTunedLens[i]),
                        String(format: "%.2f", s.top1LogitLens[i]), String(format: "%.2f", s.top1TunedLens[i]),
                    ]
                })
    }

    static func shortToken(_ s: String) -> String {
        let t = s.replacingOccurrences(of: "<|", with: "").replacingOccurrences(of: "|>", with: "")
        return t.count > 12 ? String(t.prefix(11)) + "…" : t
    }

    static func positionLabels(_ r: LensResult) -> [String] {
        r.tokenText.enumerated().map { "\($0.offset):" + shortToken($0.element) }
    }

    static func lensTable(_ r: LensResult) -> String {
        var s = "<div class=\"scroll\"><table><thead><tr><th>layer</th>"
        s += r.tokenText.map { "<th>\(htmlEscape(shortToken($0)))</th>" }.joined() + "</tr></thead><tbody>"
        for layer in r.decoderLens {
            s += "<tr><td>\(htmlEscape(layer.layer))</td>"
            for p in layer.top1.indices {
                let c = ColorScale.sequential.color(layer.finalProb[p])
                let light = layer.finalProb[p] > 0.6
                let tip =
                    layer.topk[p].map { "\($0.text) \(String(format: "%.3f", $0.p))" }.joined(separator: "\n")
                    + String(format: "\nKL %.3f", layer.kl[p])
                s +=
                    "<td style=\"background:\(c.hex);color:\(light ? "#000" : "#fff")\" "
                    + "title=\"\(htmlEscape(tip))\">\(htmlEscape(shortToken(layer.topk[p][0].text)))</td>"
            }
            s += "</tr>"
        }
        return s + "</tbody></table></div>"
    }

    /// Attention patterns: encoder self-attention over the frames that hold audio, decoder self-
    /// and cross-attention, one image per head.
    static func attention(_ maps: AttentionMaps, _ r: LensResult) -> String {
        var s =
            "<h3>Attention patterns</h3><p class=\"note\">Encoder self-attention is shown over the "
            + "\(maps.contentFrames) frames that hold audio (of 1500; 20 ms each), averaged into cells of a few "
            + "frames; cross-attention over the same frames.</p>"
        for name in maps.patterns.keys.sorted(by: natural) {
            let t = maps.patterns[name]!
            let heads = t.shape[0], q = t.shape[1], k = t.shape[2]
            let isEncoder = name.hasPrefix("encoder.")
            let qN = isEncoder ? min(q, maps.contentFrames) : q
            let kN = name.contains("cross_attn") || isEncoder ? min(k, maps.contentFrames) : k
            s += "<h4 style=\"margin:8px 0 2px;font-size:13px\">\(htmlEscape(name))</h4><div class=\"plots\">"
            for h in 0..<heads {
                let grid = pool(t, head: h, rows: qN, cols: kN, maxCells: 160)
                let rowLabels =
                    isEncoder
                    ? grid.rowStarts.map { String(format: "%.2fs", Double($0) * 0.02) }
                    : (0..<qN).map { shortToken(r.tokenText[min($0, r.tokenText.count - 1)]) }
                let colLabels =
                    kN == k && !isEncoder && !name.contains("cross")
                    ? (0..<kN).map { shortToken(r.tokenText[min($0, r.tokenText.count - 1)]) }
                    : grid.colStarts.map { String(format: "%.2fs", Double($0) * 0.02) }
                s += Plot.heatmap(
                    grid.values, rowLabels: rowLabels, colLabels: colLabels, title: "head \(h)",
                    range: (0, grid.values.flatMap { $0 }.max() ?? 1),
                    cell: isEncoder ? 2 : (name.contains("cross") ? 0 : 9), maxWidth: 420)
            }
            s += "</div>"
        }
        return s
    }

    static func natural(_ a: String, _ b: String) -> Bool { a.compare(b, options: .numeric) == .orderedAscending }

    /// Averages `[h, q, k]`'s head `head` over its first `rows` × `cols` into at most `maxCells` per axis.
    static func pool(
        _ t: Tensor, head: Int, rows: Int, cols: Int, maxCells: Int
    ) -> (values: [[Double]], rowStarts: [Int], colStarts: [Int]) {
        let k = t.shape[2]
        let rs = max(1, Int((Double(rows) / Double(maxCells)).rounded(.up))),
            cs = max(1, Int((Double(cols) / Double(maxCells)).rounded(.up)))
        let nr = (rows + rs - 1) / rs, nc = (cols + cs - 1) / cs
        var out = [[Double]](repeating: [Double](repeating: 0, count: nc), count: nr)
        let plane = t.select(head, axis: 0).scalars  // [q, k]
        for i in 0..<rows {
            for j in 0..<cols { out[i / rs][j / cs] += Double(plane[i * k + j]) }
        }
        for i in 0..<nr {
            for j in 0..<nc {
                let cnt = Double(min(rs, rows - i * rs) * min(cs, cols - j * cs))
                out[i][j] /= cnt
            }
        }
        return (out, (0..<nr).map { $0 * rs }, (0..<nc).map { $0 * cs })
    }
}
