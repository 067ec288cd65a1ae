// DecodingTask of openai-whisper `decoding.py`: greedy and beam-search decoding of 30 s windows,
// batched over clips, with its logit filters, no-speech probability and sequence ranking.
import AuscultTensor
import Foundation

/// Decodes audio features into tokens and text with a model and its tokenizer.
public struct WhisperDecoder: Sendable {
    public let model: Whisper
    public let tokenizer: WhisperTokenizer

    public init(model: Whisper, tokenizer: WhisperTokenizer) {
        self.model = model
        self.tokenizer = tokenizer
    }

    /// Tokens suppressed for `options.suppressTokens` (openai-whisper `_get_suppress_tokens`).
    public func suppressTokens(_ options: DecodingOptions) -> [Int] {
        var s = options.suppressTokens.filter { $0 >= 0 }
        if options.suppressTokens.contains(-1) { s += tokenizer.nonSpeechTokens }
        s += [
            tokenizer.transcribe, tokenizer.translate, tokenizer.sot, tokenizer.sotPrev, tokenizer.sotLM,
            tokenizer.noSpeech,
        ]
        return Array(Set(s)).sorted()
    }

    /// The prompt every sequence starts with: [`<|startofprev|>` prompt] sot-sequence [notimestamps] [prefix].
    public func initialTokens(_ options: DecodingOptions, language: String?) -> [Int] {
        var t = tokenizer.sotSequence(language: language, task: options.task)
        if options.withoutTimestamps { t.append(tokenizer.noTimestamps) }
        let nCtx = model.dims.n_text_ctx
        let sampleLen = options.sampleLen ?? nCtx / 2
        // An empty prompt or prefix counts as none (Python's truthiness in `_get_initial_tokens`).
        // openai-whisper keeps `prefix[-(n_ctx // 2 - sample_len):]`, and with the default sample
        // length that is `prefix[-0:]`: all of it (a non-positive bound keeps from the front).
        if let p = options.prefix, !p.isEmpty {
            let keep = nCtx / 2 - sampleLen
            t += keep > 0 ? Array(p.suffix(keep)) : Array(p.dropFirst(-keep))
        }
        if let p = options.prompt, !p.isEmpty { t = [tokenizer.sotPrev] + p.suffix(nCtx / 2 - 1) + t }
        return t
    }

    /// Most likely language of each clip of `audio` `[A, F, d]`: code and per-language probabilities.
    public func detectLanguage(_ audio: Tensor) throws -> [(code: String, probs: [String: Double])] {
        guard tokenizer.isMultilingual else {
            return (0..<audio.shape[0]).map { _ in ("en", ["en": 1.0]) }
        }
        let a = audio.shape[0]
        let cache = try model.makeCache(audio: audio, audioIndex: Array(0..<a))
        let logits = try model.decode([[Int]](repeating: [tokenizer.sot], count: a), cache: cache)
        let v = model.dims.n_vocab
        var out = [(code: String, probs: [String: Double])]()
        logits.reshaped([a, v]).forEachRow { _, row in
            var m = -Float.infinity
            for t in tokenizer.languageTokens { m = max(m, row[t]) }
            var z = 0.0
            for t in tokenizer.languageTokens { z += exp(Double(row[t] - m)) }
            var probs = [String: Double]()
            var best = (code: "en", p: -1.0)
            for (code, t) in zip(tokenizer.languageCodes, tokenizer.languageTokens) {
                let p = exp(Double(row[t] - m)) / z
                probs[code] = p
                if p > best.p { best = (code, p) }
            }
            out.append((best.code, probs))
        }
        return out
    }

    /// Decodes every clip of `audio` `[A, F, d]` (one 30 s window each) with `options`.
    public func decode(
        audio: Tensor, options: DecodingOptions = DecodingOptions(),
        hooks: HookHandler? = nil
    ) throws -> [DecodingResult] {
        try decode(audio: audio, rows: nil, tokensFrom: nil, options: options, hooks: hooks)
    }

