import AuscultAudio
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

/// Top of the pyramid: the whole pipeline scored as users score it.
@Suite("WER regression on the bundled clips")
struct WERRegressionTests {
    @Test(
        "tiny.en and base reach openai-whisper's corpus WER on the 38 clips (same S, D, I counts)",
        arguments: ["tiny.en", "base"])
    func corpusWER(model: String) throws {
        let refs = try Fixtures.transcripts(model)
        let loaded = try Fixtures.loaded(model)
        var options = DecodingOptions()
        options.language = "en"
        var pairs = [(String, String)]()
        try BatchTranscriber(loaded: loaded, options: options, batchSize: 8)
            .run(refs.map { DatasetItem(id: $0.id, path: Fixtures.clip($0.id), reference: $0.reference) }) { item, r in
                pairs.append((item.reference!, try r.get().text))
            }
        let w = WordErrorRate.corpus(pairs, normalizer: try EnglishTextNormalizer())
        #expect(w.referenceWords == refs.reduce(0) { $0 + $1.N })
        #expect(w.substitutions == refs.reduce(0) { $0 + $1.S })
        #expect(w.deletions == refs.reduce(0) { $0 + $1.D })
        #expect(w.insertions == refs.reduce(0) { $0 + $1.I })
    }
}
