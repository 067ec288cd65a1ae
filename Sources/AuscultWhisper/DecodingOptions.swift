// Options and results of decoding one 30 s window, as openai-whisper `decoding.py` names them.
import AuscultTensor
import Foundation

/// How to decode a 30 s window (`DecodingOptions` of openai-whisper; defaults match its `decode`
/// except `language`, which defaults to English as the reference runs use).
public struct DecodingOptions: Sendable {
    public var task: String = "transcribe"
    /// Language code; `nil` detects it (multilingual models only).
    public var language: String? = "en"
    /// At most this many sampled tokens; `nil` means n_text_ctx / 2 (224).
    public var sampleLen: Int? = nil
    /// Beam width; `nil` decodes greedily.
    public var beamSize: Int? = nil
    public var patience: Double? = nil
    /// Google NMT length penalty α in [0, 1]; `nil` ranks by logprob / length.
    public var lengthPenalty: Double? = nil
    public var suppressBlank: Bool = true
    /// Token ids to suppress; `-1` stands for the non-speech symbol set.
    public var suppressTokens: [Int] = [-1]
    public var withoutTimestamps: Bool = true
    public var maxInitialTimestamp: Double? = 1.0
    /// Previous-context tokens (preceded by `<|startofprev|>`) and a forced prefix for the output.
    public var prompt: [Int]? = nil
    public var prefix: [Int]? = nil
    /// Sampling temperature: 0 is greedy (argmax); above 0 samples with `seed`.
    public var temperature: Double = 0
    public var seed: UInt64 = 0

    public init() {}
}

/// The outcome of decoding one clip (openai-whisper `DecodingResult`).
public struct DecodingResult: Sendable, Codable {
    /// Sampled token ids, prompt and end-of-text excluded.
    public var tokens: [Int]
    public var text: String
    public var language: String
    public var sumLogprob: Double
    public var avgLogprob: Double
    public var noSpeechProb: Double
    public var temperature: Double
    /// Words with start and end times, when asked for (`BatchTranscriber.wordTimestamps`).
    public var words: [WordTiming]? = nil
}

/// The logit filters of openai-whisper (`SuppressBlank`, `SuppressTokens`, `ApplyTimestampRules`).
struct LogitFilters {
    let tokenizer: WhisperTokenizer
    let sampleBegin: Int
    let suppress: [Int]
    let blank: [Int]
    let timestamps: Bool
    let maxInitialTimestampIndex: Int?

    /// Applies every filter to one row of logits `[V]` for a sequence whose tokens so far are
    /// `tokens`.
    func apply(_ logits: Tensor.MutableRow, tokens: [Int]) {
        if tokens.count == sampleBegin { logits.fill(blank, with: -.infinity) }
        logits.fill(suppress, with: -.infinity)
        if timestamps { applyTimestampRules(logits, tokens: tokens) }
    }

    private func applyTimestampRules(_ logits: Tensor.MutableRow, tokens: [Int]) {
        let tb = tokenizer.timestampBegin, eot = tokenizer.eot, vocab = logits.count
        logits[tokenizer.noTimestamps] = -.infinity
        let seq = Array(tokens[sampleBegin...])
        let lastWas = seq.count >= 1 && seq[seq.count - 1] >= tb
        let penultimateWas = seq.count < 2 || seq[seq.count - 2] >= tb
        if lastWas {
            logits.fill(penultimateWas ? tb..<vocab : 0..<eot, with: -.infinity)
        }
        if let lastTs = seq.last(where: { $0 >= tb }) {
            let limit = (lastWas && !penultimateWas) ? lastTs : lastTs + 1
            if limit > tb { logits.fill(tb..<min(limit, vocab), with: -.infinity) }
        }
        if tokens.count == sampleBegin {
            logits.fill(0..<tb, with: -.infinity)
            if let m = maxInitialTimestampIndex, tb + m + 1 < vocab {
                logits.fill((tb + m + 1)..<vocab, with: -.infinity)
            }
        }
        // If the timestamps together outweigh every text token, force a timestamp.
        let lse = logits.read.logSumExp()
        let tsLogprob = logits.read.logSumExp(tb..<vocab) - lse
        let maxText = tb > 0 ? Double(logits.read.max(0..<tb)) : -Double.infinity
        if tsLogprob > maxText - lse { logits.fill(0..<tb, with: -.infinity) }
    }
}

extension DecodingOptions {
    /// The prompt and prefix as a resumable run records them (`prompt`/`prefix`: token ids
    /// joined by commas), so a rerun with other context is refused; empty when neither is set.
    public var contextSettings: [String: String] {
        var s = [String: String]()
        if let prompt { s["prompt"] = prompt.map(String.init).joined(separator: ",") }
        if let prefix { s["prefix"] = prefix.map(String.init).joined(separator: ",") }
        return s
    }
}
