// The tuned lens (Belrose et al. 2023, "Eliciting Latent Predictions from Transformers with the
// Tuned Lens"): per decoder layer an affine translator h ↦ h + A·h + b, trained so that reading
// the translated stream through the final LayerNorm and unembedding matches the model's final
// distribution (minimum KL(final ‖ lens)). A = 0, b = 0 is the logit lens.
import AuscultAudio
import AuscultTensor
import AuscultWhisper
import Foundation

/// Affine translators for every decoder layer (`embed` and after each block).
public struct TunedLens: Sendable {
    /// `[d, d]` per layer (row-major: (A·h)_i = Σ_j A[i][j] h_j).
    public var weights: [Tensor]
    /// `[d]` per layer.
    public var biases: [Tensor]

    /// Identity translators (the logit lens) for `layers` layers of width `d`.
    public init(layers: Int, d: Int) {
        weights = (0..<layers).map { _ in Tensor(zeros: [d, d]) }
        biases = (0..<layers).map { _ in Tensor(zeros: [d]) }
    }

    /// The translated streams `[N, d]` of layer `l`.
    public func translate(_ h: Tensor, layer l: Int) -> Tensor {
        h + h.linear(weights[l], bias: biases[l])
    }

    /// Trains the translators on residual streams `streams[l]` `[N, d]` (N positions of
    /// teacher-forced clean transcripts) against the final log-probabilities `finalLogp` `[N, V]`,
    /// with Adam (learning rate `lr`, `steps` full-batch steps per layer). Returns the mean KL per
    /// layer before and after.
    public mutating func train(
        model: Whisper, streams: [Tensor], finalLogp: Tensor, steps: Int = 150, lr: Float = 1e-3,
        progress: ((Int, Int) -> Void)? = nil
    ) throws -> (before: [Double], after: [Double]) {
        var before = [Double](), after = [Double]()
        for l in streams.indices {
            var adamA = Adam(count: weights[l].count), adamB = Adam(count: biases[l].count)
            before.append(
                try Self.kl(model: model, translated: translate(streams[l], layer: l), finalLogp: finalLogp).loss)
            for step in 0..<steps {
                let h = streams[l]
                let gradH = try Self.kl(
                    model: model, translated: translate(h, layer: l), finalLogp: finalLogp, gradient: true
                ).grad!
                // h' = h + A h + b: dA[i][j] = Σ_rows gradH[i] · h[j], db = Σ_rows gradH.
                adamA.step(&weights[l], gradH.transposedMatmul(h), lr: lr, t: step + 1)
                adamB.step(&biases[l], gradH.sum(axis: 0), lr: lr, t: step + 1)
                progress?(l * steps + step + 1, streams.count * steps)
            }
            after.append(
                try Self.kl(model: model, translated: translate(streams[l], layer: l), finalLogp: finalLogp).loss)
        }
        return (before, after)
    }

    /// Mean KL(final ‖ lens) over rows for translated streams `[N, d]`, and optionally its
    /// gradient with respect to the translated streams (through the unembedding and the final
    /// LayerNorm, by the model's backend).
    public static func kl(
        model: Whisper, translated h: Tensor, finalLogp: Tensor, gradient: Bool = false
    ) throws -> (loss: Double, grad: Tensor?) {
        let (loss, dLogits) = model.unembed(h).klDivergence(fromLogProbabilities: finalLogp, gradient: gradient)
        guard let dLogits else { return (loss, nil) }
        return (loss, try model.unembedBackward(dLogits, residual: h))
    }
}

/// Per-layer comparison of the logit lens and a tuned lens on the same positions.
public struct TunedLensSummary: Codable, Sendable {
    public var layers: [String]
    public var positions: Int
    /// Mean KL(final ‖ lens) per layer.
    public var klLogitLens: [Double]
    public var klTunedLens: [Double]
    /// Fraction of positions whose top-1 token equals the final layer's.
    public var top1LogitLens: [Double]
    public var top1TunedLens: [Double]
    /// Clips the translators were trained on and the held-out clips the figures above come from
    /// (the same clips when there was only one).
    public var trainClips: [String]
    public var evalClips: [String]

