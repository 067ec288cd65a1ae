// An SAE latent as a metric to differentiate (input optimisation, saliency of a feature).
import AuscultTensor
import AuscultWhisper

extension SparseAutoencoder {
    /// The mean over `rows` (frames or positions; nil: all) of latent `index`'s pre-activation
    /// `(x − b_dec) · W_enc[:, index] + b_enc[index]` at `hook`, the point this SAE reads: what
    /// input optimisation maximises for a latent (its activation is this through the
    /// architecture's ReLU or top-k, whose gradient vanishes where the latent is off).
    public func latentMetric(_ hook: HookName, _ index: Int, over rows: Range<Int>? = nil) -> GradientMetric {
        let d = config.dIn, m = config.dSAE
        let valid = index >= 0 && index < m
        let column = valid ? (0..<d).map { wEnc[$0, index] } : [], bias = valid ? bEnc[index] : 0
        let centre = bDec.scalars
        return .activation(hook) { x in
            let n = x.shape[0], span = rows ?? 0..<n
            guard valid, x.count == n * d, span.lowerBound >= 0, span.upperBound <= n, !span.isEmpty
            else {
                throw GradientError(
                    .invalidMetric,
                    "latent \(index) of an SAE of \(m) latents over \(d) inputs, over rows \(span) of \(hook.name), "
                        + "whose activation has shape \(x.shape)")
            }
            let v = x.scalars
            var value = 0.0
            var g = [Float](repeating: 0, count: x.count)
            for r in span {
                var z = Double(bias)
                for j in 0..<d { z += Double(v[r * d + j] - centre[j]) * Double(column[j]) }
                value += z
                for j in 0..<d { g[r * d + j] = column[j] / Float(span.count) }
            }
            return (value / Double(span.count), Tensor(shape: x.shape, storage: g))
        }
    }
}
