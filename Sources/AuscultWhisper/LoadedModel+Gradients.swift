// Gradients of a metric at hook points: TransformerLens's run_with_cache(incl_bwd=True) and
// nnsight's metric.backward(), for one clip, its encoder and its teacher-forced decoder.
import AuscultTensor
import Foundation

/// A scalar function of one run's logits `[T, V]` to differentiate.
public enum GradientMetric: Sendable {
    /// Mean cross-entropy of the teacher-forced tokens: position p predicts token p + 1, for p
    /// from `from` (nil: the prompt's last position, which predicts the first text token) to T − 2.
    case crossEntropy(from: Int? = nil)
    /// Sum of the log-probabilities of `tokens[i]` at `positions[i]`.
    case logProbability(positions: [Int], tokens: [Int])
    /// The logit of `token` minus that of `versus` at `position`.
    case logitDifference(position: Int, token: Int, versus: Int)
    /// A function of the logits giving its value and its gradient `[T, V]`.
    case custom(@Sendable (Tensor) throws -> (value: Double, gradient: Tensor))
    /// A function of the activation at a hook point (batch axis dropped: `[F, …]` in the encoder,
    /// `[T, …]` in the decoder) giving its value and its gradient, shaped as the activation.
    case activation(HookName, @Sendable (Tensor) throws -> (value: Double, gradient: Tensor))

    /// The mean over `rows` (frames or positions; nil: all) of neuron `index` (along the last
    /// axis) of the activation at `hook`: what input optimisation maximises for a neuron.
    public static func neuron(_ hook: HookName, _ index: Int, over rows: Range<Int>? = nil) -> GradientMetric {
        .activation(hook) { x in
            let n = x.shape[0], width = x.count / n, span = rows ?? 0..<n
            guard index >= 0 && index < width, span.lowerBound >= 0, span.upperBound <= n, !span.isEmpty else {
                throw GradientError(
                    .invalidMetric,
                    "neuron \(index) over rows \(span) of \(hook.name), whose activation has \(n) rows of \(width)")
            }
            var g = [Float](repeating: 0, count: x.count)
            var value = 0.0
            for r in span {
                value += Double(x.reshaped([n, width])[r, index])
                g[r * width + index] = 1 / Float(span.count)
            }
            return (value / Double(span.count), Tensor(shape: x.shape, storage: g))
        }
    }

    /// The hook point whose activation the metric reads (the logits unless `.activation`).
    func point(_ registry: HookRegistry) throws -> String {
        guard case .activation(let hook, _) = self else { return HookName.logits.name }
        let names = try registry.resolve(hook.name)
        guard names.count == 1 else {
            throw GradientError(.invalidMetric, "a metric reads one hook point; \(hook.name) names \(names.count)")
        }
        return names[0]
    }

    /// The metric's value and its direct gradients (hook name → gradient) from a run's saved
    /// activations.
    func seeds(
        _ saved: [String: Tensor], point: String, tokens: [Int], promptCount: Int
    ) throws -> (Double, [String: Tensor]) {
        let x = saved[point]!
        let (value, gradient): (Double, Tensor)
        if case .activation(_, let f) = self {
            (value, gradient) = try f(x)
            guard gradient.shape == x.shape else {
                throw GradientError(
                    .shapeMismatch,
                    "a metric's gradient at \(point) has shape \(gradient.shape), the activation \(x.shape)")
            }
        } else {
            (value, gradient) = try evaluate(x, tokens: tokens, promptCount: promptCount)
        }
        return (value, [point: gradient])
    }

    /// The metric's value and its gradient with respect to `logits` `[T, V]` of `tokens`.
    public func evaluate(_ logits: Tensor, tokens: [Int], promptCount: Int) throws -> (value: Double, gradient: Tensor)
    {
        let t = logits.shape[0], v = logits.shape[1]
        func check(_ p: Int, _ what: String) throws {
            guard p >= 0 && p < t else {
                throw GradientError(.invalidMetric, "\(what) \(p) outside the run's positions 0..<\(t)")
            }
        }
        func checkToken(_ id: Int) throws {
            guard id >= 0 && id < v else {
                throw GradientError(.invalidMetric, "token id \(id) outside the vocabulary 0..<\(v)")
            }
        }
        switch self {
        case .crossEntropy(let from):
            let start = from ?? max(0, promptCount - 1)
            try check(start, "the first scored position")
            guard start < t - 1 else {
                throw GradientError(.invalidMetric, "no token follows position \(start) of \(t): nothing to score")
            }
            let positions = Array(start..<(t - 1))
            let (value, gradient) = Self.logProbabilities(
                logits, positions: positions, tokens: positions.map { tokens[$0 + 1] })
            let n = Double(positions.count)
            return (-value / n, gradient.scaled(by: Float(-1 / n)))
        case .logProbability(let positions, let ids):
            guard positions.count == ids.count, !positions.isEmpty else {
                throw GradientError(
                    .invalidMetric, "\(positions.count) positions for \(ids.count) tokens: give one token per position")
            }
            for p in positions { try check(p, "position") }
            for id in ids { try checkToken(id) }
            return Self.logProbabilities(logits, positions: positions, tokens: ids)
        case .logitDifference(let p, let a, let b):
            try check(p, "position"); try checkToken(a); try checkToken(b)
            var g = [Float](repeating: 0, count: t * v)
            g[p * v + a] += 1
            g[p * v + b] -= 1
            return (Double(logits[p, a]) - Double(logits[p, b]), Tensor(shape: [t, v], storage: g))
        case .activation(let hook, _):
            throw GradientError(
                .invalidMetric, "a metric of \(hook.name) is evaluated on that activation, not the logits")
        case .custom(let f):
            let (value, gradient) = try f(logits)
            guard gradient.shape == logits.shape else {
                throw GradientError(
                    .shapeMismatch, "a custom metric's gradient has shape \(gradient.shape), the logits \(logits.shape)"
                )
            }
            return (value, gradient)
        }
    }

