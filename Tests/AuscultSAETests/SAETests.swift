import AuscultTensor
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

@testable import AuscultSAE

/// Synthetic data from a planted sparse dictionary: each row mixes `active` of `atoms` random unit
/// directions with positive weights.
func plantedData(rows: Int, d: Int, atoms: Int, active: Int, seed: UInt64) -> (data: Tensor, dictionary: [[Float]]) {
    var g = SplitMix64(seed: seed)
    func normal() -> Float { Float((-2 * log(g.uniform())).squareRoot() * cos(2 * .pi * g.uniform())) }
    let dict = (0..<atoms).map { _ -> [Float] in
        let v = (0..<d).map { _ in normal() }
        let n = v.reduce(0) { $0 + $1 * $1 }.squareRoot()
        return v.map { $0 / n }
    }
    var x = [Float](repeating: 0, count: rows * d)
    for r in 0..<rows {
        var picked = Set<Int>()
        while picked.count < active { picked.insert(Int(g.next() % UInt64(atoms))) }
        for a in picked.sorted() {  // sorted: a Set's order changes from one process to the next
            let w = Float(0.5 + g.uniform())
            for j in 0..<d { x[r * d + j] += w * dict[a][j] }
        }
    }
    return (Tensor(shape: [rows, d], storage: x), dict)
}

extension SplitMix64 {
    /// Uniform in (0, 1).
    mutating func uniform() -> Double { (Double(next() >> 11) + 0.5) / Double(1 << 53) }
}

@Suite("Sparse autoencoders")
struct SAETests {
    @Test(
        "gradients of every architecture (with AuxK on dead latents) match central finite differences",
        arguments: SAEArchitecture.allCases.filter(\.isTrainable))
    func gradientCheck(_ arch: SAEArchitecture) {
        let (x, _) = plantedData(rows: 6, d: 8, atoms: 12, active: 2, seed: 1)
        var sae = SparseAutoencoder(
            config: SAEConfig(architecture: arch, dIn: 8, dSAE: 16, k: 3, l1: 0.05, kAux: 4), seed: 24)
        sae.bEnc = Tensor(shape: [16], storage: (0..<16).map { Float($0 % 3) * 0.1 - 0.05 })
        sae.bDec = Tensor(shape: [8], storage: (0..<8).map { Float($0) * 0.01 })
        let dead = (0..<16).map { $0 % 4 == 0 }
        let (_, g, _) = sae.denseLossAndGradients(x, dead: dead)
        let residual = x - sae(x).reconstruction  // the AuxK target, held fixed as in training
        let h: Float = 1e-3
        // The loss is piecewise smooth: a step of h must not move a pre-activation across zero or
        // two of them past each other at the k-th largest (per row for TopK, over the batch for
        // BatchTopK), or the difference quotient measures the jump. A step moves a pre-activation
        // by at most h·max(1, |W_enc|, |x − b_dec|). (With seed 2 the batch's 18th and 19th
        // values were 1.4e-4 apart, and about one run in ten failed by ±92 on rounding.)
        let z = sae.preActivations(x).storage
        let centred = (0..<x.count).map { abs(x.storage[$0] - sae.bDec.storage[$0 % 8]) }
        let move = h * max(1, sae.wEnc.storage.map(abs).max()!, centred.max()!)
        #expect(z.map { abs($0) }.min()! > 2 * move, "a pre-activation within a step of zero")
        if arch != .relu {
            let sortedBatch = z.sorted(by: >)
            var gaps = [sortedBatch[17] - sortedBatch[18]]
            for r in 0..<6 { let row = z[(r * 16)..<((r + 1) * 16)].sorted(by: >); gaps.append(row[2] - row[3]) }
            #expect(gaps.min()! > 4 * move, "the k-th and (k+1)-th pre-activations within a step of each other")
        }
        func check(_ path: WritableKeyPath<SparseAutoencoder, Tensor>, _ grad: Tensor, _ name: String) {
            for i in stride(from: 0, to: grad.count, by: max(1, grad.count / 12)) {
                var up = sae, down = sae
                up[keyPath: path].storage[i] += h
                down[keyPath: path].storage[i] -= h
                let numeric =
                    (up.loss(x, dead: dead, residual: residual) - down.loss(x, dead: dead, residual: residual))
                    / Double(2 * h)
                expectClose(
                    Double(grad.storage[i]), numeric, tolerance: 2e-3 + 2e-2 * abs(numeric), "\(arch) \(name)[\(i)]")
            }
        }
        check(\.wEnc, g.wEnc, "W_enc"); check(\.bEnc, g.bEnc, "b_enc"); check(\.wDec, g.wDec, "W_dec");
        check(\.bDec, g.bDec, "b_dec")
    }

