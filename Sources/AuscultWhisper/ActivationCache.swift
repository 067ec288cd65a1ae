// The activations of one run keyed by hook name, with TransformerLens's analysis set
// (`ActivationCache` of TransformerLens: accumulated_resid, decompose_resid, stack_head_results,
// apply_ln_to_stack, logit_attrs), adapted to Whisper's two stacks and unfolded LayerNorms.
import AuscultTensor
import Foundation

/// Named activations of one clip, batch axis dropped: encoder entries `[F, …]` (all 1500 frames;
/// `audioFrames` of them hold audio), decoder entries `[T, …]` over the input `tokens`.
public struct ActivationCache: Sendable {
    /// The model the activations came from.
    public let loaded: LoadedModel
    /// Canonical hook name → activation.
    public private(set) var activations: [String: Tensor]
    /// The decoder's input token ids.
    public let tokens: [Int]
    /// Encoder frames that hold audio (20 ms each).
    public let audioFrames: Int

    /// The value of the metric differentiated by `runWithCache(_:backward:)`, else nil.
    public var metric: Double?

    /// The model's hook points, for aliases (made once: a registry lists a few hundred names).
    let registry: HookRegistry

    public init(loaded: LoadedModel, activations: [String: Tensor], tokens: [Int], audioFrames: Int) {
        self.loaded = loaded; self.activations = activations; self.tokens = tokens; self.audioFrames = audioFrames
        registry = HookRegistry(dims: loaded.model.dims)
    }

    var dims: ModelDimensions { loaded.model.dims }

    /// The cached hook names, sorted.
    public var names: [String] { activations.keys.sorted() }

    /// The activation at `name` (a name or an alias such as `encoder.blocks.2`), nil when not cached.
    public subscript(_ name: HookName) -> Tensor? {
        activations[name.name] ?? activations[registry.canonical(name.name)]
    }

    /// The activation at `name`, or an error naming it and what the cache holds.
    public func tensor(_ name: HookName) throws -> Tensor {
        if let t = self[name] { return t }
        throw HookError(
            .notCached,
            "the cache holds no '\(name.name)'; cache it by naming it in runWithCache "
                + "(cached: \(names.prefix(6).joined(separator: ", "))\(names.count > 6 ? ", …" : ""))")
    }

    /// The gradient of the differentiated metric at `name` (`runWithCache(_:backward:)`), or an
    /// error naming what the cache holds gradients for.
    public func gradient(_ name: HookName) throws -> Tensor {
        let canonical = activations[name.name] != nil ? name.name : registry.canonical(name.name)
        if let g = activations[canonical + "_grad"] { return g }
        let held = names.filter { $0.hasSuffix("_grad") }
        throw HookError(
            .notCached,
            "the cache holds no gradient at '\(name.name)'; "
                + (held.isEmpty
                    ? "run runWithCache with backward: to take gradients"
                    : "it has \(held.count), e.g. \(held.prefix(3).joined(separator: ", "))"))
    }

    // MARK: Residual stream

    /// The residual stream entering each block of `side` up to `layer` (nil: every block, then
    /// the stream leaving the last): `[L, seq, d]` with a label per entry. With `applyLN`, each
    /// passes through the final LayerNorm's centring and cached scale (`applyLNToStack`).
    public func accumulatedResid(
        _ side: Side = .decoder, layer: Int? = nil,
        applyLN: Bool = false
    ) throws -> (stack: Tensor, labels: [String]) {
        let n = layers(side)
        let upTo = try checkedLayer(layer, side)
        var parts = [Tensor](), labels = [String]()
        for i in 0..<upTo {
            let b = block(side, i)
            let name = i > 0 && self[b.residPre] == nil ? block(side, i - 1).residPost : b.residPre
            parts.append(try tensor(name)); labels.append(name.name)
        }
        if upTo == n {
            let last = block(side, n - 1).residPost
            parts.append(try tensor(last)); labels.append(last.name)
        }
        let stack = Tensor.stack(parts)
        return (applyLN ? try applyLNToStack(stack, side, layer: layer) : stack, labels)
    }

