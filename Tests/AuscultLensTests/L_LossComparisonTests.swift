import AuscultLens
import AuscultSAE
import AuscultTensor
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

@Suite("Per-word losses and PCA across models", .serialized)
struct LossComparisonTests {
    @Test("symmetric eigen-decomposition: known eigenvalues, orthonormal eigenvectors, largest first")
    func eigen() throws {
        let (values, vectors) = try LinearAlgebra.symmetricEigen([2, 1, 0, 1, 2, 0, 0, 0, 5], n: 3)
        for (a, b) in zip(values, [5.0, 3, 1]) { #expect(abs(a - b) < 1e-12) }
        #expect(abs(abs(vectors[0][2]) - 1) < 1e-12)
        #expect(abs(abs(vectors[1][0]) - 0.5.squareRoot()) < 1e-12 && abs(vectors[1][0] - vectors[1][1]) < 1e-12)
        for i in 0..<3 {
            for j in 0..<3 {
                let dot = zip(vectors[i], vectors[j]).reduce(0) { $0 + $1.0 * $1.1 }
                #expect(abs(dot - (i == j ? 1 : 0)) < 1e-12)
            }
        }
    }

    @Test("tiny.en, base and tiny.en's direct path score the same words; each word's loss sums its tokens'")
    func compare() async throws {
        let tiny = try Fixtures.loaded("tiny.en"), base = try Fixtures.loaded("base")
        let items = try Dataset.load(Fixtures.clips).items.filter { ["jfk", "ps_cards_003"].contains($0.id) }
        #expect(items.count == 2)
        let r = try await offCooperativePool {
            try LossComparison(subjects: [
                .init(name: "tiny.en", loaded: tiny), .init(name: "base", loaded: base),
                .init(name: "tiny.en · skip decoder.blocks.3", loaded: tiny, interventions: [.skip(.decoder(3))]),
                .init(name: "tiny.en · direct path", loaded: tiny, directPath: true),
            ]).run(clips: items)
        }
        let jfkWords = r.wordLabels.filter { $0.hasPrefix("jfk: ") }.map { String($0.dropFirst(5)) }
        #expect(jfkWords.prefix(5) == ["And", "so", "my", "fellow", "Americans,"], "\(jfkWords)")
        #expect(jfkWords.last == "<|endoftext|>")
        #expect(r.losses.allSatisfy { $0.count == r.words })
        // The words' losses add up to the teacher-forced token losses of the whole text.
        let reference = try #require(items.first { $0.id == "jfk" }?.reference)
        let tokens = tiny.prompt() + tiny.promptTokens(reference) + [tiny.tokenizer.eot]
        let logits = try #require(try tiny.run(.file(Fixtures.clip("jfk")), tokens: tokens, logits: true).logits)
        let v = logits.shape[1], all = logits.scalars
        var total = 0.0
        for p in (tiny.prompt().count - 1)..<(tokens.count - 1) {
            let row = all[(p * v)..<((p + 1) * v)], top = Double(row.max()!)
            total +=
                top + log(row.reduce(0.0) { $0 + exp(Double($1) - top) }) - Double(row[row.startIndex + tokens[p + 1]])
        }
        let jfkTotal = r.losses[0].prefix(jfkWords.count).reduce(0, +)
        #expect(abs(jfkTotal - total) < 1e-6, "\(jfkTotal) vs \(total)")
        // The clean models find the words easy, the direct path does not; PC1 separates them.
        let mean = Dictionary(uniqueKeysWithValues: r.points.map { ($0.name, $0.meanLoss) })
        #expect(mean["tiny.en"]! < 1 && mean["base"]! < 1 && mean["tiny.en · direct path"]! > 3 * mean["tiny.en"]!)
        #expect(r.components.first.map { $0.explained > 0.5 } == true)
        let pc1 = Dictionary(uniqueKeysWithValues: r.points.map { ($0.name, $0.coordinates[0]) })
        #expect(abs(pc1["tiny.en · direct path"]!) > abs(pc1["tiny.en"]!))
        #expect(abs(r.components.map(\.explained).reduce(0, +) - 1) < 1e-9 || r.components.count < 3)
    }

    @Test("an SAE spliced in is a subject: an exact one scores as the model does, a lossy one worse")
    func splicedSubjects() async throws {
        let tiny = try Fixtures.loaded("tiny.en")
        let items = try Dataset.load(Fixtures.clips).items.filter { ["jfk", "ps_cards_003"].contains($0.id) }
        let hook = "encoder.blocks.2.hook_resid_post"
        let lossy = SparseAutoencoder(config: SAEConfig(architecture: .topk, dIn: 384, dSAE: 64, k: 2), seed: 9)
        let r = try await offCooperativePool {
            try LossComparison(subjects: [
                .init(name: "clean", loaded: tiny),
                .init(name: "identity", loaded: tiny) {
                    try SAESplice(sae: identitySAE(384), hook: hook, frames: [$0])
                },
                .init(name: "lossy", loaded: tiny) { try SAESplice(sae: lossy, hook: hook, frames: [$0]) },
            ]).run(clips: items)
        }
        let worst = zip(r.losses[0], r.losses[1]).map { abs($0 - $1) }.max() ?? .infinity
        #expect(worst < 1e-4, "an SAE that reconstructs exactly changes the losses by \(worst)")
        #expect(r.points[2].meanLoss > r.points[0].meanLoss + 1, "\(r.points.map(\.meanLoss))")
    }

    @Test("auscult losses --sae scores each model the SAE fits and refuses one that fits none")
    func saeCommandLine() throws {
        let dir = try Fixtures.temporaryDirectory()
        let data = try Fixtures.dataset(["jfk"])
        let lossy = SparseAutoencoder(config: SAEConfig(architecture: .topk, dIn: 384, dSAE: 64, k: 2), seed: 9)
        try SAECheckpoint.save(lossy, to: dir + "/sae", hook: "encoder.blocks.2.hook_resid_post", model: "tiny.en")
        let r = try AuscultCLI.run([
            "losses", "--models", "tiny.en,base", "--sae", dir + "/sae", "--data", data, "--out", dir + "/out",
        ])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("tiny.en · SAE sae at encoder.blocks.2.hook_resid_post"), "\(r.out)")
        #expect(!r.out.contains("base · SAE"), "base's hook is 512 wide: \(r.out)")
        let none = try AuscultCLI.run([
            "losses", "--models", "base", "--condition", "skip decoder.blocks.3", "--sae", dir + "/sae", "--data",
            data, "--out", dir + "/none",
        ])
        #expect(none.status != 0 && none.err.contains("no model of --models"), "\(none.err)")
    }

