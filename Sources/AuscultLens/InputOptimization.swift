// Input optimisation: a log-mel window made to excite a neuron, an SAE latent or a token, by
// gradient ascent (Adam) from silence or a clip, as er537's "Interpreting OpenAI's Whisper"
// optimised inputs for encoder neurons.
import AuscultAudio
import AuscultTensor
import AuscultWhisper
import Foundation

/// Gradient ascent on a log-mel window `[n_mels, 2F]` to maximise a metric (`GradientMetric`:
/// `.neuron`, an SAE latent's `latentMetric`, `.logProbability` of a token), with Adam and the
/// values kept inside what a Whisper log-mel can hold.
public struct InputOptimization {
    public let loaded: LoadedModel
    /// Adam steps (each one forward and one backward pass: the encoder's alone for an encoder metric).
    public var steps: Int = 100
    /// Adam's step size, in log-mel units (Whisper's log-mel spans about 2.5).
    public var learningRate: Float = 0.02
    /// The log-mel values allowed: Whisper's normalised log-mel, (log₁₀(power) + 4)/4 with the
    /// floor 8 below the window's peak, lies within about −1.5 … 2.
    public var bounds: ClosedRange<Float> = -1.5...2

    public init(loaded: LoadedModel) { self.loaded = loaded }

    /// The log-mel of silence, where optimisation starts by default.
    public func silence() -> Tensor {
        LogMel(nMels: loaded.model.dims.n_mels).window([Float](repeating: 0, count: LogMel.windowSamples))
    }

    /// Maximises `metric` from `start` (teacher-forced on `tokens` when the metric reads the
    /// decoder). Returns the optimised log-mel and the metric before each step and after the last.
    public func run(
        from start: Tensor, metric: GradientMetric, tokens: [Int]? = nil, progress: ProgressReporter? = nil
    ) throws -> (mel: Tensor, values: [Double]) {
        guard steps >= 1, learningRate.isFinite, learningRate > 0 else {
            throw LensError(
                .invalidArgument, "input optimisation needs at least 1 step and a positive, finite learning rate")
        }
        var x = start.scalars.map { min(max($0, bounds.lowerBound), bounds.upperBound) }
        var adam = Adam(count: x.count)
        var values = [Double]()
        for t in 1...(steps + 1) {
            let (_, cache) = try loaded.runWithCache(
                .logMel(Tensor(shape: start.shape, storage: x)), names: [.mel], tokens: tokens, backward: metric)
            values.append(cache.metric!)
            guard t <= steps else { break }
            // Ascent: Adam minimises, so it is given the negated gradient.
            adam.step(&x, try cache.gradient(.mel).scalars.map { -$0 }, lr: learningRate, t: t)
            for i in x.indices { x[i] = min(max(x[i], bounds.lowerBound), bounds.upperBound) }
            progress?.advance(by: 1)
        }
        return (Tensor(shape: start.shape, storage: x), values)
    }
}
