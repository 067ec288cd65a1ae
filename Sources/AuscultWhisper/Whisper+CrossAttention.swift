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

/// Cross-attention keys and values of a set of clips, for every decoder layer: packed per clip
/// for the attention kernels (`Attention.packsHeads`: AVX-512 at dh = 64, AVX2 on any x86-64),
/// else one `[A, F, 2d]` keys|values tensor per layer; or
/// the audio features they are made from (`CrossAttentionForm.features`).
public struct CrossAttentionKV: Sendable {
    /// Per layer `[A, F, 2d]` keys|values (the portable path); empty when packed.
    public let layers: [Tensor]
    /// Per layer, per clip: keys and values as `Attention.packHeads` lays them out; empty on the
    /// portable path.
    public let packed: [[[Float]]]
    /// The audio features `[A, F, d]` when attention reads them through the key and value
    /// weights instead (`CrossAttentionForm.features`); then `layers` and `packed` are empty.
    public let features: Tensor?
    /// Number of clips.
    public let clips: Int
    /// Audio frames per clip (F).
    public let frames: Int
    /// Whether a packed attention kernel reads these (`packed`) rather than `Attention.forward` (`layers`).
    public var isPacked: Bool { !packed.isEmpty }
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
            return CrossAttentionKV(layers: [], packed: [], features: audio, clips: a, frames: f)
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
            return CrossAttentionKV(layers: [], packed: packed, features: nil, clips: a, frames: f)
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
                layers: [], packed: kvs.map { kv in (0..<a).map { pack(kv, clip: $0) } }, features: nil, clips: a,
                frames: f)
        }
        return CrossAttentionKV(layers: kvs, packed: [], features: nil, clips: a, frames: f)
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
        if let x = cache.cross.features {
            crossAttentionFromFeatures(
                block, layer: layer, q: q, features: x, cache: cache, wantPattern: wantPattern, pattern: &pattern, z: &z
            )
        } else if cache.cross.isPacked {
            crossAttentionPacked(layer: layer, q: q, cache: cache, wantPattern: wantPattern, pattern: &pattern, z: &z)
        } else {
            crossAttentionPortable(
                q: q, kv: cache.cross.layers[layer], cache: cache, wantPattern: wantPattern, pattern: &pattern, z: &z)
        }
        if wantPattern { try hooks.runReadOnly(prefix + ".cross_attn.hook_pattern", &pattern, ctx) }
        try hookHeads(&z, name: prefix + ".cross_attn.hook_z", heads: heads, hooks: hooks, ctx: ctx)
        return try projectHeads(
            z, block.crossOut!, name: prefix + ".cross_attn.hook_result", heads: heads, hooks: hooks, ctx: ctx)
    }

    /// Cross-attention through `Attention.forward` (off x86-64 where the fused kernel does not run):
    /// `z[s, n, d]` and, when asked, the pattern `[s, heads, n, F]`.
    func crossAttentionPortable(
        q: Tensor, kv: Tensor, cache: DecoderCache,
        wantPattern: Bool, pattern: inout Tensor, z: inout Tensor
    ) {
        let s = q.shape[0], n = q.shape[1], d = dims.n_text_state, heads = dims.n_text_head, f = kv.shape[1]
        let audioIndex = cache.audioIndex
        // Sequences reading the same clip (the conditions of a sweep) attend together: one
        // [g, F] product per head reads that clip's keys and values once instead of g times
        // (12 MB per layer for tiny.en; the per-row loop was memory-bound).
        let groups = cache.sequencesByClip
        if groups.count < s && !wantPattern {
            let gw = min(Threading.workers, groups.count)
            q.storage.withUnsafeBufferPointer { qp in
                kv.storage.withUnsafeBufferPointer { kvp in
                    z.storage.withUnsafeMutableBufferPointer { o in
                        let ptr = RowPointers(
                            q: qp.baseAddress!, k: kvp.baseAddress!, v: kvp.baseAddress!, out: o.baseAddress!,
                            pattern: nil)
                        DispatchQueue.concurrentPerformIfNeeded(gw) { w in
                            var gi = w
                            while gi < groups.count {
                                let rows = groups[gi], g = rows.count * n
                                var qg = [Float](repeating: 0, count: g * d), og = [Float](repeating: 0, count: g * d)
                                var scratch = [Float](repeating: 0, count: g * f)
                                for (k, r) in rows.enumerated() {
                                    for j in 0..<n {
                                        for c in 0..<d { qg[(k * n + j) * d + c] = ptr.q[(r * n + j) * d + c] }
                                    }
                                }
                                let a = ptr.k + audioIndex[rows[0]] * f * 2 * d
                                qg.withUnsafeBufferPointer { qb in
                                    og.withUnsafeMutableBufferPointer { ob in
                                        scratch.withUnsafeMutableBufferPointer { sc in
                                            Attention.forward(
                                                q: qb.baseAddress!, ldq: d, k: a, ldk: 2 * d, v: a + d, ldv: 2 * d,
                                                nq: g, nk: f, heads: heads, dh: d / heads, causalOffset: nil,
                                                out: ob.baseAddress!, ldo: d, scores: sc.baseAddress!,
                                                parallelSoftmax: gw == 1)
                                        }
                                    }
                                }
                                for (k, r) in rows.enumerated() {
                                    for j in 0..<(n * d) { ptr.out[r * n * d + j] = og[k * n * d + j] }
                                }
                                gi += gw
                            }
                        }
                    }
                }
            }
            return
        }
        let workers = s >= 4 ? min(Threading.workers, s) : 1
        q.storage.withUnsafeBufferPointer { qp in
            kv.storage.withUnsafeBufferPointer { kvp in
                z.storage.withUnsafeMutableBufferPointer { o in
                    pattern.storage.withUnsafeMutableBufferPointer { p in
                        let ptr = RowPointers(
                            q: qp.baseAddress!, k: kvp.baseAddress!, v: kvp.baseAddress!, out: o.baseAddress!,
                            pattern: p.baseAddress)
                        DispatchQueue.concurrentPerformIfNeeded(workers) { w in
                            var scratch = [Float](repeating: 0, count: n * f)
                            scratch.withUnsafeMutableBufferPointer { sc in
                                for i in (s * w / workers)..<(s * (w + 1) / workers) {
                                    let a = ptr.k + audioIndex[i] * f * 2 * d
                                    Attention.forward(
                                        q: ptr.q + i * n * d, ldq: d, k: a, ldk: 2 * d, v: a + d, ldv: 2 * d,
                                        nq: n, nk: f, heads: heads, dh: d / heads, causalOffset: nil,
                                        out: ptr.out + i * n * d, ldo: d, scores: sc.baseAddress!,
                                        patternOut: wantPattern ? ptr.pattern! + i * heads * n * f : nil,
                                        parallelSoftmax: workers == 1)
                                }
                            }
                        }
                    }
                }
            }
        }
    }
}

