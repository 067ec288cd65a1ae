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
        if !r.patching.isEmpty {
            doc.section(
                "Path patching",
                HTMLDocument.table(
                    ["component", "total", "direct", "through later blocks"],
                    r.patching.map {
                        [
                            $0.name, String(format: "%+.3f", $0.total), String(format: "%+.3f", $0.direct),
                            String(format: "%+.3f", $0.indirect),
                        ]
                    })
                    + Plot.bars(
                        r.patching.map { (label: short($0.name), value: $0.total) },
                        title: "Total effect: loss change (nats / token)", unit: "")
                    + Plot.bars(
                        r.patching.map { (label: short($0.name), value: $0.direct) },
                        title: "Direct effect: loss change (nats / token)", unit: ""),
                note: "Each component's output replaced by its value when the decoder reads silence (same tokens). "
                    + "Total: every later block sees the replacement. Direct: only the final LayerNorm and the "
                    + "logits do (the stream's sum with that one term swapped). Positive: the audio run's value "
                    + "lowered the loss.")
        }
        if !r.groups.isEmpty {
            let header =
                ["input", "tokens"] + r.conditions.map { "loss: \($0.name)" } + [
                    "largest direct", "largest total patch",
                ]
            let rows = r.groups.map { g -> [String] in
                let top = g.direct.indices.max { g.direct[$0] < g.direct[$1] }
                let patch = g.patchTotal.indices.max { abs(g.patchTotal[$0]) < abs(g.patchTotal[$1]) }
                return [g.source + (g.repeated ? " · repeated" : " · new"), "\(g.tokens)"]
                    + g.loss.map { String(format: "%.3f", $0) }
                    + [
                        top.map { String(format: "%@ %+.3f", short(r.components[$0].name), g.direct[$0]) } ?? "",
                        patch.map { String(format: "%@ %+.3f", short(r.patching[$0].name), g.patchTotal[$0]) } ?? "",
                    ]
            }
            doc.section(
                "Repeated and new tokens by input",
                HTMLDocument.table(header, rows),
                note: "A token is repeated when the pair (previous token, token) occurred earlier in its text: the "
                    + "copy an induction head makes. Hallucination inputs (silence, noise, a tone, sweep runs that "
                    + "looped to the length limit) show where looping tokens come from: a loss that the audio's "
                    + "removal does not raise is language alone.")
        }
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
