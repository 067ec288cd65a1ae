// `auscult transcribe`: files or a dataset folder to text, tokens and WER.
import ArgumentParser
import AuscultAudio
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
          auscult transcribe --data path/to/dataset        # prints WER against the transcripts
        """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Output format: text, json or jsonl.") var format: OutputFormat = .text
    @Option(help: "Beam width (default: greedy).") var beamSize: Int?
    @Option(help: "Language code; omit on multilingual models to detect it.") var language: String?
    @Option(help: "Clips decoded together in one batch.") var batchSize: Int = 8
    @Option(help: "Dataset folder (LibriSpeech *.trans.txt, metadata.csv or a CSV/JSONL manifest).") var data: String?
    @Argument(help: "Audio files (wav, flac, ogg, mp3).") var files: [String] = []

    enum OutputFormat: String, ExpressibleByArgument { case text, json, jsonl }

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
        let items: [DatasetItem]
        if let data { items = try Dataset.load(data).items } else { items = files.map { DatasetItem(id: $0, path: $0, reference: nil) } }
        let runner = BatchTranscriber(loaded: loaded, options: options, batchSize: batchSize)
        var rows = [[String: Any]]()
        var failures = 0
        try runner.run(items) { item, result in
            switch result {
            case .failure(let e):
                failures += 1
                FileHandle.standardError.write("error: \(e)\n".data(using: .utf8)!)
            case .success(let r):
                var row: [String: Any] = ["file": item.path, "id": item.id, "text": r.text, "tokens": r.tokens,
                                          "avg_logprob": r.avgLogprob, "no_speech_prob": r.noSpeechProb, "language": r.language]
                if let ref = item.reference { row["reference"] = ref }
                switch format {
                case .text: print(data == nil && files.count == 1 ? r.text : "\(item.id)\t\(r.text)")
                case .jsonl: print(String(data: try! JSONSerialization.data(withJSONObject: row, options: [.sortedKeys, .withoutEscapingSlashes]), encoding: .utf8)!)
                case .json: break
                }
                rows.append(row)
            }
        }
        if format == .json {
            print(String(data: try JSONSerialization.data(withJSONObject: rows, options: [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]), encoding: .utf8)!)
        }
        if data != nil {
            let pairs = rows.compactMap { r -> (String, String)? in
                guard let ref = r["reference"] as? String, let hyp = r["text"] as? String else { return nil }
                return (ref, hyp)
            }
            let w = WordErrorRate.corpus(pairs, normalizer: try EnglishTextNormalizer())
            FileHandle.standardError.write(String(format: "WER %.2f %% over %d clips (S %d, D %d, I %d, N %d)%@\n",
                                                  100 * w.rate, pairs.count, w.substitutions, w.deletions, w.insertions, w.referenceWords,
                                                  failures > 0 ? ", \(failures) files failed" : "").data(using: .utf8)!)
        }
        if failures > 0 && rows.isEmpty { throw ExitCode(1) }
    }
}
