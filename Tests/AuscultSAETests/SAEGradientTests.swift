import AuscultTensor
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

@testable import AuscultSAE

@Suite("An SAE latent as a gradient metric")
struct SAEGradientTests {
    @Test("the latent metric is the mean pre-activation over the rows asked for, and its gradient the encoder column")
    func latentMetric() throws {
        let (x, _) = plantedData(rows: 9, d: 8, atoms: 12, active: 2, seed: 3)
        var sae = SparseAutoencoder(config: SAEConfig(architecture: .topk, dIn: 8, dSAE: 16, k: 3), seed: 5)
        sae.bDec = Tensor(shape: [8], storage: (0..<8).map { Float($0) * 0.05 })
        sae.bEnc = Tensor(shape: [16], storage: (0..<16).map { Float($0) * 0.01 })
        let metric = sae.latentMetric(HookName.encoder(1).residPost, 6, over: 2..<7)
        guard case .activation(_, let f) = metric else {
            Issue.record("a latent metric reads an activation")
            return
        }
        let (value, g) = try f(x)
        let z = sae.preActivations(x)
        let mean = (2..<7).reduce(0.0) { $0 + Double(z[$1, 6]) } / 5
        expectClose(value, mean, tolerance: 1e-5, "mean pre-activation")
        #expect(g.shape == x.shape)
        #expect((0..<8).allSatisfy { g[0, $0] == 0 && g[8, $0] == 0 }, "rows outside 2..<7 have no gradient")
        #expect((0..<8).allSatisfy { abs(g[3, $0] - sae.wEnc[$0, 6] / 5) < 1e-7 })
        #expect(throws: GradientError.self) {
            guard case .activation(_, let bad) = sae.latentMetric(HookName.encoder(1).residPost, 16) else { return }
            _ = try bad(x)
        }
    }
}
