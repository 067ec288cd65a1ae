// The page of `auscult eval-sae`: headline numbers, the feature-density histogram, WER and
// cross-entropy per condition, and every clip's transcripts side by side.
import AuscultReport
import Foundation

public enum SAEReport {
    public static func evaluation(_ r: SAEEvaluation, checkpoint: String) -> HTMLDocument {
        var doc = HTMLDocument(
            title: "SAE evaluation — \(r.hook)",
            subtitle: "\(checkpoint) · \(r.architecture), d_sae \(r.dSAE) · \(r.clips.count) clips, \(r.rows) rows")
        let pct = { (v: Double?) in v.map { String(format: "%.2f %%", $0) } ?? "n/a" }
        doc.section(
            "Reconstruction",
            HTMLDocument.table(
                ["FVU", "explained variance", "L0", "dead", "dense (> \(r.denseThreshold))"],
                [
                    [
                        String(format: "%.4f", r.fvu), String(format: "%.4f", r.explainedVariance),
                        String(format: "%.1f", r.l0),
                        String(format: "%.1f %%", 100 * r.deadFraction),
                        String(format: "%.1f %%", 100 * r.denseFraction),
                    ]
                ]),
            note:
                "Measured on the clean activations at the hook, frames holding audio only. Dead: never fired on these "
                + "clips."
        )
        doc.section(
            "Feature density", densityBars(r.densityHistogram, of: "latents"),
            note:
                "Fraction of rows in which each latent fires, binned by half decades (the first bar: latents that "
                + "never fired)."
        )
        doc.section(
            "Downstream",
            HTMLDocument.table(
                ["condition", "WER vs reference", "WER vs clean", "CE (nats/token)"],
                [
                    ["clean", pct(r.werClean), "0.00 %", String(format: "%.4f", r.ceClean)],
                    ["SAE spliced", pct(r.werSpliced), pct(r.werSplicedVsClean), String(format: "%.4f", r.ceSpliced)],
                    ["hook zeroed", pct(r.werZeroed), pct(r.werZeroedVsClean), String(format: "%.4f", r.ceZeroed)],
                ])
                + Plot.bars(
                    [("clean", r.ceClean), ("spliced", r.ceSpliced), ("zeroed", r.ceZeroed)],
                    title: "Cross-entropy of the clean transcript", unit: " nats"),
            note: String(
                format: "Fraction of loss recovered: %.3f = (CE_zeroed − CE_spliced) / (CE_zeroed − CE_clean).",
                r.lossRecovered))
        doc.section(
            "Transcripts",
            HTMLDocument.table(
                ["clip", "clean", "SAE spliced", "zeroed", "CE clean / spliced / zeroed"],
                r.clips.map { c in
                    [
                        htmlEscape(c.id), htmlEscape(c.clean), htmlEscape(c.spliced), htmlEscape(c.zeroed),
                        String(format: "%.3f / %.3f / %.3f", c.ceClean, c.ceSpliced, c.ceZeroed),
                    ]
                }))
        return doc
    }
}

extension SAEReport {
    /// The page of `auscult train-sae`: FVU, L0, dead fraction and learning rate over the steps.
    public static func training(_ log: [SAELogLine], hook: String, config: SAEConfig, rows: Int) -> HTMLDocument {
        var doc = HTMLDocument(
            title: "SAE training — \(hook)",
            subtitle:
                "\(config.architecture.rawValue), d_sae \(config.dSAE), k \(config.k), \(rows) rows of \(config.dIn)")
        let x = log.map { Double($0.step) }
        func curve(_ name: String, _ values: [Double], _ title: String, _ unit: String) -> String {
            Plot.lines([(name, Array(zip(x, values)))], title: title, xLabel: "step", yLabel: unit)
        }
        doc.section(
            "Training curves",
            "<div class=\"plots\">"
                + curve("FVU", log.map(\.fvu), "Fraction of variance unexplained", "FVU")
                + curve("L0", log.map(\.l0), "Active latents per row", "L0")
                + curve("dead", log.map(\.deadFraction), "Dead fraction", "fraction")
                + curve("lr", log.map { Double($0.lr) }, "Learning rate", "lr") + "</div>")
        return doc
    }
}

extension SAEReport {
    /// Bars of a density histogram (`SAEEvaluation.histogram`): `what` (latents, features) per
    /// half decade of log10 firing density, the first bar those that never fired.
    static func densityBars(_ histogram: [SAEEvaluation.DensityBin], of what: String) -> String {
        let bins = histogram.map { b in
            (label: b.log10Low.isInfinite ? "never" : String(format: "%.1f", b.log10Low), value: Double(b.latents))
        }
        return Plot.bars(
            bins, title: what.prefix(1).uppercased() + what.dropFirst() + " by log10 firing density", unit: " " + what)
    }
}