    @Test(
        "the sparse training path gives the dense path's loss and gradients, AuxK included",
        arguments: SAEArchitecture.allCases.filter(\.isTrainable))
    func sparseMatchesDense(_ arch: SAEArchitecture) throws {
        let (x, _) = plantedData(rows: 70, d: 16, atoms: 40, active: 3, seed: 5)
        var sae = SparseAutoencoder(
            config: SAEConfig(architecture: arch, dIn: 16, dSAE: 128, k: 4, l1: 0.05, kAux: 8), seed: 6)
        // ReLU: a negative encoder bias keeps few latents on, so the sparse path is taken.
        sae.bEnc = Tensor(shape: [128], storage: (0..<128).map { arch == .relu ? -1.2 : Float($0 % 5) * 0.02 })
        sae.bDec = Tensor(shape: [16], storage: (0..<16).map { Float($0) * 0.03 })
        let dead = (0..<128).map { $0 % 3 == 0 }
        let sparse = try #require(sae.sparseLossAndGradients(x, dead: dead, residual: nil))
        let dense = sae.denseLossAndGradients(x, dead: dead)
        expectClose(sparse.stats.loss, dense.stats.loss, tolerance: 1e-5 * dense.stats.loss, "loss")
        expectClose(sparse.stats.aux, dense.stats.aux, tolerance: 1e-5 * max(1, dense.stats.aux), "aux")
        expectClose(sparse.stats.l0, dense.stats.l0, tolerance: 0, "L0")
        #expect(arch == .relu || sparse.stats.aux > 0)
        expectClose(sparse.grads.wEnc, dense.grads.wEnc, rtol: 1e-4, atol: 1e-6)
        expectClose(sparse.grads.bEnc, dense.grads.bEnc, rtol: 1e-4, atol: 1e-6)
        expectClose(sparse.grads.wDec, dense.grads.wDec, rtol: 1e-4, atol: 1e-6)
        expectClose(sparse.grads.bDec, dense.grads.bDec, rtol: 1e-4, atol: 1e-6)
    }

    @Test("the geometric median is the 1-d median on a line, ignores an outlier the mean follows, and can start b_dec")
    func geometricMedian() {
        // Five points on the first axis, one far out: the median is the middle one, 2.
        var x = Tensor(zeros: [5, 3])
        for (r, v) in [0, 1, 2, 3, 100].enumerated() { x.storage[r * 3] = Float(v) }
        let mean = [Float(106) / 5, 0, 0]
        let m = SAETrainer.geometricMedian(x, start: mean)
        #expect(abs(m[0] - 2) < 1e-2 && abs(m[1]) < 1e-6 && abs(m[2]) < 1e-6, "\(m)")
        var options = SAETrainingOptions()
        options.bDecInit = .median
        let t = SAETrainer(
            sae: SparseAutoencoder(config: SAEConfig(architecture: .topk, dIn: 3, dSAE: 4, k: 1)), data: x,
            options: options)
        #expect(abs(t.sae.bDec.storage[0] - 2) < 1e-2)
    }

