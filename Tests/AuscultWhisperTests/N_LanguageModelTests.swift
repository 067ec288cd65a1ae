import AuscultTensor
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

@Suite("The decoder as a language model")
struct LanguageModelTests {
    @Test(
        "after each prefix of openai-whisper's greedy transcript of jfk, the most likely next token is its next token")
    func nextTokenFollowsGreedyTranscript() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let reference = try #require(try Fixtures.transcripts("tiny.en").first { $0.id == "jfk" })
        let text = reference.tokens.filter { $0 < loaded.tokenizer.eot }
        for cut in [1, 4, 9, 15] {
            let p = try loaded.nextTokens(after: Array(text.prefix(cut)), audio: .file(Fixtures.clip("jfk")), k: 5)
            #expect(p.first?.token == text[cut], "after \(cut) tokens: \(p.map(\.text))")
            #expect(p.map(\.logprob) == p.map(\.logprob).sorted(by: >))
            for x in p { expectClose(x.probability, exp(x.logprob), tolerance: 1e-12) }
        }
    }

    @Test("on silence the next-token distribution sums to 1 over the vocabulary")
    func distributionOnSilence() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let prefix = loaded.tokenizer.encode(" And so my fellow")
        let all = try loaded.nextTokens(after: prefix, k: loaded.model.dims.n_vocab)
        #expect(all.count == loaded.model.dims.n_vocab)
        expectClose(all.reduce(0) { $0 + $1.probability }, 1, tolerance: 1e-6, "total probability")
        #expect(Set(all.map(\.token)).count == all.count)
        #expect(throws: DecodingError.self) { try loaded.nextTokens(after: [999_999]) }
    }

    @Test("embedding neighbours are ranked by cosine after removing the mean, which the raw embeddings need")
    func neighbours() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let e = loaded.model.weights["decoder.token_embedding.weight"]
        let n = e.shape[0], d = e.shape[1]
        let token = try #require(loaded.tokenizer.encode(" country").first)
        let list = try loaded.embeddingNeighbours(of: token, k: 5)
        #expect(list.count == 5 && !list.contains { $0.token == token })
        #expect(list.map(\.cosine) == list.map(\.cosine).sorted(by: >))
        // Recomputed here: mean-centred cosine of the first neighbour, and raw against centred
        // cosines of 300 random pairs.
        let v = e.scalars
        var mean = [Double](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { mean[j] += Double(v[i * d + j]) / Double(n) } }
        func cosine(_ a: Int, _ b: Int, centred: Bool) -> Double {
            var dot = 0.0, na = 0.0, nb = 0.0
            for j in 0..<d {
                let x = Double(v[a * d + j]) - (centred ? mean[j] : 0),
                    y = Double(v[b * d + j]) - (centred ? mean[j] : 0)
                dot += x * y; na += x * x; nb += y * y
            }
            return dot / (na * nb).squareRoot()
        }
        expectClose(list[0].cosine, cosine(token, list[0].token, centred: true), tolerance: 1e-9, "first neighbour")
        var rng = SystemRandomNumberGenerator()
        var raw = 0.0, centred = 0.0
        for _ in 0..<300 {
            let a = Int.random(in: 0..<50_000, using: &rng), b = Int.random(in: 0..<50_000, using: &rng)
            raw += cosine(a, b, centred: false) / 300; centred += cosine(a, b, centred: true) / 300
        }
        #expect(raw > 0.5 && abs(centred) < 0.1, "mean cosine of random pairs: raw \(raw), centred \(centred)")
        #expect(list[0].cosine > 0.3, "the nearest token is much closer than a random one: \(list)")
    }

    @Test("auscult tokens: text to ids and back, next tokens as JSON, and clear refusals")
    func commandLine() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let ids = loaded.tokenizer.encode(" And so my fellow Americans")
        let text = try AuscultCLI.run(["tokens", " And so my fellow Americans"])
        let firstLine = text.out.split(separator: "\n").first.map(String.init)
        #expect(text.status == 0 && firstLine == ids.map(String.init).joined(separator: ","))
        let back = try AuscultCLI.run(["tokens", "--ids", ids.map(String.init).joined(separator: ",")])
        #expect(back.out.split(separator: "\n").last.map(String.init) == " And so my fellow Americans")
        let next = try AuscultCLI.run(["tokens", "--next", " And so my fellow", "--top", "3", "--format", "json"])
        let list = try JSONDecoder().decode([TokenPrediction].self, from: Data(next.out.utf8))
        #expect(list == (try loaded.nextTokens(after: loaded.tokenizer.encode(" And so my fellow"), k: 3)))
        for (args, says) in [
            (["tokens", "--ids", "12,99999999"], "99999999"), (["tokens", "--neighbours", " And so"], "one token"),
            (["tokens", "--next", "x", "--top", "0"], "--top"),
        ] {
            let r = try AuscultCLI.run(args)
            #expect(r.status != 0 && r.err.contains(says), "\(args): \(r.err)")
        }
    }
}
