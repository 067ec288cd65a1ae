import AuscultTensor
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

/// The whole model on the reference backend (plain loops, Double sums) against the CPU backend
/// every command runs: the backend seam's end-to-end check.
@Suite("Reference backend: the whole model")
struct ReferenceBackendTests {
    /// Largest |cpu − reference| over the reference's largest magnitude, per hook point.
    static let tolerance: Float = 1e-4

    @Test("every hook point of tiny.en on jfk agrees with the reference backend, and both pick the same tokens")
    func everyHookPoint() throws {
        let cpu = try Fixtures.loaded("tiny.en")
        let reference = cpu.running(on: ReferenceBackend())
        #expect(reference.model.backend.name == "reference")
        let jfk = AudioInput.file(Fixtures.clip("jfk"))
        // Greedy generation on the reference backend: cached self-attention and cross-attention
        // over its own keys and values, step by step.
        let clean = try cpu.run(jfk)
        let slow = try reference.run(jfk)
        #expect(slow.tokens == clean.tokens && slow.text == clean.text)
        // Teacher-forced on that transcript, every hook point of the registry.
        let (_, a) = try cpu.runWithCache(jfk, names: ["*"], tokens: clean.inputTokens)
        let (_, b) = try reference.runWithCache(jfk, names: ["*"], tokens: clean.inputTokens)
        let registry = HookRegistry(dims: cpu.model.dims)
        #expect(a.names == registry.names.sorted() && b.names == a.names)
        var worst = (name: "", error: Float(0))
        for name in a.names {
            let (x, y) = (try #require(a.activations[name]), try #require(b.activations[name]))
            #expect(x.shape == y.shape, "\(name)")
            guard x.shape == y.shape else { continue }
            let (diff, scale) = x.maxAbsDifference(to: y)
            let error = diff / max(scale, 1e-30)
            #expect(scale > 0 && scale.isFinite, "\(name) is all zero or not finite")
            #expect(error <= Self.tolerance, "\(name): \(diff) of \(scale)")
            if error > worst.error { worst = (name, error) }
        }
        print("reference backend: largest relative difference \(worst.error) at \(worst.name)")
    }
}
