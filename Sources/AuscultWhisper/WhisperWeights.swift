// A Whisper state dict under openai-whisper's key names, checked strictly against the dimensions.
import AuscultTensor
import Foundation

/// All parameters of one Whisper model, keyed as openai-whisper's `state_dict()`
/// (`encoder.blocks.0.attn.query.weight`, …), weights in PyTorch's `[out, in]` layout.
public struct WhisperWeights: Sendable {
    public var dims: ModelDimensions
    public var tensors: [String: Tensor]
    /// Where the weights came from (path), and in which format.
    public var source: String
    public var format: String

    /// Checks that every expected tensor is present with the right shape and nothing else is,
    /// as mlx-swift's `update(parameters:verify:)` does; the error names the first offending key.
    public init(dims: ModelDimensions, tensors: [String: Tensor], source: String, format: String) throws {
        try dims.validate(source: source)
        let expected = dims.expectedShapes()
        for key in expected.keys.sorted() {
            guard let t = tensors[key] else {
                throw ModelLoadError(
                    .missingTensor,
                    "\(source): the \(format) model has no tensor for '\(key)' (expected shape \(expected[key]!)); the "
                        + "file is incomplete or not a Whisper model"
                )
            }
            guard t.shape == expected[key]! else {
                throw ModelLoadError(
                    .shapeMismatch, "\(source): tensor '\(key)' has shape \(t.shape), expected \(expected[key]!)")
            }
        }
        if let extra = tensors.keys.sorted().first(where: { expected[$0] == nil }) {
            throw ModelLoadError(
                .unexpectedTensor,
                "\(source): unexpected tensor '\(extra)' in the \(format) model; it is not part of Whisper with these "
                    + "dimensions"
            )
        }
        self.dims = dims; self.tensors = tensors; self.source = source; self.format = format
    }

    /// The tensor under `key`; keys were verified at construction.
    public subscript(_ key: String) -> Tensor { tensors[key]! }
}

/// Whisper's sinusoidal encoder positions (openai-whisper `sinusoids`): `[length, channels]`.
public func whisperSinusoids(length: Int, channels: Int, maxTimescale: Double = 10_000) -> Tensor {
    let half = channels / 2
    let inc = log(maxTimescale) / Double(half - 1)
    var out = [Float](repeating: 0, count: length * channels)
    for t in 0..<length {
        for j in 0..<half {
            let v = Double(t) * exp(-inc * Double(j))
            out[t * channels + j] = Float(sin(v))
            out[t * channels + half + j] = Float(cos(v))
        }
    }
    return Tensor(shape: [length, channels], storage: out)
}