    /// Greedy decoding of sequences that need not be one per clip: sequence i reads clip
    /// `rows[i]` of `audio` `[A, F, d]` (several conditions of one clip share its cross-attention
    /// keys and values). With `tokensFrom`, sequence i feeds the token that sequence
    /// `tokensFrom[i]` picks instead of its own (the same tokens run on other audio, as resampling
    /// a decoder block needs); `tokensFrom[j] == j` for sequences that pick their own. One result
    /// per sequence.
    public func decode(
        audio: Tensor, rows: [Int]?, tokensFrom: [Int]?, options: DecodingOptions = DecodingOptions(),
        kv: CrossAttentionKV? = nil, hooks: HookHandler? = nil
    ) throws -> [DecodingResult] {
        let rows = rows ?? Array(0..<audio.shape[0])
        let a = rows.count
        if let tokensFrom {
            guard tokensFrom.count == a, tokensFrom.indices.allSatisfy({ tokensFrom[tokensFrom[$0]] == tokensFrom[$0] })
            else {
                throw DecodingError(
                    .invalidSequences,
                    "tokensFrom must name, for each of the \(a) sequences, a sequence that picks "
                        + "its own tokens")
            }
        }
        guard rows.allSatisfy({ $0 >= 0 && $0 < audio.shape[0] }) else {
            throw DecodingError(
                .invalidSequences, "sequence rows \(rows) outside the \(audio.shape[0]) clips of the audio features")
        }
        if let l = options.language, tokenizer.isMultilingual, tokenizer.languageToken(l) == nil {
            throw DecodingError(
                .unknownLanguage, "unknown language '\(l)'; known: \(tokenizer.languageCodes.joined(separator: ", "))")
        }
        if options.beamSize != nil, rows != Array(0..<audio.shape[0]) || tokensFrom != nil {
            throw DecodingError(
                .invalidOptions,
                "beam search decodes one sequence per clip; use greedy decoding for rows and "
                    + "tokensFrom")
        }
        if let b = options.beamSize, b < 1 {
            throw DecodingError(.invalidOptions, "beam size must be at least 1, got \(b)")
        }
        let languages: [String]
        if options.language == nil && tokenizer.isMultilingual {
            let detected = try detectLanguage(audio).map(\.code)
            languages = rows.map { detected[$0] }
        } else {
            languages = [String](repeating: tokenizer.isMultilingual ? (options.language ?? "en") : "en", count: a)
        }
        let prompts = languages.map { initialTokens(options, language: $0) }
        let sampleBegin = prompts[0].count
        let filters = LogitFilters(
            tokenizer: tokenizer, sampleBegin: sampleBegin,
            suppress: options.suppressTokens.isEmpty ? [] : suppressTokens(options),
            blank: options.suppressBlank ? tokenizer.encode(" ") + [tokenizer.eot] : [],
            timestamps: !options.withoutTimestamps,
            maxInitialTimestampIndex: options.maxInitialTimestamp.map { Int(($0 / 0.02).rounded()) })
        let search = TokenSearch(
            decoder: self, options: options, filters: filters, sampleBegin: sampleBegin,
            sotIndex: prompts[0].firstIndex(of: tokenizer.sot) ?? 0)
        let outcome =
            options.beamSize != nil
            ? try search.beam(audio: audio, prompts: prompts, width: options.beamSize!, hooks: hooks)
            : try search.greedy(
                audio: audio, prompts: prompts, rows: rows, tokensFrom: tokensFrom, kv: kv, hooks: hooks)
        return (0..<a).map { i in
            let (toks, sum) = outcome.best[i]
            return DecodingResult(
                tokens: toks, text: tokenizer.decode(toks).trimmingCharacters(in: .whitespaces),
                language: languages[i], sumLogprob: sum, avgLogprob: sum / Double(toks.count + 1),
                noSpeechProb: outcome.noSpeech[i], temperature: options.temperature)
        }
    }
}