    @Test("auscult losses writes results and a report that opens in Chromium; bad input is refused by name")
    func commandLine() throws {
        let dir = try Fixtures.temporaryDirectory()
        let data = try Fixtures.dataset(["jfk", "ps_cards_003"])
        let r = try AuscultCLI.run([
            "losses", "--models", "tiny.en", "--condition", "skip decoder.blocks.3", "--direct-path", "--data", data,
            "--out", dir,
        ])
        #expect(r.status == 0, "\(r.err)")
        #expect(r.out.contains("tiny.en · direct path") && r.out.contains("PC1"), "\(r.out)")
        let (dom, log) = try Browser.render(dir + "/report.html")
        let rendered = Int(Browser.bodyAttribute(dom, "data-rendered") ?? "") ?? -1
        #expect(rendered >= 2, "\(rendered) plots drew")
        #expect(Browser.bodyAttribute(dom, "data-errors") == "0")
        #expect(log.split(separator: "\n").filter { $0.contains("CONSOLE") }.isEmpty)
        let one = try AuscultCLI.run(["losses", "--models", "tiny.en", "--data", data, "--out", dir + "/one"])
        #expect(one.status != 0 && one.err.contains("at least 2"), "\(one.err)")
        let bad = try AuscultCLI.run([
            "losses", "--models", "tiny.en", "--condition", "explode decoder", "--data", data, "--out", dir + "/bad",
        ])
        #expect(bad.status != 0 && bad.err.contains("--condition 'explode decoder'"), "\(bad.err)")
    }
}
