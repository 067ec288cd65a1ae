// `auscult transcribe`: files or a dataset folder to text, tokens and WER.
import ArgumentParser
import AuscultAudio
import AuscultSAE
import AuscultTensor
import AuscultWhisper
import Foundation

struct Transcribe: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Transcribe audio files (one 30 s window each, as openai-whisper's decode) or a dataset.",
        discussion: """
            Examples:
              auscult transcribe clip.wav
              auscult transcribe --format jsonl --beam-size 5 a.wav b.flac
              auscult transcribe --word-timestamps --format json clip.wav
              auscult transcribe --prompt "President Kennedy's inaugural address." \\
                  --prefix "And so" clip.wav
              # prints WER against the transcripts
              auscult transcribe --data path/to/dataset
              auscult transcribe --zero encoder.blocks.1.hook_attn_out \\
                  --skip decoder.blocks.2+3 clip.wav
              auscult transcribe --swap encoder.blocks.2.hook_resid_post=other.wav clip.wav
              auscult transcribe --swap decoder.blocks.1=other.wav clip.wav
              # SAE reconstruction in place of its hook
              auscult transcribe --sae sae/ clip.wav
              # turn latent 17 off
              auscult transcribe --sae sae/ --steer 17=x0 --keep-error clip.wav
            """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup(title: "Interventions") var interventions: InterventionOptions
    @OptionGroup(title: "Sparse autoencoder") var saeOptions: SAEOptions
    @OptionGroup(title: "Prompt and prefix") var promptOptions: PromptOptions
    @Option(help: "Output format: text, json or jsonl.") var format: OutputFormat = .text
    @Option(help: "Beam width (default: greedy).") var beamSize: Int?
    @Option(help: "Language code; omit on multilingual models to detect it.") var language: String?
    @Option(help: "Clips decoded together in one batch.") var batchSize: Int = 8
    @Option(
        help: ArgumentHelp(
            "window: one padded 30 s window per file (openai-whisper decode); long: successive windows with "
                + "timestamps, prompts and fallback (openai-whisper transcribe); auto: long for files over 30 s.",
            valueName: "auto|window|long"))
    var mode: Mode = .auto
    @Flag(help: "Decode with timestamp tokens (window mode; long mode always uses them).") var timestamps = false
    @Flag(
        help: ArgumentHelp(
            "Time every word from the alignment heads' cross-attention (words with start, end and probability in "
                + "json/jsonl, [start–end] word in text; in long mode per segment too, as openai-whisper's "
                + "word_timestamps).")
    )
    var wordTimestamps = false
    @Option(help: "Dataset folder (LibriSpeech *.trans.txt, metadata.csv or a CSV/JSONL manifest).") var data: String?
    @Argument(help: "Audio files (wav, flac, ogg, mp3).") var files: [String] = []

    enum OutputFormat: String, ExpressibleByArgument { case text, json, jsonl }
    enum Mode: String, ExpressibleByArgument { case auto, window, long }

    func validate() throws {
        if files.isEmpty && data == nil { throw ValidationError("give audio files or --data DIR") }
        if let b = beamSize, b < 1 { throw ValidationError("--beam-size must be at least 1") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
    }

    func run() throws {
        let loaded = try LoadedModel(modelOptions.model)
        var options = DecodingOptions()
        options.beamSize = beamSize
        options.language = loaded.model.dims.isMultilingual ? language : "en"
        options.withoutTimestamps = !timestamps
        try promptOptions.apply(to: &options, loaded)
        let items: [DatasetItem]
        if let data {
            items = try Dataset.load(data).items
        } else {
            items = files.map { DatasetItem(id: $0, path: $0, reference: nil) }
        }
        var rows = [[String: Any]]()
        var failures = 0
        /// Prints one file's result (with its reference) and keeps it for the summary.
        func record(_ result: [String: Any], _ item: DatasetItem) {
            var row = result
            if let ref = item.reference { row["reference"] = ref }
            emit(row, item: item)
            rows.append(row)
        }
        /// Reports a file that failed; the others carry on.
        func fail(_ error: any Error, _ item: DatasetItem) {
            failures += 1
            FileHandle.standardError.write("error: \(item.path): \(error)\n".data(using: .utf8)!)
        }
        // Files longer than one window go through the long-form path (auto), or all of them (long).
        var windowItems = [DatasetItem]()
        let edits = try interventions.make(loaded, files: items.map(\.path))
        // Bad hook names are refused before any work.
        if !edits.isEmpty { try loaded.validate(interventions: edits) }
        let spliced = try saeOptions.load(loaded)
        let model = loaded.model
        let keepError = saeOptions.keepError
        /// The handler of one batch of clips whose encoder frames holding audio are `frames`
        /// (interventions, then the SAE splice on those frames), or nil when neither is asked for.
        let handler: @Sendable ([Int]) throws -> HookHandler? = { frames in
            var handlers = [HookHandler]()
            if !edits.isEmpty { handlers.append(try Interventions(edits, model: model)) }
            if let spliced {
                handlers.append(
                    try SAESplice(
                        sae: spliced.sae, hook: spliced.hook, edits: spliced.edits, keepError: keepError, frames: frames
                    ))
            }
            return handlers.isEmpty ? nil : handlers.count == 1 ? handlers[0] : HookChain(handlers)
        }
        // A decoder swap runs its donor beside each file: it stays in window mode, which says so
        // when it cuts a file.
        let windowOnly = edits.contains(where: \.runsBeside)
        for item in items {
            let duration = AudioClip.duration(of: item.path)
            if mode == .window || windowOnly || (mode == .auto && (duration ?? 0) <= 30) {
                // A file whose header cannot be read goes the window way, which reports it.
                if let duration, duration > 30 {
                    let why =
                        mode == .window ? "--mode window" : windowOnly ? "decoder swaps work on one window" : ""
                    let seconds = String(format: "%.1f", duration)
                    let note = "note: \(item.path) is \(seconds) s; only its first 30 s are read (\(why))\n"
                    FileHandle.standardError.write(Data(note.utf8))
                }
                windowItems.append(item); continue
            }
            do {
                let clip = try AudioClip(contentsOf: item.path)
                var topts = TranscribeOptions()
                topts.decoding.beamSize = beamSize
                topts.decoding.language = options.language
                topts.decoding.prefix = options.prefix
                topts.initialPrompt = options.prompt ?? []
                topts.wordTimestamps = wordTimestamps
                let hooks: ((Int) throws -> HookHandler?)? =
                    edits.isEmpty && spliced == nil ? nil : { frames in try handler([frames]) }
                let t = try loaded.transcribe(clip.samples, options: topts, hooks: hooks)
                let textTokens = t.segments.flatMap(\.tokens).filter { $0 < loaded.tokenizer.eot }
                let segs: [[String: Any]] = t.segments.map {
                    var seg: [String: Any] = [
                        "id": $0.id, "start": $0.start, "end": $0.end, "text": $0.text, "tokens": $0.tokens,
                        "avg_logprob": $0.avgLogprob, "no_speech_prob": $0.noSpeechProb, "temperature": $0.temperature,
                    ]
                    if let words = $0.words { seg["words"] = words.map(Self.wordRow) }
                    return seg
                }
                var row: [String: Any] = [
                    "file": item.path, "id": item.id, "text": t.text.trimmingCharacters(in: .whitespaces),
                    "tokens": textTokens, "language": t.language, "segments": segs,
                ]
                if wordTimestamps { row["words"] = t.segments.flatMap { $0.words ?? [] }.map(Self.wordRow) }
                record(row, item)
            } catch {
                fail(error, item)
            }
        }
        var makeHooks: (@Sendable ([DatasetItem]) throws -> HookHandler?)? = nil
        let nAudio = model.dims.n_audio_ctx
        if !edits.isEmpty || spliced != nil {
            makeHooks = { batch -> HookHandler? in
                // Splice on the frames that hold audio (the SAE never saw the padding).
                try handler(
                    batch.map { item in
                        AudioClip.duration(of: item.path).map {
                            LoadedClip.validFrames(samples: Int(($0 * 16_000).rounded()), maxFrames: nAudio)
                        } ?? nAudio
                    })
            }
        }
        if edits.contains(where: \.runsBeside) {
            // A decoder swap runs its donor beside each file: one greedy run per file.
            guard beamSize == nil, !wordTimestamps, spliced == nil else {
                throw ValidationError(
                    "--swap of a decoder hook or block runs the donor file beside each file and decodes greedily; "
                        + "drop --beam-size, --word-timestamps and --sae")
            }
            for item in windowItems {
                do {
                    let r = try loaded.run(.file(item.path), interventions: edits, options: options)
                    record(
                        [
                            "file": item.path, "id": item.id, "text": r.text, "tokens": r.tokens,
                            "avg_logprob": r.avgLogprob ?? 0, "language": r.language,
                        ], item)
                } catch {
                    fail(error, item)
                }
            }
            windowItems = []
        }
        var runner = BatchTranscriber(loaded: loaded, options: options, batchSize: batchSize, hooks: makeHooks)
        runner.wordTimestamps = wordTimestamps
        let progress = data != nil ? ProgressReporter(total: windowItems.count, label: "transcribe") : nil
        try runner.run(windowItems, progress: progress) { item, result in
            switch result {
            case .failure(let e):
                fail(e, item)
            case .success(let r):
                var row: [String: Any] = [
                    "file": item.path, "id": item.id, "text": r.text, "tokens": r.tokens,
                    "avg_logprob": r.avgLogprob, "no_speech_prob": r.noSpeechProb, "language": r.language,
                ]
                if let words = r.words { row["words"] = words.map(Self.wordRow) }
                record(row, item)
            }
        }
        if format == .json {
            print(String(decoding: try JSONNumbers.data(rows, pretty: true), as: UTF8.self))
        }
        if data != nil {
            let pairs = rows.compactMap { r -> (String, String)? in
                guard let ref = r["reference"] as? String, let hyp = r["text"] as? String else { return nil }
                return (ref, hyp)
            }
            let w = WordErrorRate.corpus(pairs, normalizer: try EnglishTextNormalizer())
            let failed = failures > 0 ? ", \(failures) files failed" : ""
            // With no reference words a rate means nothing: say so instead of printing 0.00 %.
            let line =
                w.referenceWords == 0
                ? "WER not measured: the \(pairs.count) references hold no words after normalisation\(failed)\n"
                : String(
                    format: "WER %.2f %% over %d clips (S %d, D %d, I %d, N %d)%@\n",
                    100 * w.rate, pairs.count, w.substitutions, w.deletions, w.insertions, w.referenceWords, failed)
            FileHandle.standardError.write(line.data(using: .utf8)!)
        }
        if failures > 0 && rows.isEmpty { throw ExitCode(1) }
    }

    /// One timed word as JSON (openai-whisper's word dictionary, with its tokens).
    static func wordRow(_ w: WordTiming) -> [String: Any] {
        var row: [String: Any] = ["word": w.word, "start": w.start, "end": w.end, "tokens": w.tokens]
        if let p = w.probability { row["probability"] = p }
        return row
    }

    /// Prints one result as it arrives (json collects them for the end instead).
    func emit(_ row: [String: Any], item: DatasetItem) {
        switch format {
        case .text:
            var text = row["text"] as? String ?? ""
            if let words = row["words"] as? [[String: Any]] {
                text = words.map { w in
                    String(
                        format: "[%.2f–%.2f]%@", w["start"] as? Double ?? 0, w["end"] as? Double ?? 0,
                        w["word"] as? String ?? "")
                }.joined(separator: " ")
            }
            print(data == nil && files.count == 1 ? text : "\(item.id)\t\(text)")
        case .jsonl:
            // A row that cannot be written is reported by the caller; never a crash.
            if let line = try? JSONNumbers.data(row) {
                print(String(decoding: line, as: UTF8.self))
            } else {
                FileHandle.standardError.write(
                    "error: \(item.id): its result cannot be written as JSON\n".data(using: .utf8)!)
            }
        case .json: break
        }
    }
}
