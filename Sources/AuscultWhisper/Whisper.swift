// Whisper encoder-decoder, following openai-whisper `model.py` (AudioEncoder, TextDecoder,
// ResidualAttentionBlock): pre-LayerNorm blocks, exact-erf GELU, sinusoidal encoder positions
// (as stored in the checkpoint), learned decoder positions, logits tied to the token embedding.
import AuscultTensor
import Foundation

/// A loaded Whisper model: weights regrouped for fast batched inference.
public final class Whisper: @unchecked Sendable {
    public let dims: ModelDimensions
    public let weights: WhisperWeights

    struct Linear {
        let weight: Tensor  // [out, in]
        let bias: Tensor  // [out]
        /// The weight packed once for `Tensor.linear(PackedWeight, bias:)` (nil off x86-64).
        let packed: PackedWeight?
        init(weight: Tensor, bias: Tensor, pack: Bool = true) {
            self.weight = weight; self.bias = bias
            packed = pack ? PackedWeight(weight) : nil
        }
    }
    struct Norm { var gamma: Tensor; var beta: Tensor }
    struct Block {
        var attnLN: Norm
        var qkv: Linear  // query|key|value fused to [3d, d]; the key has no bias (zeros)
        var attnOut: Linear
        var crossLN: Norm?
        var crossQ: Linear?
        var crossKV: Linear?  // key|value fused to [2d, d]
        var crossOut: Linear?
        var mlpLN: Norm
        var fc1: Linear  // mlp.0
        var fc2: Linear  // mlp.2
    }
    let encoderBlocks: [Block]
    let decoderBlocks: [Block]
    let conv1: Linear, conv2: Linear
    let encoderPositions: Tensor  // [n_audio_ctx, d]
    let lnPost: Norm
    let tokenEmbedding: Tensor  // [n_vocab, d]
    /// The token embedding packed for the logits product (nil off x86-64).
    let tokenEmbeddingPacked: PackedWeight?
    let decoderPositions: Tensor  // [n_text_ctx, d]
    /// Per decoder layer, the features form's packed weights, made on first use.
    let crossFeatureLock = NSLock()
    var crossFeatureCache = [Int: CrossFeatureWeights]()
    let lnFinal: Norm

    public init(weights w: WhisperWeights) {
        self.weights = w
        self.dims = w.dims
        func lin(_ p: String, bias: Bool = true, pack: Bool = true) -> Linear {
            Linear(
                weight: w[p + ".weight"], bias: bias ? w[p + ".bias"] : Tensor(zeros: [w[p + ".weight"].shape[0]]),
                pack: pack)
        }
        func norm(_ p: String) -> Norm { Norm(gamma: w[p + ".weight"], beta: w[p + ".bias"]) }
        func fuse(_ parts: [Linear]) -> Linear {
            Linear(weight: Tensor.concatenate(parts.map(\.weight)), bias: Tensor.concatenate(parts.map(\.bias)))
        }
        func block(_ p: String, cross: Bool) -> Block {
            let a = p + ".attn", c = p + ".cross_attn"
            return Block(
                attnLN: norm(p + ".attn_ln"),
                qkv: fuse([
                    lin(a + ".query", pack: false), lin(a + ".key", bias: false, pack: false),
                    lin(a + ".value", pack: false),
                ]),
                attnOut: lin(a + ".out"),
                crossLN: cross ? norm(p + ".cross_attn_ln") : nil,
                crossQ: cross ? lin(c + ".query") : nil,
                crossKV: cross
                    ? fuse([lin(c + ".key", bias: false, pack: false), lin(c + ".value", pack: false)]) : nil,
                crossOut: cross ? lin(c + ".out") : nil,
                mlpLN: norm(p + ".mlp_ln"), fc1: lin(p + ".mlp.0"), fc2: lin(p + ".mlp.2"))
        }
        encoderBlocks = (0..<w.dims.n_audio_layer).map { block("encoder.blocks.\($0)", cross: false) }
        decoderBlocks = (0..<w.dims.n_text_layer).map { block("decoder.blocks.\($0)", cross: true) }
        conv1 = lin("encoder.conv1"); conv2 = lin("encoder.conv2")
        encoderPositions = w["encoder.positional_embedding"]
        lnPost = norm("encoder.ln_post")
        tokenEmbedding = w["decoder.token_embedding.weight"]
        tokenEmbeddingPacked = PackedWeight(tokenEmbedding)
        decoderPositions = w["decoder.positional_embedding"]
        lnFinal = norm("decoder.ln")
    }

    /// Loads a model from a path in any supported format (see `WeightLoader`).
    public convenience init(contentsOf path: String) throws {
        self.init(weights: try WeightLoader.load(path))
    }
}

extension Tensor {
    /// LayerNorm with a `Whisper.Norm`, optionally recording the per-row scale `1/σ`.
    func layerNorm(_ n: Whisper.Norm, scale: UnsafeMutablePointer<Float>? = nil) -> Tensor {
        let d = shape.last!
        return Tensor(shape: shape) { out in
            storage.withUnsafeBufferPointer { x in
                n.gamma.storage.withUnsafeBufferPointer { g in
                    n.beta.storage.withUnsafeBufferPointer { b in
                        Kernels.layerNorm(
                            x.baseAddress!, rows: count / d, d: d, gamma: g.baseAddress!,
                            beta: b.baseAddress!, out: out.baseAddress!, scaleOut: scale)
                    }
                }
            }
        }
    }

    /// `l` applied to the rows of `self`: the packed product, so a row's result does not depend
    /// on the rows batched beside it.
    func linear(_ l: Whisper.Linear) -> Tensor {
        if let packed = l.packed { return linear(packed, bias: l.bias) }
        return linear(l.weight, bias: l.bias)
    }

    /// In-place `self += other` (same element count).
    mutating func addInPlace(_ other: Tensor) {
        precondition(count == other.count)
        storage.withUnsafeMutableBufferPointer { y in
            other.storage.withUnsafeBufferPointer { Kernels.add($0.baseAddress!, into: y.baseAddress!, count: y.count) }
        }
    }
}
