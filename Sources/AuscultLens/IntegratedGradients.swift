// Integrated gradients (Sundararajan et al. 2017, "Axiomatic Attribution for Deep Networks") of a
// metric with respect to Whisper's log-mel: which time-frequency bins a transcript's score comes
// from, relative to a baseline input.
import AuscultTensor
import AuscultWhisper
import Foundation

/// Integrated gradients on the log-mel: `(x − x₀) ⊙ mean_α ∂m/∂mel (x₀ + α (x − x₀))`, the mean
/// over `steps` midpoints α = (k + ½)/steps of the straight path from the baseline x₀ to the input
/// x. The attributions sum to about m(x) − m(x₀) (completeness), closer with more steps.
public struct IntegratedGradients {
    public let loaded: LoadedModel
    /// Points on the path (each one forward and one backward pass).
    public var steps: Int

    public init(loaded: LoadedModel, steps: Int = 16) {
        self.loaded = loaded
        self.steps = steps
    }

    /// The attribution `[n_mels, 2F]` of `metric` (teacher-forced on `tokens`) for log-mel `input`
    /// against `baseline` (same shape), with the metric at both ends.
    public func run(
        input: Tensor, baseline: Tensor, tokens: [Int], metric: GradientMetric, progress: ProgressReporter? = nil
    ) throws -> (attribution: Tensor, input: Double, baseline: Double) {
        guard steps >= 1 else {
            throw LensError(.invalidArgument, "integrated gradients need at least 1 step, got \(steps)")
        }
        guard input.shape == baseline.shape else {
            throw LensError(.invalidArgument, "input \(input.shape) and baseline \(baseline.shape) differ in shape")
        }
        let x = input.scalars, x0 = baseline.scalars
        var mean = [Double](repeating: 0, count: x.count)
        for k in 0..<steps {
            let alpha = (Double(k) + 0.5) / Double(steps)
            let point = Tensor(
                shape: input.shape, storage: (0..<x.count).map { x0[$0] + Float(alpha) * (x[$0] - x0[$0]) })
            let (_, cache) = try loaded.runWithCache(
                .logMel(point), names: [.mel], tokens: tokens, backward: metric)
            let g = try cache.gradient(.mel).scalars
            for i in mean.indices { mean[i] += Double(g[i]) / Double(steps) }
            progress?.advance(by: 1)
        }
        let attribution = Tensor(
            shape: input.shape, storage: (0..<x.count).map { Float(Double(x[$0] - x0[$0]) * mean[$0]) })
        let ends = try [input, baseline].map {
            try loaded.runWithCache(.logMel($0), names: [.mel], tokens: tokens, backward: metric).1.metric!
        }
        return (attribution, ends[0], ends[1])
    }
}
