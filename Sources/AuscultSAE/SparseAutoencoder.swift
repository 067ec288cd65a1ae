// Sparse autoencoders in SAELens's layout (W_enc [d_in, d_sae], b_enc, W_dec [d_sae, d_in], b_dec)
// with three activation rules: ReLU + L1 (Bricken et al. 2023), TopK with the AuxK loss for dead
// latents (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"), and BatchTopK (Bussmann
// et al. 2024), whose inference uses the threshold learnt in training (as SAELens saves it, as a
// JumpReLU threshold); JumpReLU (Rajamanoharan et al. 2024) runs for inference. Forward and
// backward are written out by hand on BLAS products.
import AuscultTensor
import AuscultWhisper
import Foundation

/// How latents are selected.
public enum SAEArchitecture: String, Codable, Sendable, CaseIterable {
    /// a = ReLU(z), loss += λ · Σ a (decoder rows kept at unit norm).
    case relu
    /// a = ReLU of the k largest z per row.
    case topk
    /// Training: a = ReLU of the k·B largest z over the whole batch. Inference: a = z where z
    /// exceeds the threshold learnt in training (so a clip's latents do not depend on its batch).
    case batchtopk
    /// a = z where z > θ (one learnt threshold per latent), else 0. Loaded, not trained.
    case jumprelu

    /// Whether `auscult train-sae` trains this architecture (JumpReLU SAEs are only loaded).
    public var isTrainable: Bool { self != .jumprelu }
}

/// Hyper-parameters of an SAE's loss.
public struct SAEConfig: Codable, Sendable, Equatable {
    public var architecture: SAEArchitecture
    public var dIn: Int
    public var dSAE: Int
    /// Active latents per row (topk, batchtopk).
    public var k: Int
    /// L1 coefficient (relu).
    public var l1: Float
    /// AuxK: latents to use on the dead ones, and the loss coefficient (1/32 in Gao et al.).
    public var kAux: Int
    public var auxCoefficient: Float

    public init(
        architecture: SAEArchitecture, dIn: Int, dSAE: Int, k: Int = 32, l1: Float = 5e-3,
        kAux: Int? = nil, auxCoefficient: Float = 1.0 / 32
    ) {
        self.architecture = architecture; self.dIn = dIn; self.dSAE = dSAE; self.k = k; self.l1 = l1
        self.kAux = kAux ?? min(dSAE, max(1, dIn / 2)); self.auxCoefficient = auxCoefficient
    }
}

/// An SAE's parameters.
public struct SparseAutoencoder: Sendable {
    public var config: SAEConfig
    public var wEnc: Tensor  // [d_in, d_sae]
    public var bEnc: Tensor  // [d_sae]
    public var wDec: Tensor  // [d_sae, d_in]
    public var bDec: Tensor  // [d_in]
    /// Per-latent threshold `[d_sae]`: JumpReLU's, or BatchTopK's learnt one (every entry the same)
    /// that inference applies; nil for a BatchTopK SAE before training, which selects by batch.
    public var threshold: Tensor?
    /// Whether b_dec is subtracted from the input before encoding (SAELens's `apply_b_dec_to_input`).
    public var applyBDecToInput = true

    /// Random unit-norm decoder rows (seeded), encoder initialised as the decoder's transpose,
    /// zero biases (b_dec is usually set from the data afterwards).
    public init(config: SAEConfig, seed: UInt64 = 0) {
        self.config = config
        let m = config.dSAE, d = config.dIn
        var g = SeededNormal(seed: seed)
        var dec = [Float](repeating: 0, count: m * d)
        for i in 0..<m {
            var norm: Float = 0
            for j in 0..<d { let v = g.next(); dec[i * d + j] = v; norm += v * v }
            norm = norm.squareRoot()
            for j in 0..<d { dec[i * d + j] /= norm }
        }
        wDec = Tensor(shape: [m, d], storage: dec)
        wEnc = Tensor(shape: [d, m]) { out in for i in 0..<m { for j in 0..<d { out[j * m + i] = dec[i * d + j] } } }
        bEnc = Tensor(zeros: [m]); bDec = Tensor(zeros: [d])
    }

    public init(
        config: SAEConfig, wEnc: Tensor, bEnc: Tensor, wDec: Tensor, bDec: Tensor, threshold: Tensor? = nil,
        applyBDecToInput: Bool = true
    ) {
        self.config = config; self.wEnc = wEnc; self.bEnc = bEnc; self.wDec = wDec; self.bDec = bDec
        self.threshold = threshold; self.applyBDecToInput = applyBDecToInput
    }

    /// Pre-activations `z = (x − b_dec) W_enc + b_enc` `[B, d_sae]` for inputs `[B, d_in]`
    /// (`x W_enc + b_enc` when `applyBDecToInput` is false), rows split across workers.
    public func preActivations(_ x: Tensor) -> Tensor {
        (applyBDecToInput ? x.subtractingRows(bDec) : x).matmul(wEnc, bias: bEnc, splittingRows: true)
    }

    /// Latent activations `[B, d_sae]` from pre-activations by the architecture's rule (BatchTopK
    /// by its learnt threshold, row by row, once it has one).
    public func activate(_ z: Tensor) -> Tensor { activate(z, byBatch: false) }

    /// Latent activations; `byBatch` makes BatchTopK select the k·B largest of the batch (training).
    func activate(_ z: Tensor, byBatch: Bool) -> Tensor {
        activeEntries(z, byBatch: byBatch).dense(rows: z.shape[0], columns: config.dSAE)
    }

    /// The active latents of `z` `[B, d_sae]` by the architecture's rule (values above zero
    /// only; every other latent's activation is 0).
    func activeEntries(_ z: Tensor, byBatch: Bool = true) -> SparseEntries {
        switch config.architecture {
        case .jumprelu,
            .batchtopk where !byBatch && threshold != nil:
            return z.positiveEntries(above: threshold?.scalars)
        case .relu: return z.positiveEntries()
        case .topk: return z.largestPositiveEntriesPerRow(config.k)
        case .batchtopk: return z.largestPositiveEntries(config.k * z.shape[0])
        }
    }

    /// Reconstruction `a W_dec + b_dec` `[B, d_in]`.
    public func decode(_ a: Tensor) -> Tensor { a.matmul(wDec, bias: bDec) }

    /// Encodes and reconstructs `x` `[B, d_in]`.
    public func callAsFunction(_ x: Tensor) -> (latents: Tensor, reconstruction: Tensor) {
        let a = activate(preActivations(x))
        return (a, decode(a))
    }
}

/// Gaussian numbers (Box–Muller) from the project's seeded SplitMix64, for reproducible
/// initialisation.
struct SeededNormal {
    var bits: SplitMix64
    var spare: Float?
    init(seed: UInt64) { bits = SplitMix64(seed: seed) }
    mutating func uniform() -> Double { (Double(bits.next() >> 11) + 0.5) / Double(1 << 53) }
    mutating func next() -> Float {
        if let s = spare { spare = nil; return s }
        let u1 = uniform(), u2 = uniform()
        let r = (-2 * log(u1)).squareRoot()
        spare = Float(r * sin(2 * .pi * u2))
        return Float(r * cos(2 * .pi * u2))
    }
}