    /// What each component wrote to the residual stream of `side` before `layer` (nil: all):
    /// the embeddings (`embed` and `pos_embed`; the encoder's `conv` and `pos_embed`), then each
    /// block's attention, cross-attention (decoder) and MLP outputs, `[C, seq, d]`. They sum to
    /// the stream (`accumulatedResid`'s last entry).
    public func decomposeResid(
        _ side: Side = .decoder, layer: Int? = nil,
        applyLN: Bool = false
    ) throws -> (stack: Tensor, labels: [String]) {
        var parts = [Tensor](), labels = [String]()
        for (name, label) in embeddingParts(side) { parts.append(try tensor(name)); labels.append(label) }
        for i in 0..<(try checkedLayer(layer, side)) {
            let b = block(side, i)
            for name in side == .decoder ? [b.attnOut, b.crossAttnOut, b.mlpOut] : [b.attnOut, b.mlpOut] {
                parts.append(try tensor(name)); labels.append(name.name)
            }
        }
        let stack = Tensor.stack(parts)
        return (applyLN ? try applyLNToStack(stack, side, layer: layer) : stack, labels)
    }

    /// Every head's result (self-attention; also cross-attention with `cross`) of the blocks of
    /// `side` before `layer`: `[C, seq, d]`, labelled `decoder.blocks.1.attn.h3`. Needs the
    /// per-head results cached (`attn.hook_result`, computed only when named).
    public func stackHeadResults(
        _ side: Side = .decoder, layer: Int? = nil, cross: Bool = false,
        applyLN: Bool = false
    ) throws -> (stack: Tensor, labels: [String]) {
        var parts = [Tensor](), labels = [String]()
        for i in 0..<(try checkedLayer(layer, side)) {
            let b = block(side, i)
            for attention in cross && side == .decoder ? [b.attn, b.crossAttn] : [b.attn] {
                let r = try tensor(attention.result)  // [seq, h, d]
                for h in 0..<r.shape[1] {
                    parts.append(r.select(h, axis: 1)); labels.append("\(attention.prefix).h\(h)")
                }
            }
        }
        guard !parts.isEmpty else {
            throw HookError(.invalidSelector, "stackHeadResults: no block before layer \(layer ?? 0)")
        }
        let stack = Tensor.stack(parts)
        return (applyLN ? try applyLNToStack(stack, side, layer: layer) : stack, labels)
    }

    /// The residual stream of the decoder split as finely as direct logit attribution reads it:
    /// the embeddings (token and position together, `embed`), then per block each self-attention
    /// head, the self-attention output bias (`….attn.bias`: its output minus the heads' sum), each
    /// cross-attention head, the cross-attention bias, and the MLP (`….mlp`). `[C, T, d]`; needs
    /// `attn.hook_result` and `cross_attn.hook_result` cached beside the block outputs.
    public func headDecomposition() throws -> (stack: Tensor, labels: [String]) {
        var parts = [try tensor(HookName.embed) + (try tensor(HookName.posEmbed))], labels = ["embed"]
        for i in 0..<dims.n_text_layer {
            let b = block(.decoder, i)
            for (attention, out) in [(b.attn, b.attnOut), (b.crossAttn, b.crossAttnOut)] {
                let r = try tensor(attention.result)  // [T, h, d]
                var rest = try tensor(out)
                for h in 0..<r.shape[1] {
                    let head = r.select(h, axis: 1)
                    parts.append(head); labels.append("\(attention.prefix).h\(h)")
                    rest = rest - head
                }
                parts.append(rest); labels.append("\(attention.prefix).bias")
            }
            parts.append(try tensor(b.mlpOut)); labels.append("\(b.prefix).mlp")
        }
        return (Tensor.stack(parts), labels)
    }

    // MARK: LayerNorm and logits

