import AuscultAudio
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

/// Long audio window by window, against openai-whisper's `transcribe()` on the same 36 s file
/// (Tests/Fixtures/longform, made by make_longform_reference.py beside it).
@Suite("Long-form transcription agrees with openai-whisper transcribe()")
struct LongFormTests {
    struct Reference: Decodable {
        struct Seg: Decodable { var seek: Int; var start: Double; var end: Double; var text: String; var tokens: [Int] }
        var model: String; var text: String; var segments: [Seg]
    }

    @Test("segments, their times and tokens, and the whole text match", arguments: ["tiny.en", "base"])
    func segments(model: String) throws {
        let lines = try String(
            contentsOfFile: Fixtures.path("Tests/Fixtures/longform/transcribe.jsonl"), encoding: .utf8)
        let ref = try lines.split(separator: "\n").map { try JSONDecoder().decode(Reference.self, from: Data($0.utf8)) }
            .first { $0.model == model }!
        let audio = try AudioClip(contentsOf: Fixtures.path("Tests/Fixtures/longform/long.wav"))
        var progressCalls = 0
        let t = try Fixtures.loaded(model).transcribe(audio.samples) { _, _ in progressCalls += 1 }
        #expect(t.segments.count == ref.segments.count)
        for (a, b) in zip(t.segments, ref.segments) {
            #expect(a.tokens == b.tokens, "segment at \(b.start): \(a.text) | reference \(b.text)")
            #expect(a.seek == b.seek)
            expectClose(a.start, b.start, tolerance: 1e-6, "start")
            expectClose(a.end, b.end, tolerance: 1e-6, "end")
        }
        #expect(t.text == ref.text)
        #expect(progressCalls >= 2)
    }

    @Test("compression ratio is zlib's, as openai-whisper computes it")
    func compression() {
        // len(text.encode()) / len(zlib.compress(text.encode())) computed by Python 3.11.
        expectClose(
            compressionRatio(
                "And so my fellow Americans ask not what your country can do for you, ask what you can do for your country."
            ),
            1.3417721518987342, tolerance: 1e-12)
        #expect(compressionRatio(String(repeating: "la ", count: 100)) > 2.4)
    }
}