    @Test("TopK keeps at most k latents per row and BatchTopK k × batch over the batch")
    func sparsityInvariants() {
        let (x, _) = plantedData(rows: 32, d: 16, atoms: 40, active: 3, seed: 3)
        var sae = SparseAutoencoder(config: SAEConfig(architecture: .topk, dIn: 16, dSAE: 64, k: 5), seed: 4)
        sae.bEnc = Tensor(shape: [64], storage: [Float](repeating: 1, count: 64))  // every pre-activation positive
        let a = sae(x).latents
        for r in 0..<32 { #expect(a.storage[(r * 64)..<((r + 1) * 64)].filter { $0 > 0 }.count == 5) }
        sae.config.architecture = .batchtopk
        let b = sae(x).latents
        #expect(b.storage.filter { $0 > 0 }.count == 5 * 32)
        #expect((0..<32).contains { r in b.storage[(r * 64)..<((r + 1) * 64)].filter { $0 > 0 }.count != 5 })
    }

    @Test(
        "BatchTopK learns its threshold as a moving average of the smallest kept activation; a row's latents then do not depend on its batch mates, and the checkpoint saves it as SAELens's JumpReLU and loads back"
    )
    func batchTopKThreshold() throws {
        let (x, _) = plantedData(rows: 512, d: 16, atoms: 24, active: 2, seed: 11)
        let config = SAEConfig(architecture: .batchtopk, dIn: 16, dSAE: 48, k: 2)
        var o = SAETrainingOptions()
        o.steps = 40; o.batchSize = 64; o.learningRate = 2e-3; o.warmupSteps = 5; o.deadAfter = 1000
        let untrained = SparseAutoencoder(config: config, seed: 12)
        #expect(untrained.threshold == nil)
        // The average, step by step: the smallest activation each batch's top k·B kept.
        let t = SAETrainer(sae: untrained, data: x, options: o)
        var expected: Float = 0
        for step in 0..<o.steps {
            let batch = t.batch(step)
            let kept = t.sae.activate(t.sae.preActivations(batch), byBatch: true).storage.filter { $0 > 0 }
            t.update(batch)
            if let smallest = kept.min() { expected = 0.99 * expected + 0.01 * smallest }
            let theta = try #require(t.sae.threshold)
            #expect(theta.shape == [48] && Set(theta.storage).count == 1)
            expectClose(Double(theta.storage[0]), Double(expected), tolerance: 1e-6, "threshold at step \(step)")
        }
        #expect(expected > 0)
        // Inference by the threshold: one row alone gives what it gives among 64.
        let sae = t.sae
        let together = sae(t.batch(0)).latents
        let alone = sae(Tensor(shape: [1, 16], storage: Array(t.batch(0).storage[0..<16]))).latents
        #expect(Array(together.storage[0..<48]) == alone.storage)
        let z = sae.preActivations(t.batch(0))
        for i in 0..<(64 * 48) { #expect(together.storage[i] == (z.storage[i] > expected ? z.storage[i] : 0)) }
        // Saved as SAELens saves a trained BatchTopK SAE (JumpReLU, threshold in every latent).
        let dir = try Fixtures.temporaryDirectory()
        try SAECheckpoint.save(sae, to: dir, hook: "h", model: "m")
        let cfg =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/cfg.json")))
            as! [String: Any]
        let meta = try #require(cfg["metadata"] as? [String: Any])
        #expect(cfg["architecture"] as? String == "jumprelu" && cfg["k"] as? Int == 2)
        #expect(meta["training_architecture"] as? String == "batchtopk" && meta["hook_name"] as? String == "h")
        #expect(cfg["hook_name"] == nil, "SAELens 6 keeps hook_name under metadata only")
        let w = try SafeTensorsFile(path: dir + "/sae_weights.safetensors")
        #expect(try w.tensor("threshold").storage == sae.threshold!.storage)
        let loaded = try SAECheckpoint.load(dir)
        #expect(loaded.config == config && loaded.threshold?.storage == sae.threshold!.storage)
    }

    @Test(
        "JumpReLU keeps a pre-activation only above its latent's threshold; apply_b_dec_to_input=false encodes x itself"
    )
    func jumpReLUAndInputBias() throws {
        // Identity encoder and decoder on 3 dimensions, b_dec = 1, thresholds 0.5, 2, -1 (a negative
        // threshold still passes no negative activation: SAELens multiplies ReLU(z) by the mask).
        let eye = Tensor(shape: [3, 3], storage: [1, 0, 0, 0, 1, 0, 0, 0, 1])
        var sae = SparseAutoencoder(
            config: SAEConfig(architecture: .jumprelu, dIn: 3, dSAE: 3), wEnc: eye, bEnc: Tensor(zeros: [3]),
            wDec: eye, bDec: Tensor(shape: [3], storage: [1, 1, 1]),
            threshold: Tensor(shape: [3], storage: [0.5, 2, -1]))
        let x = Tensor(shape: [2, 3], storage: [2, 2.5, 0.5, 1.2, 4, 3])
        // z = x − 1 = [1, 1.5, −0.5], [0.2, 3, 2].
        #expect(sae(x).latents.storage == [1, 0, 0, 0, 3, 2])
        sae.applyBDecToInput = false  // z = x = [2, 2.5, 0.5], [1.2, 4, 3]
        #expect(sae(x).latents.storage == [2, 2.5, 0.5, 1.2, 4, 3])
        #expect(sae(x).reconstruction.storage == [3, 3.5, 1.5, 2.2, 5, 4])
        let dir = try Fixtures.temporaryDirectory()
        try SAECheckpoint.save(sae, to: dir, hook: "h", model: "m")
        let loaded = try SAECheckpoint.load(dir)
        #expect(loaded.config.architecture == .jumprelu && loaded.applyBDecToInput == false)
        #expect(loaded(x).latents.storage == sae(x).latents.storage)
    }

    @Test(
        "each architecture recovers at least 90 % of a planted dictionary's directions with cosine > 0.9",
        arguments: SAEArchitecture.allCases.filter(\.isTrainable))
    func recovery(_ arch: SAEArchitecture) throws {
        let (x, dict) = plantedData(rows: 8192, d: 32, atoms: 48, active: 3, seed: 5)
        let sae = SparseAutoencoder(config: SAEConfig(architecture: arch, dIn: 32, dSAE: 96, k: 3, l1: 0.2), seed: 6)
        var o = SAETrainingOptions()
        o.steps = 1500; o.batchSize = 256; o.learningRate = 3e-3; o.warmupSteps = 50; o.deadAfter = 20_000;
        o.logEvery = 100
        let t = SAETrainer(sae: sae, data: x, options: o)
        var last: SAELogLine?
        try t.train(log: { last = $0 }, checkpoint: { _ in })
        let w = t.sae.wDec
        var found = 0
        for atom in dict {
            var best: Float = -1
            for i in 0..<96 {
                var c: Float = 0
                for j in 0..<32 { c += atom[j] * w.storage[i * 32 + j] }
                best = max(best, c)
            }
            if best > 0.9 { found += 1 }
        }
        #expect(
            Double(found) / Double(dict.count) >= 0.9,
            "\(arch): \(found)/\(dict.count) recovered, last \(String(describing: last))")
        #expect(last!.fvu < 0.2)
    }

    @Test(
        "a checkpoint round-trips in SAELens layout and training resumed from it ends where an uninterrupted run does")
    func checkpointResume() throws {
        let (x, _) = plantedData(rows: 512, d: 16, atoms: 24, active: 2, seed: 7)
        let config = SAEConfig(architecture: .topk, dIn: 16, dSAE: 48, k: 2)
        var o = SAETrainingOptions()
        o.steps = 60; o.batchSize = 64; o.learningRate = 2e-3; o.warmupSteps = 5; o.checkpointEvery = 25;
        o.deadAfter = 1000
        let full = SAETrainer(sae: SparseAutoencoder(config: config, seed: 8), data: x, options: o)
        try full.train(log: { _ in }, checkpoint: { _ in })
        // Interrupted after the step-25 checkpoint, then resumed from disk.
        let dir = try Fixtures.temporaryDirectory()
        struct Stop: Error {}
        let first = SAETrainer(sae: SparseAutoencoder(config: config, seed: 8), data: x, options: o)
        #expect(throws: Stop.self) {
            try first.train(
                log: { _ in },
                checkpoint: { t in
                    try SAECheckpoint.save(t.sae, to: dir, hook: "h", model: "m", trainer: t)
                    throw Stop()
                })
        }
        let loaded = try SAECheckpoint.load(dir)
        #expect(loaded.config == config)
        let state = try #require(try SAECheckpoint.trainerState(dir))
        #expect(state.step == 25)
        let resumed = SAETrainer(sae: loaded, data: x, options: o)
        resumed.restore(step: state.step, sae: loaded, moments: state.moments, sinceFired: state.sinceFired)
        try resumed.train(log: { _ in }, checkpoint: { _ in })
        expectClose(resumed.sae.wDec, full.sae.wDec, rtol: 1e-5, atol: 1e-6, "W_dec after resume")
        expectClose(resumed.sae.bDec, full.sae.bDec, rtol: 1e-5, atol: 1e-6, "b_dec after resume")
        let cfg =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/cfg.json")))
            as! [String: Any]
        #expect(cfg["d_in"] as? Int == 16 && cfg["d_sae"] as? Int == 48 && cfg["architecture"] as? String == "topk")
        let w = try SafeTensorsFile(path: dir + "/sae_weights.safetensors")
        #expect(try w.tensor("W_enc").shape == [16, 48] && w.tensor("W_dec").shape == [48, 16])
    }
}
