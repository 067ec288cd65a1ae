import AuscultWhisper
import Foundation
import Testing
import _TestSupport

@Suite("Tokenizer")
struct TokenizerTests {
    @Test(
        "decoding the reference tokens gives openai-whisper's text, and encoding that text decodes back to it",
        arguments: ["tiny.en", "base"])
    func roundTrip(model: String) throws {
        let tok = try Fixtures.loaded(model).tokenizer
        let refs = try Fixtures.transcripts(model)
        var canonical = 0
        for ref in refs {
            let text = tok.decode(ref.tokens)
            #expect(text.trimmingCharacters(in: .whitespaces) == ref.text, "\(ref.id)")
            #expect(tok.decode(tok.encode(text)) == text, "\(ref.id)")
            if tok.encode(text) == ref.tokens { canonical += 1 }
        }
        // The model sometimes samples a non-canonical split ("ĠSt" "uff" for "ĠStuff"); most of
        // its output is the canonical BPE, which the encoder must reproduce.
        #expect(canonical >= refs.count * 3 / 4, "\(canonical) of \(refs.count) sequences re-encode identically")
    }

    @Test("BPE gives the canonical (tiktoken) tokens for common words")
    func canonical() throws {
        let en = try Fixtures.loaded("tiny.en").tokenizer, ml = try Fixtures.loaded("base").tokenizer
        #expect(en.encode(" the") == [262])
        #expect(ml.encode(" the") == [264])
        #expect(en.encode(" And so my fellow Americans") == [843, 523, 616, 5891, 3399])
        #expect(ml.encode(" And so my fellow Americans,") == [400, 370, 452, 7177, 6280, 11])
        #expect(en.encode(" ") == [220])
    }

    @Test("special tokens sit where openai-whisper puts them (English-only and multilingual)")
    func specials() throws {
        let en = try Fixtures.loaded("tiny.en").tokenizer
        let enIds: [Int] = [
            en.eot, en.sot, en.translate, en.transcribe, en.sotLM, en.sotPrev, en.noSpeech, en.noTimestamps,
            en.timestampBegin,
        ]
        #expect(enIds == [50256, 50257, 50357, 50358, 50359, 50360, 50361, 50362, 50363])
        #expect(en.sotSequence() == [50257])
        let ml = try Fixtures.loaded("base").tokenizer
        let mlIds: [Int] = [
            ml.eot, ml.sot, ml.translate, ml.transcribe, ml.sotLM, ml.sotPrev, ml.noSpeech, ml.noTimestamps,
            ml.timestampBegin,
        ]
        #expect(mlIds == [50257, 50258, 50358, 50359, 50360, 50361, 50362, 50363, 50364])
        #expect(ml.sotSequence(language: "en") == [50258, 50259, 50359])
        #expect(ml.languageCodes.count == 99)
        #expect(Array(ml.languageCodes.prefix(3)) == ["en", "zh", "de"])
        #expect(
            ml.decodeWithSpecials([50258, 50259, 50364, 400, 50414])
                == "<|startoftranscript|><|en|><|0.00|> And<|1.00|>")
    }

    @Test(
        "the suppress_tokens=\"-1\" list equals the one CTranslate2 stored from openai-whisper",
        arguments: ["tiny.en", "base"])
    func nonSpeech(model: String) throws {
        let loaded = try Fixtures.loaded(model)
        let tok = loaded.tokenizer
        let cfg =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: Fixtures.model(model) + "/config.json"))) as! [String: Any]
        #expect(loaded.decoder.suppressTokens(DecodingOptions()) == (cfg["suppress_ids"] as! [Int]))
        #expect(tok.encode(" ") + [tok.eot] == (cfg["suppress_ids_begin"] as! [Int]))
    }
}

@Suite("English text normaliser and WER")
struct NormalizerTests {
    @Test(
        "normalised references and hypotheses equal openai-whisper's for every clip and model",
        arguments: ["tiny.en", "base"])
    func referenceNormalisation(model: String) throws {
        let norm = try EnglishTextNormalizer()
        for ref in try Fixtures.transcripts(model) {
            #expect(norm(ref.reference) == ref.ref_norm, "\(ref.id) reference")
            #expect(norm(ref.text) == ref.hyp_norm, "\(ref.id) hypothesis")
        }
    }

    @Test("numbers, currencies, contractions, fillers and spellings normalise exactly as openai-whisper's does")
    func cases() throws {
        // Tests/Fixtures/normalizer/cases.json holds openai-whisper's own outputs (make_cases.py).
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.path("Tests/Fixtures/normalizer/cases.json")))
        let cases = try JSONDecoder().decode([[String: String]].self, from: data)
        #expect(cases.count >= 60)
        let norm = try EnglishTextNormalizer()
        for c in cases { #expect(norm(c["input"]!) == c["output"]!, "\(c["input"]!)") }
    }

    @Test("word alignment counts substitutions, deletions and insertions")
    func alignment() {
        func w(_ r: String, _ h: String) -> WordErrorRate {
            WordErrorRate.align(reference: r.split(separator: " "), hypothesis: h.split(separator: " "))
        }
        let a = w("a b c d", "a x c d e")
        #expect(a.substitutions == 1 && a.deletions == 0 && a.insertions == 1 && a.referenceWords == 4)
        let b = w("a b c", "")
        #expect(b.substitutions == 0 && b.deletions == 3 && b.insertions == 0)
        let c = w("", "a b")
        #expect(c.insertions == 2 && c.referenceWords == 0)
        #expect(w("the cat sat", "the cat sat").rate == 0)
    }
}
