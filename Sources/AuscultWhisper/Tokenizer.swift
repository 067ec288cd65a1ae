// Whisper's byte-level BPE tokenizer (GPT-2 style) with its special tokens, following openai-whisper
// `tokenizer.py`, read from the model directory's `tokenizer.json` (+ `vocabulary.txt` if present).
import Foundation

/// Encodes text to token ids and decodes ids to text, and knows Whisper's special tokens.
public struct WhisperTokenizer: Sendable {
    /// Token strings in GPT-2's byte-to-unicode alphabet, indexed by id (specials as `<|…|>`).
    public let vocabulary: [String]
    private let ids: [String: Int]
    public let isMultilingual: Bool

    public let eot: Int, sot: Int, translate: Int, transcribe: Int, sotLM: Int, sotPrev: Int
    public let noSpeech: Int, noTimestamps: Int, timestampBegin: Int
    /// Language codes in token order (`en`, `zh`, …) and their token ids.
    public let languageCodes: [String]
    public let languageTokens: [Int]

    /// Loads from a model directory holding `tokenizer.json` (Hugging Face tokenizers format).
    public init(directory: String, multilingual: Bool, vocabularySize: Int) throws {
        let path = (directory as NSString).appendingPathComponent("tokenizer.json")
        guard let data = FileManager.default.contents(atPath: path),
            let json = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let model = json["model"] as? [String: Any], let vocab = model["vocab"] as? [String: Int]
        else {
            throw ModelLoadError(
                .tokenizerMissing,
                "\(path): missing or unreadable tokenizer.json; the model directory needs Whisper's tokenizer")
        }
        var byId = [String?](repeating: nil, count: vocabularySize)
        for (s, i) in vocab where i < vocabularySize { byId[i] = s }
        for t in (json["added_tokens"] as? [[String: Any]]) ?? [] {
            if let i = t["id"] as? Int, let s = t["content"] as? String, i < vocabularySize { byId[i] = s }
        }
        let notimestamps = byId.firstIndex(of: "<|notimestamps|>") ?? -1
        guard notimestamps > 0 else {
            throw ModelLoadError(
                .tokenizerMissing, "\(path): tokenizer.json has no <|notimestamps|> token; not a Whisper tokenizer")
        }
        // Timestamp tokens follow <|notimestamps|> at 0.02 s steps (absent from tokenizer.json).
        for i in (notimestamps + 1)..<vocabularySize where byId[i] == nil {
            byId[i] = String(format: "<|%.2f|>", Double(i - notimestamps - 1) * 0.02)
        }
        let vocabulary = byId.enumerated().map { $0.element ?? "<|unused\($0.offset)|>" }
        try self.init(vocabulary: vocabulary, multilingual: multilingual, path: path)
    }

    init(vocabulary: [String], multilingual: Bool, path: String) throws {
        self.vocabulary = vocabulary
        var ids = [String: Int]()
        for (i, s) in vocabulary.enumerated() where ids[s] == nil { ids[s] = i }
        self.ids = ids
        self.isMultilingual = multilingual
        func special(_ s: String...) throws -> Int {
            for name in s { if let i = ids[name] { return i } }
            throw ModelLoadError(.tokenizerMissing, "\(path): no special token \(s[0])")
        }
        eot = try special("<|endoftext|>")
        sot = try special("<|startoftranscript|>")
        translate = try special("<|translate|>")
        transcribe = try special("<|transcribe|>")
        sotLM = try special("<|startoflm|>")
        sotPrev = try special("<|startofprev|>")
        noSpeech = try special("<|nospeech|>", "<|nocaptions|>")
        noTimestamps = try special("<|notimestamps|>")
        timestampBegin = noTimestamps + 1
        var codes = [String](), toks = [Int]()
        for i in (sot + 1)..<translate {
            let s = vocabulary[i]
            if s.hasPrefix("<|") && s.hasSuffix("|>") {
                codes.append(String(s.dropFirst(2).dropLast(2))); toks.append(i)
            }
        }
        languageCodes = codes
        languageTokens = toks
        nonSpeechTokens = computeNonSpeechTokens()
    }

    /// The token id of language `code` (`en`, `de`, …), if the model knows it.
    public func languageToken(_ code: String) -> Int? {
        languageCodes.firstIndex(of: code).map { languageTokens[$0] }
    }

    /// The start-of-transcript sequence: `<|sot|>` (English-only), or `<|sot|><|lang|><|task|>`.
    public func sotSequence(language: String? = "en", task: String = "transcribe") -> [Int] {
        guard isMultilingual else { return [sot] }
        var s = [sot]
        if let language, let t = languageToken(language) { s.append(t) }
        s.append(task == "translate" ? translate : transcribe)
        return s
    }

