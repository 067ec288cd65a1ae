// The page of `auscult paths`: per-token loss per condition, each component's direct
// contribution and norm, and per clip the loss of every token and the contributions by position.
import AuscultReport
import Foundation

public enum PathReport {
    public static func page(_ r: PathResult, title: String) -> HTMLDocument {
        var doc = HTMLDocument(
            title: title,
            subtitle: "\(r.clips.count) clip(s) · the \(r.text)s, \(r.conditions.first?.tokens ?? 0) tokens")
        doc.section(
            "Per-token loss",
            HTMLDocument.table(
                ["condition", "loss (nats / token)", "top-1", "what it is"],
                r.conditions.map {
                    [
                        $0.name, String(format: "%.3f", $0.loss), String(format: "%.1f %%", 100 * $0.accuracy),
                        $0.description,
                    ]
                })
                + Plot.bars(
                    r.conditions.map { (label: $0.name, value: $0.loss) }, title: "Mean cross-entropy", unit: " nats"),
            note: "Teacher-forced on each clip's \(r.text) with end-of-text. Without the audio the decoder still "
                + "predicts what its top-1 share says from language alone.")
        doc.section(
            "Direct contributions",
            Plot.bars(
                r.components.map { (label: short($0.name), value: $0.direct) },
                title: "Mean direct contribution to logit(target) − E_p[logit]", unit: "")
                + Plot.bars(
                    r.components.map { (label: short($0.name), value: $0.directLogit) },
                    title: "Mean direct contribution to the target's raw logit", unit: "")
                + Plot.bars(
                    r.components.map { (label: short($0.name), value: $0.norm) }, title: "Mean norm written", unit: ""),
            note: String(
                format: "Each component's output through the final LayerNorm's centring and cached scale, dotted with "
                    + "γ ⊙ (u_target − Σ_v p_v u_v). With the LayerNorm's bias they add up to logit(target) − E_p[logit] "
                    + "within %.2g at every position.", r.sumError))
        for c in r.clips.prefix(8) {
            let cols = c.tokens.map { $0.count > 10 ? String($0.prefix(9)) + "…" : $0 }
            let m = c.direct.flatMap { $0 }.map(abs).max() ?? 1
            doc.section(
                c.clip,
                Plot.heatmap(
                    c.losses, rowLabels: r.conditions.map(\.name), colLabels: cols, title: "Loss per token (nats)",
                    cellText: { i, j in
                        String(format: "%@ · %@: %.3f", r.conditions[i].name, c.tokens[j], c.losses[i][j])
                    })
                    + Plot.heatmap(
                        c.direct, rowLabels: r.components.map { short($0.name) }, colLabels: cols,
                        title: "Direct contribution per component and token", scale: .diverging, range: (-m, m),
                        cellText: { i, j in
                            String(format: "%@ · %@: %+.3f", short(r.components[i].name), c.tokens[j], c.direct[i][j])
                        }))
        }
        return doc
    }

    /// `decoder.blocks.2.hook_cross_attn_out` → `L2 cross_attn`.
    static func short(_ name: String) -> String {
        guard name.hasPrefix("decoder.blocks.") else { return name }
        let rest = name.dropFirst("decoder.blocks.".count)
        let layer = rest.prefix { $0.isNumber }
        let what = rest.dropFirst(layer.count + 1).replacingOccurrences(of: "hook_", with: "")
            .replacingOccurrences(of: "_out", with: "")
        return "L\(layer) \(what)"
    }
}
