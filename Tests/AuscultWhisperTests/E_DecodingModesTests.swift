import AuscultAudio
import AuscultTensor
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

/// Beam search, timestamps and language detection against openai-whisper run on the same weights
/// (Tests/Fixtures/reference/decoding.jsonl, made by make_decoding_reference.py beside it).
@Suite("Decoding modes agree with openai-whisper")
struct DecodingModesTests {
    struct Record: Decodable {
        var model: String; var id: String; var mode: String; var tokens: [Int]; var language: String
    }

    static func records() throws -> [Record] {
        let text = try String(contentsOfFile: Fixtures.reference + "/decoding.jsonl", encoding: .utf8)
        return try text.split(separator: "\n").map { try JSONDecoder().decode(Record.self, from: Data($0.utf8)) }
    }

    func run(_ model: String, mode: String) throws {
        let recs = try Self.records().filter { $0.model == model && $0.mode == mode }
        #expect(recs.count == 8)
        let loaded = try Fixtures.loaded(model)
        var options = DecodingOptions()
        switch mode {
        case "beam5": options.beamSize = 5
        case "timestamps": options.withoutTimestamps = false
        case "detect": options.language = nil
        default: Issue.record("unknown mode \(mode)")
        }
        var got = [String: DecodingResult]()
        try BatchTranscriber(loaded: loaded, options: options, batchSize: 4)
            .run(recs.map { DatasetItem(id: $0.id, path: Fixtures.clip($0.id), reference: nil) }) { item, r in
                got[item.id] = try r.get()
            }
        for rec in recs {
            let r = try #require(got[rec.id])
            #expect(
                r.tokens == rec.tokens,
                "\(model) \(mode) \(rec.id): \(loaded.tokenizer.decodeWithSpecials(r.tokens)) | reference \(loaded.tokenizer.decodeWithSpecials(rec.tokens))"
            )
            #expect(r.language == rec.language, "\(rec.id)")
        }
    }

    @Test("beam search (beam 5, patience 1) picks the same sequences", arguments: ["tiny.en", "base"])
    func beam(model: String) throws { try run(model, mode: "beam5") }

    @Test("timestamp decoding follows the timestamp rules token for token", arguments: ["tiny.en", "base"])
    func timestamps(model: String) throws { try run(model, mode: "timestamps") }

    @Test("language detection on the multilingual model finds English and decodes the same tokens")
    func detect() throws { try run("base", mode: "detect") }

    @Test("an unknown language or a zero beam width is refused with a message")
    func badOptions() throws {
        let loaded = try Fixtures.loaded("base")
        let audio = Tensor(zeros: [1, 1500, 512])
        var o = DecodingOptions()
        o.language = "xx"
        #expect { try loaded.decoder.decode(audio: audio, options: o) } throws: {
            "\($0)".contains("unknown language 'xx'")
        }
        o = DecodingOptions()
        o.beamSize = 0
        #expect { try loaded.decoder.decode(audio: audio, options: o) } throws: { "\($0)".contains("beam size") }
    }
}

@Suite("Datasets")
struct DatasetTests {
    @Test("the bundled manifest lists 38 clips with transcripts, and a bad file is reported while the rest carry on")
    func manifestAndBadFile() throws {
        let ds = try Dataset.load(Fixtures.clips)
        #expect(ds.items.count == 38)
        #expect(ds.items.first { $0.id == "jfk" }?.reference?.hasPrefix("And so my fellow Americans") == true)
        let dir = try Fixtures.temporaryDirectory()
        try "not audio".write(toFile: dir + "/broken.wav", atomically: true, encoding: .utf8)
        // A float WAV with one NaN sample among real speech: refused by name, the others carry on.
        var speech = try AudioClip(contentsOf: Fixtures.clip("jfk")).samples
        speech[8000] = .nan
        try floatWAV(speech, rate: 16_000).write(to: URL(fileURLWithPath: dir + "/nan.wav"))
        let items = [
            DatasetItem(id: "jfk", path: Fixtures.clip("jfk"), reference: nil),
            DatasetItem(id: "broken", path: dir + "/broken.wav", reference: nil),
            DatasetItem(id: "missing", path: dir + "/missing.flac", reference: nil),
            DatasetItem(id: "nan", path: dir + "/nan.wav", reference: nil),
            DatasetItem(id: "cards", path: Fixtures.clip("ps_cards_003"), reference: nil),
        ]
        var ok = [String](), failed = [String: String]()
        try BatchTranscriber(loaded: try Fixtures.loaded("tiny.en"), options: DecodingOptions(), batchSize: 8).run(
            items
        ) { item, r in
            switch r {
            case .success: ok.append(item.id)
            case .failure(let e): failed[item.id] = "\(e)"
            }
        }
        #expect(ok.sorted() == ["cards", "jfk"])
        #expect(failed["broken"]?.contains("broken.wav") == true)
        #expect(failed["nan"]?.contains("nan.wav") == true && failed["nan"]?.contains("not finite") == true)
        #expect(failed["missing"]?.contains("missing.flac") == true)
    }

