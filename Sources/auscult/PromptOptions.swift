// --prompt and --prefix: what every decoding command lets the decoder read before the transcript.
import ArgumentParser
import AuscultWhisper

/// Previous-context text and a forced start of the transcript, as openai-whisper's `prompt` and
/// `prefix` decoding options (text is encoded as `" " + text.strip()`; `ids:1,2,3` gives ids).
struct PromptOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "Previous-context text the decoder reads after <|startofprev|> (openai-whisper's prompt; the initial "
                + "prompt in long mode), or ids:1,2,3.", valueName: "text"))
    var prompt: String?
    @Option(
        help: ArgumentHelp(
            "Text the transcript is forced to start with (openai-whisper's prefix; not part of the output), or "
                + "ids:1,2,3.", valueName: "text"))
    var prefix: String?

    /// The prompt's and prefix's token ids (nil when not given), checked.
    func tokens(_ loaded: LoadedModel) throws -> (prompt: [Int]?, prefix: [Int]?) {
        (try Self.ids(prompt, flag: "--prompt", loaded), try Self.ids(prefix, flag: "--prefix", loaded))
    }

    /// `value` as token ids: text encoded as openai-whisper does, or `ids:1,2,3`; checked.
    static func ids(_ value: String?, flag: String, _ loaded: LoadedModel) throws -> [Int]? {
        guard let value else { return nil }
        let ids: [Int]
        if value.hasPrefix("ids:") {
            let parts = value.dropFirst(4).split(separator: ",", omittingEmptySubsequences: false)
            ids = try parts.map {
                guard let v = Int($0.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("\(flag) ids: '\($0)' is not a token id (ids:1,2,3)")
                }
                return v
            }
        } else {
            ids = loaded.promptTokens(value)
        }
        do { try loaded.checkTextTokens(ids, what: flag) } catch { throw ValidationError("\(error)") }
        return ids
    }

    /// Sets `options.prompt` and `options.prefix`.
    func apply(to options: inout DecodingOptions, _ loaded: LoadedModel) throws {
        let (p, x) = try tokens(loaded)
        options.prompt = p
        options.prefix = x
    }
}
