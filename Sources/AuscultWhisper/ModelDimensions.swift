// Whisper's hyper-parameters, named as openai-whisper's `ModelDimensions` (model.py).

/// Sizes of a Whisper model, read from the checkpoint's tensor shapes.
public struct ModelDimensions: Sendable, Equatable, Codable {
    public var n_mels: Int
    public var n_audio_ctx: Int
    public var n_audio_state: Int
    public var n_audio_head: Int
    public var n_audio_layer: Int
    public var n_vocab: Int
    public var n_text_ctx: Int
    public var n_text_state: Int
    public var n_text_head: Int
    public var n_text_layer: Int

    public init(
        n_mels: Int, n_audio_ctx: Int, n_audio_state: Int, n_audio_head: Int, n_audio_layer: Int,
        n_vocab: Int, n_text_ctx: Int, n_text_state: Int, n_text_head: Int, n_text_layer: Int
    ) {
        self.n_mels = n_mels; self.n_audio_ctx = n_audio_ctx; self.n_audio_state = n_audio_state
        self.n_audio_head = n_audio_head; self.n_audio_layer = n_audio_layer; self.n_vocab = n_vocab
        self.n_text_ctx = n_text_ctx; self.n_text_state = n_text_state; self.n_text_head = n_text_head
        self.n_text_layer = n_text_layer
    }

    /// English-only checkpoints have 51 864 tokens; multilingual ones 51 865 (51 866 for large-v3).
    public var isMultilingual: Bool { n_vocab >= 51_865 }
    /// Number of language tokens: 100 for large-v3 (n_vocab 51 866), else 99.
    public var numLanguages: Int { n_vocab - 51_765 - (isMultilingual ? 1 : 0) }

    /// Refuses sizes no Whisper checkpoint has — a count that is not positive or beyond any
    /// model (up to 2^16 positions or widths, 1024 layers or heads, 2^20 tokens), or heads that do
    /// not divide their width — naming `source` and the size, before any shape is built from them.
    public func validate(source: String) throws {
        let limits: [(String, Int, Int)] = [
            ("n_mels", n_mels, 1024), ("n_audio_ctx", n_audio_ctx, 1 << 16), ("n_audio_state", n_audio_state, 1 << 16),
            ("n_audio_head", n_audio_head, 1024), ("n_audio_layer", n_audio_layer, 1024), ("n_vocab", n_vocab, 1 << 20),
            ("n_text_ctx", n_text_ctx, 1 << 16), ("n_text_state", n_text_state, 1 << 16),
            ("n_text_head", n_text_head, 1024), ("n_text_layer", n_text_layer, 1024),
        ]
        for (name, value, limit) in limits where !(1...limit).contains(value) {
            throw ModelLoadError(.corruptModel, "\(source): \(name) is \(value); a Whisper model has 1…\(limit)")
        }
        for (heads, width, name) in [(n_audio_head, n_audio_state, "audio"), (n_text_head, n_text_state, "text")]
        where width % heads != 0 {
            throw ModelLoadError(
                .corruptModel, "\(source): n_\(name)_head \(heads) does not divide n_\(name)_state \(width)")
        }
    }

    /// The expected tensor shapes of an openai-whisper state dict with these dimensions.
    public func expectedShapes() -> [String: [Int]] {
        var s = [String: [Int]]()
        let da = n_audio_state, dt = n_text_state
        s["encoder.conv1.weight"] = [da, n_mels, 3]; s["encoder.conv1.bias"] = [da]
        s["encoder.conv2.weight"] = [da, da, 3]; s["encoder.conv2.bias"] = [da]
        s["encoder.positional_embedding"] = [n_audio_ctx, da]
        func attention(_ p: String, _ d: Int) {
            for n in ["query", "key", "value", "out"] { s["\(p).\(n).weight"] = [d, d] }
            for n in ["query", "value", "out"] { s["\(p).\(n).bias"] = [d] }
        }
        func block(_ p: String, _ d: Int, cross: Bool) {
            attention(p + ".attn", d)
            s[p + ".attn_ln.weight"] = [d]; s[p + ".attn_ln.bias"] = [d]
            if cross {
                attention(p + ".cross_attn", d)
                s[p + ".cross_attn_ln.weight"] = [d]; s[p + ".cross_attn_ln.bias"] = [d]
            }
            s[p + ".mlp.0.weight"] = [4 * d, d]; s[p + ".mlp.0.bias"] = [4 * d]
            s[p + ".mlp.2.weight"] = [d, 4 * d]; s[p + ".mlp.2.bias"] = [d]
            s[p + ".mlp_ln.weight"] = [d]; s[p + ".mlp_ln.bias"] = [d]
        }
        for i in 0..<n_audio_layer { block("encoder.blocks.\(i)", da, cross: false) }
        s["encoder.ln_post.weight"] = [da]; s["encoder.ln_post.bias"] = [da]
        s["decoder.token_embedding.weight"] = [n_vocab, dt]
        s["decoder.positional_embedding"] = [n_text_ctx, dt]
        for i in 0..<n_text_layer { block("decoder.blocks.\(i)", dt, cross: true) }
        s["decoder.ln.weight"] = [dt]; s["decoder.ln.bias"] = [dt]
        return s
    }
}