    /// Σᵢ log softmax(logits[pᵢ])[tokᵢ] and its gradient (one-hot minus softmax on each row),
    /// softmax taken in Double.
    static func logProbabilities(_ logits: Tensor, positions: [Int], tokens: [Int]) -> (Double, Tensor) {
        let t = logits.shape[0], v = logits.shape[1]
        var g = [Float](repeating: 0, count: t * v)
        var value = 0.0
        for (p, id) in zip(positions, tokens) {
            let row = logits.select(p, axis: 0).scalars
            let top = Double(row.max()!)
            var total = 0.0
            for x in row { total += Foundation.exp(Double(x) - top) }
            let lse = top + Foundation.log(total)
            value += Double(row[id]) - lse
            for j in 0..<v { g[p * v + j] -= Float(Foundation.exp(Double(row[j]) - lse)) }
            g[p * v + id] += 1
        }
        return (value, Tensor(shape: [t, v], storage: g))
    }
}

extension Tensor {
    /// Every element times `factor`.
    func scaled(by factor: Float) -> Tensor { Tensor(shape: shape, storage: scalars.map { $0 * factor }) }
}

extension LoadedModel {
    /// Runs one clip teacher-forced on `tokens` (nil: the greedy transcript, prompt included),
    /// differentiates `metric` (of its logits, or of one activation) back to the log-mel, and caches the activations at
    /// `names` (as `runWithCache` does) with the gradient of each beside it as `<name>_grad`
    /// (`ActivationCache.gradient`). Points with no gradient (patterns, scores, LayerNorm scales)
    /// get none. `backwardHook` sees each gradient as it is formed, last layer first, and may
    /// replace it: what it leaves is what flows on.
    ///
    /// The cache's `metric` holds the metric's value. A metric of an encoder hook point runs the
    /// encoder alone (no tokens, no decoder; the result's text is empty). Interventions are not
    /// differentiated through yet: run them with `runWithCache` and take gradients of the clean
    /// model.
    public func runWithCache(
        _ audio: AudioInput, names: [HookName]? = nil, tokens: [Int]? = nil, backward metric: GradientMetric,
        backwardHook: ((String, inout Tensor) throws -> Void)? = nil, options: DecodingOptions = DecodingOptions()
    ) throws -> (RunResult, ActivationCache) {
        let registry = HookRegistry(dims: model.dims)
        let wanted = try cachedNames(names)
        let point = try metric.point(registry)
        if !point.hasPrefix("decoder.") {
            // A metric of the encoder needs no decoder, forwards or backwards.
            guard wanted.allSatisfy({ !$0.hasPrefix("decoder.") }) else {
                throw GradientError(
                    .invalidMetric,
                    "a metric of \(point) (in the encoder) gives no gradient in the decoder; name encoder points")
            }
            let record = Set(wanted + model.backwardInputs(decoder: false) + [point])
            let (mel, frames) = try audio.window(for: model.dims)
            let recorder = ActivationRecorder { record.contains($0) }
            _ = try model.encode(mel.reshaped([1] + mel.shape), hooks: recorder)
            let saved = recorder.store.mapValues { $0.reshaped(Array($0.shape.dropFirst())) }
            let (value, seeds) = try metric.seeds(saved, point: point, tokens: [], promptCount: 0)
            let grads = try model.backward(seeds: seeds, saved: saved, hook: backwardHook)
            var store = [String: Tensor]()
            for name in wanted {
                store[name] = saved[name]
                if let g = grads[name] { store[name + "_grad"] = g }
            }
            var cache = ActivationCache(loaded: self, activations: store, tokens: [], audioFrames: frames)
            cache.metric = value
            let result = RunResult(
                inputTokens: [], tokens: [], text: "", logits: nil, audioFrames: frames,
                language: options.language ?? "en",
                avgLogprob: nil)
            return (result, cache)
        }
        let tokens = try tokens ?? run(audio, options: options).inputTokens
        let record = Array(Set(wanted + model.backwardInputs + [point]))
        let run = try forward(audio, record: record, tokens: tokens, interventions: [], hooks: nil, options: options)
        let prompt = prompt(options)
        let (value, seeds) = try metric.seeds(
            run.store, point: point, tokens: tokens, promptCount: tokens.starts(with: prompt) ? prompt.count : 1)
        let grads = try model.backward(seeds: seeds, saved: run.store, hook: backwardHook)
        var store = [String: Tensor]()
        for name in wanted {
            store[name] = run.store[name]
            if let g = grads[name] { store[name + "_grad"] = g }
        }
        var cache = ActivationCache(
            loaded: self, activations: store, tokens: run.result.inputTokens, audioFrames: run.result.audioFrames)
        cache.metric = value
        var result = run.result
        result.logits = wanted.contains(HookName.logits.name) ? run.store[HookName.logits.name] : nil
        return (result, cache)
    }
}
