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
            and the mean norm of what each component writes. Path patching: each decoder
            component's output replaced by its value on silence, for the whole model (total)
            and only on its direct path to the logits (direct); the rest is carried by later
            blocks (indirect).

            Hallucinations: --inputs adds 30 s of silence, white noise or a 440 Hz tone, and
            --sweep replays an ablation sweep's runs that looped to the length limit (zero
            and skip conditions, clips from --data). Every token is also marked as repeated
            when it continues a token pair seen earlier in its text, and the losses,
            contributions and patching are summarised per kind of input for repeated and new
            tokens apart. Definitions: docs/paths.md.

            Examples:
              auscult paths --out out/paths
              auscult paths --model base --data data/clips --limit 10 --out out/paths-base
              auscult paths --inputs dataset,noise,tone,silence --sweep out/ablate --out out/paths-h
            """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup(title: "Prompt and prefix") var promptOptions: PromptOptions
    @Option(help: "Dataset folder or a folder of audio files.") var data: String = "data/clips"
    @Option(help: "Use only the first N clips.") var limit: Int?
    @Flag(help: "Score the dataset's reference transcripts instead of the clean model's own.") var reference = false
    @Option(help: "Add-α smoothing of the unigram baseline.") var smoothing: Double = 0.1
    @Option(
        help: ArgumentHelp(
            "Inputs to score, comma-separated: dataset (the clips of --data), silence, noise, tone.",
            valueName: "list"))
    var inputs: String = "dataset"
    @Option(help: "An ablation sweep's output directory: also score its runs that hit the length limit.")
    var sweep: String?
    @Option(help: "At most this many length-limit runs of --sweep.") var hits: Int = 10
    @Option(help: "Output directory (results.json, report.html).") var out: String = "out/paths"

    func run() throws {
        guard smoothing.isFinite, smoothing > 0, smoothing <= 100 else {
            throw ValidationError("--smoothing wants a number in (0, 100], got \(smoothing)")
        }
        if let l = limit, l < 1 { throw ValidationError("--limit must be at least 1, got \(l)") }
        guard hits >= 1 else { throw ValidationError("--hits must be at least 1, got \(hits)") }
        let kinds = inputs.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
        let known = ["dataset"] + PathInput.syntheticNames
        if let bad = kinds.first(where: { !known.contains($0) }) {
            throw ValidationError("--inputs: '\(bad)' is not one of \(known.joined(separator: ", "))")
        }
        guard !kinds.isEmpty || sweep != nil else { throw ValidationError("--inputs names no input") }
        let loaded = try LoadedModel(modelOptions.model)
        var analysis = PathAnalysis(loaded: loaded)
        analysis.onReference = reference
        analysis.unigramSmoothing = smoothing
        try promptOptions.apply(to: &analysis.decoding, loaded)
        var list = [PathInput]()
        var items = [DatasetItem]()
        if kinds.contains("dataset") || sweep != nil { items = try DataOptions.readableClips(data, limit: limit) }
        if kinds.contains("dataset") { list += try items.map(PathInput.clip) }
        list += try PathInput.synthetic(kinds.filter { $0 != "dataset" })
        if let sweep {
            let (found, left) = try PathInput.limitHits(sweep: sweep, items: items, loaded: loaded, limit: hits)
            for s in left { FileHandle.standardError.write("left out \(s)\n".data(using: .utf8)!) }
            if found.isEmpty {
                FileHandle.standardError.write("\(sweep): no run to replay hit the length limit\n".data(using: .utf8)!)
            }
            list += found
        }
        let progress = ProgressReporter(
            total: PathAnalysis.steps(clips: list.count), label: "inputs transcribed and scored")
        let r = try analysis.run(inputs: list, progress: progress)
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
        print("path patching with the value on silence (loss change in nats: total = direct + through later blocks):")
        for p in r.patching.sorted(by: { abs($0.total) > abs($1.total) }).prefix(5) {
            let name = p.name.padding(toLength: 40, withPad: " ", startingAt: 0)
            print(String(format: "  %@ total %+.3f  direct %+.3f  indirect %+.3f", name, p.total, p.direct, p.indirect))
        }
        if r.groups.count > 1 || r.groups.contains(where: \.repeated) {
            print("by input and token (loss clean / no audio; largest direct contribution):")
            for g in r.groups {
                let top = g.direct.indices.max { g.direct[$0] < g.direct[$1] }.map { r.components[$0].name } ?? "-"
                let name = (g.source + (g.repeated ? " · repeated" : " · new")).padding(
                    toLength: 34, withPad: " ", startingAt: 0)
                print(String(format: "  %@ %4d tokens  %.3f / %.3f  %@", name, g.tokens, g.loss[0], g.loss[1], top))
            }
        }
        print("results: \(results)\nreport:  \(report)")
    }
}
