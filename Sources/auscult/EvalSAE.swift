// `auscult eval-sae`: an SAE's reconstruction quality and what splicing it in does to transcripts.
import ArgumentParser
import AuscultReport
import AuscultSAE
import AuscultWhisper
import Foundation

struct EvalSAE: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "eval-sae",
        abstract: "Evaluate an SAE: FVU, L0, dead/dense latents, and WER / cross-entropy with it spliced in.",
        discussion: """
            Each clip runs three times: clean, with the SAE's reconstruction in place of
            the activation at its hook (encoder hooks: only the frames that hold audio),
            and with that activation zeroed. Cross-entropy is the mean per-token loss of
            the clean transcript, read teacher-forced under each condition; the fraction of
            loss recovered is (CE_zeroed − CE_spliced) / (CE_zeroed − CE_clean). FVU, L0
            and densities are measured on the clean activations of the same clips. OUT gets
            eval.json and report.html (density histogram, transcripts side by side).

            Example:
              auscult eval-sae --sae sae/ --data data/clips --out eval/
            """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup(title: "Prompt and prefix") var promptOptions: PromptOptions
    @Option(help: ArgumentHelp("SAE checkpoint directory (SAELens or sparsify layout).", valueName: "dir")) var sae:
        String
    @Option(help: ArgumentHelp("Hook point (default: cfg.json's hook_name).", valueName: "name")) var saeHook: String?
    @Option(help: "Dataset folder.") var data: String
    @Option(help: "Use only the first N clips.") var limit: Int?
    @Option(help: "Output directory (eval.json, report.html).") var out: String
    @Option(help: "Clips per encoder batch.") var batchSize: Int = 8
    @Option(help: "Clips whose three transcripts are generated together (3 sequences each).") var waveClips: Int = 53
    @Option(help: "A latent is dense when it fires in more than this fraction of rows.") var denseThreshold: Double =
        0.1

    func validate() throws {
        guard batchSize >= 1 else { throw ValidationError("--batch-size \(batchSize): must be at least 1") }
        guard waveClips >= 1 else { throw ValidationError("--wave-clips \(waveClips): must be at least 1") }
        if let limit, limit < 1 { throw ValidationError("--limit \(limit): must be at least 1") }
        guard denseThreshold > 0 && denseThreshold < 1 else {
            throw ValidationError("--dense-threshold \(denseThreshold): must lie in (0, 1)")
        }
    }

    func run() throws {
        let loaded = try LoadedModel(modelOptions.model)
        let model = try SAECheckpoint.load(sae)
        guard let hook = saeHook ?? SAECheckpoint.origin(sae).hook else {
            throw ValidationError("\(sae)/cfg.json names no hook_name; give --sae-hook")
        }
        var evaluator = try SAEEvaluator(loaded: loaded, sae: model, hook: hook)
        evaluator.batchSize = batchSize
        evaluator.waveClips = waveClips
        evaluator.denseThreshold = denseThreshold
        (evaluator.prompt, evaluator.prefix) = try promptOptions.tokens(loaded)
        var items = try Dataset.load(data).items
        if let limit { items = Array(items.prefix(limit)) }
        let result = try evaluator.evaluate(
            items,
            progress: ProgressReporter(
                total: SAEEvaluator.progressUnits(clips: items.count), label: "clips encoded + decoded"))
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        try JSONEncoder.results(pretty: true).encode(result).write(
            to: URL(fileURLWithPath: (out as NSString).appendingPathComponent("eval.json")), options: .atomic)
        try SAEReport.evaluation(result, checkpoint: sae).write(
            to: (out as NSString).appendingPathComponent("report.html"))
        let wer = { (v: Double?) in v.map { String(format: "%.2f %%", $0) } ?? "n/a" }
        print(
            String(
                format: "%@ · %d rows · FVU %.4f (EV %.4f) · L0 %.1f · dead %.3f · dense %.3f", result.hook,
                result.rows,
                result.fvu, result.explainedVariance, result.l0, result.deadFraction, result.denseFraction))
        print("WER clean \(wer(result.werClean)) · spliced \(wer(result.werSpliced)) · zeroed \(wer(result.werZeroed))")
        print(
            String(
                format: "CE clean %.4f · spliced %.4f · zeroed %.4f · loss recovered %.3f → %@", result.ceClean,
                result.ceSpliced,
                result.ceZeroed, result.lossRecovered, out))
    }
}