extension Whisper {
    /// Cross-attention through a packed kernel (the fused AVX-512 one, or the AVX2 products of
    /// `Attention.forwardPacked`) against keys and values packed once per clip
    /// (`CrossAttentionKV.packed`): `z[s, n, d]` and, when asked, the pattern `[s, heads, n, F]`.
    ///
    /// Every sequence takes this path, alone or with others reading its clip, and the kernel's
    /// arithmetic for a query row does not depend on the rows beside it: a sweep's conditions,
    /// a patched run and its plain baseline, and a run that records the pattern give the same
    /// bits as a plain run. Sequences sharing a clip attend in one call, reading its keys and
    /// values once per step (the sweep's decoder conditions: 12 per clip).
    func crossAttentionPacked(
        layer: Int, q: Tensor, cache: DecoderCache,
        wantPattern: Bool, pattern: inout Tensor, z: inout Tensor
    ) {
        let s = q.shape[0], n = q.shape[1], d = dims.n_text_state, heads = dims.n_text_head, f = cache.cross.frames
        let audioIndex = cache.audioIndex
        // With a pattern to record every sequence is its own group (its pattern rows are contiguous).
        let groups = wantPattern ? (0..<s).map { [$0] } : cache.sequencesByClip
        let packed = groups.map { cache.cross.packed[layer][audioIndex[$0[0]]] }
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
                            let rows = groups[gi], g = rows.count * n
                            packed[gi].withUnsafeBufferPointer { pb in
                                if rows.count == 1 {
                                    let r = rows[0]
                                    Attention.forwardPacked(
                                        q: ptr.q + r * n * d, ldq: d, packed: pb.baseAddress!, nq: n, nk: f,
                                        heads: heads, dh: d / heads,
                                        out: ptr.out + r * n * d, ldo: d,
                                        patternOut: ptr.pattern.map { $0 + r * heads * n * f })
                                } else {
                                    var qg = [Float](repeating: 0, count: g * d),
                                        og = [Float](repeating: 0, count: g * d)
                                    for (k, r) in rows.enumerated() {
                                        (0..<(n * d)).forEach { qg[k * n * d + $0] = ptr.q[r * n * d + $0] }
                                    }
                                    qg.withUnsafeBufferPointer { qb in
                                        og.withUnsafeMutableBufferPointer { ob in
                                            Attention.forwardPacked(
                                                q: qb.baseAddress!, ldq: d, packed: pb.baseAddress!, nq: g, nk: f,
                                                heads: heads, dh: d / heads, out: ob.baseAddress!, ldo: d)
                                        }
                                    }
                                    for (k, r) in rows.enumerated() {
                                        (0..<(n * d)).forEach { ptr.out[r * n * d + $0] = og[k * n * d + $0] }
                                    }
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
