import AuscultLens
import AuscultTensor
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

@Suite("Linear probes")
struct ProbeTests {
    /// Rows of 6 features; the label is whether 2·x₀ − x₃ + 0.5 is positive, the value that sum.
    func synthetic(_ n: Int, seed: UInt64) -> (Tensor, [Float], [Float]) {
        var g = SplitMix64(seed: seed)
        var x = [Float]()
        for _ in 0..<(n * 6) {
            let u = Double(g.next() >> 11) / Double(UInt64(1) << 53)
            x.append(Float(u * 4 - 2))
        }
        var value = [Float]()
        for i in 0..<n { value.append(2 * x[i * 6] - x[i * 6 + 3] + 0.5) }
        return (Tensor(shape: [n, 6], storage: x), value.map { $0 > 0 ? 1 : 0 }, value)
    }

    @Test("logistic probes separate a linear boundary, linear probes recover a linear value, decay shrinks weights")
    func synthetic() throws {
        let (x, labels, values) = synthetic(400, seed: 1), (xt, lt, vt) = synthetic(200, seed: 2)
        let logistic = try LinearProbe.fit(x, labels, kind: .logistic, weightDecay: 1e-4, steps: 1500)
        #expect(logistic.score(xt, lt) > 0.95)
        let linear = try LinearProbe.fit(x, values, kind: .linear, weightDecay: 0, steps: 400)
        #expect(linear.score(xt, vt) > 0.99)
        let strong = try LinearProbe.fit(x, labels, kind: .logistic, weightDecay: 1, steps: 400)
        let norm = { (p: LinearProbe) in p.weights.reduce(0) { $0 + $1 * $1 } }
        #expect(norm(strong) < norm(logistic))
        #expect(throws: LensError.self) { try LinearProbe.fit(x, values, kind: .logistic) }
    }

    @Test(
        "encoder block 2's residual stream tells speech from the pauses and silence around it better than the majority label"
    )
    func speechFrames() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let ids = [
            "jfk", "ls_1089-134686-0000", "librivox_ss01-0870", "ami_ES2011a_40-46s", "ls_1089-134691-0000",
            "librivox_ss01-0890", "ps_cards_003", "lj_LJ002-0020", "ls_1272-141231-0002",
        ]
        let items = try Dataset.load(try Fixtures.dataset(ids)).items
        var job = ProbeJob(loaded: loaded, hook: HookName.encoder(2).residPost)
        job.steps = 200
        job.weightDecay = 0.05
        let r = try job.run(items)
        print(
            "probe: held out \(r.heldOutScore), training \(r.trainScore), majority \(r.majorityBaseline), "
                + "\(r.heldOutFrames) frames, \(r.heldOutPositive) positive")
        #expect(r.heldOutClips.count == 3 && r.trainClips.count == 6)
        #expect(r.heldOutPositive > 0.05 && r.heldOutPositive < 0.95, "both labels occur")
        #expect(r.heldOutScore > r.majorityBaseline + 0.05)  // measured 0.868 against 0.760
        #expect(r.example?.labels.count == r.example?.outputs.count)
    }

    @Test("a word task labels the frames of the transcript's word; a prefix holding the word labels none")
    func wordLabelsFollowTheTranscript() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let item = DatasetItem(id: "jfk", path: Fixtures.clip("jfk"), reference: nil)
        var job = ProbeJob(loaded: loaded, hook: HookName.encoder(2).residPost)
        job.task = .word("fellow")
        let normalizer = try EnglishTextNormalizer()
        let (x, labels) = try job.frames(item, normalizer: normalizer)
        let positive = labels.filter { $0 == 1 }.count
        #expect(x.shape[0] == labels.count && positive >= 5 && positive < 50, "\(positive) frames of 'fellow'")
        job.decoding.prefix = loaded.promptTokens("And so my fellow")
        #expect(try job.frames(item, normalizer: normalizer).1.allSatisfy { $0 == 0 })
    }
}