    /// Applies the LayerNorm before `layer` of `side` to each entry of a stack `[C, seq, d]` as
    /// direct attribution needs it: centred over d and divided by the cached scale σ of the whole
    /// stream at each position (`layer` nil: the final LayerNorm, `decoder.ln_final.hook_scale` or
    /// `encoder.ln_post.hook_scale`; else the block's `ln1.hook_scale`). The LayerNorm's γ and β
    /// are not applied (Auscult does not fold them into the weights): `logitAttrs` applies γ.
    public func applyLNToStack(_ stack: Tensor, _ side: Side = .decoder, layer: Int? = nil) throws -> Tensor {
        let scaleName: HookName =
            layer.map { block(side, $0).ln1.scale }
            ?? (side == .decoder ? HookName.lnFinal.scale : HookName.lnPost.scale)
        let scale = try tensor(scaleName)  // [seq, 1]
        guard stack.rank == 3, stack.shape[1] == scale.shape[0] else {
            throw HookError(
                .shapeMismatch,
                "applyLNToStack: stack of shape \(stack.shape) for a scale over \(scale.shape[0]) positions; expected "
                    + "[C, \(scale.shape[0]), d]"
            )
        }
        return stack.centered(dividingRowsBy: scale)
    }

    /// Each component's direct contribution to the logit of `tokens[p]` at each position p (minus
    /// that of `incorrect[p]` when given: a logit difference): `Σ_j stack[c, p, j] · γ_j · W_U[t, j]`
    /// for a stack that went through `applyLNToStack`. `[C, T]`. The logit is the sum over a full
    /// decomposition plus `β · W_U[t]` (`logitBias`).
    public func logitAttrs(_ stack: Tensor, tokens: [Int], incorrect: [Int]? = nil) throws -> Tensor {
        let d = dims.n_text_state
        guard stack.rank == 3, stack.shape[2] == d, stack.shape[1] == tokens.count,
            incorrect.map({ $0.count == tokens.count }) ?? true
        else {
            throw HookError(
                .shapeMismatch,
                "logitAttrs: stack \(stack.shape) needs [C, \(tokens.count), \(d)] for \(tokens.count) tokens (and as "
                    + "many incorrect ones)"
            )
        }
        try checkVocabulary(tokens + (incorrect ?? []))
        let wu = loaded.model.weights["decoder.token_embedding.weight"]  // [V, d]
        let directions = (0..<tokens.count).map { p in
            let right = wu.row(tokens[p]).scalars, wrong = incorrect.map { wu.row($0[p]).scalars }
            return (0..<d).map { j in Double(right[j]) - (wrong.map { Double($0[j]) } ?? 0) }
        }
        return try logitAttrs(stack, directions: directions)
    }

    /// Each component's direct contribution along a direction in unembedding space per position
    /// (`directions` `[T][d]`: a token's unembedding, a difference of two, or a token's minus the
    /// expected one under the model's distribution): `Σ_j stack[c, p, j] · γ_j · directions[p][j]`
    /// for a stack that went through `applyLNToStack`. `[C, T]`; the constant part is
    /// `logitBias(directions:)`.
    public func logitAttrs(_ stack: Tensor, directions raw: [[Double]]) throws -> Tensor {
        let d = dims.n_text_state
        guard stack.rank == 3, stack.shape[2] == d, stack.shape[1] == raw.count, raw.allSatisfy({ $0.count == d })
        else {
            throw HookError(
                .shapeMismatch,
                "logitAttrs: stack \(stack.shape) needs [C, \(raw.count), \(d)] for \(raw.count) directions of \(d)")
        }
        let gamma = loaded.model.weights["decoder.ln.weight"].scalars
        return stack.dots(alongLastAxisWith: raw.map { r in (0..<d).map { Double(gamma[$0]) * r[$0] } })
    }

