// Loss, gradients and the optimiser step of an SAE, by hand.
//
// Loss = (1/B) Σ_b ‖x̂_b − x_b‖²  (+ λ·(1/B) Σ a for relu)  (+ c·(1/B) Σ_b ‖e_b − ê_b‖² AuxK for
// topk/batchtopk, e = x − x̂ held constant, ê the dead latents' k_aux largest reconstructing it).
import AuscultTensor
import Foundation

/// Gradients with the parameters' shapes.
public struct SAEGradients: Sendable {
    public var wEnc: Tensor, bEnc: Tensor, wDec: Tensor, bDec: Tensor
    /// Global L2 norm.
    public var norm: Float { [wEnc, bEnc, wDec, bDec].reduce(Float(0)) { $0 + $1.sumOfSquares }.squareRoot() }

    /// Multiplies every gradient by `s` (norm clipping).
    public mutating func scale(by s: Float) {
        wEnc *= s
        bEnc *= s
        wDec *= s
        bDec *= s
    }
}

/// What one batch measured.
public struct SAEBatchStats: Codable, Sendable {
    public var loss: Double
    public var mse: Double
    public var aux: Double
    public var l1: Double
    /// Fraction of variance unexplained: Σ‖x − x̂‖² / Σ‖x − mean x‖².
    public var fvu: Double
    /// Mean active latents per row.
    public var l0: Double
}

extension SparseAutoencoder {
    /// Loss, statistics, gradients and latents for a batch `x` `[B, d_in]`; `dead[i]` marks
    /// latents the AuxK loss may use. The AuxK target, the residual e = x − x̂, is a constant
    /// (no gradient flows into it, as in Gao et al.'s code); `residual` fixes it from outside
    /// (finite-difference checks perturb the parameters but not the target).
    ///
    /// Sparse latents take the sparse path (`sparseLossAndGradients`), dense ones
    /// `denseLossAndGradients`; both give the same numbers.
    public func lossAndGradients(
        _ x: Tensor, dead: [Bool]? = nil, residual: Tensor? = nil
    ) -> (stats: SAEBatchStats, grads: SAEGradients, latents: Tensor) {
        let z = preActivations(x)
        guard let (stats, grads, active) = sparseLossAndGradients(x, z: z, dead: dead, residual: residual) else {
            return denseLossAndGradients(x, z: z, dead: dead, residual: residual)
        }
        return (stats, grads, active.dense(rows: x.shape[0], columns: config.dSAE))
    }

    /// Loss, statistics, gradients, for each latent whether it fired in the batch, and the smallest
    /// positive activation (nil if none fired; BatchTopK's threshold follows it) — the trainer's
    /// step; no dense latent matrix is built on the sparse path.
    func stepGradients(
        _ x: Tensor, dead: [Bool]?
    ) -> (stats: SAEBatchStats, grads: SAEGradients, fired: [Bool], smallest: Float?) {
        var fired = [Bool](repeating: false, count: config.dSAE)
        let z = preActivations(x)  // computed once: the dense fallback (ReLU early on) reuses it
        if let (stats, grads, active) = sparseLossAndGradients(x, z: z, dead: dead, residual: nil) {
            for i in active.column { fired[Int(i)] = true }
            return (stats, grads, fired, active.value.min())
        }
        let (stats, grads, a) = denseLossAndGradients(x, z: z, dead: dead, residual: nil)
        let m = config.dSAE, values = a.scalars
        var smallest: Float?
        for r in 0..<x.shape[0] {
            for i in 0..<m where values[r * m + i] > 0 {
                fired[i] = true
                smallest = min(smallest ?? .infinity, values[r * m + i])
            }
        }
        return (stats, grads, fired, smallest)
    }

