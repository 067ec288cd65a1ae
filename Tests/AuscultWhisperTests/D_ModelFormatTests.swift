import AuscultAudio
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

@testable import AuscultTensor

@Suite("Model formats load to the same model")
struct ModelFormatTests {
    static let ids = ["jfk", "ls_1089-134686-0000", "ps_cards_003", "tts_05_flite_rms"]

    func tokens(_ loaded: LoadedModel) throws -> [[Int]] {
        var out = [[Int]]()
        try BatchTranscriber(loaded: loaded, options: DecodingOptions(), batchSize: 4)
            .run(Self.ids.map { DatasetItem(id: $0, path: Fixtures.clip($0), reference: nil) }) { _, r in
                out.append(try r.get().tokens)
            }
        return out
    }

    @Test(
        "a Hugging Face directory written by convert loads on its own and gives the CTranslate2 original's tokens",
        arguments: ["tiny.en", "base"])
    func huggingFaceRoundTrip(model: String) throws {
        let original = try Fixtures.loaded(model)
        let dir = try Fixtures.temporaryDirectory() + "/hf"
        try original.writeHuggingFace(to: dir)
        #expect(try WeightLoader.detect(dir) == .huggingFace)
        // Its own tokenizer.json (with the timestamp tokens added) is the one it loads with.
        #expect(ModelStore.tokenizerDirectory(for: dir, multilingual: original.model.dims.isMultilingual) == dir)
        let reloaded = try LoadedModel(dir)
        for (k, t) in original.model.weights.tensors { #expect(reloaded.model.weights.tensors[k] == t, "\(k)") }
        #expect(reloaded.tokenizer.vocabulary == original.tokenizer.vocabulary)
        let refs = try Fixtures.transcripts(model)
        let want = Self.ids.map { id in refs.first { $0.id == id }!.tokens }
        #expect(try tokens(reloaded) == want)
        #expect(try tokens(original) == want)
    }

    @Test("convert --dtype f16 and bf16 store each weight rounded to nearest, ties to even")
    func halfPrecisionConversion() throws {
        let original = try Fixtures.loaded("tiny.en")
        for precision in [FloatPrecision.f16, .bf16] {
            let dir = try Fixtures.temporaryDirectory() + "/hf-" + precision.rawValue
            try original.model.weights.writeHuggingFace(to: dir, precision: precision)
            let file = try SafeTensorsFile(path: dir + "/model.safetensors")
            #expect(file.entries["model.encoder.conv1.weight"]?.dtype == precision.safetensorsName)
            let reloaded = try WeightLoader.load(dir)
            for (k, t) in original.model.weights.tensors {
                let rounded = t.scalars.map { x -> Float in
                    precision == .f16 ? Float(Float16(x)) : Float(bitPattern: UInt32(bfloat16Bits(x)) << 16)
                }
                #expect(reloaded.tensors[k]?.scalars == rounded, "\(precision) \(k)")
            }
        }
        // bfloat16 rounding: ties go to the even neighbour, NaN stays NaN, overflow goes to infinity.
        #expect(bfloat16Bits(Float(bitPattern: 0x3F80_8000)) == 0x3F80)
        #expect(bfloat16Bits(Float(bitPattern: 0x3F81_8000)) == 0x3F82)
        #expect(bfloat16Bits(.nan) == 0x7FC0)
        #expect(bfloat16Bits(.greatestFiniteMagnitude) == 0x7F80)
    }

    @Test("an openai-whisper .pt checkpoint written by torch.save loads to the same tensors as its safetensors twin")
    func pytorchCheckpoint() throws {
        // Tests/Fixtures/pt/ was made by Tests/Fixtures/pt/make_fixture.py: a miniature Whisper
        // (random weights, fp16 and fp32 tensors) saved with torch.save as openai-whisper does.
        let dir = Fixtures.path("Tests/Fixtures/pt")
        #expect(try WeightLoader.detect(dir + "/mini.pt") == .openaiPyTorch)
        let pt = try WeightLoader.load(dir + "/mini.pt")
        let twin = try SafeTensorsFile(path: dir + "/mini.safetensors")
        #expect(
            pt.dims
                == ModelDimensions(
                    n_mels: 80, n_audio_ctx: 16, n_audio_state: 8, n_audio_head: 2, n_audio_layer: 2,
                    n_vocab: 100, n_text_ctx: 12, n_text_state: 8, n_text_head: 2, n_text_layer: 2))
        #expect(Set(pt.tensors.keys) == Set(twin.names))
        for name in twin.names { #expect(pt.tensors[name] == (try twin.tensor(name)), "\(name)") }
        // And it runs: encoder output and decoder logits equal those PyTorch computed from it.
        let outputs = try SafeTensorsFile(path: dir + "/mini_outputs.safetensors")
        let model = Whisper(weights: pt)
        let mel = try outputs.tensor("mel")
        let features = try model.encode(mel.reshaped([1] + mel.shape))
        expectClose(
            features.reshaped([16, 8]), try outputs.tensor("audio_features"), rtol: 1e-4, atol: 1e-5, "encoder")
        let logits = try model.decode(
            [try outputs.integers("tokens")], cache: try model.makeCache(audio: features, audioIndex: [0]))
        expectClose(logits.reshaped([6, 100]), try outputs.tensor("logits"), rtol: 1e-4, atol: 1e-4, "logits")
    }
}

@Suite("Bad models are reported clearly")
struct BadModelTests {
    @Test("a missing model path names the path")
    func missing() {
        #expect { try WeightLoader.load("/nonexistent/model") } throws: {
            ($0 as? ModelLoadError)?.code == .modelNotFound && "\($0)".contains("/nonexistent/model")
        }
        #expect { try LoadedModel("no-such-model") } throws: { "\($0)".contains("no-such-model") }
    }

