// Cross-attention of the decoder: openai-whisper model.py `MultiHeadAttention` with xa (the audio
// features), its keys and values computed once per clip and layer and read in one of the forms
// below by every decoding step.
import AuscultTensor
import Dispatch

/// How a decoding run's cross-attention reads each clip.
public enum CrossAttentionForm: Sendable {
    /// Keys and values per clip and layer (packed for the attention kernels on x86-64): for clips
    /// that several sequences read at once (beams, a sweep's decoder conditions, a batch of
    /// conditions sharing one clip).
    case keysValues
    /// The audio features themselves, through the key and value weights: for clips that one
    /// sequence reads. No key/value projection (3.5 GFLOP per tiny.en clip) and no memory for
    /// them; each step reads F·d floats per layer instead of 2·F·d. Falls back to `keysValues`
    /// off x86-64 or when a hook reads the keys or values.
    case features
}

/// Cross-attention keys and values of a set of clips, for every decoder layer, in one of three
/// forms (`Storage`). Generation and teacher-forced scoring of the same audio share one.
public struct CrossAttentionKV: Sendable {
    /// How the keys and values are held.
    public enum Storage: Sendable {
        /// Per layer `[A, F, 2d]` keys|values, read by `Attention.forward` (off x86-64, or when
        /// no packed kernel runs).
        case projected([Tensor])
        /// Per layer, per clip: keys and values as `Attention.packHeads` lays them out, for the
        /// packed kernels (`Attention.packsHeads`: AVX-512 at dh = 64, AVX2 on any x86-64).
        case packed([[[Float]]])
        /// The audio features `[A, F, d]`, read through the key and value weights
        /// (`CrossAttentionForm.features`).
        case features(Tensor)
    }
    public let storage: Storage
    /// Number of clips.
    public let clips: Int
    /// Audio frames per clip (F).
    public let frames: Int

    /// The audio features when attention reads them (`.features`), else nil.
    public var features: Tensor? {
        if case .features(let x) = storage { return x }
        return nil
    }
}

extension Whisper {
    /// Every decoder layer's cross-attention keys|values for the clips of `audio` `[A, F, d]`.
    /// Generation and teacher-forced scoring of the same audio share them: for 160 distinct
    /// clips they cost 0.5 TFLOP.
    ///
    /// Where a packed attention kernel runs they are kept only packed for it, clip by clip: a
    /// sweep's 160-clip wave then holds 2.9 GB instead of 5.8 GB, and nothing is packed again by
    /// the generation or the scoring that reads them. Freshly touched memory is slow here (the
    /// kernel spent 40 % of that wave zeroing pages for the unpacked copy and its repacks).
    ///
    /// With `form: .features` nothing is computed: attention reads `audio` itself through the key
    /// and value weights (`CrossAttentionForm`).
    public func crossAttentionKV(
        _ audio: Tensor, hooks: HookHandler? = nil, form: CrossAttentionForm = .keysValues
    ) throws -> CrossAttentionKV {
        let d = dims.n_text_state, heads = dims.n_text_head
        guard audio.rank == 3, audio.shape[2] == d else {
            throw WhisperError(.invalidArgument, "audio features have shape \(audio.shape), expected [A, F, \(d)]")
        }
        let a = audio.shape[0], f = audio.shape[1]
        // Keys and values packed per clip wherever a packed attention runs (AVX-512 at dh = 64,
        // AVX2 on any x86-64), and so can the features form be read.
        let packs = Attention.packsHeads(dh: d / heads)
        let readsFeatures = packs && Attention.readsFeatures(d: d)
        let hooked = decoderBlocks.indices.contains { i in
            hooks.isActive("decoder.blocks.\(i).cross_attn.hook_k")
                || hooks.isActive("decoder.blocks.\(i).cross_attn.hook_v")
        }
        func pack(_ kv: Tensor, clip: Int) -> [Float] {
            kv.storage.withUnsafeBufferPointer { p in
                let base = p.baseAddress! + clip * f * 2 * d
                return Attention.packHeads(
                    k: base, ldk: 2 * d, v: base + d, ldv: 2 * d, nk: f, heads: heads, dh: d / heads)!
            }
        }
        if readsFeatures && !hooked && form == .features {
            return CrossAttentionKV(storage: .features(audio), clips: a, frames: f)
        }
        if packs && !hooked {
            // Clip by clip: the unpacked [F, 2d] product is a 4.6 MB scratch, never a wave-sized tensor.
            var packed = [[[Float]]](repeating: [], count: decoderBlocks.count)
            for c in 0..<a {
                let x = audio.rows(c..<(c + 1))
                for (i, block) in decoderBlocks.enumerated() {
                    packed[i].append(pack(x.linear(block.crossKV!), clip: 0))
                }
            }
            return CrossAttentionKV(storage: .packed(packed), clips: a, frames: f)
        }
        var kvs = [Tensor]()
        for (i, block) in decoderBlocks.enumerated() {
            var kv = audio.linear(block.crossKV!)  // [A, F, 2d]
            try hookColumns(
                &kv, width: 2 * d, parts: ["k", "v"], prefix: "decoder.blocks.\(i).cross_attn", heads: heads,
                hooks: hooks, ctx: HookContext(clips: Array(0..<a)))
            kvs.append(kv)
        }
        if packs {
            return CrossAttentionKV(
                storage: .packed(kvs.map { kv in (0..<a).map { pack(kv, clip: $0) } }), clips: a, frames: f)
        }
        return CrossAttentionKV(storage: .projected(kvs), clips: a, frames: f)
    }

