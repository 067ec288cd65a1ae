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
    public var norm: Float {
        var sum: Float = 0
        for t in [wEnc, bEnc, wDec, bDec] {
            t.storage.withUnsafeBufferPointer { sum += dot($0.count, $0.baseAddress!, $0.baseAddress!) }
        }
        return sum.squareRoot()
    }

    /// Multiplies every gradient by `s` (norm clipping).
    public mutating func scale(by s: Float) {
        for i in wEnc.storage.indices { wEnc.storage[i] *= s }
        for i in bEnc.storage.indices { bEnc.storage[i] *= s }
        for i in wDec.storage.indices { wDec.storage[i] *= s }
        for i in bDec.storage.indices { bDec.storage[i] *= s }
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
        var a = Tensor(zeros: [x.shape[0], config.dSAE])
        for e in 0..<active.count {
            a.storage[Int(active.row[e]) * config.dSAE + Int(active.latent[e])] = active.value[e]
        }
        return (stats, grads, a)
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
            for i in active.latent { fired[Int(i)] = true }
            return (stats, grads, fired, active.value.min())
        }
        let (stats, grads, a) = denseLossAndGradients(x, z: z, dead: dead, residual: nil)
        let m = config.dSAE
        var smallest: Float?
        for r in 0..<x.shape[0] {
            for i in 0..<m where a.storage[r * m + i] > 0 {
                fired[i] = true
                smallest = min(smallest ?? .infinity, a.storage[r * m + i])
            }
        }
        return (stats, grads, fired, smallest)
    }

    /// The loss and gradients with dense products throughout (the reference for the sparse path).
    func denseLossAndGradients(
        _ x: Tensor, z given: Tensor? = nil, dead: [Bool]? = nil, residual: Tensor? = nil
    ) -> (stats: SAEBatchStats, grads: SAEGradients, latents: Tensor) {
        let b = x.shape[0], d = config.dIn, m = config.dSAE
        let z = given ?? preActivations(x)
        let a = activate(z, byBatch: true)
        let xhat = decode(a)
        var mse = 0.0, variance = 0.0
        var mean = [Double](repeating: 0, count: d)
        for r in 0..<b { for j in 0..<d { mean[j] += Double(x.storage[r * d + j]) / Double(b) } }
        var dxhat = Tensor(zeros: [b, d])
        for i in 0..<(b * d) {
            let e = Double(xhat.storage[i] - x.storage[i])
            mse += e * e
            variance += pow(Double(x.storage[i]) - mean[i % d], 2)
            dxhat.storage[i] = Float(2 * e / Double(b))
        }
        var da = Tensor(zeros: [b, m])
        gemm(dxhat, wDec, transposeB: true, into: &da)  // dx̂ · W_decᵀ  [B, m]
        var gWDec = Tensor(zeros: [m, d])
        gemm(a, dxhat, transposeA: true, into: &gWDec)  // aᵀ · dx̂  [m, d]
        var gBDec = Tensor(zeros: [d])
        for r in 0..<b { for j in 0..<d { gBDec.storage[j] += dxhat.storage[r * d + j] } }
        var l1 = 0.0, aux = 0.0
        var dz = Tensor(zeros: [b, m])
        for i in 0..<(b * m) where a.storage[i] > 0 {
            dz.storage[i] = da.storage[i]
            if config.architecture == .relu { l1 += Double(a.storage[i]); dz.storage[i] += config.l1 / Float(b) }
        }
        l1 = Double(config.l1) * l1 / Double(b)
        if config.architecture != .relu, let dead, dead.contains(true) {
            // AuxK: the dead latents' k_aux largest pre-activations reconstruct the residual.
            var zd = z
            for r in 0..<b { for i in 0..<m where !dead[i] { zd.storage[r * m + i] = -.infinity } }
            var aAux = Tensor(zeros: [b, m])
            let kAux = min(config.kAux, dead.filter { $0 }.count)
            for r in 0..<b {
                for i in Self.topIndices(zd.storage, from: r * m, count: m, k: kAux) {
                    aAux.storage[r * m + i] = max(0, zd.storage[r * m + i])
                }
            }
            var ehat = Tensor(zeros: [b, d])
            gemm(aAux, wDec, into: &ehat)
            var dehat = Tensor(zeros: [b, d])
            let c = Double(config.auxCoefficient)
            for i in 0..<(b * d) {
                let e = residual.map { $0.storage[i] } ?? (x.storage[i] - xhat.storage[i])
                let diff = Double(ehat.storage[i]) - Double(e)
                aux += diff * diff
                dehat.storage[i] = Float(2 * c * diff / Double(b))
            }
            aux = c * aux / Double(b)
            gemm(aAux, dehat, transposeA: true, into: &gWDec, accumulate: true)
            var daAux = Tensor(zeros: [b, m])
            gemm(dehat, wDec, transposeB: true, into: &daAux)
            for i in 0..<(b * m) where aAux.storage[i] > 0 { dz.storage[i] += daAux.storage[i] }
        }
        // Back through the encoder: z = (x − b_dec) W_enc + b_enc.
        var centred = x
        for r in 0..<b { for j in 0..<d { centred.storage[r * d + j] -= bDec.storage[j] } }
        var gWEnc = Tensor(zeros: [d, m])
        gemm(centred, dz, transposeA: true, into: &gWEnc)
        var gBEnc = Tensor(zeros: [m])
        for r in 0..<b { for i in 0..<m { gBEnc.storage[i] += dz.storage[r * m + i] } }
        var dCentred = Tensor(zeros: [b, d])
        gemm(dz, wEnc, transposeB: true, into: &dCentred)
        for r in 0..<b { for j in 0..<d { gBDec.storage[j] -= dCentred.storage[r * d + j] } }
        mse /= Double(b)
        let l0 = Double(a.storage.filter { $0 > 0 }.count) / Double(b)
        let stats = SAEBatchStats(
            loss: mse + l1 + aux, mse: mse, aux: aux, l1: l1,
            fvu: variance > 0 ? mse * Double(b) / variance : 0, l0: l0)
        return (stats, SAEGradients(wEnc: gWEnc, bEnc: gBEnc, wDec: gWDec, bDec: gBDec), a)
    }

    /// The loss alone (for finite-difference checks).
    public func loss(_ x: Tensor, dead: [Bool]? = nil, residual: Tensor? = nil) -> Double {
        lossAndGradients(x, dead: dead, residual: residual).stats.loss
    }

    /// Removes from each decoder row's gradient its component along the (unit) row, so a step
    /// moves along the unit sphere; call before the optimiser step, `renormalizeDecoder` after.
    public func projectDecoderGradient(_ g: inout SAEGradients) {
        let m = config.dSAE, d = config.dIn
        wDec.storage.withUnsafeBufferPointer { w in
            g.wDec.storage.withUnsafeMutableBufferPointer { gw in
                for i in 0..<m {
                    let wi = w.baseAddress! + i * d, gi = gw.baseAddress! + i * d
                    let p = dot(d, gi, wi)
                    axpy(d, -p, wi, gi)
                }
            }
        }
    }

    /// Scales every decoder row to unit norm.
    public mutating func renormalizeDecoder() {
        let m = config.dSAE, d = config.dIn
        wDec.storage.withUnsafeMutableBufferPointer { w in
            for i in 0..<m {
                let wi = w.baseAddress! + i * d
                let n = max(dot(d, wi, wi).squareRoot(), 1e-12)
                for j in 0..<d { wi[j] /= n }
            }
        }
    }
}

