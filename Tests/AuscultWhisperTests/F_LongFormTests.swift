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

    struct WordsReference: Decodable {
        struct Word: Decodable { var word: String; var start: Double; var end: Double; var probability: Double }
        struct Seg: Decodable {
            var seek: Int; var start: Double; var end: Double; var tokens: [Int]; var words: [Word]
        }
        var model: String; var text: String; var segments: [Seg]
    }

    @Test(
        "word timestamps window by window: segments, seeks (moved to each window's last word), words, their times and probabilities match openai-whisper's transcribe(word_timestamps=True)",
        arguments: ["tiny.en", "base"])
    func wordTimestamps(model: String) throws {
        let lines = try String(contentsOfFile: Fixtures.path("Tests/Fixtures/longform/words.jsonl"), encoding: .utf8)
        let ref = try lines.split(separator: "\n").map {
            try JSONDecoder().decode(WordsReference.self, from: Data($0.utf8))
        }.first { $0.model == model }!
        let audio = try AudioClip(contentsOf: Fixtures.path("Tests/Fixtures/longform/long.wav"))
        var options = TranscribeOptions()
        options.decoding.language = "en"
        options.wordTimestamps = true
        let t = try Fixtures.loaded(model).transcribe(audio.samples, options: options)
        #expect(t.text == ref.text)
        #expect(t.segments.map(\.seek) == ref.segments.map(\.seek))
        #expect(t.segments.map(\.tokens) == ref.segments.map(\.tokens))
        var words = 0, exact = 0
        for (a, b) in zip(t.segments, ref.segments) {
            let got = a.words ?? []
            #expect(got.map(\.word) == b.words.map(\.word), "segment at \(b.start)")
            // One 20 ms frame of slack: float rounding may move a DTW step by one frame.
            expectClose(a.start, b.start, tolerance: 0.0201, "segment start")
            expectClose(a.end, b.end, tolerance: 0.0201, "segment end")
            for (g, r) in zip(got, b.words) {
                words += 1
                if abs(g.start - r.start) < 1e-9 && abs(g.end - r.end) < 1e-9 { exact += 1 }
                #expect(
                    abs(g.start - r.start) <= 0.0201 && abs(g.end - r.end) <= 0.0201,
                    "'\(r.word)': \(g.start)–\(g.end) vs \(r.start)–\(r.end)")
                expectClose(g.probability ?? -1, r.probability, tolerance: 5e-4, "probability of '\(r.word)'")
            }
        }
        #expect(words == ref.segments.reduce(0) { $0 + $1.words.count } && words > 80)
        #expect(exact * 10 >= words * 9, "\(exact) of \(words) word times identical")
    }

    @Test("transcribe --mode long --word-timestamps prints each segment's words and the file's words in JSON")
    func wordTimestampsCommandLine() throws {
        let lines = try String(contentsOfFile: Fixtures.path("Tests/Fixtures/longform/words.jsonl"), encoding: .utf8)
        let ref = try JSONDecoder().decode(WordsReference.self, from: Data(lines.split(separator: "\n")[0].utf8))
        #expect(ref.model == "tiny.en")
        let file = Fixtures.path("Tests/Fixtures/longform/long.wav")
        let r = try AuscultCLI.run(["transcribe", "--word-timestamps", "--format", "json", file])
        #expect(r.status == 0, "\(r.err)")
        #expect(!r.err.contains("only its first 30 s"), "\(r.err)")
        let rows = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [[String: Any]]
        let row = try #require(rows?.first)
        let words = try #require(row["words"] as? [[String: Any]])
        #expect(words.compactMap { $0["word"] as? String } == ref.segments.flatMap(\.words).map(\.word))
        let segments = try #require(row["segments"] as? [[String: Any]])
        #expect(segments.map { ($0["words"] as? [[String: Any]])?.count ?? -1 } == ref.segments.map(\.words.count))
        #expect(words.allSatisfy { ($0["probability"] as? Double).map { $0 > 0 && $0 <= 1 } ?? false })
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
