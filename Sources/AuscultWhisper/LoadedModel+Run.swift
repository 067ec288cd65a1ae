// The front door: one clip through the model, with hooks, interventions and a cache of named
// activations, as TransformerLens's `run_with_hooks` and `run_with_cache` do for text models.
import AuscultTensor
import Foundation

/// What one run produced.
public struct RunResult: Sendable {
    /// The decoder's input: the prompt (start-of-transcript sequence), then the text tokens; when
    /// teacher-forced, exactly the tokens given. End-of-text is never fed in generation.
    public var inputTokens: [Int]
    /// Sampled (or forced) text tokens: the input after the prompt, special tokens excluded.
    public var tokens: [Int]
    public var text: String
    /// Logits `[T, n_vocab]` at every input position, when asked for.
    public var logits: Tensor?
    /// Encoder frames holding audio (20 ms each; the rest of the 1500 is padding).
    public var audioFrames: Int
    /// Language of the transcript (detected on multilingual models unless given).
    public var language: String
    /// Greedy decoding's mean log-probability per sampled token (nil when teacher-forced).
    public var avgLogprob: Double?
}

extension LoadedModel {
    /// Runs one clip: greedy generation, or teacher-forced on `tokens` (the whole decoder input,
    /// prompt included; see `prompt()`), with `interventions` applied and `hooks` seeing (and
    /// possibly replacing) every activation after them.
    ///
    ///     let clean = try model.run("data/clips/jfk.wav", logits: true)
    ///     let ablated = try model.run("data/clips/jfk.wav", tokens: clean.inputTokens,
    ///                                 interventions: [.zero(.decoder(1).attn.z, heads: [3])], logits: true)
    public func run(
        _ audio: AudioInput, tokens: [Int]? = nil, interventions: [Intervention] = [],
        hooks: HookHandler? = nil, logits: Bool = false,
        options: DecodingOptions = DecodingOptions()
    ) throws -> RunResult {
        try forward(
            audio, record: logits ? [HookName.logits.name] : [], tokens: tokens,
            interventions: interventions, hooks: hooks, options: options
        ).result
    }

    /// Runs one clip as `run` does and caches the activations at `names` (hook names, aliases or
    /// globs; nil: every hook point that is computed without being asked for, as TransformerLens
    /// caches every hook). Opt-in points (attention patterns, scores, per-head results) are
    /// computed only when named.
    ///
    /// Decoder entries cover every input position: the teacher-forced tokens, or the prompt and
    /// each sampled token fed back, in order.
    public func runWithCache(
        _ audio: AudioInput, names: [HookName]? = nil, tokens: [Int]? = nil,
        interventions: [Intervention] = [], hooks: HookHandler? = nil, logits: Bool = false,
        options: DecodingOptions = DecodingOptions()
    ) throws -> (RunResult, ActivationCache) {
        var wanted = try cachedNames(names)
        let cachesLogits = wanted.contains(HookName.logits.name)
        if logits && !cachesLogits { wanted.append(HookName.logits.name) }
        let run = try forward(
            audio, record: wanted, tokens: tokens, interventions: interventions, hooks: hooks,
            options: options)
        var store = run.store
        if !cachesLogits { store[HookName.logits.name] = nil }
        let cache = ActivationCache(
            loaded: self, activations: store, tokens: run.result.inputTokens,
            audioFrames: run.result.audioFrames)
        return (run.result, cache)
    }

    /// The canonical hook names `names` resolve to (names, aliases, globs), in order; nil: every
    /// point computed without being asked for.
    func cachedNames(_ names: [HookName]?) throws -> [String] {
        let registry = HookRegistry(dims: model.dims)
        guard let names else { return registry.points.filter { !$0.optIn }.map(\.name) }
        var wanted = [String]()
        for n in names { for r in try registry.resolve(n.name) where !wanted.contains(r) { wanted.append(r) } }
        return wanted
    }

    /// The decoder's prompt for `options`: the start-of-transcript sequence (with language and
    /// task on multilingual models) and `<|notimestamps|>`; append text tokens to teacher-force.
    public func prompt(_ options: DecodingOptions = DecodingOptions()) -> [Int] {
        decoder.initialTokens(options, language: tokenizer.isMultilingual ? (options.language ?? "en") : nil)
    }

