import AuscultAudio
import AuscultLens
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

@Suite("Activation patching")
struct PatchTests {
    @Test("corruptions: silence zeroes its range, a shift delays by whole samples, noise lands at the asked SNR")
    func corruptions() throws {
        let x = (0..<16_000).map { Float(sin(Double($0) * 0.05)) * 0.5 }
        let s = try Corruption.silence(start: 0.25, end: 0.5).apply(x)
        #expect(s[4000..<8000].allSatisfy { $0 == 0 } && s[3999] == x[3999] && s[8000] == x[8000])
        let d = try Corruption.shift(seconds: 0.1).apply(x)
        #expect(d.count == x.count + 1600 && d[1600...].elementsEqual(x) && d[..<1600].allSatisfy { $0 == 0 })
        let n = try Corruption.noise(snrDB: 10, seed: 3).apply(x)
        let sig = x.reduce(0.0) { $0 + Double($1 * $1) }
        let noise = zip(n, x).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }
        expectClose(10 * log10(sig / noise), 10, tolerance: 0.3, "SNR")
        #expect(try Corruption.noise(snrDB: 10, seed: 3).apply(x) == n)
    }

    @Test("patching restores what it should: the whole encoder input fully, the decoder embeddings not at all")
    func restorationBounds() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        var p = Patching(loaded: loaded, normalizer: EnglishTextNormalizer(spelling: [:]))
        p.window = 1500  // one window: the whole stream entering each encoder block
        let r = try p.run(clean: Fixtures.clip("jfk"), corruption: .noise(snrDB: 0, seed: 1))
        #expect(r.cleanValue > r.corruptValue + 1)
        let enc = r.grids.first { $0.hook == "encoder.blocks.*.hook_resid_pre" }!
        #expect(enc.cols.count == 1)
        for row in enc.values { expectClose(row[0], r.cleanValue, tolerance: 1e-3, "encoder window") }
        // Block 0's resid_pre in the decoder is the token + position embedding: the same in both runs.
        let dec = r.grids.first { $0.hook == "decoder.blocks.*.hook_resid_pre" }!
        #expect(dec.values[0].allSatisfy { abs($0 - r.corruptValue) < 1e-6 })
        #expect(dec.cols.count == r.tokens.count)
        // Later layers restore something somewhere.
        #expect(dec.restored.dropFirst().flatMap { $0 }.max()! > 0.05)
        #expect(r.grids.map(\.hook).contains("decoder.blocks.*.cross_attn.hook_z"))
    }

    @Test("with a prefix, patching scores the transcript decoded after it")
    func prefix() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        var p = Patching(loaded: loaded, normalizer: EnglishTextNormalizer(spelling: [:]))
        p.window = 1500
        p.decoding.prefix = loaded.promptTokens("And so my")
        let r = try p.run(clean: Fixtures.clip("jfk"), corruption: .noise(snrDB: 0, seed: 1))
        let start = loaded.prompt(p.decoding)
        #expect(Array(r.tokens.prefix(start.count)) == start && start.suffix(3) == p.decoding.prefix![...])
        #expect(r.cleanText == (try loaded.run(.file(Fixtures.clip("jfk")), options: p.decoding)).text)
        #expect(r.cleanValue > r.corruptValue)
    }
}
