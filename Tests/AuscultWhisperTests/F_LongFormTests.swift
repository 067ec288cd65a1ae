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

    @Test(
        "interventions run on every window: one that changes nothing keeps the transcript, one that changes the encoder changes it, and each window gets its own handler for the frames holding audio"
    )
    func interventionsPerWindow() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let audio = try AudioClip(contentsOf: Fixtures.path("Tests/Fixtures/longform/long.wav"))
        let clean = try loaded.transcribe(audio.samples)
        var frames = [Int](), recorders = [ActivationRecorder]()
        let identity = try loaded.transcribe(
            audio.samples,
            hooks: { audioFrames in
                frames.append(audioFrames)
                let recorder = ActivationRecorder { $0 == "encoder.blocks.3.hook_resid_post" }
                recorders.append(recorder)
                return HookChain([
                    try Interventions([.scale(.encoder(3).residPost, by: 1)], model: loaded.model), recorder,
                ])
            })
        #expect(identity.segments.map(\.tokens) == clean.segments.map(\.tokens))
        // The 36 s file is read in windows that start at each seek; each window's handler saw its pass.
        let seeks = Array(Set(clean.segments.map(\.seek))).sorted()
        #expect(frames.count == seeks.count && frames.count >= 2)
        #expect(frames.first == 1500 && frames.dropFirst().allSatisfy { $0 > 0 && $0 < 1500 })
        #expect(recorders.allSatisfy { $0.store["encoder.blocks.3.hook_resid_post"]?.shape == [1, 1500, 384] })
        let steered = try loaded.transcribe(
            audio.samples,
            hooks: { _ in try Interventions([.scale(.encoder(1).residPost, by: 0.3)], model: loaded.model) })
        #expect(steered.text != clean.text)
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
