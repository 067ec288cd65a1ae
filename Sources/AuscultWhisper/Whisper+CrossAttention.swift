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

/// Cross-attention keys and values of a set of clips, for every decoder layer, in one of two
/// forms (`Storage`). Generation and teacher-forced scoring of the same audio share one.
public struct CrossAttentionKV: Sendable {
    /// How the keys and values are held.
    public enum Storage: Sendable {
        /// Per layer, the keys|values as the backend prepared them (the CPU backend: packed per
        /// head and clip for its attention kernels on x86-64, else the projected `[A, F, 2d]`).
        case keysValues([PreparedKeysValues])
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
    /// The backend keeps them in its own form (`Backend.keysValues`): the CPU backend packs them
    /// clip by clip for its kernels, so a sweep's 160-clip wave holds 2.9 GB instead of 5.8 GB
    /// and nothing is packed again by the generation or the scoring that reads them.
    ///
    /// With `form: .features` nothing is computed where the backend reads the features directly:
    /// attention reads `audio` itself through the key and value weights (`CrossAttentionForm`).
    public func crossAttentionKV(
        _ audio: Tensor, hooks: HookHandler? = nil, form: CrossAttentionForm = .keysValues
    ) throws -> CrossAttentionKV {
        let d = dims.n_text_state, heads = dims.n_text_head
        guard audio.rank == 3, audio.shape[2] == d else {
            throw WhisperError(.invalidArgument, "audio features have shape \(audio.shape), expected [A, F, \(d)]")
        }
        let a = audio.shape[0], f = audio.shape[1]
        let hooked = decoderBlocks.indices.contains { i in
            hooks.isActive("decoder.blocks.\(i).cross_attn.hook_k")
                || hooks.isActive("decoder.blocks.\(i).cross_attn.hook_v")
        }
        if !hooked && form == .features && backend.readsFeatures(width: d, heads: heads) {
            return CrossAttentionKV(storage: .features(audio), clips: a, frames: f)
        }
        var layers = [PreparedKeysValues]()
        for (i, block) in decoderBlocks.enumerated() {
            guard hooked else {
                layers.append(backend.keysValues(features: audio, block.crossKV!, heads: heads))
                continue
            }
            var kv = backend.linear(audio, block.crossKV!)  // [A, F, 2d]
            try hookColumns(
                &kv, width: 2 * d, parts: ["k", "v"], prefix: "decoder.blocks.\(i).cross_attn", heads: heads,
                hooks: hooks, ctx: HookContext(clips: Array(0..<a)))
            layers.append(backend.keysValues(projected: kv, heads: heads))
        }
        return CrossAttentionKV(storage: .keysValues(layers), clips: a, frames: f)
    }

    func crossAttention(
        _ block: Block, layer: Int, _ h: Tensor, cache: DecoderCache, prefix: String,
        hooks: HookHandler?, ctx: HookContext
    ) throws -> Tensor {
        let heads = dims.n_text_head
        var q = backend.linear(h, block.crossQ!)
        try hookHeads(&q, name: prefix + ".cross_attn.hook_q", heads: heads, hooks: hooks, ctx: ctx)
        let record: AttentionRecord = hooks.isActive(prefix + ".cross_attn.hook_pattern") ? .pattern : []
        let attention: AttentionOutput
        switch cache.cross.storage {
        case .features(let x):
            attention = backend.crossAttention(
                q, features: x, block.crossKV!, clipOf: cache.audioIndex, heads: heads, record: record)
        case .keysValues(let layers):
            attention = backend.crossAttention(
                q, layers[layer], clipOf: cache.audioIndex, heads: heads, record: record)
        }
        var z = attention.z
        if var pattern = attention.pattern { try hooks.runReadOnly(prefix + ".cross_attn.hook_pattern", &pattern, ctx) }
        try hookHeads(&z, name: prefix + ".cross_attn.hook_z", heads: heads, hooks: hooks, ctx: ctx)
        return try projectHeads(
            z, block.crossOut!, name: prefix + ".cross_attn.hook_result", heads: heads, hooks: hooks, ctx: ctx)
    }
}
