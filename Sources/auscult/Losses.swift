// `auscult losses`: models (and conditions, and direct paths) compared by per-word loss and PCA.
import ArgumentParser
import AuscultLens
import AuscultSAE
import AuscultWhisper
import Foundation

struct Losses: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare models by what they find hard: per-word losses on the reference transcripts, and PCA.",
        discussion: """
            Every subject scores the dataset's reference transcripts, teacher-forced on the
            clip's audio: each model of --models, each model under each --condition (the
            condition syntax of ablate), each model with each --sae spliced in (its
            reconstruction replacing the activation at its hook, on the frames holding audio;
            models whose hook width differs are left out), and with --direct-path each model's
            zero-layer path (token embedding → final LayerNorm → unembedding: bigram
            statistics). A word's
            loss is the sum of its tokens' (so models with different tokenizers compare);
            PCA over the subjects' loss vectors places each subject, and lists the words that
            load most on each component (Olsson et al. 2022). Definitions: docs/losses.md.

            Examples:
              auscult losses --out out/losses
              auscult losses --models tiny.en --condition 'skip decoder.blocks.3' \\
                  --condition 'zero decoder.blocks.*.hook_cross_attn_out' --direct-path --out out/losses
              auscult losses --models tiny.en --sae out/sae/topk --out out/losses-sae
            """)

    @Option(help: ArgumentHelp("Models, comma-separated.", valueName: "names")) var models: String = "tiny.en,base"
    @Option(help: ArgumentHelp("A condition every model is also scored under (repeatable).", valueName: "spec"))
    var condition: [String] = []
    @Option(
        help: ArgumentHelp(
            "An SAE checkpoint directory spliced in at its cfg.json hook_name; each model it fits is also scored with "
                + "it (repeatable).",
            valueName: "dir"))
    var sae: [String] = []
    @Flag(help: "Also score each model's direct path from token embedding to unembedding.") var directPath = false
    @Option(help: "Dataset folder with reference transcripts.") var data: String = "data/clips"
    @Option(help: "Use only the first N clips.") var limit: Int?
    @Option(help: "Output directory (results.json, report.html).") var out: String = "out/losses"

    func run() throws {
        if let l = limit, l < 1 { throw ValidationError("--limit must be at least 1, got \(l)") }
        let names = models.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !names.isEmpty else { throw ValidationError("--models names no model") }
        let specs = try condition.map { c in
            do { return try ConditionSpec(parsing: c) } catch { throw ValidationError("--condition '\(c)': \(error)") }
        }
        let ok = try DataOptions.readableClips(data, limit: limit)
        let saes = try sae.map { dir -> (name: String, sae: SparseAutoencoder, hook: String) in
            guard let hook = SAECheckpoint.origin(dir).hook else {
                throw ValidationError("--sae \(dir): its cfg.json names no hook_name")
            }
            return ("SAE \((dir as NSString).lastPathComponent) at \(hook)", try SAECheckpoint.load(dir), hook)
        }
        var fitted = Set<Int>()
        var subjects = [LossComparison.Subject]()
        for name in names {
            let loaded = try LoadedModel(name)
            subjects.append(.init(name: name, loaded: loaded))
            for spec in specs {
                let edits = try Intervention.make(spec, model: loaded, clips: ok.map { .file($0.path) })
                subjects.append(.init(name: "\(name) · \(spec)", loaded: loaded, interventions: edits))
            }
            for (k, s) in saes.enumerated() {
                // An SAE trained at another width than this model's hook is for another model.
                let checked: SAEEvaluator
                do {
                    checked = try SAEEvaluator(loaded: loaded, sae: s.sae, hook: s.hook)
                } catch let e as HookError where e.code == .shapeMismatch { continue }
                fitted.insert(k)
                let hook = checked.hook, encoderSide = hook.hasPrefix("encoder.")
                subjects.append(
                    .init(name: "\(name) · \(s.name)", loaded: loaded) { frames in
                        try SAESplice(sae: s.sae, hook: hook, frames: encoderSide ? [frames] : nil)
                    })
            }
            if directPath { subjects.append(.init(name: "\(name) · direct path", loaded: loaded, directPath: true)) }
        }
        if let k = saes.indices.first(where: { !fitted.contains($0) }) {
            throw ValidationError(
                "--sae \(sae[k]): it reads \(saes[k].sae.config.dIn) values at \(saes[k].hook), which no model of "
                    + "--models (\(names.joined(separator: ", "))) has")
        }
        let comparison = LossComparison(subjects: subjects)
        let withText = ok.filter { !($0.reference ?? "").trimmingCharacters(in: .whitespaces).isEmpty }
        guard !withText.isEmpty else { throw ValidationError("--data \(data): no clip has a reference transcript") }
        let progress = ProgressReporter(total: comparison.steps(clips: withText.count), label: "subject × clip")
        let r = try comparison.run(clips: withText, progress: progress)
        progress.finish()
        let (results, report) = try ResultFiles.write(r, page: LossReport.page(r, title: "Per-word losses"), to: out)
        print("\(r.words) words of \(r.clips.count) reference transcripts; mean loss per word and place on the PCs:")
        let width = max(44, r.points.map(\.name.count).max() ?? 0)
        for p in r.points {
            let coords = p.coordinates.map { String(format: "%+.2f", $0) }.joined(separator: " ")
            print(
                String(
                    format: "  %@ %6.3f   %@", p.name.padding(toLength: width, withPad: " ", startingAt: 0),
                    p.meanLoss, coords))
        }
        for (k, c) in r.components.enumerated() {
            print(
                String(format: "PC%d (%.0f %%): + ", k + 1, 100 * c.explained)
                    + c.positive.prefix(5).map { "“\($0.word)”" }.joined(separator: " ") + "   − "
                    + c.negative.prefix(5).map { "“\($0.word)”" }.joined(separator: " "))
        }
        print("results: \(results)\nreport:  \(report)")
    }
}
