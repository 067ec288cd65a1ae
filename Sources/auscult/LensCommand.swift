// `auscult lens`: how deep is the answer formed? Logit lens, encoder lens, direct logit
// attribution and attention patterns for a few clips.
import ArgumentParser
import AuscultLens
import AuscultWhisper
import Foundation

struct LensCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "lens",
        abstract: "Decoder logit lens, encoder lens, direct logit attribution and attention views for clips.",
        discussion: """
            The decoder is teacher-forced on each clip's greedy transcript (prompt, tokens,
            end-of-text). For the stream after every decoder block: top-k tokens,
            probability and rank of the token the final layer predicts, and
            KL(final ‖ layer). The encoder lens decodes from ln_post of every intermediate
            encoder block. Attribution splits the logit of each next token into every
            head's and MLP's direct contribution. Attention patterns are drawn per head.
            Per clip:
            OUT/clips/<clip>.json and .html (kept, so an interrupted run resumes); then
            OUT/results.json (array of clip results) and OUT/report.html.

            Examples:
              auscult lens data/clips/jfk.wav --out out/lens
              auscult lens --data data/clips --limit 3 --out out/lens
            """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup(title: "Prompt and prefix") var promptOptions: PromptOptions
    @Option(help: "Dataset folder to take clips from (with --limit).") var data: String?
    @Option(help: "Use only the first N clips of --data.") var limit: Int = 3
    @Option(help: "Output directory.") var out: String
    @Option(help: "Tokens listed per lens cell.") var topK: Int = 5
    @Flag(help: "Skip the attention pattern images (faster, smaller report).") var noAttention = false
    @Flag(help: "Recompute clips already in --out.") var fresh = false
    @Flag(
        help: ArgumentHelp(
            "Also train a tuned lens (per-layer affine translators minimising KL to the final layer) on these clips "
                + "and compare it with the logit lens.")
    )
    var tuned = false
    @Option(help: "Adam steps per layer for --tuned.") var tunedSteps: Int = 60
    @Argument(help: "Audio files.") var files: [String] = []

    func validate() throws {
        if files.isEmpty && data == nil { throw ValidationError("give audio files or --data DIR") }
        if topK < 1 { throw ValidationError("--top-k must be at least 1") }
    }

    func run() throws {
        let loaded = try LoadedModel(modelOptions.model)
        var items = files.map {
            DatasetItem(
                id: (($0 as NSString).lastPathComponent as NSString).deletingPathExtension, path: $0, reference: nil)
        }
        if let data { items += Array(try Dataset.load(data).items.prefix(limit)) }
        var lens = Lens(loaded: loaded)
        lens.topK = topK
        try promptOptions.apply(to: &lens.decoding, loaded)
        var job = LensJob(lens: lens, directory: out)
        job.attention = !noAttention
        job.fresh = fresh
        job.tunedSteps = tuned ? tunedSteps : nil
        let bar = ProgressReporter(total: (loaded.model.dims.n_text_layer + 1) * tunedSteps, label: "tuned lens steps")
        var last = 0
        let outcome = try job.run(items, progress: ProgressReporter(total: items.count, label: "lens clips")) {
            done, total in
            bar.advance(by: done - last)
            last = done
            if done == total { bar.finish() }
        }
        for (item, error) in outcome.skipped {
            FileHandle.standardError.write("skipping \(item.path): \(error)\n".data(using: .utf8)!)
        }
        if let summary = outcome.tuned {
            for (i, name) in summary.layers.enumerated() {
                print(
                    String(
                        format: "tuned lens %@: KL %.3f → %.3f, top-1 agreement %.2f → %.2f", name,
                        summary.klLogitLens[i], summary.klTunedLens[i], summary.top1LogitLens[i],
                        summary.top1TunedLens[i]))
            }
        }
        for r in outcome.results {
            let last = r.decoderLens.last!
            let agree = r.decoderLens.map { l in zip(l.top1, last.top1).filter { $0 == $1 }.count }
            print(
                "\(r.clip): top-1 agreement with the final layer per layer "
                    + "\(agree.map(String.init).joined(separator: "/")) of \(last.top1.count) positions")
        }
        print("results: \(outcome.resultsPath)\nreport:  \(outcome.reportPath)")
    }
}
