// `auscult attribute`: attribution patching (gradient × activation difference) beside real
// activation patching on the same grids, and integrated gradients on the log-mel.
import ArgumentParser
import AuscultLens
import AuscultWhisper
import Foundation

struct Attribute: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Attribution patching from a clean clip into a corrupted one, beside real patching on the same grids.",
        discussion: """
            Estimates, with one backward pass of the corrupted run, what patching each
            activation from the clean run would do to the metric: (a_clean − a_corrupt) ·
            ∂m/∂a (Nanda 2023; Kramár et al. 2024, AtP). The grids are those of `auscult
            patch` (decoder resid_pre by layer × position, encoder resid_pre by layer ×
            frame window, every head's z), which also runs, one patched run per cell, so
            each grid prints Spearman's rank correlation of estimate and measurement.
            Corruptions and metrics as for `patch` (logprob or logit-diff: the metric must
            have a gradient).

            Example:
              auscult attribute data/clips/jfk.wav --noise 0 --out out/attribute
              auscult attribute data/clips/jfk.wav --silence 1:4 --integrated-gradients 16 \\
                  --out out/attribute
            """)

    @OptionGroup var modelOptions: ModelOptions
    @Argument(help: "The clean clip.") var clean: String
    @OptionGroup var pair: PatchingOptions
    @Option(
        help: ArgumentHelp(
            "Also integrated gradients of the metric on the log-mel, from the corrupted clip's to the clean one's, "
                + "with this many steps (each a forward and a backward pass)."))
    var integratedGradients: Int?
    @Option(help: "Output directory (results.json, report.html).") var out: String

    func run() throws {
        let c = try pair.corruption()
        if let n = integratedGradients, n < 1 || n > 1000 {
            throw ValidationError("--integrated-gradients wants 1…1000 steps, got \(n)")
        }
        let loaded = try LoadedModel(modelOptions.model)
        let a = AttributionPatching(
            patching: try pair.patching(loaded, allowWER: false), integratedGradientSteps: integratedGradients)
        let progress = ProgressReporter(total: a.steps, label: "patching grids and gradients")
        let r = try a.run(clean: clean, corruption: c, progress: progress)
        progress.finish()
        let (results, report) = try ResultFiles.write(
            r,
            page: AttributionReport.page(r, title: "Attribution patching — \((clean as NSString).lastPathComponent)"),
            to: out)
        print(String(format: "metric (%@): clean %.3f, corrupted %.3f", r.metric, r.cleanValue, r.corruptValue))
        for g in r.grids {
            print(
                String(format: "  %@: Spearman ρ %.3f over %d cells", g.hook, g.spearman, g.rows.count * g.cols.count))
        }
        if let ig = r.integratedGradients {
            print(
                String(
                    format: "  integrated gradients (%d steps): sum %.4f for a metric change of %.4f", ig.steps,
                    ig.total,
                    ig.expected))
        }
        print("results: \(results)\nreport:  \(report)")
    }
}
