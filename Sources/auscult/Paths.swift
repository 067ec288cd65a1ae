// `auscult paths`: audio or language model? Per-token loss with the audio taken away, and each
// component's direct contribution to the log-probability (PathAnalysis).
import ArgumentParser
import AuscultLens
import AuscultWhisper
import Foundation

struct Paths: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Where the words come from: per-token loss without the audio, and direct contributions.",
        discussion: """
            Teacher-forces each clip's transcript (the clean model's own, or --reference for
            the dataset's) and scores its tokens and end-of-text by cross-entropy under four
            conditions: the clean run; the decoder reading the encoder output of 30 s of
            silence (language alone); every cross-attention output zeroed at once; and a
            unigram model of the other clips' texts. On the clean run, each component's
            direct contribution (through the final LayerNorm's centring and cached scale) to
            logit(target) − E_p[logit], which with the LayerNorm's bias adds up to it exactly,
            and the mean norm of what each component writes. Definitions: docs/paths.md.

            Examples:
              auscult paths --out out/paths
              auscult paths --model base --data data/clips --limit 10 --out out/paths-base
            """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Dataset folder or a folder of audio files.") var data: String = "data/clips"
    @Option(help: "Use only the first N clips.") var limit: Int?
    @Flag(help: "Score the dataset's reference transcripts instead of the clean model's own.") var reference = false
    @Option(help: "Add-α smoothing of the unigram baseline.") var smoothing: Double = 0.1
    @Option(help: "Output directory (results.json, report.html).") var out: String = "out/paths"

    func run() throws {
        guard smoothing.isFinite, smoothing > 0, smoothing <= 100 else {
            throw ValidationError("--smoothing wants a number in (0, 100], got \(smoothing)")
        }
        if let l = limit, l < 1 { throw ValidationError("--limit must be at least 1, got \(l)") }
        let loaded = try LoadedModel(modelOptions.model)
        var analysis = PathAnalysis(loaded: loaded)
        analysis.onReference = reference
        analysis.unigramSmoothing = smoothing
        let ok = try DataOptions.readableClips(data, limit: limit)
        let progress = ProgressReporter(
            total: PathAnalysis.steps(clips: ok.count), label: "clips transcribed and scored")
        let r = try analysis.run(clips: ok, progress: progress)
        progress.finish()
        for s in r.skipped { FileHandle.standardError.write("left out \(s)\n".data(using: .utf8)!) }
        let (results, report) = try ResultFiles.write(
            r, page: PathReport.page(r, title: "Audio or language — \(r.model)"), to: out)
        print("per-token loss of the \(r.text)s (\(r.conditions.first?.tokens ?? 0) tokens):")
        for c in r.conditions {
            let name = c.name.padding(toLength: 20, withPad: " ", startingAt: 0)
            print(String(format: "  %@ %.3f nats   top-1 %5.1f %%", name, c.loss, 100 * c.accuracy))
        }
        print("largest direct contributions (to logit(target) − E_p[logit]; to the raw logit; norm written):")
        for c in r.components.sorted(by: { abs($0.direct) > abs($1.direct) }).prefix(5) {
            let name = c.name.padding(toLength: 40, withPad: " ", startingAt: 0)
            print(String(format: "  %@ %+.3f  %+.2f  %.2f", name, c.direct, c.directLogit, c.norm))
        }
        print(String(format: "decomposition adds up within %.2g", r.sumError))
        print("results: \(results)\nreport:  \(report)")
    }
}
