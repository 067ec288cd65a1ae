// `auscult lens`: how deep is the answer formed? Logit lens, encoder lens, direct logit
// attribution and attention patterns for a few clips.
import ArgumentParser
import AuscultLens
import AuscultReport
import AuscultTensor
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
    @Option(help: "Dataset folder to take clips from (with --limit).") var data: String?
    @Option(help: "Use only the first N clips of --data.") var limit: Int = 3
    @Option(help: "Output directory.") var out: String
    @Option(help: "Tokens listed per lens cell.") var topK: Int = 5
    @Flag(help: "Skip the attention pattern images (faster, smaller report).") var noAttention = false
    @Flag(help: "Recompute clips already in --out.") var fresh = false
    @Flag(
        help:
            "Also train a tuned lens (per-layer affine translators minimising KL to the final layer) on these clips and compare it with the logit lens."
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
        let clipDir = (out as NSString).appendingPathComponent("clips")
        try FileManager.default.createDirectory(atPath: clipDir, withIntermediateDirectories: true)
        var lens = Lens(loaded: loaded)
        lens.topK = topK
        let progress = ProgressReporter(total: items.count, label: "lens clips")
        var results = [LensResult](), sections = [(String, String)]()
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
        for item in items {
            let safe = item.id.replacingOccurrences(of: "/", with: "_")
            let jsonPath = (clipDir as NSString).appendingPathComponent(safe + ".json")
            let htmlPath = (clipDir as NSString).appendingPathComponent(safe + ".html")
            if !fresh, let d = FileManager.default.contents(atPath: jsonPath),
                let r = try? JSONDecoder().decode(LensResult.self, from: d),
                let html = try? String(contentsOfFile: htmlPath, encoding: .utf8)
            {
                results.append(r); sections.append((item.id, html))
                progress.advance(by: 1)
                continue
            }
            do {
                let (r, maps) = try lens.run(item.path, id: item.id, attention: !noAttention)
                let html = LensReport.clipSection(r, maps: maps)
                try html.write(toFile: htmlPath, atomically: true, encoding: .utf8)
                try encoder.encode(r).write(to: URL(fileURLWithPath: jsonPath))
                results.append(r); sections.append((item.id, html))
            } catch {
                FileHandle.standardError.write("\nskipping \(item.path): \(error)\n".data(using: .utf8)!)
            }
            progress.advance(by: 1)
        }
        progress.finish()
        guard !results.isEmpty else { throw LensError(.noClips, "no clip could be processed") }
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        try encoder.encode(results).write(
            to: URL(fileURLWithPath: (out as NSString).appendingPathComponent("results.json")))
        var doc = HTMLDocument(
            title: "Lens — \((loaded.path as NSString).lastPathComponent)", subtitle: "\(results.count) clip(s)")
        if tuned {
            let paths = items.filter { i in results.contains { $0.clip == i.id } }.map(\.path)
            let bar = ProgressReporter(
                total: (loaded.model.dims.n_text_layer + 1) * tunedSteps, label: "tuned lens steps")
            var last = 0
            let (lensT, summary) = try lens.tuned(paths, steps: tunedSteps) { done, _ in
                bar.advance(by: done - last); last = done
            }
            bar.finish()
            var tensors = [String: Tensor]()
            for l in lensT.weights.indices {
                tensors["layers.\(l).weight"] = lensT.weights[l]; tensors["layers.\(l).bias"] = lensT.biases[l]
            }
            try SafeTensorsFile.write(
                tensors, metadata: ["layers": summary.layers.joined(separator: ","), "model": loaded.path],
                to: (out as NSString).appendingPathComponent("tuned_lens.safetensors"))
            try encoder.encode(summary).write(
                to: URL(fileURLWithPath: (out as NSString).appendingPathComponent("tuned_lens.json")))
            doc.section(
                "Tuned lens", LensReport.tunedSection(summary),
                note: summary.trainClips == summary.evalClips
                    ? "Per-layer affine translators (Belrose et al. 2023) trained and evaluated on the same \(summary.positions) positions (one clip: in-sample)."
                    : "Per-layer affine translators (Belrose et al. 2023) trained on \(summary.trainClips.count) clip(s), evaluated on \(summary.positions) positions of \(summary.evalClips.count) held-out clip(s)."
            )
            for (i, name) in summary.layers.enumerated() {
                print(
                    String(
                        format: "tuned lens %@: KL %.3f → %.3f, top-1 agreement %.2f → %.2f", name,
                        summary.klLogitLens[i],
                        summary.klTunedLens[i], summary.top1LogitLens[i], summary.top1TunedLens[i]))
            }
        }
        for (id, html) in sections { doc.section(id, html) }
        let report = (out as NSString).appendingPathComponent("report.html")
        try doc.write(to: report)
        for r in results {
            let last = r.decoderLens.last!
            let agree = r.decoderLens.map { l in zip(l.top1, last.top1).filter { $0 == $1 }.count }
            print(
                "\(r.clip): top-1 agreement with the final layer per layer \(agree.map(String.init).joined(separator: "/")) of \(last.top1.count) positions"
            )
        }
        print("results: \((out as NSString).appendingPathComponent("results.json"))\nreport:  \(report)")
    }
}
