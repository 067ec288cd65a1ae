import AuscultLens
import AuscultTensor
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

@Suite("Input optimisation")
struct InputOptimizationTests {
    @Test("Adam from silence raises an encoder neuron's mean and keeps the log-mel in bounds; the encoder runs alone")
    func neuron() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        var opt = InputOptimization(loaded: loaded)
        opt.steps = 6
        opt.learningRate = 0.05
        // The pre-activation: from silence GELU's output sits just below 0, where ascent only flattens it.
        let metric = GradientMetric.neuron(HookName.encoder(2).mlp.pre, 25, over: 0..<500)
        let (mel, values) = try opt.run(from: opt.silence(), metric: metric)
        #expect(values.count == 7)
        print("input optimisation, neuron 25: \(values)")
        #expect(values.last! > values.first! + 0.05, "\(values)")
        #expect(mel.scalars.allSatisfy { opt.bounds.contains($0) })
        // The metric's value is the neuron's mean, as a plain forward pass reads it.
        let (_, cache) = try loaded.runWithCache(.logMel(mel), names: [HookName.encoder(2).mlp.pre])
        let x = try cache.tensor(HookName.encoder(2).mlp.pre)
        let mean = (0..<500).reduce(0.0) { $0 + Double(x[$1, 25]) } / 500
        expectClose(mean, values.last!, tolerance: 1e-4 * max(1, abs(mean)), "neuron mean")
        // An encoder metric asks for no tokens and computes no decoder gradient.
        let (_, g) = try loaded.runWithCache(
            .logMel(mel), names: [.mel, HookName.encoder(0).residPost], backward: metric)
        #expect(g.tokens.isEmpty && g.names.allSatisfy { !$0.hasPrefix("decoder.") })
        #expect(throws: GradientError.self) {
            try loaded.runWithCache(.logMel(mel), names: [HookName.decoder(0).residPre], backward: metric)
        }
    }

    @Test("a token's log-probability rises, teacher-forced on the prompt")
    func token() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        var opt = InputOptimization(loaded: loaded)
        opt.steps = 4
        opt.learningRate = 0.05
        let prompt = loaded.prompt()
        let metric = GradientMetric.logProbability(positions: [prompt.count - 1], tokens: [1265])  // " ask"
        let (_, values) = try opt.run(from: opt.silence(), metric: metric, tokens: prompt + [1265])
        #expect(values.last! > values.first!, "\(values)")
    }

    @Test("a bad neuron, step count or learning rate is refused")
    func refused() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        var opt = InputOptimization(loaded: loaded)
        opt.steps = 1
        #expect(throws: GradientError.self) {
            try opt.run(from: opt.silence(), metric: .neuron(HookName.encoder(2).mlp.post, 99_999))
        }
        opt.learningRate = .nan
        #expect(throws: LensError.self) { try opt.run(from: opt.silence(), metric: .neuron(.mel, 0)) }
    }
}
