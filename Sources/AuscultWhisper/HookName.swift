// Typed hook names: `.encoder(2).residPost`, `.decoder(1).attn.z`, `.logits`. The registry builds
// its list from these same builders, so a typed name and the registry never disagree.

/// The name of a hook point, an alias (`encoder.blocks.2`) or a glob (`decoder.blocks.*.hook_mlp_out`).
///
/// Built from typed members or from a string literal, and accepted wherever a hook is named:
///
///     let names: [HookName] = [.encoder(2).residPost, .decoder(1).attn.z, "decoder.blocks.*.hook_mlp_out"]
public struct HookName: Hashable, Sendable, Codable, ExpressibleByStringLiteral, CustomStringConvertible {
    /// The name as the forward pass and `auscult hooks` spell it.
    public var name: String
    public init(_ name: String) { self.name = name }
    public init(stringLiteral value: String) { name = value }
    public init(from decoder: any Swift.Decoder) throws {
        name = try decoder.singleValueContainer().decode(String.self)
    }
    public func encode(to encoder: any Swift.Encoder) throws {
        var c = encoder.singleValueContainer()
        try c.encode(name)
    }
    public var description: String { name }

    /// The block holding this point (`encoder.blocks.2.hook_resid_post` → (.encoder, 2)); nil
    /// for points outside the blocks (the stems, the final LayerNorms, the logits).
    public var block: (side: Side, index: Int)? {
        for side in Side.allCases {
            let prefix = side.rawValue + ".blocks."
            guard name.hasPrefix(prefix) else { continue }
            let digits = name.dropFirst(prefix.count).prefix { $0.isNumber }
            return Int(digits).map { (side, $0) }
        }
        return nil
    }

    /// The padded log-mel window entering the encoder, `[n_mels, 3000]`.
    public static let mel = HookName("audio.hook_mel")
    /// Both convolutions and GELU, `[F, d]`.
    public static let convOut = HookName("encoder.hook_conv_out")
    /// The encoder's sinusoidal positions, `[F, d]`.
    public static let encoderPosEmbed = HookName("encoder.hook_pos_embed")
    /// `ln_post`: the audio features the decoder reads, `[F, d]`, and its scale σ, `[F, 1]`.
    public static let lnPost = LayerNormHooks(prefix: "encoder.ln_post")
    /// The token embedding of the decoder input, `[T, d]`.
    public static let embed = HookName("decoder.hook_embed")
    /// The decoder's learned positions, `[T, d]`.
    public static let posEmbed = HookName("decoder.hook_pos_embed")
    /// The decoder's final LayerNorm, `[T, d]`, and its scale σ, `[T, 1]`.
    public static let lnFinal = LayerNormHooks(prefix: "decoder.ln_final")
    /// The logits, `[T, n_vocab]`.
    public static let logits = HookName("decoder.hook_logits")

    /// The hook points of encoder block `index`.
    public static func encoder(_ index: Int) -> BlockHooks { BlockHooks(side: "encoder", index: index) }
    /// The hook points of decoder block `index`.
    public static func decoder(_ index: Int) -> BlockHooks { BlockHooks(side: "decoder", index: index) }
}

/// The hook points of one LayerNorm: `scale` (σ per row, observed only) and `normalized`.
public struct LayerNormHooks: Sendable, Hashable {
    public let prefix: String
    public var scale: HookName { HookName(prefix + ".hook_scale") }
    public var normalized: HookName { HookName(prefix + ".hook_normalized") }
}

/// The hook points of one attention (self- or cross-): per-head `q`, `k`, `v`, `z` `[seq, h, dh]`,
/// and, computed only when something listens, `attnScores`, `pattern` `[h, q, k]` and the per-head
/// output `result` `[seq, h, d]`.
public struct AttentionHooks: Sendable, Hashable {
    public let prefix: String
    public var q: HookName { HookName(prefix + ".hook_q") }
    public var k: HookName { HookName(prefix + ".hook_k") }
    public var v: HookName { HookName(prefix + ".hook_v") }
    public var z: HookName { HookName(prefix + ".hook_z") }
    public var attnScores: HookName { HookName(prefix + ".hook_attn_scores") }
    public var pattern: HookName { HookName(prefix + ".hook_pattern") }
    public var result: HookName { HookName(prefix + ".hook_result") }
}

/// The hook points of an MLP: `pre` (before GELU) and `post` (after), `[seq, 4d]`.
public struct MLPHooks: Sendable, Hashable {
    public let prefix: String
    public var pre: HookName { HookName(prefix + ".hook_pre") }
    public var post: HookName { HookName(prefix + ".hook_post") }
}

/// The hook points of one residual block, in the order the forward pass reaches them.
///
/// Decoder blocks read the audio between self-attention and the MLP: their LayerNorms are `ln1`
/// (self-attention), `ln2` (cross-attention) and `ln3` (MLP); encoder blocks have `ln1` and `ln2`.
public struct BlockHooks: Sendable, Hashable {
    /// Encoder block `index` (so that `.skip(.encoder(2))` reads as it should).
    public static func encoder(_ index: Int) -> BlockHooks { HookName.encoder(index) }
    /// Decoder block `index`.
    public static func decoder(_ index: Int) -> BlockHooks { HookName.decoder(index) }

    /// `encoder` or `decoder`.
    public let side: String
    public let index: Int
    /// `encoder.blocks.2`: the block itself (what `skip` names, and an alias of `residPost`).
    public var block: HookName { HookName(prefix) }
    var prefix: String { "\(side).blocks.\(index)" }
    var isDecoder: Bool { side == "decoder" }

    public var residPre: HookName { HookName(prefix + ".hook_resid_pre") }
    public var ln1: LayerNormHooks { LayerNormHooks(prefix: prefix + ".ln1") }
    public var attn: AttentionHooks { AttentionHooks(prefix: prefix + ".attn") }
    public var attnOut: HookName { HookName(prefix + ".hook_attn_out") }
    public var residMid: HookName { HookName(prefix + ".hook_resid_mid") }
    public var ln2: LayerNormHooks { LayerNormHooks(prefix: prefix + ".ln2") }
    /// Decoder blocks only.
    public var crossAttn: AttentionHooks { AttentionHooks(prefix: prefix + ".cross_attn") }
    /// Decoder blocks only.
    public var crossAttnOut: HookName { HookName(prefix + ".hook_cross_attn_out") }
    /// Decoder blocks only: the stream after cross-attention is added.
    public var residMidCross: HookName { HookName(prefix + ".hook_resid_mid_cross") }
    /// Decoder blocks only: the MLP's LayerNorm.
    public var ln3: LayerNormHooks { LayerNormHooks(prefix: prefix + ".ln3") }
    /// The LayerNorm before the MLP (`ln2` in the encoder, `ln3` in the decoder).
    public var mlpLN: LayerNormHooks { isDecoder ? ln3 : ln2 }
    public var mlp: MLPHooks { MLPHooks(prefix: prefix + ".mlp") }
    public var mlpOut: HookName { HookName(prefix + ".hook_mlp_out") }
    public var residPost: HookName { HookName(prefix + ".hook_resid_post") }
}
