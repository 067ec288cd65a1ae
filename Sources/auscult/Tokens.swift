// `auscult tokens`: the decoder as a language model: text <-> ids, next-token predictions after
// a prefix on any audio (silence by default), token-embedding neighbours.
import ArgumentParser
import AuscultWhisper
import Foundation

struct Tokens: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Text <-> token ids, next-token predictions on silence or a clip, embedding neighbours.",
        discussion: """
            With TEXT, prints its token ids and pieces (openai-whisper's encoding, no special
            tokens); with --ids, the text of the ids. --next predicts the tokens that follow
            the decoder prompt and TEXT (or --ids) on --audio, 30 s of silence by default:
            what the decoder says from language alone. --neighbours lists the tokens whose
            embeddings are nearest by cosine after subtracting the mean embedding (the raw
            embeddings share one large direction: every pair's cosine is near 0.9).

            Examples:
              auscult tokens " And so my fellow Americans"
              auscult tokens --ids 843,523,616
              auscult tokens --next " And so my fellow" --top 5
              auscult tokens --next " ask not what your" --audio data/clips/jfk.wav --format json
              auscult tokens --neighbours " country"
            """)

    @OptionGroup var modelOptions: ModelOptions
    @Argument(help: "Text to encode (a leading space matters: \" And\" is one token, \"And\" another).")
    var text: String?
    @Option(help: ArgumentHelp("Token ids, comma-separated.", valueName: "ids")) var ids: String?
    @Flag(help: "Predict the next token after the prompt and the text or ids.") var next = false
    @Option(help: ArgumentHelp("Audio the decoder reads for --next (default: 30 s of silence).", valueName: "file"))
    var audio: String?
    @Flag(help: "List the tokens nearest the text's single token (mean-centred cosine of the embeddings).")
    var neighbours = false
    @Option(
        help: ArgumentHelp(
            "Previous-context text the decoder reads first for --next (after <|startofprev|>, as openai-whisper's "
                + "prompt), or ids:1,2,3.", valueName: "text"))
    var prompt: String?
    @Option(help: "How many predictions or neighbours.") var top: Int = 10
    @Option(help: "text or json.") var format: String = "text"

    func run() throws {
        guard format == "text" || format == "json" else { throw ValidationError("--format is text or json") }
        guard (1...1000).contains(top) else { throw ValidationError("--top \(top): use 1…1000") }
        guard !(next && neighbours) else { throw ValidationError("give --next or --neighbours, not both") }
        let loaded = try LoadedModel(modelOptions.model)
        let n = loaded.model.dims.n_vocab
        var tokens: [Int]
        if let ids {
            guard text == nil else { throw ValidationError("give TEXT or --ids, not both") }
            tokens = []
            for part in ids.split(separator: ",", omittingEmptySubsequences: false) {
                guard let t = Int(part.trimmingCharacters(in: .whitespaces)), (0..<n).contains(t) else {
                    throw ValidationError("--ids: '\(part)' is not a token id in 0..<\(n)")
                }
                tokens.append(t)
            }
        } else if let text {
            tokens = loaded.tokenizer.encode(text)
        } else {
            tokens = []
            guard next else { throw ValidationError("give TEXT or --ids (or --next alone for the first token)") }
        }
        if neighbours {
            guard tokens.count == 1 else {
                throw ValidationError("--neighbours takes one token; the text is \(tokens.count) tokens \(tokens)")
            }
            let list = try loaded.embeddingNeighbours(of: tokens[0], k: top)
            if format == "json" { return try printJSON(list) }
            print("nearest \(tokenLabel(loaded, tokens[0])) (cosine after subtracting the mean embedding):")
            for x in list { print(String(format: "  %6d  %-20@ %.3f", x.token, quoted(x.text), x.cosine)) }
            return
        }
        if next {
            let input: AudioInput = audio.map { .file($0) } ?? LoadedModel.silence
            var options = DecodingOptions()
            options.prompt = try PromptOptions.ids(prompt, flag: "--prompt", loaded)
            let list = try loaded.nextTokens(after: tokens, audio: input, k: top, options: options)
            if format == "json" { return try printJSON(list) }
            let prefix = loaded.tokenizer.decode(tokens)
            let context = prompt.map { " with the prompt “\($0)”" } ?? ""
            print("after “\(prefix)” on \(audio ?? "30 s of silence")\(context):")
            for x in list {
                print(
                    String(format: "  %6d  %-20@ p %.4f  log p %.3f", x.token, quoted(x.text), x.probability, x.logprob)
                )
            }
            return
        }
        let pieces = tokens.map { loaded.tokenizer.decodeWithSpecials([$0]) }
        if format == "json" {
            return try printJSON(
                ["ids": tokens, "pieces": pieces, "text": [loaded.tokenizer.decode(tokens)]] as [String: Any])
        }
        print(tokens.map(String.init).joined(separator: ","))
        print(pieces.map(quoted).joined(separator: " "))
        if self.ids != nil { print(loaded.tokenizer.decode(tokens)) }
    }

    func quoted(_ s: String) -> String { "“" + s + "”" }
    func tokenLabel(_ loaded: LoadedModel, _ t: Int) -> String {
        "\(t) \(quoted(loaded.tokenizer.decodeWithSpecials([t])))"
    }
}
