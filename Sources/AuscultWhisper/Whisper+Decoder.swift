// TextDecoder.forward of openai-whisper model.py with its kv_cache, batched over sequences.
import AuscultTensor
import Dispatch

/// Keys and values a decoding run keeps between steps.
///
/// Cross-attention keys and values are computed once per clip (`CrossAttentionKV`, shared by
/// every cache made from it); self-attention keys and values grow by the positions each step
/// adds, in one `KeyValueCache` per layer laid out by the model's backend.
public final class DecoderCache {
    /// For each sequence, the clip (row of the audio features) it attends to.
    public private(set) var audioIndex: [Int]
    /// For each sequence, its index among the sequences the cache was made for.
    public private(set) var sequenceIndex: [Int]
    /// Positions already in the cache (the same for every sequence).
    public private(set) var length: Int = 0
    let cross: CrossAttentionKV
    /// Per decoder layer, its self-attention keys and values.
    let layers: [any KeyValueCache]
    let capacity: Int
    let backend: any Backend
    let d: Int

    init(cross: CrossAttentionKV, audioIndex: [Int], capacity: Int, d: Int, layers: Int, backend: any Backend) {
        self.cross = cross
        self.audioIndex = audioIndex
        self.sequenceIndex = Array(audioIndex.indices)
        self.capacity = capacity
        self.backend = backend
        self.d = d
        self.layers = (0..<layers).map { _ in
            backend.makeKeyValueCache(sequences: audioIndex.count, capacity: capacity, width: d)
        }
    }

    /// Number of sequences.
    public var sequences: Int { audioIndex.count }

    /// Keeps sequence `source[i]`'s cache as new sequence `i` (beam search reordering / pruning).
    public func reorder(_ source: [Int]) {
        for layer in layers { layer.reorder(source, length: length) }
        audioIndex = source.map { audioIndex[$0] }
        sequenceIndex = source.map { sequenceIndex[$0] }
    }
}

extension Whisper {
    /// Prepares a cache whose sequence i attends to clip `audioIndex[i]` of `audio` `[A, F, d]`,
    /// computing every layer's cross-attention keys and values once (or taking them from `kv`).
    ///
    /// `capacity` bounds the positions it will hold (default and at most `n_text_ctx`): greedy
    /// decoding needs the prompt plus the sample length, about half the context, and its
    /// self-attention cache is memory touched fresh for every batch (880 MB for 160 rows
    /// at full context).
    public func makeCache(
        audio: Tensor, audioIndex: [Int], kv: CrossAttentionKV? = nil, capacity: Int? = nil,
        hooks: HookHandler? = nil
    ) throws -> DecoderCache {
        let kv = try kv ?? crossAttentionKV(audio, hooks: hooks)
        return DecoderCache(
            cross: kv, audioIndex: audioIndex, capacity: min(capacity ?? dims.n_text_ctx, dims.n_text_ctx),
            d: dims.n_text_state, layers: dims.n_text_layer, backend: backend)
    }

