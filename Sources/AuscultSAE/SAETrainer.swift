// Training loop: Adam with linear warm-up and decay, gradient-norm clipping, unit-norm decoder
// rows with the parallel gradient component removed every step, dead-latent tracking for AuxK,
// JSONL logs, and checkpoints in SAELens's layout that a rerun resumes from.
import AuscultTensor
import AuscultWhisper
import Foundation

/// Optimiser and schedule settings.
public struct SAETrainingOptions: Codable, Sendable, Equatable {
    public var steps: Int = 2000
    public var batchSize: Int = 1024
    public var learningRate: Float = 2e-4
    public var warmupSteps: Int = 100
    /// Linear decay to 0 over the last fraction of steps.
    public var decayFraction: Double = 0.2
    public var clipNorm: Float = 1
    /// A latent is dead after this many training rows without firing.
    public var deadAfter: Int = 50_000
    public var seed: UInt64 = 0
    public var logEvery: Int = 10
    public var checkpointEvery: Int = 500
    /// Where b_dec starts: the data mean, or its geometric median (Gao et al. 2024; robust to
    /// the few very large activations some positions carry).
    public var bDecInit: BDecInit = .mean
    public init() {}

    public enum BDecInit: String, Codable, Sendable, CaseIterable { case mean, median }

    /// Learning rate at `step` (0-based).
    public func rate(at step: Int) -> Float {
        var f: Float = 1
        if warmupSteps > 0 && step < warmupSteps { f = Float(step + 1) / Float(warmupSteps) }
        let decayStart = Int(Double(steps) * (1 - decayFraction))
        if step >= decayStart && steps > decayStart { f *= Float(steps - step) / Float(steps - decayStart) }
        return learningRate * f
    }
}

/// One line of the training log.
public struct SAELogLine: Codable, Sendable {
    public var step: Int
    public var loss: Double, mse: Double, aux: Double, l1: Double, fvu: Double, l0: Double
    public var deadFraction: Double
    public var lr: Float
    enum CodingKeys: String, CodingKey {
        case step, loss, mse, aux, l1, fvu, l0, lr; case deadFraction = "dead_fraction"
    }
}

/// Trains an SAE on rows held in memory (from an `ActivationStore`).
public final class SAETrainer {
    /// The rate of BatchTopK's threshold average (SAELens's `topk_threshold_lr` default).
    static let thresholdRate: Float = 0.01
    public private(set) var sae: SparseAutoencoder
    public let options: SAETrainingOptions
    public private(set) var step = 0
    /// Rows since each latent last fired.
    public private(set) var sinceFired: [Int]
    var adam: [Adam]
    let data: Tensor
    var order: [Int]

    /// `data` `[N, d_in]`; b_dec starts at the data mean or geometric median (`options.bDecInit`),
    /// unless resuming.
    public init(sae: SparseAutoencoder, data: Tensor, options: SAETrainingOptions) {
        self.sae = sae; self.data = data; self.options = options
        sinceFired = [Int](repeating: 0, count: sae.config.dSAE)
        adam = [sae.wEnc, sae.bEnc, sae.wDec, sae.bDec].map { Adam(count: $0.count) }
        order = Array(0..<data.shape[0])
        var g = SplitMix64(seed: options.seed)
        for i in stride(from: order.count - 1, to: 0, by: -1) { order.swapAt(i, Int(g.next() % UInt64(i + 1))) }
        let n = data.shape[0], d = sae.config.dIn
        let values = data.scalars
        var mean = [Float](repeating: 0, count: d)
        for r in 0..<n { for j in 0..<d { mean[j] += values[r * d + j] / Float(n) } }
        self.sae.bDec = Tensor(
            shape: [d], storage: options.bDecInit == .median ? Self.geometricMedian(data, start: mean) : mean)
    }

    /// The point minimising the summed Euclidean distance to the rows of `x` `[N, d]`, by
    /// Weiszfeld's iteration from `start` (at most 100 steps, until it moves less than 1e-6 of
    /// its norm); rows closer than 1e-8 to the estimate are skipped, avoiding a division by zero.
    public static func geometricMedian(_ x: Tensor, start: [Float], iterations: Int = 100) -> [Float] {
        let n = x.shape[0], d = x.shape[1], values = x.scalars
        var y = start.map(Double.init)
        for _ in 0..<iterations {
            var num = [Double](repeating: 0, count: d), den = 0.0
            for r in 0..<n {
                var dist = 0.0
                for j in 0..<d { let v = Double(values[r * d + j]) - y[j]; dist += v * v }
                dist = dist.squareRoot()
                guard dist > 1e-8 else { continue }
                for j in 0..<d { num[j] += Double(values[r * d + j]) / dist }
                den += 1 / dist
            }
            guard den > 0 else { break }
            let next = num.map { $0 / den }
            var moved = 0.0, norm = 0.0
            for j in 0..<d { moved += (next[j] - y[j]) * (next[j] - y[j]); norm += next[j] * next[j] }
            y = next
            if moved.squareRoot() <= 1e-6 * max(norm.squareRoot(), 1e-12) { break }
        }
        return y.map(Float.init)
    }