/// `c (+)= op(a) · op(b)` for row-major 2-d tensors.
func gemm(
    _ a: Tensor, _ b: Tensor, transposeA: Bool = false, transposeB: Bool = false, into c: inout Tensor,
    accumulate: Bool = false
) {
    let m = c.shape[0], n = c.shape[1]
    let k = transposeA ? a.shape[0] : a.shape[1]
    a.storage.withUnsafeBufferPointer { ap in
        b.storage.withUnsafeBufferPointer { bp in
            c.storage.withUnsafeMutableBufferPointer { cp in
                let beta: Float = accumulate ? 1 : 0
                switch (transposeA, transposeB) {
                case (false, false):
                    BLAS.gemmNN(
                        m: m, n: n, k: k, a: ap.baseAddress!, lda: a.shape[1], b: bp.baseAddress!, ldb: b.shape[1],
                        beta: beta, c: cp.baseAddress!, ldc: n)
                case (false, true):
                    BLAS.gemmNT(
                        m: m, n: n, k: k, a: ap.baseAddress!, lda: a.shape[1], b: bp.baseAddress!, ldb: b.shape[1],
                        beta: beta, c: cp.baseAddress!, ldc: n)
                case (true, false):
                    BLAS.gemmTN(
                        m: m, n: n, k: k, a: ap.baseAddress!, lda: a.shape[1], b: bp.baseAddress!, ldb: b.shape[1],
                        beta: beta, c: cp.baseAddress!, ldc: n)
                case (true, true): preconditionFailure("Aᵀ·Bᵀ is not used by the SAE")
                }
            }
        }
    }
}