    /// The one forward pass behind `run` and `runWithCache`: records the hook points `record`
    /// (canonical names), batch axis dropped.
    func forward(
        _ audio: AudioInput, record: [String], tokens: [Int]?, interventions: [Intervention],
        hooks: HookHandler?, options: DecodingOptions
    ) throws -> (result: RunResult, store: [String: Tensor]) {
        let dims = model.dims
        if let tokens { try validate(tokens: tokens) }
        if options.beamSize != nil {
            throw DecodingError(
                .invalidOptions, "a run decodes greedily (one sequence per clip); beam search is for transcription")
        }
        // Swaps from other audio run that audio beside the clip as sequences 1…, fed the same tokens.
        let (donors, items) = try Self.donorRows(interventions)
        let (mel, frames) = try audio.window(for: dims)
        var mels = [mel]
        for d in donors { mels.append(try d.window(for: dims).mel) }
        let wanted = Set(record)
        let recorder = ActivationRecorder { wanted.contains($0) }
        var chain = [HookHandler]()
        if !items.isEmpty { chain.append(try Interventions(items, model: model)) }
        if let hooks { chain.append(hooks) }
        if !wanted.isEmpty { chain.append(recorder) }
        let handler: HookHandler? = chain.isEmpty ? nil : (chain.count == 1 ? chain[0] : HookChain(chain))
        let features = try model.encode(Tensor.stack(mels), hooks: handler)
        let rows = mels.count
        var result: RunResult
        if let tokens {
            let cache = try model.makeCache(audio: features, audioIndex: Array(0..<rows), hooks: handler)
            _ = try model.decode(
                [[Int]](repeating: tokens, count: rows), cache: cache, logitRows: rows > 1 ? [0] : nil, hooks: handler)
            let prompt = self.prompt(options)
            let text = tokens.starts(with: prompt) ? Array(tokens.dropFirst(prompt.count)) : tokens
            let plain = text.filter { $0 < tokenizer.eot }
            result = RunResult(
                inputTokens: tokens, tokens: plain,
                text: tokenizer.decode(plain).trimmingCharacters(in: .whitespaces), logits: nil,
                audioFrames: frames, language: options.language ?? "en", avgLogprob: nil)
        } else {
            var o = options
            o.beamSize = nil
            let r = try decoder.decode(
                audio: features, rows: nil, tokensFrom: rows > 1 ? [Int](repeating: 0, count: rows) : nil, options: o,
                hooks: handler)[0]
            let plain = r.tokens.filter { $0 < tokenizer.eot }
            result = RunResult(
                inputTokens: decoder.initialTokens(o, language: r.language) + r.tokens, tokens: plain,
                text: r.text, logits: nil, audioFrames: frames, language: r.language,
                avgLogprob: r.avgLogprob)
        }
        var store = [String: Tensor]()
        // The clip's row; donor sequences are not part of the run's result.
        for (k, v) in recorder.store { store[k] = v.slice(0..<1).reshaped(Array(v.shape.dropFirst())) }
        result.logits = store[HookName.logits.name]
        return (result, store)
    }

    /// Checks `interventions` against this model's hook points (names, globs, blocks, swaps
    /// beside the run) before any work, as a run would.
    public func validate(interventions: [Intervention]) throws {
        _ = try Interventions(try Self.donorRows(interventions).items, model: model)
    }

    /// The donor audio of `fromAudio` swaps, one sequence each after the clip's, and the
    /// interventions with those swaps read from their sequences: the clip's own interventions
    /// touch the clip only (the donor runs are clean).
    static func donorRows(_ interventions: [Intervention]) throws -> (donors: [AudioInput], items: [Intervention]) {
        var donors = [AudioInput](), items = [Intervention]()
        for var it in interventions {
            guard case .fromAudio(let audio) = it.kind else { items.append(it); continue }
            guard it.hook.hasPrefix("decoder.") else {
                throw ConditionError(
                    .unsupported,
                    "\(it.description): a swap beside the run is for decoder hook points and blocks; an encoder "
                        + "point takes the donor's activation frame by frame (Intervention.resample)")
            }
            donors.append(audio)
            let sequence = donors.count
            it.kind =
                Regex.matches("^decoder\\.blocks\\.\\d+$", it.hook)
                ? .blockWrite(.fromSequence(sequence)) : .fromSequence(sequence)
            it.sequences = [0]
            items.append(it)
        }
        if !donors.isEmpty {
            for i in items.indices where items[i].sequences == nil { items[i].sequences = [0] }
        }
        return (donors, items)
    }

    /// Checks teacher-forced tokens: at least one, ids inside the vocabulary, within the text context.
    func validate(tokens: [Int]) throws {
        let dims = model.dims
        guard !tokens.isEmpty, tokens.count <= dims.n_text_ctx else {
            throw DecodingError(.invalidToken, "tokens: \(tokens.count) given; a run takes 1…\(dims.n_text_ctx)")
        }
        if let bad = tokens.firstIndex(where: { $0 < 0 || $0 >= dims.n_vocab }) {
            throw DecodingError(
                .invalidToken,
                "tokens: id \(tokens[bad]) at position \(bad) is outside the vocabulary 0..<\(dims.n_vocab)")
        }
    }
}
