// Linear probes (Alain & Bengio 2016, "Understanding intermediate layers using linear classifier
// probes"): what a hook point's frames or positions encode linearly, with held-out accuracy.
import AuscultAudio
import AuscultTensor
import AuscultWhisper
import Foundation

/// A linear read-out of activations: logistic regression (a label 0/1) or linear regression (a
/// value), on features standardised with the training set's mean and deviation, weight decay on
/// the weights, fitted by full-batch Adam.
public struct LinearProbe: Codable, Sendable {
    public enum Kind: String, Codable, Sendable, CaseIterable { case logistic, linear }
    public var kind: Kind
    /// `[d]`, on standardised features.
    public var weights: [Float]
    public var bias: Float
    /// The training set's per-feature mean and standard deviation (1 where constant).
    public var mean: [Float], deviation: [Float]

    /// Fits a probe to rows `x` `[n, d]` and targets `y` (0 or 1 for logistic), minimising the mean
    /// loss (cross-entropy, or half the squared error) plus `weightDecay`·|w|²/2.
    public static func fit(
        _ x: Tensor, _ y: [Float], kind: Kind, weightDecay: Float = 1e-3, steps: Int = 300,
        learningRate: Float = 0.05
    ) throws -> LinearProbe {
        let n = x.shape[0], d = x.count / max(n, 1)
        guard x.rank == 2, n == y.count, n >= 2 else {
            throw LensError(
                .invalidArgument, "a probe needs rows [n, d] with one target each; got \(x.shape), \(y.count)")
        }
        guard weightDecay >= 0, weightDecay.isFinite, steps >= 1, learningRate > 0, learningRate.isFinite else {
            throw LensError(.invalidArgument, "a probe needs weight decay ≥ 0, steps ≥ 1 and a positive learning rate")
        }
        if kind == .logistic, let bad = y.first(where: { $0 != 0 && $0 != 1 }) {
            throw LensError(.invalidArgument, "a logistic probe's labels are 0 or 1, not \(bad)")
        }
        let columns = x.scalars
        var mean = [Float](repeating: 0, count: d), deviation = [Float](repeating: 0, count: d)
        for j in 0..<d {
            var s = 0.0, s2 = 0.0
            for r in 0..<n { let v = Double(columns[r * d + j]); s += v; s2 += v * v }
            let m = s / Double(n)
            mean[j] = Float(m)
            let sd = (max(0, s2 / Double(n) - m * m)).squareRoot()
            deviation[j] = sd > 1e-12 ? Float(sd) : 1
        }
        var probe = LinearProbe(
            kind: kind, weights: [Float](repeating: 0, count: d), bias: 0, mean: mean, deviation: deviation)
        let z = probe.standardised(x)
        let backend = CPUBackend()
        let zT = z.transposed()  // [d, n]: the gradient Zᵀ r is one product
        var adam = Adam(count: d + 1)
        if kind == .logistic {
            let p = Double(y.reduce(0, +)) / Double(n)
            probe.bias = Float(log(max(p, 1e-6) / max(1 - p, 1e-6)))  // start at the base rate
        } else {
            probe.bias = y.reduce(0, +) / Float(n)
        }
        for t in 1...steps {
            let out = probe.raw(z, backend: backend)
            var r = [Float](repeating: 0, count: n)
            for i in 0..<n { r[i] = (kind == .logistic ? 1 / (1 + Foundation.exp(-out[i])) : out[i]) - y[i] }
            let g = backend.linear(zT, backend.prepare(weight: Tensor(shape: [1, n], storage: r), bias: nil)).scalars
            var params = probe.weights + [probe.bias]
            var grad = (0..<d).map { g[$0] / Float(n) + weightDecay * probe.weights[$0] }
            grad.append(r.reduce(0, +) / Float(n))
            adam.step(&params, grad, lr: learningRate, t: t)
            probe.weights = Array(params[0..<d]); probe.bias = params[d]
        }
        return probe
    }

    /// Rows `x` `[n, d]` standardised with the training set's statistics.
    func standardised(_ x: Tensor) -> Tensor {
        let d = weights.count, v = x.scalars
        return Tensor(shape: x.shape, storage: v.indices.map { (v[$0] - mean[$0 % d]) / deviation[$0 % d] })
    }

    /// w · z + b for standardised rows.
    func raw(_ z: Tensor, backend: CPUBackend) -> [Float] {
        backend.linear(
            z, backend.prepare(weight: Tensor(shape: [1, weights.count], storage: weights), bias: Tensor([bias]))
        )
        .scalars
    }

    /// The probe's output on rows `x` `[n, d]`: probabilities (logistic) or values (linear).
    public func predict(_ x: Tensor) -> [Float] {
        let out = raw(standardised(x), backend: CPUBackend())
        return kind == .logistic ? out.map { 1 / (1 + Foundation.exp(-$0)) } : out
    }

    /// Accuracy at threshold ½ (logistic) or R² (linear) on rows `x` and targets `y`.
    public func score(_ x: Tensor, _ y: [Float]) -> Double {
        let p = predict(x)
        if kind == .logistic {
            return Double(zip(p, y).filter { ($0.0 >= 0.5) == ($0.1 >= 0.5) }.count) / Double(max(y.count, 1))
        }
        let m = Double(y.reduce(0, +)) / Double(max(y.count, 1))
        let total = y.reduce(0.0) { $0 + (Double($1) - m) * (Double($1) - m) }
        let residual = zip(p, y).reduce(0.0) { $0 + Double($1.0 - $1.1) * Double($1.0 - $1.1) }
        return total > 0 ? 1 - residual / total : 0
    }
}

