// `auscult losses`: models (and conditions, and direct paths) compared by per-word loss and PCA.
import ArgumentParser
import AuscultLens
import AuscultWhisper
import Foundation

struct Losses: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Compare models by what they find hard: per-word losses on the reference transcripts, and PCA.",
        discussion: """
            Every subject scores the dataset's reference transcripts, teacher-forced on the
            clip's audio: each model of --models, each model under each --condition (the
            condition syntax of ablate), and with --direct-path each model's zero-layer path
            (token embedding → final LayerNorm → unembedding: bigram statistics). A word's
            loss is the sum of its tokens' (so models with different tokenizers compare);
            PCA over the subjects' loss vectors places each subject, and lists the words that
            load most on each component (Olsson et al. 2022). Definitions: docs/losses.md.

            Examples:
              auscult losses --out out/losses
              auscult losses --models tiny.en --condition 'skip decoder.blocks.3' \\
                  --condition 'zero decoder.blocks.*.hook_cross_attn_out' --direct-path --out out/losses
            """)

    @Option(help: ArgumentHelp("Models, comma-separated.", valueName: "names")) var models: String = "tiny.en,base"
    @Option(help: ArgumentHelp("A condition every model is also scored under (repeatable).", valueName: "spec"))
    var condition: [String] = []
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
        var subjects = [LossComparison.Subject]()
        for name in names {
            let loaded = try LoadedModel(name)
            subjects.append(.init(name: name, loaded: loaded))
            for spec in specs {
                let edits = try Intervention.make(spec, model: loaded, clips: ok.map { .file($0.path) })
                subjects.append(.init(name: "\(name) · \(spec)", loaded: loaded, interventions: edits))
            }
            if directPath { subjects.append(.init(name: "\(name) · direct path", loaded: loaded, directPath: true)) }
        }
        let comparison = LossComparison(subjects: subjects)
        let withText = ok.filter { !($0.reference ?? "").trimmingCharacters(in: .whitespaces).isEmpty }
        guard !withText.isEmpty else { throw ValidationError("--data \(data): no clip has a reference transcript") }
        let progress = ProgressReporter(total: comparison.steps(clips: withText.count), label: "subject × clip")
        let r = try comparison.run(clips: withText, progress: progress)
        progress.finish()
        let (results, report) = try ResultFiles.write(r, page: LossReport.page(r, title: "Per-word losses"), to: out)
        print("\(r.words) words of \(r.clips.count) reference transcripts; mean loss per word and place on the PCs:")
        for p in r.points {
            let coords = p.coordinates.map { String(format: "%+.2f", $0) }.joined(separator: " ")
            print(
                String(
                    format: "  %@ %6.3f   %@", p.name.padding(toLength: 44, withPad: " ", startingAt: 0), p.meanLoss,
                    coords))
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
