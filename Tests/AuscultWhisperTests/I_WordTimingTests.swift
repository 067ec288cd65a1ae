import AuscultAudio
import AuscultTensor
import Foundation
import Testing
import _TestSupport

@testable import AuscultWhisper

/// Word timing against openai-whisper's `find_alignment` (Tests/Fixtures/reference/words.jsonl,
/// made by make_word_timing_reference.py beside it).
@Suite("Word timing from the alignment heads")
struct WordTimingTests {
    struct Reference: Decodable {
        struct Word: Decodable { var word: String; var tokens: [Int]; var start: Double; var end: Double }
        var clip: String; var tokens: [Int]; var num_frames: Int; var words: [Word]
    }

    @Test("words, their tokens and their start and end times equal openai-whisper's on four clips (tiny.en)")
    func matchesReference() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let text = try String(contentsOfFile: Fixtures.reference + "/words.jsonl", encoding: .utf8)
        let refs = try text.split(separator: "\n").map { try JSONDecoder().decode(Reference.self, from: Data($0.utf8)) }
        #expect(refs.count == 4)
        var words = 0, exact = 0
        for ref in refs {
            let samples = try AudioClip(contentsOf: Fixtures.clip(ref.clip)).samples
            let mel = LogMel(nMels: 80).window(samples)
            let audio = try loaded.model.encode(mel.reshaped([1] + mel.shape))
            let got = try loaded.alignWords(audio: audio, textTokens: ref.tokens, samples: samples.count)
            #expect(got.map(\.word) == ref.words.map(\.word), "\(ref.clip)")
            #expect(got.map(\.tokens) == ref.words.map(\.tokens), "\(ref.clip)")
            for (g, r) in zip(got, ref.words) {
                words += 1
                if abs(g.start - r.start) < 1e-6 && abs(g.end - r.end) < 1e-6 { exact += 1 }
                // One 20 ms frame of slack: float rounding may move a DTW step by one frame.
                #expect(
                    abs(g.start - r.start) <= 0.0201 && abs(g.end - r.end) <= 0.0201,
                    "\(ref.clip) '\(r.word)': \(g.start)–\(g.end) vs \(r.start)–\(r.end)")
            }
        }
        #expect(exact * 10 >= words * 9, "\(exact) of \(words) word times identical")
    }

    @Test("transcribe --word-timestamps prints the same words and times in JSON, and [start–end] words as text")
    func commandLine() throws {
        let text = try String(contentsOfFile: Fixtures.reference + "/words.jsonl", encoding: .utf8)
        let ref = try JSONDecoder().decode(Reference.self, from: Data(text.split(separator: "\n")[0].utf8))
        #expect(ref.clip == "jfk")
        let r = try AuscultCLI.run(["transcribe", "--word-timestamps", "--format", "json", Fixtures.clip("jfk")])
        #expect(r.status == 0, "\(r.err)")
        let rows = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]]
        let words = try #require(rows?.first?["words"] as? [[String: Any]])
        #expect(words.compactMap { $0["word"] as? String } == ref.words.map(\.word))
        for (w, e) in zip(words, ref.words) {
            #expect(
                abs((w["start"] as? Double ?? -1) - e.start) <= 0.0201
                    && abs((w["end"] as? Double ?? -1) - e.end) <= 0.0201)
        }
        let plain = try AuscultCLI.run(["transcribe", "--word-timestamps", Fixtures.clip("jfk")])
        #expect(plain.out.hasPrefix("[0.00–"), "\(plain.out)")
        #expect(plain.out.contains("] Americans"))
    }

    @Test("dynamic time warping and the median filter behave as openai-whisper's on small cases")
    func dtwAndMedian() {
        // A cheap diagonal: the path follows it.
        let x: [[Double]] = [[0, 5, 5], [5, 0, 5], [5, 5, 0]]
        let (r, c) = LoadedModel.dtw(x)
        #expect(r == [0, 1, 2] && c == [0, 1, 2])
        // Two rows over four columns: the first row takes the cheap first two columns.
        let (r2, c2) = LoadedModel.dtw([[0, 0, 9, 9], [9, 9, 0, 0]])
        #expect(r2 == [0, 0, 1, 1] && c2 == [0, 1, 2, 3])
        #expect(LoadedModel.medianFilter([1, 9, 2, 8, 3, 7, 4], width: 3) == [9, 2, 8, 3, 7, 4, 7])
        #expect(LoadedModel.medianFilter([1, 2], width: 7) == [1, 2])
    }
}
