import AuscultSAE
import AuscultTensor
import Foundation
import Testing
import _TestSupport

/// One training step against PyTorch: `scripts/sae_torch.py fixture Tests/Fixtures/sae` wrote, for
/// each architecture, a batch, the parameters before and after one step of the same trainer
/// written with autograd and `torch.optim.Adam`, and the losses.
@Suite("SAE training step parity with PyTorch")
struct SAEParityTests {
    @Test(
        "initial weights replay the same seeded draws, and one step (AuxK, projection, clipping, Adam, renormalisation) lands where PyTorch's does",
        arguments: SAEArchitecture.allCases.filter(\.isTrainable))
    func oneStep(_ arch: SAEArchitecture) throws {
        let f = try SafeTensorsFile(path: Fixtures.path("Tests/Fixtures/sae/step_\(arch.rawValue).safetensors"))
        let meta = f.metadata
        func num(_ key: String) -> Double { Double(meta[key] ?? "") ?? .nan }
        let x = try f.tensor("x")
        let d = x.shape[1], m = Int(num("d_sae"))
        let config = SAEConfig(
            architecture: arch, dIn: d, dSAE: m, k: Int(num("k")), l1: Float(num("l1")),
            kAux: Int(num("k_aux")), auxCoefficient: Float(num("aux")))
        let initial = SparseAutoencoder(config: config, seed: UInt64(num("seed")))
        expectClose(initial.wDec, try f.tensor("W_dec.before"), rtol: 0, atol: 1e-6)
        expectClose(initial.wEnc, try f.tensor("W_enc.before"), rtol: 0, atol: 1e-6)
        var options = SAETrainingOptions()
        options.steps = Int(num("steps")); options.batchSize = x.shape[0]; options.learningRate = Float(num("lr"))
        options.warmupSteps = Int(num("warmup")); options.clipNorm = Float(num("clip"));
        options.deadAfter = Int(num("dead_after"))
        let trainer = SAETrainer(sae: initial, data: x, options: options)
        expectClose(trainer.sae.bDec, try f.tensor("b_dec.before"), rtol: 0, atol: 1e-6)
        let since = try f.tensor("since_fired").storage.map { Int($0) }
        trainer.restore(step: 0, sae: trainer.sae, moments: [[Float]](repeating: [], count: 0), sinceFired: since)
        let (stats, _) = trainer.update(x)
        expectClose(stats.loss, num("loss"), tolerance: 1e-4 * num("loss"), "loss")
        expectClose(stats.mse, num("loss_mse"), tolerance: 1e-4 * num("loss_mse"), "mse")
        expectClose(stats.aux, num("loss_aux"), tolerance: 1e-4 * max(1, num("loss_aux")), "aux")
        expectClose(stats.l1, num("loss_l1"), tolerance: 1e-4 * max(1, num("loss_l1")), "l1")
        #expect(arch == .relu ? stats.aux == 0 : stats.aux > 0, "AuxK must be exercised by the fixture's dead latents")
        // lr 0.01: Adam's first step moves every parameter with a nonzero gradient by about lr.
        for name in ["W_enc", "b_enc", "W_dec", "b_dec"] {
            let after = try f.tensor(name + ".after")
            let mine: Tensor = [trainer.sae.wEnc, trainer.sae.bEnc, trainer.sae.wDec, trainer.sae.bDec][
                ["W_enc", "b_enc", "W_dec", "b_dec"].firstIndex(of: name)!]
            expectClose(mine, after, rtol: 0, atol: 2e-5)
            let moved = zip(after.storage, try f.tensor(name + ".before").storage).filter { abs($0 - $1) > 1e-4 }.count
            #expect(
                moved > after.count / 10, "\(name): the step must move parameters for the comparison to mean anything")
        }
    }
}