    /// Runs the decoder on `tokens` `[S][n]` (n new positions for every sequence, appended after
    /// the `cache.length` positions already cached) and returns logits `[S, n, V]`,
    /// or `[S, 1, V]` for the last position only when `lastOnly` (generation: saves n−1 vocab GEMVs).
    ///
    /// `logitRows` limits the vocabulary product to those sequences (the others' logits are 0):
    /// sequences that only feed another's tokens never need theirs.
    public func decode(
        _ tokens: [[Int]], cache: DecoderCache, lastOnly: Bool = false, step: Int = 0,
        logitRows: [Int]? = nil, hooks: HookHandler? = nil
    ) throws -> Tensor {
        let s = tokens.count, n = tokens.first?.count ?? 0, d = dims.n_text_state
        let offset = cache.length
        guard s == cache.sequences, n > 0, tokens.allSatisfy({ $0.count == n }) else {
            throw DecodingError(
                .invalidSequences,
                "decoder: \(s) sequences of unequal or zero length for a cache of "
                    + "\(cache.sequences)")
        }
        guard offset + n <= cache.capacity else {
            throw DecodingError(
                .invalidSequences,
                "decoder: \(offset + n) positions exceed the cache's \(cache.capacity) (the text context is "
                    + "\(dims.n_text_ctx))"
            )
        }
        let ctx = HookContext(
            step: step, positionOffset: offset, clips: cache.audioIndex, sequences: cache.sequenceIndex)
        for seq in tokens {
            for t in seq where t < 0 || t >= dims.n_vocab {
                throw DecodingError(.invalidSequences, "token id \(t) outside the vocabulary 0..<\(dims.n_vocab)")
            }
        }
        var tok = tokenEmbedding.gather(rows: tokens.flatMap { $0 }).reshaped([s, n, d])
        try hooks.run("decoder.hook_embed", &tok, ctx)
        var pos = Tensor.stack(
            [Tensor](repeating: decoderPositions.slice(offset..<(offset + n)), count: s))
        try hooks.run("decoder.hook_pos_embed", &pos, ctx)
        var x = tok
        backend.add(&x, pos)
        for (li, block) in decoderBlocks.enumerated() {
            x = try residualBlock(
                block, x, prefix: "decoder.blocks.\(li)", hooks: hooks, ctx: ctx,
                cross: { h, p in
                    try self.crossAttention(block, layer: li, h, cache: cache, prefix: p, hooks: hooks, ctx: ctx)
                },
                attention: { h, p in
                    try self.selfAttention(block, layer: li, h, cache: cache, prefix: p, hooks: hooks, ctx: ctx)
                })
        }
        cache.advance(by: n)
        if lastOnly && n > 1 { x = x.slice((n - 1)..<n, axis: 1) }
        let lnCtx =
            lastOnly && n > 1
            ? HookContext(
                step: step, positionOffset: offset + n - 1, clips: cache.audioIndex, sequences: cache.sequenceIndex)
            : ctx
        let y = try normed(x, lnFinal, name: "decoder.ln_final", hooks: hooks, ctx: lnCtx)
        var logits: Tensor
        if let logitRows, logitRows.count < s {
            // Only the rows asked for go through the vocabulary product; the others stay 0.
            logits = backend.logits(y.gather(rows: logitRows), unembedding).scatter(rows: logitRows, into: s)
        } else {
            logits = backend.logits(y, unembedding)
        }
        try hooks.run(
            "decoder.hook_logits", &logits,
            lastOnly && n > 1
                ? HookContext(
                    step: step, positionOffset: offset + n - 1, clips: cache.audioIndex, sequences: cache.sequenceIndex)
                : ctx)
        return logits
    }

    /// The decoder's read-out applied to any residual stream `[…, d]`: final LayerNorm, then the
    /// tied unembedding, giving logits `[…, V]` (the logit lens).
    public func unembed(_ residual: Tensor) -> Tensor {
        backend.logits(backend.layerNorm(residual, lnFinal, withScale: false).y, unembedding)
    }

    func selfAttention(
        _ block: Block, layer: Int, _ h: Tensor, cache: DecoderCache, prefix: String,
        hooks: HookHandler?, ctx: HookContext
    ) throws -> Tensor {
        let d = dims.n_text_state, heads = dims.n_text_head
        var qkv = backend.linear(h, block.qkv)
        try hookColumns(
            &qkv, width: 3 * d, parts: ["q", "k", "v"], prefix: prefix + ".attn", heads: heads, hooks: hooks, ctx: ctx)
        let wantPattern = hooks.isActive(prefix + ".attn.hook_pattern")
        let attention = backend.cachedSelfAttention(
            qkv, cache: cache.layers[layer], length: cache.length, heads: heads, record: wantPattern ? .pattern : [])
        var z = attention.z
        if var pattern = attention.pattern { try hooks.runReadOnly(prefix + ".attn.hook_pattern", &pattern, ctx) }
        try hookHeads(&z, name: prefix + ".attn.hook_z", heads: heads, hooks: hooks, ctx: ctx)
        return try projectHeads(
            z, block.attnOut, name: prefix + ".attn.hook_result", heads: heads, hooks: hooks, ctx: ctx)
    }
}

extension DecoderCache {
    func advance(by n: Int) { length += n }
    func relabel(_ ids: [Int]) { sequenceIndex = ids }
}