    enum CodingKeys: String, CodingKey {
        case layers, positions
        case trainClips = "train_clips", evalClips = "eval_clips"
        case klLogitLens = "kl_logit_lens", klTunedLens = "kl_tuned_lens"
        case top1LogitLens = "top1_logit_lens", top1TunedLens = "top1_tuned_lens"
    }
}

extension Lens {
    /// The decoder residual streams `[T, d]` entering block 0 and after every block, and the
    /// final log-probabilities `[T, V]`, teacher-forced on the clip's greedy transcript.
    public func streams(_ path: String) throws -> (layers: [Tensor], finalLogp: Tensor) {
        let dims = model.dims
        let mel = LogMel(nMels: dims.n_mels).window(try AudioClip(contentsOf: path).samples)
        let audio = try model.encode(mel.reshaped([1] + mel.shape))
        let r = try loaded.decoder.decode(audio: audio, options: decoding)[0]
        let seq = loaded.decoder.initialTokens(decoding, language: r.language) + r.tokens + [loaded.tokenizer.eot]
        let names =
            ["decoder.blocks.0.hook_resid_pre"] + (0..<dims.n_text_layer).map { "decoder.blocks.\($0).hook_resid_post" }
        let rec = ActivationRecorder { names.contains($0) }
        let logits = try model.decode([seq], cache: try model.makeCache(audio: audio, audioIndex: [0]), hooks: rec)
        let t = seq.count
        let lp = logits.reshaped([t, dims.n_vocab]).logSoftmaxRows()
        return (
            names.map { rec.store[$0]!.reshaped([t, dims.n_text_state]) },
            Tensor(rows: lp.map { $0.map(Float.init) })
        )
    }

    /// Trains a tuned lens on the clips at `paths` and compares it with the logit lens. With two
    /// or more clips the last third (at least one) is held out and the comparison is made there;
    /// with one clip it is in-sample.
    public func tuned(
        _ paths: [String], steps: Int = 60, progress: ((Int, Int) -> Void)? = nil
    ) throws -> (TunedLens, TunedLensSummary) {
        let dims = model.dims
        let held = paths.count >= 2 ? max(1, paths.count / 3) : 0
        let trainPaths = Array(paths.prefix(paths.count - held)),
            evalPaths = held > 0 ? Array(paths.suffix(held)) : paths
        func gather(_ ps: [String]) throws -> ([Tensor], Tensor) {
            var perLayer = [[Tensor]](repeating: [], count: dims.n_text_layer + 1)
            var finals = [Tensor]()
            for p in ps {
                let (layers, f) = try streams(p)
                for l in layers.indices { perLayer[l].append(layers[l]) }
                finals.append(f)
            }
            return (perLayer.map { Tensor.concatenate($0) }, Tensor.concatenate(finals))
        }
        let (train, trainFinal) = try gather(trainPaths)
        let (eval, evalFinal) = try gather(evalPaths)
        var lens = TunedLens(layers: train.count, d: dims.n_text_state)
        _ = try lens.train(model: model, streams: train, finalLogp: trainFinal, steps: steps, progress: progress)
        let n = evalFinal.shape[0]
        let target = evalFinal.argmax(axis: -1)
        func agreement(_ h: Tensor) -> Double {
            Double(zip(model.unembed(h).argmax(axis: -1), target).filter { $0 == $1 }.count) / Double(n)
        }
        let summary = TunedLensSummary(
            layers: ["embed"] + (0..<dims.n_text_layer).map { "decoder.blocks.\($0)" }, positions: n,
            klLogitLens: try eval.map { try TunedLens.kl(model: model, translated: $0, finalLogp: evalFinal).loss },
            klTunedLens: try eval.indices.map {
                try TunedLens.kl(model: model, translated: lens.translate(eval[$0], layer: $0), finalLogp: evalFinal)
                    .loss
            },
            top1LogitLens: eval.map(agreement),
            top1TunedLens: eval.indices.map { agreement(lens.translate(eval[$0], layer: $0)) },
            trainClips: trainPaths, evalClips: evalPaths)
        return (lens, summary)
    }
}
