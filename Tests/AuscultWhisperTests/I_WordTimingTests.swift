import AuscultAudio
import AuscultTensor
@testable import AuscultWhisper
import Foundation
import Testing
import _TestSupport

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
                #expect(abs(g.start - r.start) <= 0.0201 && abs(g.end - r.end) <= 0.0201, "\(ref.clip) '\(r.word)': \(g.start)–\(g.end) vs \(r.start)–\(r.end)")
            }
        }
        #expect(exact * 10 >= words * 9, "\(exact) of \(words) word times identical")
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
