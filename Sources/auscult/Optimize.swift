// `auscult optimize`: a log-mel window made to excite a neuron, an SAE latent or a token.
import ArgumentParser
import AuscultAudio
import AuscultLens
import AuscultSAE
import AuscultTensor
import AuscultWhisper
import Foundation

struct Optimize: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Optimise a log-mel window (Adam) to excite a neuron, an SAE latent or a token.",
        discussion: """
            Gradient ascent on Whisper's log-mel, from silence or a clip (--from), as er537's
            "Interpreting OpenAI's Whisper" optimised inputs for encoder neurons. One target:
              --neuron HOOK:INDEX   the mean of a neuron over --frames (default: all)
              --latent INDEX --sae DIR   an SAE latent's pre-activation at the SAE's hook
              --token ID --position P    the log-probability of a token, teacher-forced on
                                         --tokens (default: the prompt, then ID at P)
            For a neuron, optimise its pre-activation (mlp.hook_pre): from silence GELU's
            output sits just below 0, where ascent only flattens it.
            Writes results.json (the metric per step), mel.safetensors (the optimised
            window at audio.hook_mel) and report.html.

            Examples:
              auscult optimize --neuron encoder.blocks.2.mlp.hook_pre:25 --steps 50 --out out/n25
              auscult optimize --latent 17 --sae sae/ --from data/clips/jfk.wav --out out/l17
            """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: ArgumentHelp("A neuron: hook point and index along its last axis.", valueName: "hook:index"))
    var neuron: String?
    @Option(help: "An SAE latent (with --sae).") var latent: Int?
    @Option(help: ArgumentHelp("SAE checkpoint directory (for --latent).", valueName: "dir")) var sae: String?
    @Option(help: "A token id whose log-probability to raise (with --position).") var token: Int?
    @Option(help: "For --token: the position (prompt included) that predicts it.") var position: Int?
    @Option(help: "For --token: the decoder's input token ids, comma-separated (default: the prompt).") var tokens:
        String?
    @Option(help: ArgumentHelp("Encoder frames A:B (20 ms) the neuron or latent is averaged over.", valueName: "A:B"))
    var frames: String?
    @Option(help: "Start from this clip's log-mel (default: silence).") var from: String?
    @Option(help: "Adam steps.") var steps: Int = 100
    @Option(help: "Adam's learning rate, in log-mel units.") var lr: Float = 0.02
    @Option(help: "Output directory.") var out: String

    func run() throws {
        guard (1...10_000).contains(steps) else { throw ValidationError("--steps wants 1…10000, got \(steps)") }
        guard lr.isFinite && lr > 0 && lr <= 10 else {
            throw ValidationError("--lr wants a value in (0, 10], got \(lr)")
        }
        let targets = [neuron != nil, latent != nil, token != nil].filter { $0 }.count
        guard targets == 1 else { throw ValidationError("give exactly one of --neuron, --latent, --token") }
        var rows: Range<Int>?
        if let frames {
            let p = frames.split(separator: ":").map { Int($0) }
            guard p.count == 2, let a = p[0], let b = p[1], 0 <= a, a < b, b <= 1500 else {
                throw ValidationError("--frames wants A:B with 0 ≤ A < B ≤ 1500, got '\(frames)'")
            }
            rows = a..<b
        }
        let loaded = try LoadedModel(modelOptions.model)
        let metric: GradientMetric, what: String
        var forced: [Int]?
        if let neuron {
            guard let colon = neuron.lastIndex(of: ":"), let index = Int(neuron[neuron.index(after: colon)...]) else {
                throw ValidationError("--neuron wants HOOK:INDEX, got '\(neuron)'")
            }
            let hook = HookName(stringLiteral: String(neuron[..<colon]))
            metric = .neuron(hook, index, over: rows)
            what = "neuron \(index) of \(hook.name)"
        } else if let latent {
            guard let sae else { throw ValidationError("--latent needs --sae DIR") }
            let model = try SAECheckpoint.load(sae)
            guard let hook = SAECheckpoint.origin(sae).hook else {
                throw ValidationError("\(sae)/cfg.json names no hook_name")
            }
            metric = model.latentMetric(HookName(stringLiteral: hook), latent, over: rows)
            what = "latent \(latent) of \(sae) at \(hook)"
        } else {
            guard let position else { throw ValidationError("--token needs --position P") }
            var ids = try tokens.map { try InterventionOptions.ints($0, "--tokens") } ?? loaded.prompt()
            if tokens == nil && ids.count <= position + 1 {
                ids += [Int](repeating: token!, count: position + 2 - ids.count)
            }
            metric = .logProbability(positions: [position], tokens: [token!])
            forced = ids
            what = "log-probability of token \(token!) at position \(position)"
        }
        var start = InputOptimization(loaded: loaded).silence()
        var audioFrames = 3000
        if let from {
            let samples = try AudioClip(contentsOf: from).samples
            start = LogMel(nMels: loaded.model.dims.n_mels).window(samples)
            audioFrames = min(3000, max(1, samples.count / 160))
        }
        var opt = InputOptimization(loaded: loaded)
        opt.steps = steps
        opt.learningRate = lr
        let progress = ProgressReporter(total: steps, label: "Adam steps")
        let (mel, values) = try opt.run(from: start, metric: metric, tokens: forced, progress: progress)
        progress.finish()
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let path = { (out as NSString).appendingPathComponent($0) }
        let summary: [String: Any] = [
            "target": what, "from": from ?? "silence", "steps": steps, "lr": Double(lr),
            "values": values.map { $0.isFinite ? $0 : 0 }, "model": loaded.name,
        ]
        try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys]).write(
            to: URL(fileURLWithPath: path("results.json")), options: .atomic)
        try SafeTensorsFile.write(
            [HookName.mel.name: mel], metadata: ["target": what, "model": loaded.name], to: path("mel.safetensors"))
        try OptimizationReport.page(
            title: "Input optimisation — \(what)",
            subtitle: "from \(from ?? "silence") · \(steps) Adam steps, lr \(lr)",
            values: values, start: start, result: mel, frames: audioFrames
        ).write(to: path("report.html"))
        print(String(format: "%@: %.4f → %.4f in %d steps", what, values.first!, values.last!, steps))
        print("results: \(path("results.json"))\nlog-mel: \(path("mel.safetensors"))\nreport:  \(path("report.html"))")
    }
}