    @Test("LibriSpeech folders and AudioFolder metadata.csv are read")
    func formats() throws {
        let dir = try Fixtures.temporaryDirectory()
        let ls = dir + "/ls/1089/134686"
        try FileManager.default.createDirectory(atPath: ls, withIntermediateDirectories: true)
        try FileManager.default.copyItem(
            atPath: Fixtures.clip("ls_1089-134686-0000"), toPath: ls + "/1089-134686-0000.wav")
        try "1089-134686-0000 HE HOPED THERE WOULD BE STEW\n".write(
            toFile: ls + "/1089-134686.trans.txt", atomically: true, encoding: .utf8)
        let a = try Dataset.load(dir + "/ls")
        #expect(
            a.items == [
                DatasetItem(
                    id: "1089-134686-0000", path: ls + "/1089-134686-0000.wav",
                    reference: "HE HOPED THERE WOULD BE STEW")
            ])
        let af = dir + "/af"
        try FileManager.default.createDirectory(atPath: af, withIntermediateDirectories: true)
        try "file_name,transcription\nx.wav,\"hello, world\"\n".write(
            toFile: af + "/metadata.csv", atomically: true, encoding: .utf8)
        let b = try Dataset.load(af)
        #expect(b.items == [DatasetItem(id: "x", path: af + "/x.wav", reference: "hello, world")])
        let jl = dir + "/m.jsonl"
        try "{\"path\": \"/abs/y.flac\", \"text\": \"hi\", \"id\": \"y1\"}\n".write(
            toFile: jl, atomically: true, encoding: .utf8)
        #expect(try Dataset.load(jl).items == [DatasetItem(id: "y1", path: "/abs/y.flac", reference: "hi")])
        #expect(throws: WhisperError.self) { try Dataset.load(dir + "/nothing-here") }
    }

    @Test("files of one name in different subfolders get different ids; a manifest repeating an id is refused")
    func uniqueIDs() throws {
        let dir = try Fixtures.temporaryDirectory()
        for sub in ["a", "b"] {
            try FileManager.default.createDirectory(atPath: "\(dir)/bare/\(sub)", withIntermediateDirectories: true)
            try FileManager.default.copyItem(atPath: Fixtures.clip("jfk"), toPath: "\(dir)/bare/\(sub)/jfk.wav")
        }
        try FileManager.default.copyItem(atPath: Fixtures.clip("jfk"), toPath: "\(dir)/bare/jfk.wav")
        let bare = try Dataset.load(dir + "/bare")
        #expect(bare.items.map(\.id) == ["a/jfk", "b/jfk", "jfk"])
        try "file_name,transcription\na/x.wav,one\nb/x.wav,two\n".write(
            toFile: dir + "/m.csv", atomically: true, encoding: .utf8)
        #expect(try Dataset.load(dir + "/m.csv").items.map(\.id) == ["a/x", "b/x"])
        try "file_name,transcription,id\na/x.wav,one,same\nb/x.wav,two,same\n".write(
            toFile: dir + "/dup.csv", atomically: true, encoding: .utf8)
        #expect {
            try Dataset.load(dir + "/dup.csv")
        } throws: { error in
            "\(error)".contains("'same'") && "\(error)".contains("a/x.wav") && "\(error)".contains("b/x.wav")
        }
    }
}

@Suite("Cross-attention read from the audio features")
struct CrossAttentionFormTests {
    @Test("reading the features through the key and value weights gives the keys-and-values logits, pattern and tokens")
    func featuresMatchKeysValues() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let model = loaded.model
        let ids = ["jfk", "ls_1089-134686-0000", "ps_cards_003"]
        let mels = try ids.map { try Fixtures.mel($0) }
        let audio = try model.encode(Tensor.stack(mels))
        let kv = try model.crossAttentionKV(audio)
        let features = try model.crossAttentionKV(audio, form: .features)
        #expect(
            (features.features != nil) == Attention.readsFeatures(d: 384),
            "the features form is taken wherever a features kernel runs")
        #expect(features.frames == kv.frames && features.clips == kv.clips)
        // Teacher-forced logits and every layer's cross-attention pattern.
        let tokens = [[50257, 50362, 679, 10719, 612], [50257, 50362, 383, 11, 290], [50257, 50362, 40, 1101, 262]]
        let names = (0..<4).map { "decoder.blocks.\($0).cross_attn.hook_pattern" }
        let recKV = ActivationRecorder { names.contains($0) }, recX = ActivationRecorder { names.contains($0) }
        let a = try model.decode(
            tokens, cache: try model.makeCache(audio: audio, audioIndex: [0, 1, 2], kv: kv), hooks: recKV)
        let b = try model.decode(
            tokens, cache: try model.makeCache(audio: audio, audioIndex: [0, 1, 2], kv: features), hooks: recX)
        expectClose(b, a, rtol: 1e-4, atol: 2e-3, "logits")
        for name in names { expectClose(recX.store[name]!, recKV.store[name]!, rtol: 1e-3, atol: 1e-6, name) }
        // Greedy decoding picks the same tokens.
        let plain = try loaded.decoder.decode(audio: audio, rows: nil, tokensFrom: nil, kv: kv)
        let viaFeatures = try loaded.decoder.decode(audio: audio, rows: nil, tokensFrom: nil, kv: features)
        #expect(plain.map(\.tokens) == viaFeatures.map(\.tokens))
        #expect(plain[0].tokens.count > 20, "JFK's sentence is more than 20 tokens")
    }

    @Test("a hook on the cross-attention keys or values keeps them formed, and sees them")
    func hookedKeysFallBack() throws {
        let model = try Fixtures.loaded("tiny.en").model
        let mel = try Fixtures.mel("jfk").reshaped([1, 80, 3000])
        let audio = try model.encode(mel)
        let rec = ActivationRecorder { $0 == "decoder.blocks.1.cross_attn.hook_k" }
        let kv = try model.crossAttentionKV(audio, hooks: rec, form: .features)
        #expect(kv.features == nil)
        #expect(rec.store["decoder.blocks.1.cross_attn.hook_k"]?.shape == [1, 1500, 6, 64])
    }
}
