// TextDecoder.forward of openai-whisper model.py with its kv_cache, batched over sequences.
import AuscultTensor
import Dispatch

/// Keys and values a decoding run keeps between steps.
///
/// Cross-attention keys and values are computed once per clip (`CrossAttentionKV`, shared by
/// every cache made from it); self-attention keys and values grow by the positions each step
/// adds: values `[S, capacity, d]` per layer, keys transposed `[S, d, keyStride]` so that both
/// products of attention read them in place (`Attention.forwardCached`).
public final class DecoderCache {
    /// For each sequence, the clip (row of the audio features) it attends to.
    public private(set) var audioIndex: [Int]
    /// For each sequence, its index among the sequences the cache was made for.
    public private(set) var sequenceIndex: [Int]
    /// Positions already in the cache (the same for every sequence).
    public private(set) var length: Int = 0
    let cross: CrossAttentionKV
    /// Per layer `[S, d, keyStride]`: key j of a sequence in column j.
    var selfK: [[Float]]
    /// Per layer `[S, capacity, d]`.
    var selfV: [[Float]]
    let capacity: Int
    /// Capacity rounded up to 16, the row stride of the transposed keys.
    let keyStride: Int
    let d: Int

    init(cross: CrossAttentionKV, audioIndex: [Int], capacity: Int, d: Int, layers: Int) {
        self.cross = cross
        self.audioIndex = audioIndex
        self.sequenceIndex = Array(audioIndex.indices)
        self.capacity = capacity
        self.keyStride = (capacity + 15) / 16 * 16
        self.d = d
        // Left unwritten: attention reads only the `length` positions steps have filled (and
        // multiplies, without keeping, key columns up to the next multiple of 16). Value pages of
        // positions no sequence reaches (most of the 227 of a 160-row batch) are never touched; every key
        // page is, as each step writes a column into all d rows.
        let nk = audioIndex.count * keyStride * d, nv = audioIndex.count * capacity * d
        selfK = (0..<layers).map { _ in [Float](unsafeUninitializedCapacity: nk) { _, count in count = nk } }
        selfV = (0..<layers).map { _ in [Float](unsafeUninitializedCapacity: nv) { _, count in count = nv } }
    }

    /// Number of sequences.
    public var sequences: Int { audioIndex.count }

    /// The sequences grouped by the clip they attend to, in order of first appearance.
    var sequencesByClip: [[Int]] {
        var groups = [[Int]](), groupOf = [Int: Int]()
        for (i, clip) in audioIndex.enumerated() {
            if let g = groupOf[clip] { groups[g].append(i) } else { groupOf[clip] = groups.count; groups.append([i]) }
        }
        return groups
    }