    func crossAttention(
        _ block: Block, layer: Int, _ h: Tensor, cache: DecoderCache, prefix: String,
        hooks: HookHandler?, ctx: HookContext
    ) throws -> Tensor {
        let s = h.shape[0], n = h.shape[1], d = dims.n_text_state, heads = dims.n_text_head
        let f = cache.cross.frames
        var q = h.linear(block.crossQ!)
        try hookHeads(&q, name: prefix + ".cross_attn.hook_q", heads: heads, hooks: hooks, ctx: ctx)
        let wantPattern = hooks.isActive(prefix + ".cross_attn.hook_pattern")
        var pattern = wantPattern ? Tensor(zeros: [s, heads, n, f]) : Tensor(zeros: [0])
        var z = Tensor(zeros: [s, n, d])
        switch cache.cross.storage {
        case .features(let x):
            crossAttentionFromFeatures(
                block, layer: layer, q: q, features: x, cache: cache, wantPattern: wantPattern, pattern: &pattern, z: &z
            )
        case .packed(let layers):
            let clips = layers[layer]
            attendByClip(q: q, cache: cache, wantPattern: wantPattern, pattern: &pattern, z: &z) { job in
                clips[job.clip].withUnsafeBufferPointer { pb in
                    Attention.forwardPacked(
                        q: job.q, ldq: d, packed: pb.baseAddress!, nq: job.rows, nk: f, heads: heads, dh: d / heads,
                        out: job.out, ldo: d, patternOut: job.pattern)
                }
            }
        case .projected(let layers):
            let kv = layers[layer]
            kv.storage.withUnsafeBufferPointer { kvp in
                let base = KeysValuesPointer(p: kvp.baseAddress!)
                attendByClip(q: q, cache: cache, wantPattern: wantPattern, pattern: &pattern, z: &z) { job in
                    var scratch = [Float](repeating: 0, count: job.rows * f)
                    let a = base.p + job.clip * f * 2 * d
                    scratch.withUnsafeMutableBufferPointer { sc in
                        Attention.forward(
                            q: job.q, ldq: d, k: a, ldk: 2 * d, v: a + d, ldv: 2 * d, nq: job.rows, nk: f,
                            heads: heads, dh: d / heads, causalOffset: nil, out: job.out, ldo: d,
                            scores: sc.baseAddress!, patternOut: job.pattern, parallelSoftmax: job.alone)
                    }
                }
            }
        }
        if wantPattern { try hooks.runReadOnly(prefix + ".cross_attn.hook_pattern", &pattern, ctx) }
        try hookHeads(&z, name: prefix + ".cross_attn.hook_z", heads: heads, hooks: hooks, ctx: ctx)
        return try projectHeads(
            z, block.crossOut!, name: prefix + ".cross_attn.hook_result", heads: heads, hooks: hooks, ctx: ctx)
    }