    @Test("a truncated CTranslate2 model.bin is reported as corrupt, naming the file")
    func truncated() throws {
        let dir = try Fixtures.temporaryDirectory()
        let data = try Data(contentsOf: URL(fileURLWithPath: Fixtures.model("tiny.en") + "/model.bin"))
        try data.prefix(data.count / 3).write(to: URL(fileURLWithPath: dir + "/model.bin"))
        #expect { try WeightLoader.load(dir) } throws: {
            ($0 as? ModelLoadError)?.code == .corruptModel && "\($0)".contains(dir + "/model.bin")
        }
    }

    @Test("a corrupt Hugging Face weights file is a loading error caused by a tensor-file error, both naming the file")
    func errorsByCause() throws {
        let dir = try Fixtures.temporaryDirectory()
        // A safetensors header length far past the file's end.
        var bytes = Data([0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x7F])
        bytes.append(Data("{}".utf8))
        try bytes.write(to: URL(fileURLWithPath: dir + "/model.safetensors"))
        do {
            _ = try WeightLoader.load(dir)
            Issue.record("a corrupt model.safetensors loaded")
        } catch let e as ModelLoadError {
            #expect(e.code == .corruptModel)
            let file = try #require(e.cause(TensorFileError.self), "the tensor file's error is kept as the cause")
            #expect(file.path == dir + "/model.safetensors")
            #expect(e.cause(AudioError.self) == nil)
            #expect("\(e)".contains(dir + "/model.safetensors"))
        }
    }

    @Test("a file of random bytes named model.bin is reported, not crashed on")
    func garbage() throws {
        let dir = try Fixtures.temporaryDirectory()
        try Data((0..<4096).map { UInt8(truncatingIfNeeded: $0 &* 2_654_435_761 >> 7) }).write(
            to: URL(fileURLWithPath: dir + "/model.bin"))
        #expect(throws: ModelLoadError.self) { try WeightLoader.load(dir) }
    }

    @Test("a Hugging Face directory missing one tensor names that tensor; an extra tensor is named too")
    func missingAndExtraTensor() throws {
        let weights = try Fixtures.loaded("tiny.en").model.weights
        let dir = try Fixtures.temporaryDirectory() + "/hf"
        var w = weights
        w.tensors["decoder.blocks.1.mlp.2.bias"] = nil
        try w.writeHuggingFace(to: dir)
        #expect { try WeightLoader.load(dir) } throws: {
            ($0 as? ModelLoadError)?.code == .missingTensor && "\($0)".contains("decoder.blocks.1.mlp.2.bias")
        }
        var x = weights
        x.tensors["decoder.blocks.9.extra"] = Tensor(zeros: [2])
        let dir2 = try Fixtures.temporaryDirectory() + "/hf2"
        try x.writeHuggingFace(to: dir2)
        #expect { try WeightLoader.load(dir2) } throws: {
            ($0 as? ModelLoadError)?.code == .unexpectedTensor && "\($0)".contains("model.decoder.layers.9.extra")
        }
    }

    @Test("a tensor of the wrong shape is named with both shapes")
    func wrongShape() throws {
        var t = try Fixtures.loaded("tiny.en").model.weights.tensors
        t["encoder.ln_post.bias"] = Tensor(zeros: [383])
        #expect {
            try WhisperWeights(dims: try Fixtures.loaded("tiny.en").model.dims, tensors: t, source: "x", format: "test")
        } throws: {
            ($0 as? ModelLoadError)?.code == .shapeMismatch && "\($0)".contains("[383]") && "\($0)".contains("[384]")
        }
    }

    @Test("a directory with no model file says which files it looked for")
    func unknownDirectory() throws {
        let dir = try Fixtures.temporaryDirectory()
        #expect { try WeightLoader.load(dir) } throws: {
            ($0 as? ModelLoadError)?.code == .unknownFormat && "\($0)".contains("model.bin")
        }
    }
}
