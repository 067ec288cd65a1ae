// Whisper encoder-decoder, following openai-whisper `model.py` (AudioEncoder, TextDecoder,
// ResidualAttentionBlock): pre-LayerNorm blocks, exact-erf GELU, sinusoidal encoder positions
// (as stored in the checkpoint), learned decoder positions, logits tied to the token embedding.
import AuscultTensor
import Foundation

/// A loaded Whisper model: weights regrouped for fast batched inference, every operation run by
/// one `Backend` (the CPU one unless another is given).
public final class Whisper: @unchecked Sendable {
    public let dims: ModelDimensions
    public let weights: WhisperWeights
    /// What runs the operations of the forward pass.
    public let backend: any Backend

    typealias Linear = LinearWeights
    typealias Norm = NormWeights
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
    /// The token embedding as the backend's unembedding (logits) layer, without bias.
    let unembedding: Linear
    let decoderPositions: Tensor  // [n_text_ctx, d]
    let lnFinal: Norm

    /// Regroups `w` for `backend`: query, key and value fused into one layer, cross-attention's
    /// key and value into another, each prepared once (`Backend.prepare`).
    public init(weights w: WhisperWeights, backend: any Backend = CPUBackend()) {
        self.weights = w
        self.dims = w.dims
        self.backend = backend
        // Every layer keeps a bias (zeros where the checkpoint has none), as the products did
        // before the seam: the CPU backend's kernel with bias rounds as it always has.
        func bias(_ p: String, _ has: Bool) -> Tensor {
            has ? w[p + ".bias"] : Tensor(zeros: [w[p + ".weight"].shape[0]])
        }
        func lin(_ p: String, bias has: Bool = true) -> Linear {
            backend.prepare(weight: w[p + ".weight"], bias: bias(p, has))
        }
        func norm(_ p: String) -> Norm { Norm(gamma: w[p + ".weight"], beta: w[p + ".bias"]) }
        func fuse(_ parts: [(String, Bool)]) -> Linear {
            backend.prepare(
                weight: Tensor.concatenate(parts.map { w[$0.0 + ".weight"] }),
                bias: Tensor.concatenate(parts.map { bias($0.0, $0.1) }))
        }
        func block(_ p: String, cross: Bool) -> Block {
            let a = p + ".attn", c = p + ".cross_attn"
            return Block(
                attnLN: norm(p + ".attn_ln"),
                qkv: fuse([(a + ".query", true), (a + ".key", false), (a + ".value", true)]),
                attnOut: lin(a + ".out"),
                crossLN: cross ? norm(p + ".cross_attn_ln") : nil,
                crossQ: cross ? lin(c + ".query") : nil,
                crossKV: cross ? fuse([(c + ".key", false), (c + ".value", true)]) : nil,
                crossOut: cross ? lin(c + ".out") : nil,
                mlpLN: norm(p + ".mlp_ln"), fc1: lin(p + ".mlp.0"), fc2: lin(p + ".mlp.2"))
        }
        encoderBlocks = (0..<w.dims.n_audio_layer).map { block("encoder.blocks.\($0)", cross: false) }
        decoderBlocks = (0..<w.dims.n_text_layer).map { block("decoder.blocks.\($0)", cross: true) }
        conv1 = lin("encoder.conv1"); conv2 = lin("encoder.conv2")
        encoderPositions = w["encoder.positional_embedding"]
        lnPost = norm("encoder.ln_post")
        tokenEmbedding = w["decoder.token_embedding.weight"]
        unembedding = backend.prepare(weight: tokenEmbedding, bias: nil)
        decoderPositions = w["decoder.positional_embedding"]
        lnFinal = norm("decoder.ln")
    }

    /// The same weights run by another backend (the reference one, to check this one against).
    public func running(on backend: any Backend) -> Whisper { Whisper(weights: weights, backend: backend) }

    /// Loads a model from a path in any supported format (see `WeightLoader`).
    public convenience init(contentsOf path: String) throws {
        self.init(weights: try WeightLoader.load(path))
    }
}