    /// One attention call's operands: `rows` query rows at `q` (row stride d) of sequences reading
    /// clip `clip`, their output at `out`, their pattern rows at `pattern` when one is recorded;
    /// `alone` when no other call runs beside it (it may then use every worker itself).
    struct ClipAttention: @unchecked Sendable {
        let q: UnsafePointer<Float>
        let rows: Int
        let clip: Int
        let out: UnsafeMutablePointer<Float>
        let pattern: UnsafeMutablePointer<Float>?
        let alone: Bool
    }

    /// Runs `attend` once per group of sequences reading the same clip, so each clip's keys and
    /// values are read once per step for all its sequences (a sweep's decoder conditions: 12 per
    /// clip), whatever form holds them: the group's query rows are gathered, attended together
    /// and scattered back into `z` `[s, n, d]`. With a pattern to record, every sequence is its
    /// own group (its pattern rows `[heads, n, F]` are contiguous). The kernels' arithmetic for
    /// a query row does not depend on the rows beside it, so grouping never changes a bit.
    func attendByClip(
        q: Tensor, cache: DecoderCache, wantPattern: Bool, pattern: inout Tensor, z: inout Tensor,
        attend: @Sendable (ClipAttention) -> Void
    ) {
        let s = q.shape[0], n = q.shape[1], d = dims.n_text_state, heads = dims.n_text_head
        let f = cache.cross.frames, audioIndex = cache.audioIndex
        let groups = wantPattern ? (0..<s).map { [$0] } : cache.sequencesByClip
        let workers = min(Threading.workers, groups.count)
        q.storage.withUnsafeBufferPointer { qp in
            z.storage.withUnsafeMutableBufferPointer { o in
                pattern.storage.withUnsafeMutableBufferPointer { pp in
                    let ptr = RowPointers(
                        q: qp.baseAddress!, k: qp.baseAddress!, v: qp.baseAddress!, out: o.baseAddress!,
                        pattern: wantPattern ? pp.baseAddress! : nil)
                    DispatchQueue.concurrentPerformIfNeeded(workers) { w in
                        var gi = w
                        while gi < groups.count {
                            let rows = groups[gi], clip = audioIndex[rows[0]]
                            if rows.count == 1 {
                                let r = rows[0]
                                attend(
                                    ClipAttention(
                                        q: ptr.q + r * n * d, rows: n, clip: clip, out: ptr.out + r * n * d,
                                        pattern: ptr.pattern.map { $0 + r * heads * n * f }, alone: workers == 1))
                            } else {
                                let g = rows.count * n
                                var qg = [Float](repeating: 0, count: g * d), og = [Float](repeating: 0, count: g * d)
                                for (k, r) in rows.enumerated() {
                                    for j in 0..<(n * d) { qg[k * n * d + j] = ptr.q[r * n * d + j] }
                                }
                                qg.withUnsafeBufferPointer { qb in
                                    og.withUnsafeMutableBufferPointer { ob in
                                        attend(
                                            ClipAttention(
                                                q: qb.baseAddress!, rows: g, clip: clip, out: ob.baseAddress!,
                                                pattern: nil, alone: workers == 1))
                                    }
                                }
                                for (k, r) in rows.enumerated() {
                                    for j in 0..<(n * d) { ptr.out[r * n * d + j] = og[k * n * d + j] }
                                }
                            }
                            gi += workers
                        }
                    }
                }
            }
        }
    }
}

/// The keys|values of one layer, handed to the attention workers.
private struct KeysValuesPointer: @unchecked Sendable { let p: UnsafePointer<Float> }
