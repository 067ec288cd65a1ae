// `auscult heads`: what every attention head does (HeadScan), as results.json and report.html.
import ArgumentParser
import AuscultLens
import AuscultWhisper
import Foundation

struct Heads: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Score every attention head: previous-token, induction, copying, locality, sinks, alignment.",
        discussion: """
            Decoder self-attention, as TransformerLens's head detector and Olsson et al.
            (2022) score it: previous-token, duplicate-token and induction scores on random
            tokens repeated twice (--measure mul or abs, --exclude-bos,
            --exclude-current-token as in TransformerLens), the prefix-matching score, the
            copying score (eigenvalues of the full OV circuit), and the first three again on
            each clip's own transcript.

            Encoder self-attention, over the frames holding audio: attention to the previous
            frame, the band holding half of a frame's attention, the share within ±100 ms,
            and sinks (padding after the audio, frame 0).

            Cross-attention: how monotonic a head is (Spearman ρ of token position and the
            frame it attends to most) and how well its own DTW path times the words (word
            timing from that head alone against the timing from every head of the decoder's
            upper half). Heads ranked by that agreement are the discovered alignment heads;
            for models openai-whisper lists, precision at k against its list is printed.

            --pattern FILE adds a detection pattern of your own, a JSON object
            {"name": …, "text": … or "tokens": [ids], "pattern": [[…]]} whose square pattern
            covers the decoder input (the prompt, then the text's tokens).

            Examples:
              auscult heads --out out/heads
              auscult heads --model base --data data/clips --limit 10 --out out/heads-base
            """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup(title: "Prompt and prefix (the clips' transcripts)") var promptOptions: PromptOptions
    @Option(help: "Dataset folder or a folder of audio files.") var data: String = "data/clips"
    @Option(help: "Use only the first N clips.") var limit: Int?
    @Option(help: "Random sequences (each repeated twice) for the decoder scores.") var randomSequences: Int = 4
    @Option(help: "Tokens per random sequence.") var randomLength: Int = 25
    @Option(help: "Seed of the random sequences.") var seed: UInt64 = 0
    @Option(help: "mul (share of attention on the pattern) or abs (1 − mean L1 distance).") var measure: String = "mul"
    @Flag(help: "Leave key 0 (start of transcript) out of the decoder scores.") var excludeBos = false
    @Flag(help: "Leave the diagonal out of the decoder scores.") var excludeCurrentToken = false
    @Option(help: "A word boundary agrees within this many milliseconds.") var toleranceMs: Double = 100
    @Option(help: ArgumentHelp("A custom detection pattern (JSON; repeatable).", valueName: "file"))
    var pattern: [String] = []
    @Option(help: "Output directory (results.json, report.html).") var out: String = "out/heads"

    func run() throws {
        guard let m = HeadDetector.Measure(rawValue: measure) else {
            throw ValidationError("--measure is mul or abs, not '\(measure)'")
        }
        guard (1...256).contains(randomSequences) else {
            throw ValidationError("--random-sequences wants 1…256, got \(randomSequences)")
        }
        guard (2...200).contains(randomLength) else {
            throw ValidationError("--random-length wants 2…200 tokens, got \(randomLength)")
        }
        guard toleranceMs.isFinite, toleranceMs >= 20, toleranceMs <= 5000 else {
            throw ValidationError("--tolerance-ms wants 20…5000 ms (frames are 20 ms), got \(toleranceMs)")
        }
        if let l = limit, l < 1 { throw ValidationError("--limit must be at least 1, got \(l)") }
        let loaded = try LoadedModel(modelOptions.model)
        var scan = HeadScan(loaded: loaded)
        try promptOptions.apply(to: &scan.decoding, loaded)
        scan.randomSequences = randomSequences; scan.randomLength = randomLength; scan.seed = seed
        scan.detection = HeadDetector.Options(
            measure: m, excludeBOS: excludeBos, excludeCurrentToken: excludeCurrentToken)
        scan.timingTolerance = toleranceMs / 1000
        scan.custom = try pattern.map { try Self.readPattern($0, loaded: loaded) }
        let ok = try DataOptions.readableClips(data, limit: limit)
        let progress = ProgressReporter(total: scan.steps(clips: ok.count), label: "random sequences and clips")
        let r = try scan.run(clips: ok, progress: progress)
        progress.finish()
        let (results, report) = try ResultFiles.write(
            r, page: HeadReport.page(r, title: "Attention heads — \(r.model)"), to: out)
        for map in r.maps where map.name != "timing_error_ms" {
            let best = HeadReport.top(map, 3).map { String(format: "%@ %.3f", $0.0.description, $0.1) }
            print("\(map.attention.rawValue) \(map.name): " + best.joined(separator: ", "))
        }
        let a = r.alignment
        let top = a.ranked.prefix(a.k).map { "L\($0.layer).H\($0.head)\($0.known ? "*" : "")" }
        print("alignment heads discovered (top \(a.k), * = in openai-whisper's list): " + top.joined(separator: " "))
        if let p = a.precisionAtK { print(String(format: "precision at %d: %.2f over %d words", a.k, p, a.words)) }
        print("results: \(results)\nreport:  \(report)")
    }

    /// Reads a custom pattern file: {"name", "text" or "tokens", "pattern"}.
    static func readPattern(_ path: String, loaded: LoadedModel) throws -> CustomHeadPattern {
        struct File: Decodable { var name: String?; var text: String?; var tokens: [Int]?; var pattern: [[Float]] }
        let file: File
        do {
            file = try JSONDecoder().decode(File.self, from: Data(contentsOf: URL(fileURLWithPath: path)))
        } catch {
            throw ValidationError("--pattern \(path): not a JSON object {name, text or tokens, pattern}: \(error)")
        }
        let tokens: [Int]
        switch (file.text, file.tokens) {
        case (let t?, nil): tokens = loaded.prompt() + loaded.tokenizer.encode(t)
        case (nil, let ids?): tokens = ids
        default: throw ValidationError("--pattern \(path): give exactly one of \"text\" and \"tokens\"")
        }
        if let bad = tokens.first(where: { !(0..<loaded.model.dims.n_vocab).contains($0) }) {
            throw ValidationError(
                "--pattern \(path): token \(bad) is outside the vocabulary 0..<\(loaded.model.dims.n_vocab)")
        }
        guard file.pattern.count == tokens.count, file.pattern.allSatisfy({ $0.count == tokens.count }) else {
            throw ValidationError(
                "--pattern \(path): the pattern must be \(tokens.count) × \(tokens.count) (the prompt's "
                    + "\(loaded.prompt().count) tokens and the text's \(tokens.count - loaded.prompt().count)), got "
                    + "\(file.pattern.count) rows")
        }
        if file.pattern.joined().contains(where: { !$0.isFinite }) {
            throw ValidationError("--pattern \(path): the pattern holds a NaN or infinity")
        }
        return CustomHeadPattern(
            name: file.name ?? ((path as NSString).lastPathComponent as NSString).deletingPathExtension, tokens: tokens,
            pattern: file.pattern)
    }
}