    // MARK: Decoding

    /// Text of `tokens`, skipping special and timestamp tokens (openai-whisper `decode`).
    public func decode(_ tokens: [Int]) -> String {
        var bytes = [UInt8]()
        for t in tokens where t < eot && t >= 0 && t < vocabulary.count {
            for ch in vocabulary[t].unicodeScalars { bytes.append(ByteLevel.decoder[ch] ?? 0x3F) }
        }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// Text of `tokens` including `<|…|>` markers for special and timestamp tokens.
    public func decodeWithSpecials(_ tokens: [Int]) -> String {
        var out = ""
        var run = [Int]()
        for t in tokens {
            if t < eot { run.append(t); continue }
            out += decode(run); run = []
            out += t < vocabulary.count ? vocabulary[t] : "<|\(t)|>"
        }
        return out + decode(run)
    }

    /// Raw UTF-8 bytes of one token (special tokens give none).
    public func bytes(of token: Int) -> [UInt8] {
        guard token < eot else { return [] }
        return vocabulary[token].unicodeScalars.map { ByteLevel.decoder[$0] ?? 0x3F }
    }

    // MARK: Encoding

    /// Token ids of `text` (no special tokens), GPT-2 pre-tokenisation then BPE merges.
    public func encode(_ text: String) -> [Int] {
        var out = [Int]()
        let ns = text as NSString
        for m in ByteLevel.pattern.matches(in: text, range: NSRange(location: 0, length: ns.length)) {
            let piece = ns.substring(with: m.range)
            let symbols = Array(piece.utf8).map { String(ByteLevel.encoder[Int($0)]) }
            for s in bpe(symbols) { if let i = ids[s] { out.append(i) } }
        }
        return out
    }

    /// tiktoken's byte-pair merging: repeatedly join the adjacent pair whose concatenation has
    /// the lowest token id. Whisper's vocabularies are tiktoken rank-ordered, so this reproduces
    /// openai-whisper's encoding; the merge list in tokenizer.json is incomplete for the
    /// multilingual vocabulary (no "Ġ t", so " the" would not become 264 through it).
    private func bpe(_ start: [String]) -> [String] {
        var word = start
        while word.count > 1 {
            var best = Int.max, at = -1
            for i in 0..<(word.count - 1) {
                if let r = ids[word[i] + word[i + 1]], r < best { best = r; at = i }
            }
            if at < 0 { break }
            word[at] += word[at + 1]
            word.remove(at: at + 1)
        }
        return word
    }

    // MARK: Suppression lists

    /// Tokens openai-whisper suppresses for `suppress_tokens="-1"`: symbols and speaker-tag starts
    /// that are not spoken (`Tokenizer.non_speech_tokens`); computed once, at load.
    public private(set) var nonSpeechTokens: [Int] = []

    private func computeNonSpeechTokens() -> [Int] {
        var symbols = "\"#()*+/:;<=>@[\\]^_`{|}~「」『』".map { String($0) }
        symbols += "<< >> <<< >>> -- --- -( -[ (' (\" (( )) ((( ))) [[ ]] {{ }} ♪♪ ♪♪♪".split(separator: " ").map(
            String.init)
        let misc = Set("♩♪♫♬♭♮♯".map { String($0) })
        var result = Set<Int>()
        if let t = encode(" -").first { result.insert(t) }
        if let t = encode(" '").first { result.insert(t) }
        for s in symbols + misc.sorted() {
            for toks in [encode(s), encode(" " + s)] where !toks.isEmpty {
                if toks.count == 1 || misc.contains(s) { result.insert(toks[0]) }
            }
        }
        return result.sorted()
    }
}

/// GPT-2's reversible byte ↔ printable-unicode mapping and pre-tokenisation pattern.
enum ByteLevel {
    static let encoder: [Character] = {
        var bs = Array(33...126) + Array(161...172) + Array(174...255)
        var cs = bs
        var n = 0
        for b in 0..<256 where !bs.contains(b) { bs.append(b); cs.append(256 + n); n += 1 }
        var table = [Character](repeating: " ", count: 256)
        for (b, c) in zip(bs, cs) { table[b] = Character(UnicodeScalar(c)!) }
        return table
    }()
    static let decoder: [Unicode.Scalar: UInt8] = {
        var d = [Unicode.Scalar: UInt8]()
        for (b, c) in encoder.enumerated() { d[c.unicodeScalars.first!] = UInt8(b) }
        return d
    }()
    static let pattern = try! NSRegularExpression(
        pattern: "'s|'t|'re|'ve|'m|'ll|'d| ?\\p{L}+| ?\\p{N}+| ?[^\\s\\p{L}\\p{N}]+|\\s+(?!\\S)|\\s+")
}