    /// `β · direction` of the final LayerNorm for each direction `[T][d]` (see `logitAttrs(_:directions:)`).
    public func logitBias(directions: [[Double]]) -> [Double] {
        let d = dims.n_text_state
        let beta = loaded.model.weights["decoder.ln.bias"].scalars
        return directions.map { r in (0..<min(d, r.count)).reduce(0.0) { $0 + Double(beta[$1]) * r[$1] } }
    }

    /// The constant part of each logit that no component writes: `β · W_U[t]` of the final LayerNorm.
    public func logitBias(tokens: [Int]) throws -> [Double] {
        try checkVocabulary(tokens)
        let d = dims.n_text_state
        let beta = loaded.model.weights["decoder.ln.bias"].scalars
        let wu = loaded.model.weights["decoder.token_embedding.weight"]  // [V, d]
        return tokens.map { t in
            let row = wu.row(t).scalars
            return (0..<d).reduce(0.0) { $0 + Double(beta[$1]) * Double(row[$1]) }
        }
    }

    // MARK: Export

    /// Writes the cache as safetensors: one F32 tensor per hook name, `decoder.tokens` as I64 ids,
    /// and metadata `model` (its name), `audio_frames`, `hooks`, `format` (`auscult-cache/1`).
    public func write(to path: String, metadata extra: [String: String] = [:]) throws {
        var meta = extra
        meta["format"] = "auscult-cache/1"
        meta["model"] = loaded.name
        meta["model_sha256"] = loaded.contentHash
        meta["audio_frames"] = String(audioFrames)
        meta["hooks"] = names.joined(separator: ",")
        try SafeTensorsFile.write(activations, integers: ["decoder.tokens": tokens], metadata: meta, to: path)
    }

    /// Reads a cache written by `write` for `loaded` (a model of the same dimensions).
    public init(contentsOf path: String, loaded: LoadedModel) throws {
        let file = try SafeTensorsFile(path: path)
        let registry = HookRegistry(dims: loaded.model.dims)
        var acts = [String: Tensor]()
        for name in file.names where name != "decoder.tokens" {
            guard registry.point(name) != nil else {
                throw HookError(.unknownHook, "\(path): '\(name)' is not a hook point of this model")
            }
            acts[name] = try file.tensor(name)
        }
        let frames = Int(file.metadata["audio_frames"] ?? "") ?? loaded.model.dims.n_audio_ctx
        guard frames >= 1 && frames <= loaded.model.dims.n_audio_ctx else {
            throw HookError(
                .invalidValue, "\(path): audio_frames \(frames) outside 1…\(loaded.model.dims.n_audio_ctx)")
        }
        let tokens = file.entries["decoder.tokens"] == nil ? [] : try file.integers("decoder.tokens")
        self.init(loaded: loaded, activations: acts, tokens: tokens, audioFrames: frames)
    }

    // MARK: Helpers

    func layers(_ side: Side) -> Int { side == .decoder ? dims.n_text_layer : dims.n_audio_layer }
    func block(_ side: Side, _ i: Int) -> BlockHooks { side == .decoder ? HookName.decoder(i) : HookName.encoder(i) }

    func embeddingParts(_ side: Side) -> [(HookName, String)] {
        side == .decoder
            ? [(.embed, "embed"), (.posEmbed, "pos_embed")]
            : [(.convOut, "conv"), (.encoderPosEmbed, "pos_embed")]
    }

    func checkedLayer(_ layer: Int?, _ side: Side) throws -> Int {
        let n = layers(side)
        guard let layer else { return n }
        guard layer >= 0 && layer <= n else {
            throw HookError(.invalidSelector, "layer \(layer) outside 0…\(n) of the \(side.rawValue)")
        }
        return layer
    }

    func checkVocabulary(_ ids: [Int]) throws {
        if let bad = ids.first(where: { $0 < 0 || $0 >= dims.n_vocab }) {
            throw DecodingError(.invalidToken, "token id \(bad) is outside the vocabulary 0..<\(dims.n_vocab)")
        }
    }
}