    /// The batch of `step`: consecutive rows of a seeded shuffle, wrapping around.
    func batch(_ step: Int) -> Tensor {
        let n = data.shape[0], b = min(options.batchSize, n)
        return data.gather(rows: (0..<b).map { order[(step * b + $0) % n] })
    }

    /// Runs until `options.steps`, calling `log` every `logEvery` steps and `checkpoint` every
    /// `checkpointEvery` steps and at the end.
    public func train(log: (SAELogLine) throws -> Void, checkpoint: (SAETrainer) throws -> Void) throws {
        while step < options.steps {
            let (stats, lr) = update(batch(step))
            let m = sae.config.dSAE
            if step % options.logEvery == 0 || step == options.steps {
                let deadFraction = Double(sinceFired.filter { $0 >= options.deadAfter }.count) / Double(m)
                try log(
                    SAELogLine(
                        step: step, loss: stats.loss, mse: stats.mse, aux: stats.aux, l1: stats.l1, fvu: stats.fvu,
                        l0: stats.l0, deadFraction: deadFraction, lr: lr))
            }
            if step % options.checkpointEvery == 0 || step == options.steps { try checkpoint(self) }
        }
    }

    /// One optimiser step on `x` `[B, d_in]`: loss and gradients (AuxK on the latents dead now),
    /// the decoder gradient's parallel components removed, global-norm clipping, Adam at this
    /// step's rate, decoder rows renormalised, firing counters advanced.
    @discardableResult
    public func update(_ x: Tensor) -> (stats: SAEBatchStats, lr: Float) {
        let dead = sinceFired.map { $0 >= options.deadAfter }
        var (stats, g, fired, smallest) = sae.stepGradients(x, dead: dead)
        sae.projectDecoderGradient(&g)
        let norm = g.norm
        if norm > options.clipNorm {
            let s = options.clipNorm / norm
            g.scale(by: s)
        }
        let lr = options.rate(at: step)
        adam[0].step(&sae.wEnc, g.wEnc, lr: lr, t: step + 1)
        adam[1].step(&sae.bEnc, g.bEnc, lr: lr, t: step + 1)
        adam[2].step(&sae.wDec, g.wDec, lr: lr, t: step + 1)
        adam[3].step(&sae.bDec, g.bDec, lr: lr, t: step + 1)
        sae.renormalizeDecoder()
        let b = x.shape[0], m = sae.config.dSAE
        if sae.config.architecture == .batchtopk, let smallest {
            // BatchTopK's inference threshold: an exponential moving average of the smallest
            // activation the batch selection kept (SAELens's topk_threshold, rate 0.01 from 0).
            let old = sae.threshold?.scalars.first ?? 0
            let new = (1 - Self.thresholdRate) * old + Self.thresholdRate * smallest
            sae.threshold = Tensor(shape: [m], storage: [Float](repeating: new, count: m))
        }
        for i in 0..<m { sinceFired[i] = fired[i] ? 0 : sinceFired[i] + b }
        step += 1
        return (stats, lr)
    }

    /// Fraction of variance unexplained over every training row (not one batch), in chunks.
    public func fvuOverData(chunk: Int = 4096) -> Double {
        let n = data.shape[0], d = sae.config.dIn
        var stats = SpliceStats(dIn: d, dSAE: sae.config.dSAE)
        var at = 0
        while at < n {
            let rows = min(chunk, n - at)
            let x = data.rows(at..<(at + rows))
            let (a, xhat) = sae(x)
            stats.add(x, xhat, a)
            at += rows
        }
        return stats.fvu
    }

    /// Restores optimiser state and step (resume).
    public func restore(step: Int, sae: SparseAutoencoder, moments: [[Float]], sinceFired: [Int]) {
        self.step = step; self.sae = sae; self.sinceFired = sinceFired
        for (i, m) in moments.enumerated() {
            if i % 2 == 0 { adam[i / 2].m = m } else { adam[i / 2].v = m }
        }
    }

    /// Adam moments, m then v for each parameter (W_enc, b_enc, W_dec, b_dec).
    public var moments: [[Float]] { adam.flatMap { [$0.m, $0.v] } }
}