    /// The loss and gradients with dense products throughout (the reference for the sparse path).
    /// The elementwise terms are computed on the host from the tensors' values.
    func denseLossAndGradients(
        _ x: Tensor, z given: Tensor? = nil, dead: [Bool]? = nil, residual: Tensor? = nil
    ) -> (stats: SAEBatchStats, grads: SAEGradients, latents: Tensor) {
        let b = x.shape[0], d = config.dIn, m = config.dSAE
        let z = given ?? preActivations(x)
        let a = activate(z, byBatch: true)
        let xhat = decode(a)
        let xs = x.scalars, xh = xhat.scalars, av = a.scalars
        var mse = 0.0, variance = 0.0
        var mean = [Double](repeating: 0, count: d)
        for r in 0..<b { for j in 0..<d { mean[j] += Double(xs[r * d + j]) / Double(b) } }
        var dxhatValues = [Float](repeating: 0, count: b * d)
        for i in 0..<(b * d) {
            let e = Double(xh[i] - xs[i])
            mse += e * e
            variance += pow(Double(xs[i]) - mean[i % d], 2)
            dxhatValues[i] = Float(2 * e / Double(b))
        }
        let dxhat = Tensor(dxhatValues, shape: [b, d])
        var da = Tensor(zeros: [b, m])
        Tensor.multiply(dxhat, wDec, transposeB: true, into: &da)  // dx̂ · W_decᵀ  [B, m]
        var gWDec = Tensor(zeros: [m, d])
        Tensor.multiply(a, dxhat, transposeA: true, into: &gWDec)  // aᵀ · dx̂  [m, d]
        var gBDecValues = [Float](repeating: 0, count: d)
        for r in 0..<b { for j in 0..<d { gBDecValues[j] += dxhatValues[r * d + j] } }
        var l1 = 0.0, aux = 0.0
        let daValues = da.scalars
        var dz = [Float](repeating: 0, count: b * m)
        for i in 0..<(b * m) where av[i] > 0 {
            dz[i] = daValues[i]
            if config.architecture == .relu { l1 += Double(av[i]); dz[i] += config.l1 / Float(b) }
        }
        l1 = Double(config.l1) * l1 / Double(b)
        if config.architecture != .relu, let dead, dead.contains(true) {
            // AuxK: the dead latents' k_aux largest pre-activations reconstruct the residual.
            var zd = z.scalars
            for r in 0..<b { for i in 0..<m where !dead[i] { zd[r * m + i] = -.infinity } }
            var auxValues = [Float](repeating: 0, count: b * m)
            let kAux = min(config.kAux, dead.filter { $0 }.count)
            for r in 0..<b {
                for i in Selection.largest(zd, from: r * m, count: m, k: kAux) {
                    auxValues[r * m + i] = max(0, zd[r * m + i])
                }
            }
            let aAux = Tensor(auxValues, shape: [b, m])
            var ehat = Tensor(zeros: [b, d])
            Tensor.multiply(aAux, wDec, into: &ehat)
            let eh = ehat.scalars, target = residual?.scalars
            var dehatValues = [Float](repeating: 0, count: b * d)
            let c = Double(config.auxCoefficient)
            for i in 0..<(b * d) {
                let e = target?[i] ?? (xs[i] - xh[i])
                let diff = Double(eh[i]) - Double(e)
                aux += diff * diff
                dehatValues[i] = Float(2 * c * diff / Double(b))
            }
            aux = c * aux / Double(b)
            let dehat = Tensor(dehatValues, shape: [b, d])
            Tensor.multiply(aAux, dehat, transposeA: true, into: &gWDec, accumulate: true)
            var daAux = Tensor(zeros: [b, m])
            Tensor.multiply(dehat, wDec, transposeB: true, into: &daAux)
            let daAuxValues = daAux.scalars
            for i in 0..<(b * m) where auxValues[i] > 0 { dz[i] += daAuxValues[i] }
        }
        // Back through the encoder: z = (x − b_dec) W_enc + b_enc.
        let centred = x.subtractingRows(bDec)
        let dzTensor = Tensor(dz, shape: [b, m])
        var gWEnc = Tensor(zeros: [d, m])
        Tensor.multiply(centred, dzTensor, transposeA: true, into: &gWEnc)
        var gBEnc = [Float](repeating: 0, count: m)
        for r in 0..<b { for i in 0..<m { gBEnc[i] += dz[r * m + i] } }
        var dCentred = Tensor(zeros: [b, d])
        Tensor.multiply(dzTensor, wEnc, transposeB: true, into: &dCentred)
        let dc = dCentred.scalars
        for r in 0..<b { for j in 0..<d { gBDecValues[j] -= dc[r * d + j] } }
        mse /= Double(b)
        let l0 = Double(av.filter { $0 > 0 }.count) / Double(b)
        let stats = SAEBatchStats(
            loss: mse + l1 + aux, mse: mse, aux: aux, l1: l1,
            fvu: variance > 0 ? mse * Double(b) / variance : 0, l0: l0)
        let grads = SAEGradients(
            wEnc: gWEnc, bEnc: Tensor(gBEnc, shape: [m]), wDec: gWDec, bDec: Tensor(gBDecValues, shape: [d]))
        return (stats, grads, a)
    }

    /// The loss alone (for finite-difference checks).
    public func loss(_ x: Tensor, dead: [Bool]? = nil, residual: Tensor? = nil) -> Double {
        lossAndGradients(x, dead: dead, residual: residual).stats.loss
    }

    /// Removes from each decoder row's gradient its component along the (unit) row, so a step
    /// moves along the unit sphere; call before the optimiser step, `renormalizeDecoder` after.
    public func projectDecoderGradient(_ g: inout SAEGradients) {
        g.wDec.removeComponents(alongRowsOf: wDec)
    }

    /// Scales every decoder row to unit norm.
    public mutating func renormalizeDecoder() { wDec.normalizeRows(minimumNorm: 1e-12) }
}
