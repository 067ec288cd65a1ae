// The page of `auscult attribute`: per patching grid, attribution patching's estimates beside real
// patching's effects on the same cells, and how well their ranks agree.
import AuscultReport
import Foundation

public enum AttributionReport {
    public static func page(_ r: AttributionResult, title: String) -> HTMLDocument {
        var doc = HTMLDocument(title: title, subtitle: "\(r.clean) · corruption: \(r.corruption) · metric: \(r.metric)")
        doc.section(
            "Agreement",
            HTMLDocument.table(
                ["grid", "cells", "Spearman ρ (estimate vs patching)"],
                r.grids.map { [$0.hook, String($0.rows.count * $0.cols.count), String(format: "%.3f", $0.spearman)] }),
            note:
                String(format: "Metric: clean %.3f, corrupted %.3f. ", r.cleanValue, r.corruptValue)
                + "Each cell is the metric change from patching that activation from the clean run into the "
                + "corrupted one: measured (one run per cell), or estimated as (a_clean − a_corrupt) · ∂m/∂a at the "
                + "corrupted run (one backward pass for every cell; Nanda 2023, Kramár et al. 2024).")
        for g in r.grids {
            let all = (g.estimated + g.patched).flatMap { $0 }
            let m = all.map(abs).max() ?? 1
            func map(_ v: [[Double]], _ what: String) -> String {
                Plot.heatmap(
                    v, rowLabels: g.rows, colLabels: g.cols.map { LensReport.shortToken($0) }, title: what,
                    scale: .diverging, range: (-m, m),
                    cellText: { i, j in
                        String(
                            format: "%@ × %@: estimated %.4f, patched %.4f", g.rows[i], g.cols[j], g.estimated[i][j],
                            g.patched[i][j])
                    }, cell: g.cols.count > 40 ? 0 : 24)
            }
            let scatter = Plot.lines(
                [(name: "cell", points: Array(zip(g.estimated.flatMap { $0 }, g.patched.flatMap { $0 })))],
                title: "Each cell: estimated against patched metric change", xLabel: "estimated", yLabel: "patched",
                connect: false)
            doc.section(
                g.hook,
                map(g.estimated, "Attribution patching (estimate)") + map(g.patched, "Activation patching") + scatter,
                note: String(
                    format: "Spearman ρ = %.3f over %d cells; both maps share one colour scale.", g.spearman,
                    g.rows.count * g.cols.count))
        }
        if let ig = r.integratedGradients {
            let m = ig.values.flatMap { $0 }.map(abs).max() ?? 1
            let cols = (0..<(ig.values.first?.count ?? 0)).map {
                String(format: "%.2fs", Double($0 * ig.frameStep) * 0.01)
            }
            let bins = (0..<ig.values.count).map { "mel \($0)" }
            doc.section(
                "Integrated gradients on the log-mel",
                Plot.heatmap(
                    ig.spectrogram.reversed(), rowLabels: bins.reversed(), colLabels: cols,
                    title: "Clean log-mel (highest bin at the top)")
                    + Plot.heatmap(
                        ig.values.reversed(), rowLabels: bins.reversed(), colLabels: cols,
                        title: "Attribution from the corrupted clip's log-mel to the clean one's", scale: .diverging,
                        range: (-m, m),
                        cellText: { i, j in
                            String(
                                format: "%@ at %@: %.5f", bins[ig.values.count - 1 - i], cols[j],
                                ig.values[ig.values.count - 1 - i][j])
                        }),
                note: String(
                    format: "%d steps (Sundararajan et al. 2017). The attributions sum to %.4f; the metric moved by "
                        + "%.4f from the corrupted to the clean log-mel (completeness: these approach each other with "
                        + "more steps). Columns pool %d frames of 10 ms.", ig.steps, ig.total, ig.expected,
                    ig.frameStep))
        }
        return doc
    }
}
