// `auscult patch`: which parts carry this behaviour? Activation patching clean → corrupted.
import ArgumentParser
import AuscultLens
import AuscultReport
import AuscultWhisper
import Foundation

struct Patch: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Activation patching from a clean clip into a corrupted one, by layer × position, layer × frames and head.",
        discussion: """
            The corrupted clip is another file (--corrupt) or made from the clean one:
            --noise SNR_DB, --silence START:END (seconds), or --shift SECONDS. Each patched
            run takes one activation from the clean run: decoder resid_pre at one token
            position, encoder resid_pre over one frame window (--window frames of 20 ms),
            or one head's z everywhere. Metrics (--metric): logprob (of the clean
            transcript, teacher-forced; default), logit-diff (--tokens A,B token ids at
            --position P), wer (greedy transcript against the clean one). Grids are
            reported as the restored fraction (m − m_corrupt)/(m_clean − m_corrupt).

            Example:
              auscult patch data/clips/jfk.wav --noise 0 --out out/patch
            """)

    @OptionGroup var modelOptions: ModelOptions
    @Argument(help: "The clean clip.") var clean: String
    @OptionGroup var pair: PatchingOptions
    @Option(help: "Output directory (results.json, report.html).") var out: String

    func run() throws {
        let c = try pair.corruption()
        let loaded = try LoadedModel(modelOptions.model)
        let p = try pair.patching(loaded, allowWER: true)
        let progress = ProgressReporter(total: p.steps, label: "patching grids")
        let r = try p.run(clean: clean, corruption: c, progress: progress)
        progress.finish()
        let (results, report) = try ResultFiles.write(
            r, page: PatchReport.page(r, title: "Activation patching — \((clean as NSString).lastPathComponent)"),
            to: out)
        print("clean:     \(r.cleanText)\ncorrupted: \(r.corruptText)")
        print(String(format: "metric (%@): clean %.3f, corrupted %.3f", r.metric, r.cleanValue, r.corruptValue))
        for g in r.grids {
            var best = (0, 0)
            for i in g.rows.indices {
                for j in g.cols.indices where g.restored[i][j] > g.restored[best.0][best.1] { best = (i, j) }
            }
            print(
                String(
                    format: "  %@: most restoring %@ × %@ (%.2f)", g.hook, g.rows[best.0], g.cols[best.1],
                    g.restored[best.0][best.1]))
        }
        print("results: \(results)\nreport:  \(report)")
    }
}

/// The clean/corrupted pair and the metric of `patch` and `attribute`.
struct PatchingOptions: ParsableArguments {
    @OptionGroup(title: "Prompt and prefix") var promptOptions: PromptOptions
    @Option(help: "A corrupted recording to use as is.") var corrupt: String?
    @Option(help: "Add Gaussian noise at this SNR in dB.") var noise: Double?
    @Option(help: "Silence START:END seconds.") var silence: String?
    @Option(help: "Delay by SECONDS (negative: cut the start).") var shift: Double?
    @Option(help: "Seed for --noise.") var seed: UInt64 = 0
    @Option(help: "logprob, logit-diff or wer (patch only).") var metric: String = "logprob"
    @Option(help: "For logit-diff: two token ids A,B.") var tokens: String?
    @Option(help: "For logit-diff: absolute position (prompt included) whose logits are compared.") var position: Int?
    @Option(help: "Encoder frame window (20 ms frames).") var window: Int = 50

    /// The corruption the options describe, checked.
    func corruption() throws -> Corruption {
        let given = [corrupt != nil, noise != nil, silence != nil, shift != nil].filter { $0 }.count
        guard given == 1 else { throw ValidationError("give exactly one of --corrupt, --noise, --silence, --shift") }
        let c: Corruption
        if let corrupt {
            c = .file(corrupt)
        } else if let noise {
            c = .noise(snrDB: noise, seed: seed)
        } else if let shift {
            c = .shift(seconds: shift)
        } else {
            let p = silence!.split(separator: ":").map { Double($0) }
            guard p.count == 2, let a = p[0], let b = p[1], a < b else {
                throw ValidationError("--silence wants START:END seconds, got '\(silence!)'")
            }
            c = .silence(start: a, end: b)
        }
        try c.validate()
        return c
    }

    /// The patching experiment the options describe, for `loaded`.
    func patching(_ loaded: LoadedModel, allowWER: Bool) throws -> Patching {
        guard window >= 1 else { throw ValidationError("--window must be at least 1, got \(window)") }
        var p = Patching(loaded: loaded, normalizer: try EnglishTextNormalizer())
        p.window = window
        try promptOptions.apply(to: &p.decoding, loaded)
        switch metric {
        case "logprob": p.metric = .logprob
        case "wer" where allowWER: p.metric = .wer
        case "logit-diff":
            guard let tokens, let position else {
                throw ValidationError("logit-diff needs --tokens A,B and --position P")
            }
            let ab = try InterventionOptions.ints(tokens, "--tokens")
            guard ab.count == 2, ab.allSatisfy({ $0 >= 0 && $0 < loaded.model.dims.n_vocab }) else {
                throw ValidationError("--tokens wants two token ids below \(loaded.model.dims.n_vocab)")
            }
            p.metric = .logitDiff(a: ab[0], b: ab[1], position: position)
        default:
            throw ValidationError(
                "unknown --metric '\(metric)'; use logprob, logit-diff"
                    + (allowWER ? " or wer" : " (a gradient needs a differentiable metric)")
            )
        }
        return p
    }
}
