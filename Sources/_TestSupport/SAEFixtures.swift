// SAEs the tests build by hand.
import AuscultSAE
import AuscultTensor

/// An SAE that reconstructs exactly (ReLU architecture, d_sae = 2·d): latent j is ReLU(x_j),
/// latent d + j is ReLU(−x_j), and the decoder adds them back with signs.
public func identitySAE(_ d: Int) -> SparseAutoencoder {
    let m = 2 * d
    var wEnc = Tensor(zeros: [d, m]), wDec = Tensor(zeros: [m, d])
    for j in 0..<d {
        wEnc.storage[j * m + j] = 1; wEnc.storage[j * m + d + j] = -1
        wDec.storage[j * d + j] = 1; wDec.storage[(d + j) * d + j] = -1
    }
    return SparseAutoencoder(
        config: SAEConfig(architecture: .relu, dIn: d, dSAE: m), wEnc: wEnc, bEnc: Tensor(zeros: [m]),
        wDec: wDec, bDec: Tensor(zeros: [d]))
}
