// `auscult probe`: a linear probe on a hook point's encoder frames, with held-out accuracy.
import ArgumentParser
import AuscultLens
import AuscultWhisper
import Foundation

struct Probe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Fit a linear probe on a hook point's encoder frames; report held-out accuracy.",
        discussion: """
            Labels each audio frame (20 ms) of each clip: --task speech (within 35 dB of the
            clip's loudest frame, 1, or quieter: pauses and silence, 0) or --task word:TEXT
            (inside a word containing TEXT, from the transcript's word timing by the
            alignment heads, which is approximate). Fits logistic (or linear)
            regression with weight decay on the first two thirds of the clips and scores the
            rest against the majority label (Alain & Bengio 2016).

            Example:
              auscult probe --hook encoder.blocks.2.hook_resid_post --data data/clips --out out/probe
            """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup(title: "Prompt and prefix (the transcript a word task labels by)") var promptOptions: PromptOptions
    @Option(help: "An encoder hook point with one row per frame.") var hook: String
    @Option(help: "Dataset folder or a folder of audio files.") var data: String
    @Option(help: "Use only the first N clips.") var limit: Int?
    @Option(help: ArgumentHelp("speech, or word:TEXT.", valueName: "task")) var task: String = "speech"
    @Option(help: "logistic or linear.") var kind: String = "logistic"
    @Option(help: "Weight decay on the probe's weights.") var weightDecay: Float = 1e-3
    @Option(help: "Adam steps (full batch).") var steps: Int = 300
    @Option(help: "Output directory (results.json, report.html).") var out: String

    func run() throws {
        if let l = limit, l < 3 {
            throw ValidationError("--limit must be at least 3 (two thirds train, one third held out)")
        }
        guard weightDecay >= 0 && weightDecay.isFinite else {
            throw ValidationError("--weight-decay wants a finite value ≥ 0, got \(weightDecay)")
        }
        guard (1...100_000).contains(steps) else { throw ValidationError("--steps wants 1…100000, got \(steps)") }
        guard let k = LinearProbe.Kind(rawValue: kind) else {
            throw ValidationError("--kind is logistic or linear, not '\(kind)'")
        }
        let probeTask: ProbeTask
        if task == "speech" {
            probeTask = .speech
        } else if task.hasPrefix("word:"), task.count > 5 {
            probeTask = .word(String(task.dropFirst(5)))
        } else {
            throw ValidationError("--task is speech or word:TEXT, not '\(task)'")
        }
        let loaded = try LoadedModel(modelOptions.model)
        var items = try Dataset.load(data).items
        if let limit { items = Array(items.prefix(limit)) }
        let (ok, skipped) = Dataset.readable(items)
        for (item, error) in skipped {
            FileHandle.standardError.write("skipping \(item.path): \(error)\n".data(using: .utf8)!)
        }
        var job = ProbeJob(loaded: loaded, hook: HookName(stringLiteral: hook))
        try promptOptions.apply(to: &job.decoding, loaded)
        job.task = probeTask; job.kind = k; job.weightDecay = weightDecay; job.steps = steps
        let progress = ProgressReporter(total: ok.count, label: "clips")
        let r = try job.run(ok, progress: progress)
        progress.finish()
        let (results, report) = try ResultFiles.write(
            r, page: ProbeReport.page(r, title: "Linear probe — \(r.hook)"), to: out)
        let score = k == .logistic ? "accuracy" : "R²"
        print(
            String(
                format: "%@ probe on %@ (%@): %@ %.3f training, %.3f held out (majority label %.3f; %d + %d frames)",
                kind, r.hook, task, score, r.trainScore, r.heldOutScore, r.majorityBaseline, r.trainFrames,
                r.heldOutFrames))
        print("results: \(results)\nreport:  \(report)")
    }
}