/// What a probe predicts for each encoder frame of a clip's audio.
public enum ProbeTask: Sendable, CustomStringConvertible {
    /// 1 for frames (20 ms) whose loudness is within 35 dB of the clip's loudest frame, 0 for
    /// quieter ones (pauses, silence before and after); padding after the audio is left out.
    case speech
    /// 1 for frames inside a word whose normalised text contains the string, 0 for the clip's
    /// other frames.
    case word(String)

    public var description: String {
        switch self {
        case .speech: return "speech: frames within 35 dB of the clip's loudest (1) or quieter (0)"
        case .word(let w): return "frames inside words containing '\(w)' (1) or not (0)"
        }
    }
}

/// The outcome of `auscult probe`.
public struct ProbeResult: Codable, Sendable {
    public var hook: String
    public var task: String
    public var kind: String
    public var weightDecay: Double
    public var trainClips: [String], heldOutClips: [String]
    public var trainFrames: Int, heldOutFrames: Int
    /// Accuracy (logistic) or R² (linear), on the training and the held-out clips.
    public var trainScore: Double, heldOutScore: Double
    /// The accuracy of always answering the training set's majority label, on the held-out clips.
    public var majorityBaseline: Double
    /// Share of held-out frames labelled 1.
    public var heldOutPositive: Double
    /// One held-out clip's frames: labels and the probe's outputs, for the report.
    public var example: ProbeExample?
}

/// A clip's frame labels and the probe's outputs on them.
public struct ProbeExample: Codable, Sendable {
    public var clip: String
    public var labels: [Float]
    public var outputs: [Float]
}

/// Fits a probe on encoder frames of a dataset's clips, holding out the last third of the clips.
public struct ProbeJob {
    public let loaded: LoadedModel
    public let hook: HookName
    public var task: ProbeTask = .speech
    public var kind: LinearProbe.Kind = .logistic
    public var weightDecay: Float = 1e-3
    public var steps = 300

    /// How the transcript a word task labels frames by is decoded (prompt and prefix; a
    /// prefix's words are not part of the transcript, so they label no frame).
    public var decoding = DecodingOptions()

    public init(loaded: LoadedModel, hook: HookName) {
        self.loaded = loaded
        self.hook = hook
    }

    /// The activation rows `[frames holding audio, width]` and labels of one clip; a word task
    /// labels the frames of the words of the clip's transcript, decoded with `decoding`.
    public func frames(_ item: DatasetItem, normalizer: EnglishTextNormalizer) throws -> (Tensor, [Float]) {
        let samples = try AudioClip(contentsOf: item.path).samples
        let names: [HookName] = [hook, .lnPost.normalized]
        let (result, cache) = try loaded.runWithCache(.samples(samples), names: names, options: decoding)
        let x = try cache.tensor(hook)
        guard x.shape.first == loaded.model.dims.n_audio_ctx else {
            throw LensError(
                .invalidArgument, "\(hook.name) is not an encoder point with one row per frame (shape \(x.shape))")
        }
        let n = min(result.audioFrames, x.shape[0])
        let labels: [Float]
        switch task {
        case .speech:
            let power = (0..<n).map { f -> Double in
                let part = samples[min(samples.count, f * 320)..<min(samples.count, (f + 1) * 320)]
                return part.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(max(1, part.count))
            }
            let floor = (power.max() ?? 0) * pow(10, -3.5)
            labels = power.map { $0 > floor && $0 > 0 ? 1 : 0 }
        case .word(let text):
            let features = try cache.tensor(.lnPost.normalized)
            let words = try loaded.alignWords(
                audio: features.reshaped([1] + features.shape), textTokens: result.tokens, samples: samples.count)
            let wanted = normalizer(text)
            labels = (0..<n).map { f -> Float in
                let t = (Double(f) + 0.5) * 0.02
                return words.contains { $0.start <= t && t < $0.end && normalizer($0.word).contains(wanted) } ? 1 : 0
            }
        }
        return (x.slice(0..<n).reshaped([n, x.count / x.shape[0]]), labels)
    }

    /// Runs the clips, fits on the first two thirds, scores on the rest.
    public func run(_ items: [DatasetItem], progress: ProgressReporter? = nil) throws -> ProbeResult {
        guard items.count >= 3 else {
            throw LensError(.invalidArgument, "a probe needs at least 3 clips, got \(items.count)")
        }
        let normalizer = try EnglishTextNormalizer()
        var rows = [(Tensor, [Float])]()
        for item in items {
            rows.append(try frames(item, normalizer: normalizer))
            progress?.advance(by: 1)
        }
        let split = items.count - max(1, items.count / 3)
        func join(_ part: ArraySlice<(Tensor, [Float])>) -> (Tensor, [Float]) {
            (Tensor.concatenate(part.map(\.0)), part.flatMap(\.1))
        }
        let (xTrain, yTrain) = join(rows[..<split]), (xTest, yTest) = join(rows[split...])
        let probe = try LinearProbe.fit(xTrain, yTrain, kind: kind, weightDecay: weightDecay, steps: steps)
        let majority: Float = yTrain.reduce(0, +) * 2 >= Float(yTrain.count) ? 1 : 0
        let example = rows[split]
        return ProbeResult(
            hook: hook.name, task: task.description, kind: kind.rawValue, weightDecay: Double(weightDecay),
            trainClips: items[..<split].map(\.id), heldOutClips: items[split...].map(\.id),
            trainFrames: yTrain.count, heldOutFrames: yTest.count,
            trainScore: probe.score(xTrain, yTrain), heldOutScore: probe.score(xTest, yTest),
            majorityBaseline: Double(yTest.filter { $0 == majority }.count) / Double(max(1, yTest.count)),
            heldOutPositive: Double(yTest.reduce(0, +)) / Double(max(1, yTest.count)),
            example: ProbeExample(clip: items[split].id, labels: example.1, outputs: probe.predict(example.0)))
    }
}
