import AuscultWhisper
import Foundation
import Testing
import _TestSupport

@testable import AuscultSAE

@Suite("Feature labels: phonemes and words against a null")
struct FeatureLabelTests {
    @Test("CMUdict is read with stress removed, alternatives and comments skipped, punctuation ignored")
    func dictionary() throws {
        let path = try #require(PronouncingDictionary.installedPath, "scripts/setup.sh installs models/cmudict.dict")
        let d = try PronouncingDictionary(contentsOf: path)
        #expect(d.entries.count > 100_000)
        #expect(d.phonemes(" Country,") == ["K", "AH", "N", "T", "R", "IY"])
        #expect(d.phonemes("AMERICANS") == ["AH", "M", "EH", "R", "AH", "K", "AH", "N", "Z"])
        #expect(d.phonemes("1813") == nil)
        let dir = try Fixtures.temporaryDirectory()
        try "# comment\ncat K AE1 T # a pet\ncat(2) K AA1 T\n".write(
            toFile: dir + "/small.dict", atomically: true, encoding: .utf8)
        #expect(throws: StoreError.self) { try PronouncingDictionary(contentsOf: dir + "/small.dict") }
        #expect(throws: StoreError.self) { try PronouncingDictionary(contentsOf: dir + "/missing.dict") }
    }

    @Test("a word's phonemes are spread evenly over its time span")
    func placement() {
        let d = PronouncingDictionary(entries: ["cat": ["K", "AE", "T"]])
        let words = [WordSpan(word: " Cat.", start: 1.0, end: 1.3), WordSpan(word: " dog", start: 1.3, end: 1.6)]
        #expect(FeatureLabeler.label(at: 1.05, words: words, dictionary: d)?.phoneme == "K")
        #expect(FeatureLabeler.label(at: 1.15, words: words, dictionary: d)?.phoneme == "AE")
        #expect(FeatureLabeler.label(at: 1.29, words: words, dictionary: d)?.phoneme == "T")
        let dog = FeatureLabeler.label(at: 1.4, words: words, dictionary: d)
        #expect(dog?.word == "dog" && dog?.phoneme == nil)
        #expect(FeatureLabeler.label(at: 2.0, words: words, dictionary: d) == nil)
    }

    @Test("examples all on a rare phoneme beat the null; examples drawn like the null do not")
    func null() {
        // Each clip: 10 % "N", the rest spread over nine other phonemes.
        let other = ["AH", "T", "S", "IY", "R", "D", "L", "K", "M"]
        let pool = (0..<100).map { $0 < 10 ? "N" : other[$0 % other.count] }
        let pools = ["a": pool, "b": pool, "c": pool]
        let planted = (0..<12).map { (clip: ["a", "b", "c"][$0 % 3], label: "N") }
        var g = SplitMix64(seed: 1)
        let hit = try! #require(FeatureLabeler.score(planted, pools: pools, draws: 1000, using: &g))
        #expect(hit.label == "N" && hit.share == 1 && hit.examples == 12)
        #expect(hit.p == 1.0 / 1001)
        var h = SplitMix64(seed: 2)
        let chance = (0..<12).map { k in (clip: ["a", "b", "c"][k % 3], label: pool[Int(h.next() % 100)]) }
        let miss = try! #require(FeatureLabeler.score(chance, pools: pools, draws: 1000, using: &g))
        #expect(miss.p > 0.05, "\(miss)")
        #expect(FeatureLabeler.score([(clip: "a", label: "N")], pools: pools, draws: 10, using: &g) == nil)
    }

    @Test("labels of an index's feature: shares and p-values in range, the same on a second run")
    func indexLabels() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let dir = try Fixtures.temporaryDirectory()
        var builder = try FeatureIndexBuilder(loaded: loaded, source: .neurons(hook: "encoder.blocks.2.mlp.hook_post"))
        builder.top = 5
        let items = ["jfk", "ps_cards_003", "ls_1089-134686-0000"].map {
            DatasetItem(id: $0, path: Fixtures.clip($0), reference: nil)
        }
        try builder.build(items, path: dir + "/n.sqlite")
        let index = try FeatureIndex(path: dir + "/n.sqlite")
        let dictionary = try PronouncingDictionary(contentsOf: try #require(PronouncingDictionary.installedPath))
        let a = try FeatureLabeler(index: index, dictionary: dictionary)
        let b = try FeatureLabeler(index: index, dictionary: dictionary)
        var labelled = 0
        for f in 0..<40 {
            let la = try #require(try a.labels(f))
            #expect(la == (try b.labels(f)))
            for s in [la.topPhoneme, la.topWord, la.negativePhoneme, la.negativeWord].compactMap({ $0 }) {
                labelled += 1
                #expect(s.p > 0 && s.p <= 1 && s.share > 0 && s.share <= 1 && s.examples >= 2 && s.examples <= 5)
                #expect(abs(s.share * Double(s.examples) - (s.share * Double(s.examples)).rounded()) < 1e-9)
            }
        }
        #expect(labelled > 40)
        #expect(try a.labels(99_999) == nil)
    }
}