    /// Keeps sequence `source[i]`'s cache as new sequence `i` (beam search reordering / pruning).
    ///
    /// Only the `length` filled positions move (for keys, the first `length` columns of each of
    /// the d rows). Pruning (increasing `source`) compacts in place; a general gather goes
    /// through one scratch copy per layer.
    public func reorder(_ source: [Int]) {
        let increasing =
            zip(source, source.dropFirst()).allSatisfy { $0 < $1 }
            && source.enumerated().allSatisfy { $0.offset <= $0.element }
        // (floats per sequence, runs per sequence, run length, run stride)
        let layouts = [(keyStride * d, d, length, keyStride), (capacity * d, 1, length * d, 0)]
        for l in selfK.indices {
            for which in 0..<2 {
                let (stride, runs, run, runStride) = layouts[which]
                func copy(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>) {
                    for r in 0..<runs { (dst + r * runStride).update(from: src + r * runStride, count: run) }
                }
                func move(_ buf: inout [Float]) {
                    if increasing {
                        buf.withUnsafeMutableBufferPointer { b in
                            for (i, s) in source.enumerated() where i != s {
                                copy(b.baseAddress! + i * stride, b.baseAddress! + s * stride)
                            }
                        }
                        buf.removeLast(buf.count - source.count * stride)
                    } else {
                        let old = buf
                        buf = [Float](unsafeUninitializedCapacity: source.count * stride) { _, count in
                            count = source.count * stride
                        }
                        buf.withUnsafeMutableBufferPointer { dst in
                            old.withUnsafeBufferPointer { src in
                                for (i, s) in source.enumerated() {
                                    copy(dst.baseAddress! + i * stride, src.baseAddress! + s * stride)
                                }
                            }
                        }
                    }
                }
                if which == 0 { move(&selfK[l]) } else { move(&selfV[l]) }
            }
        }
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
            d: dims.n_text_state, layers: dims.n_text_layer)
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
        var tok = Tensor(shape: [s, n, d]) { out in
            tokenEmbedding.storage.withUnsafeBufferPointer { e in
                for (i, seq) in tokens.enumerated() {
                    for (j, t) in seq.enumerated() {
                        precondition(t >= 0 && t < dims.n_vocab, "token id \(t) outside the vocabulary")
                        (out.baseAddress! + (i * n + j) * d).initialize(from: e.baseAddress! + t * d, count: d)
                    }
                }
            }
        }
        try hooks.run("decoder.hook_embed", &tok, ctx)
        var pos = Tensor(shape: [s, n, d]) { out in
            decoderPositions.storage.withUnsafeBufferPointer { p in
                for i in 0..<s {
                    (out.baseAddress! + i * n * d).initialize(from: p.baseAddress! + offset * d, count: n * d)
                }
            }
        }
        try hooks.run("decoder.hook_pos_embed", &pos, ctx)
        var x = tok
        x.addInPlace(pos)
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
        if lastOnly && n > 1 {
            x = Tensor(shape: [s, 1, d]) { out in
                x.storage.withUnsafeBufferPointer { src in
                    for i in 0..<s {
                        (out.baseAddress! + i * d).initialize(from: src.baseAddress! + (i * n + n - 1) * d, count: d)
                    }
                }
            }
        }
        let lnCtx =
            lastOnly && n > 1
            ? HookContext(
                step: step, positionOffset: offset + n - 1, clips: cache.audioIndex, sequences: cache.sequenceIndex)
            : ctx
        let y = try normed(x, lnFinal, name: "decoder.ln_final", hooks: hooks, ctx: lnCtx)
        var logits: Tensor
        if let logitRows, logitRows.count < s {
            let per = y.count / s, v = dims.n_vocab, m = per / d
            let picked = Tensor(shape: [logitRows.count, m, d]) { out in
                for (k, r) in logitRows.enumerated() { for j in 0..<per { out[k * per + j] = y.storage[r * per + j] } }
            }.logits(self)
            // Every row written once: picked rows copied, the others zeroed (a zero fill of the
            // whole [s, m, V] first cost a 160-row step 95 MB of extra writes).
            var slot = [Int](repeating: -1, count: s)
            for (k, r) in logitRows.enumerated() { slot[r] = k }
            logits = picked.storage.withUnsafeBufferPointer { src in
                Tensor(shape: [s, m, v]) { dst in
                    for r in 0..<s {
                        let row = dst.baseAddress! + r * m * v
                        if slot[r] >= 0 {
                            row.initialize(from: src.baseAddress! + slot[r] * m * v, count: m * v)
                        } else {
                            row.initialize(repeating: 0, count: m * v)
                        }
                    }
                }
            }
        } else {
            logits = y.logits(self)
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
        residual.layerNorm(lnFinal).logits(self)
    }

