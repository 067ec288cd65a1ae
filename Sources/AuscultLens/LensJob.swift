// `auscult lens` as a library job: the lens of each clip written as it is made (so an
// interrupted run resumes), then the results, the report and optionally a tuned lens.
import AuscultReport
import AuscultTensor
import AuscultWhisper
import Foundation

/// A lens run over clips into `directory`: per clip `clips/<clip>.json` and `.html`, kept so an
/// interrupted run resumes; then `results.json` and `report.html`; with `tunedSteps`, a tuned
/// lens (`tuned_lens.safetensors`, one affine translator per layer, and `tuned_lens.json`).
///
/// The directory records the settings its clips were made with (`run.json`: model, top-k,
/// attention, prompt and prefix); a run with other settings is refused unless `fresh`, so one model's clips are
/// never reused under another model's title.
public struct LensJob {
    public var lens: Lens
    public let directory: String
    public var attention = true
    /// Recompute every clip instead of resuming.
    public var fresh = false
    /// Adam steps per layer of a tuned lens; nil trains none.
    public var tunedSteps: Int?

    public init(lens: Lens, directory: String) { self.lens = lens; self.directory = directory }

    /// What a run made.
    public struct Outcome {
        public var results: [LensResult]
        /// Clips that could not be processed, with the reason.
        public var skipped: [(item: DatasetItem, error: any Error)]
        public var tuned: TunedLensSummary?
        public var resultsPath: String
        public var reportPath: String
    }

    var clipDirectory: String { (directory as NSString).appendingPathComponent("clips") }

    /// Runs the lens on `items`; `tunedProgress` sees (steps done, steps in all) of a tuned lens.
    public func run(
        _ items: [DatasetItem], progress: ProgressReporter? = nil, tunedProgress: ((Int, Int) -> Void)? = nil
    ) throws -> Outcome {
        let fm = FileManager.default
        try fm.createDirectory(atPath: clipDirectory, withIntermediateDirectories: true)
        let made = (try? fm.contentsOfDirectory(atPath: clipDirectory))?.contains { $0.hasSuffix(".json") } ?? false
        try SweepStore.claim(
            directory,
            settings: [
                "command": "lens", "model": lens.loaded.path, "model_sha256": lens.loaded.contentHash,
                "top_k": "\(lens.topK)", "attention": "\(attention)",
            ].merging(lens.decoding.contextSettings) { a, _ in a },
            fresh: fresh, holdsResults: made)
        var results = [LensResult](), sections = [(String, String)]()
        var skipped = [(item: DatasetItem, error: any Error)]()
        let encoder = JSONEncoder.results()
        for item in items {
            let safe = item.id.replacingOccurrences(of: "/", with: "_")
            let jsonPath = (clipDirectory as NSString).appendingPathComponent(safe + ".json")
            let htmlPath = (clipDirectory as NSString).appendingPathComponent(safe + ".html")
            if !fresh, let d = fm.contents(atPath: jsonPath),
                let r = try? JSONDecoder.results().decode(LensResult.self, from: d), r.clip == item.id,
                let html = try? String(contentsOfFile: htmlPath, encoding: .utf8)
            {
                results.append(r); sections.append((item.id, html))
                progress?.advance(by: 1)
                continue
            }
            do {
                let (r, maps) = try lens.run(item.path, id: item.id, attention: attention)
                let html = LensReport.clipSection(r, maps: maps)
                try html.write(toFile: htmlPath, atomically: true, encoding: .utf8)
                try encoder.encode(r).write(to: URL(fileURLWithPath: jsonPath), options: .atomic)
                results.append(r); sections.append((item.id, html))
            } catch {
                skipped.append((item, error))
            }
            progress?.advance(by: 1)
        }
        progress?.finish()
        guard !results.isEmpty else {
            throw LensError(.noClips, "no clip could be processed", cause: skipped.first?.error)
        }
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes]
        let resultsPath = (directory as NSString).appendingPathComponent("results.json")
        try encoder.encode(results).write(to: URL(fileURLWithPath: resultsPath), options: .atomic)
        var doc = HTMLDocument(
            title: "Lens — \((lens.loaded.path as NSString).lastPathComponent)", subtitle: "\(results.count) clip(s)")
        var summary: TunedLensSummary?
        if let tunedSteps {
            let paths = items.filter { i in results.contains { $0.clip == i.id } }.map(\.path)
            let (tuned, s) = try lens.tuned(paths, steps: tunedSteps, progress: tunedProgress)
            try write(tuned, s)
            try encoder.encode(s).write(
                to: URL(fileURLWithPath: (directory as NSString).appendingPathComponent("tuned_lens.json")),
                options: .atomic)
            doc.section(
                "Tuned lens", LensReport.tunedSection(s),
                note: s.trainClips == s.evalClips
                    ? "Per-layer affine translators (Belrose et al. 2023) trained and evaluated on the same "
                        + "\(s.positions) positions (one clip: in-sample)."
                    : "Per-layer affine translators (Belrose et al. 2023) trained on \(s.trainClips.count) clip(s), "
                        + "evaluated on \(s.positions) positions of \(s.evalClips.count) held-out clip(s).")
            summary = s
        }
        for (id, html) in sections { doc.section(id, html) }
        let reportPath = (directory as NSString).appendingPathComponent("report.html")
        try doc.write(to: reportPath)
        return Outcome(
            results: results, skipped: skipped, tuned: summary, resultsPath: resultsPath, reportPath: reportPath)
    }

    /// `tuned_lens.safetensors`: `layers.L.weight` `[d, d]` and `layers.L.bias` `[d]` per layer,
    /// metadata `layers` (names, comma-separated) and `model`.
    func write(_ tuned: TunedLens, _ summary: TunedLensSummary) throws {
        var tensors = [String: Tensor]()
        for l in tuned.weights.indices {
            tensors["layers.\(l).weight"] = tuned.weights[l]; tensors["layers.\(l).bias"] = tuned.biases[l]
        }
        try SafeTensorsFile.write(
            tensors, metadata: ["layers": summary.layers.joined(separator: ","), "model": lens.loaded.path],
            to: (directory as NSString).appendingPathComponent("tuned_lens.safetensors"))
    }
}
