// Sparse autoencoders in SAELens's layout (W_enc [d_in, d_sae], b_enc, W_dec [d_sae, d_in], b_dec)
// with three activation rules: ReLU + L1 (Bricken et al. 2023), TopK with the AuxK loss for dead
// latents (Gao et al. 2024, "Scaling and evaluating sparse autoencoders"), and BatchTopK (Bussmann
// et al. 2024), whose inference uses the threshold learnt in training (as SAELens saves it, as a
// JumpReLU threshold); JumpReLU (Rajamanoharan et al. 2024) runs for inference. Forward and
// backward are written out by hand on BLAS products.
import AuscultTensor
import AuscultWhisper
import Dispatch
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
    /// (`x W_enc + b_enc` when `applyBDecToInput` is false).
    public func preActivations(_ x: Tensor) -> Tensor {
        let b = x.shape[0], d = config.dIn, m = config.dSAE
        var centred = x
        if applyBDecToInput {
            for r in 0..<b { for j in 0..<d { centred.storage[r * d + j] -= bDec.storage[j] } }
        }
        var z = Tensor(shape: [b, m]) { out in for r in 0..<b { for i in 0..<m { out[r * m + i] = bEnc.storage[i] } } }
        _ = BLAS.configured
        // Rows split across workers: OpenBLAS runs single-threaded here (BLAS.configured).
        let workers = b >= 64 && b * m * d >= 1 << 22 ? Threading.workers : 1
        centred.storage.withUnsafeBufferPointer { xp in
            wEnc.storage.withUnsafeBufferPointer { wp in
                z.storage.withUnsafeMutableBufferPointer { zp in
                    let xs = Shared(xp.baseAddress!), ws = Shared(wp.baseAddress!), zs = Shared(zp.baseAddress!)
                    DispatchQueue.concurrentPerformIfNeeded(workers) { w in
                        let r0 = b * w / workers, r1 = b * (w + 1) / workers
                        BLAS.gemmNN(
                            m: r1 - r0, n: m, k: d, a: xs.base + r0 * d, lda: d, b: ws.base, ldb: m, beta: 1,
                            c: zs.base + r0 * m, ldc: m)
                    }
                }
            }
        }
        return z
    }

    /// Latent activations `[B, d_sae]` from pre-activations by the architecture's rule (BatchTopK
    /// by its learnt threshold, row by row, once it has one).
    public func activate(_ z: Tensor) -> Tensor { activate(z, byBatch: false) }

    /// Latent activations; `byBatch` makes BatchTopK select the k·B largest of the batch (training).
    func activate(_ z: Tensor, byBatch: Bool) -> Tensor {
        let b = z.shape[0], m = config.dSAE
        var a = Tensor(zeros: z.shape)
        switch config.architecture {
        case .jumprelu,
            .batchtopk where !byBatch && threshold != nil:
            let theta = threshold?.storage ?? [Float](repeating: 0, count: m)
            for r in 0..<b {
                for i in 0..<m where z.storage[r * m + i] > theta[i] {
                    a.storage[r * m + i] = max(0, z.storage[r * m + i])
                }
            }
        case .relu:
            for i in 0..<z.count { a.storage[i] = max(0, z.storage[i]) }
        case .topk:
            for r in 0..<b {
                for i in Self.topIndices(z.storage, from: r * m, count: m, k: config.k) {
                    a.storage[r * m + i] = max(0, z.storage[r * m + i])
                }
            }
        case .batchtopk:
            for i in Self.topIndices(z.storage, from: 0, count: z.count, k: min(z.count, config.k * b)) {
                a.storage[i] = max(0, z.storage[i])
            }
        }
        return a
    }

    /// Reconstruction `a W_dec + b_dec` `[B, d_in]`.
    public func decode(_ a: Tensor) -> Tensor {
        let b = a.shape[0], d = config.dIn, m = config.dSAE
        var y = Tensor(shape: [b, d]) { out in for r in 0..<b { for j in 0..<d { out[r * d + j] = bDec.storage[j] } } }
        a.storage.withUnsafeBufferPointer { ap in
            wDec.storage.withUnsafeBufferPointer { wp in
                y.storage.withUnsafeMutableBufferPointer { yp in
                    BLAS.gemmNN(
                        m: b, n: d, k: m, a: ap.baseAddress!, lda: m, b: wp.baseAddress!, ldb: d, beta: 1,
                        c: yp.baseAddress!, ldc: d)
                }
            }
        }
        return y
    }

    /// Encodes and reconstructs `x` `[B, d_in]`.
    public func callAsFunction(_ x: Tensor) -> (latents: Tensor, reconstruction: Tensor) {
        let a = activate(preActivations(x))
        return (a, decode(a))
    }

    /// Indices of the `k` largest of `v[from..<from+count]` (relative to `from`; ties go to the
    /// lower index), in no particular order.
    ///
    /// Small k (k ≤ count/8, TopK's 32 of 3072) keeps a min-heap of the best k seen while
    /// scanning: most values lose one comparison against the heap's root, and the scan needs no
    /// copy (it was a quarter of a training step as quickselect). Larger k uses quickselect.
    static func topIndices(_ v: [Float], from: Int, count: Int, k: Int) -> [Int] {
        guard k < count else { return Array(0..<count) }
        guard k > 0 else { return [] }
        if k * 8 <= count {
            return v.withUnsafeBufferPointer { topIndicesByHeap($0.baseAddress! + from, count: count, k: k) }
        }
        var vals = Array(v[from..<(from + count)])
        let kth = select(&vals, k - 1)
        var out = [Int]()
        out.reserveCapacity(k)
        for i in 0..<count where v[from + i] > kth { out.append(i) }
        if out.count < k { for i in 0..<count where v[from + i] == kth { out.append(i); if out.count == k { break } } }
        return out
    }

    /// The k best of `p[0..<count]` by (value descending, index ascending), by a size-k min-heap
    /// ordered worst first: a later value enters only if strictly greater than the worst kept.
    static func topIndicesByHeap(_ p: UnsafePointer<Float>, count: Int, k: Int) -> [Int] {
        var heapV = [Float](repeating: 0, count: k), heapI = [Int](repeating: 0, count: k)
        // "a is worse than b": smaller value, or equal value and larger index.
        @inline(__always) func worse(_ av: Float, _ ai: Int, _ bv: Float, _ bi: Int) -> Bool {
            av < bv || (av == bv && ai > bi)
        }
        heapV.withUnsafeMutableBufferPointer { hv in
            heapI.withUnsafeMutableBufferPointer { hi in
                func siftDown(_ start: Int) {
                    var i = start
                    while true {
                        let l = 2 * i + 1, r = l + 1
                        var w = i
                        if l < k && worse(hv[l], hi[l], hv[w], hi[w]) { w = l }
                        if r < k && worse(hv[r], hi[r], hv[w], hi[w]) { w = r }
                        if w == i { return }
                        hv.swapAt(i, w); hi.swapAt(i, w)
                        i = w
                    }
                }
                for i in 0..<k { hv[i] = p[i]; hi[i] = i }
                for i in stride(from: k / 2 - 1, through: 0, by: -1) { siftDown(i) }
                for i in k..<count where p[i] > hv[0] {
                    hv[0] = p[i]; hi[0] = i
                    siftDown(0)
                }
            }
        }
        return heapI
    }

    /// The value that would sit at `index` if `a` were sorted in descending order (Hoare
    /// quickselect with a median-of-three pivot; `a` is reordered).
    static func select(_ a: inout [Float], _ index: Int) -> Float {
        var lo = 0, hi = a.count - 1
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            let x = a[lo], y = a[mid], z = a[hi]
            let pivot = max(min(x, y), min(max(x, y), z))
            var i = lo, j = hi
            while i <= j {
                while a[i] > pivot { i += 1 }
                while a[j] < pivot { j -= 1 }
                if i <= j { a.swapAt(i, j); i += 1; j -= 1 }
            }
            if index <= j { hi = j } else if index >= i { lo = i } else { return a[index] }
        }
        return a[lo]
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