    func selfAttention(
        _ block: Block, layer: Int, _ h: Tensor, cache: DecoderCache, prefix: String,
        hooks: HookHandler?, ctx: HookContext
    ) throws -> Tensor {
        let s = h.shape[0], n = h.shape[1], d = dims.n_text_state, heads = dims.n_text_head
        let offset = cache.length, cap = cache.capacity, total = offset + n
        var qkv = h.linear(block.qkv)
        try hookColumns(
            &qkv, width: 3 * d, parts: ["q", "k", "v"], prefix: prefix + ".attn", heads: heads, hooks: hooks, ctx: ctx)
        // Append this step's keys (as columns) and values (as rows) to the cache.
        let ks = cache.keyStride
        qkv.storage.withUnsafeBufferPointer { src in
            cache.selfK[layer].withUnsafeMutableBufferPointer { kc in
                cache.selfV[layer].withUnsafeMutableBufferPointer { vc in
                    for i in 0..<s {
                        for j in 0..<n {
                            let row = src.baseAddress! + (i * n + j) * 3 * d
                            let kcol = kc.baseAddress! + i * d * ks + offset + j
                            for c in 0..<d { kcol[c * ks] = row[d + c] }
                            (vc.baseAddress! + (i * cap + offset + j) * d).update(from: row + 2 * d, count: d)
                        }
                    }
                }
            }
        }
        let wantPattern = hooks.isActive(prefix + ".attn.hook_pattern")
        var pattern = wantPattern ? Tensor(zeros: [s, heads, n, total]) : Tensor(zeros: [0])
        var z = Tensor(zeros: [s, n, d])
        // Sequences are independent: split them across workers, each with its own score scratch
        // (a 240-row step spent most of its attention time on one core otherwise).
        let workers = s >= 4 ? min(Threading.workers, s) : 1
        let selfK = cache.selfK[layer], selfV = cache.selfV[layer]
        qkv.storage.withUnsafeBufferPointer { q in
            selfK.withUnsafeBufferPointer { kc in
                selfV.withUnsafeBufferPointer { vc in
                    z.storage.withUnsafeMutableBufferPointer { o in
                        pattern.storage.withUnsafeMutableBufferPointer { p in
                            let ptr = RowPointers(
                                q: q.baseAddress!, k: kc.baseAddress!, v: vc.baseAddress!, out: o.baseAddress!,
                                pattern: p.baseAddress)
                            DispatchQueue.concurrentPerformIfNeeded(workers) { w in
                                var scratch = [Float](repeating: 0, count: n * total)
                                scratch.withUnsafeMutableBufferPointer { sc in
                                    for i in (s * w / workers)..<(s * (w + 1) / workers) {
                                        Attention.forwardCached(
                                            q: ptr.q + i * n * 3 * d, ldq: 3 * d,
                                            keysT: ptr.k + i * d * ks, ldkT: ks,
                                            v: ptr.v + i * cap * d, ldv: d,
                                            nq: n, nk: total, heads: heads, dh: d / heads, causalOffset: offset,
                                            out: ptr.out + i * n * d, ldo: d, scores: sc.baseAddress!,
                                            patternOut: wantPattern ? ptr.pattern! + i * heads * n * total : nil,
                                            parallelSoftmax: workers == 1)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        if wantPattern { try hooks.runReadOnly(prefix + ".attn.hook_pattern", &pattern, ctx) }
        try hookHeads(&z, name: prefix + ".attn.hook_z", heads: heads, hooks: hooks, ctx: ctx)
        return try projectHeads(
            z, block.attnOut, name: prefix + ".attn.hook_result", heads: heads, hooks: hooks, ctx: ctx)
    }
}

extension Tensor {
    /// This (final-LayerNormed) stream `[…, d]` times the tied token embedding: logits `[…, V]`,
    /// through the packed embedding where the CPU allows.
    func logits(_ model: Whisper) -> Tensor {
        if let packed = model.tokenEmbeddingPacked { return linear(packed) }
        return linear(model.tokenEmbedding)
    }
}

/// Base pointers of one attention call, handed to workers that write disjoint sequences.
struct RowPointers: @unchecked Sendable {
    let q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>
    let out: UnsafeMutablePointer<Float>, pattern: UnsafeMutablePointer<Float>?
}

extension DecoderCache {
    func advance(by n: Int) { length += n }
    func relabel(_ ids: [Int]) { sequenceIndex = ids }
}
