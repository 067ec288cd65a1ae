import AuscultTensor
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

/// The command-line contract other tools rely on, run as a user would run it.
@Suite("auscult command line")
struct CLITests {
    func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) { try AuscultCLI.run(args) }

    @Test("transcribe --format jsonl prints file, text and the sampled tokens of each file")
    func jsonl() throws {
        let ids = ["jfk", "ps_cards_003"]
        let r = try run(["transcribe", "--format", "jsonl"] + ids.map(Fixtures.clip))
        #expect(r.status == 0, "\(r.err)")
        let lines = r.out.split(separator: "\n").map {
            try! JSONSerialization.jsonObject(with: Data($0.utf8)) as! [String: Any]
        }
        let refs = try Fixtures.transcripts("tiny.en")
        #expect(lines.count == 2)
        for (id, line) in zip(ids, lines) {
            #expect(line["file"] as? String == Fixtures.clip(id))
            #expect(line["tokens"] as? [Int] == refs.first { $0.id == id }!.tokens)
            #expect(line["text"] as? String == refs.first { $0.id == id }!.text)
        }
    }

    @Test("an intervention flag changes the transcript as openai-whisper's hook does")
    func intervention() throws {
        let r = try run([
            "transcribe", "--format", "jsonl", "--zero", "encoder.blocks.1.hook_attn_out", Fixtures.clip("jfk"),
        ])
        let line = try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as! [String: Any]
        #expect(line["tokens"] as? [Int] == [314, 1101, 1016, 284, 466, 340, 13])
        // The same condition in the condition syntax gives the same tokens.
        let spelled = try run([
            "transcribe", "--format", "jsonl", "--condition", "zero encoder.blocks.1.hook_attn_out",
            Fixtures.clip("jfk"),
        ])
        let again = try JSONSerialization.jsonObject(with: Data(spelled.out.utf8)) as! [String: Any]
        #expect(again["tokens"] as? [Int] == [314, 1101, 1016, 284, 466, 340, 13])
        let nan = try run(["transcribe", "--scale", "encoder.blocks.1.hook_attn_out=nan", Fixtures.clip("jfk")])
        #expect(nan.status != 0 && nan.err.contains("not a finite number"))
        let decoderFrames = try run([
            "transcribe", "--zero", "decoder.blocks.1.hook_mlp_out", "--frames", "0:10", Fixtures.clip("jfk"),
        ])
        #expect(decoderFrames.status != 0 && decoderFrames.err.contains("decoder targets take positions"))
        // Selectors on a flag that takes none, or past the activation, are refused, not ignored.
        let refused: [([String], String)] = [
            (["--skip", "decoder.blocks.1", "--heads", "0"], "--skip removes whole blocks"),
            (["--zero", "encoder.blocks.1.hook_mlp_out", "--heads", "1"], "heads select parts"),
            (["--zero", "encoder.blocks.1.hook_mlp_out", "--frames", "1600:1700"], "1600:1700"),
            (["--zero", "decoder.blocks.1.hook_mlp_out", "--positions", "500"], "position 500"),
        ]
        for (args, words) in refused {
            let r = try run(["transcribe"] + args + [Fixtures.clip("jfk")])
            #expect(r.status != 0 && r.err.contains(words) && r.out.isEmpty, "\(args): \(r.err)")
        }
    }

    @Test("a dataset whose references hold no words gets no word error rate, not 0.00 %")
    func emptyReferences() throws {
        let dir = try Fixtures.temporaryDirectory()
        try FileManager.default.copyItem(atPath: Fixtures.clip("jfk"), toPath: dir + "/jfk.wav")
        try "file_name,transcription\njfk.wav,\" \"\n".write(
            toFile: dir + "/metadata.csv", atomically: true, encoding: .utf8)
        let r = try run(["transcribe", "--data", dir])
        #expect(r.status == 0 && r.out.contains("fellow Americans"), "\(r.err)")
        #expect(r.err.contains("WER not measured") && !r.err.contains("0.00 %"), "\(r.err)")
    }

    @Test("an unknown hook name fails with the closest valid names; a bad audio file is reported by name")
    func errors() throws {
        let bad = try run(["transcribe", "--zero", "encoder.blocks.1.hook_atn_out", Fixtures.clip("jfk")])
        #expect(bad.status != 0)
        #expect(
            bad.err.contains("unknown hook point 'encoder.blocks.1.hook_atn_out'")
                && bad.err.contains("encoder.blocks.1.hook_attn_out"))
        let missing = try run(["transcribe", "/nonexistent/x.wav", Fixtures.clip("ps_cards_003")])
        #expect(missing.err.contains("/nonexistent/x.wav"))
        #expect(missing.out.contains("ps_cards_003"))
    }

    @Test("cache writes the named activations, keyed by hook name")
    func cache() throws {
        let out = try Fixtures.temporaryDirectory() + "/c.safetensors"
        let r = try run([
            "cache", "--hooks", "encoder.blocks.*.hook_resid_post,decoder.hook_logits", "--out", out,
            Fixtures.clip("jfk"),
        ])
        #expect(r.status == 0, "\(r.err)")
        let f = try SafeTensorsFile(path: out)
        #expect(f.names.filter { $0.hasPrefix("encoder.blocks.") }.count == 4)
        #expect(f.entries["decoder.hook_logits"]?.shape == [26, 51864])
        #expect(f.entries["encoder.blocks.0.hook_resid_post"]?.shape == [1500, 384])
        // The cache names its model by content: the same weights give the same hash, others another.
        let tiny = try Fixtures.loaded("tiny.en")
        #expect(f.metadata["model_sha256"] == tiny.contentHash && tiny.contentHash.count == 64)
        #expect(try LoadedModel("tiny.en").contentHash == tiny.contentHash)
        #expect(try Fixtures.loaded("base").contentHash != tiny.contentHash)
        // Generated after a prompt, the decoder entries cover the prompt too (<|startofprev|> + 3 tokens more).
        let prompted = try run([
            "cache", "--hooks", "decoder.hook_logits", "--prompt", "A speech.", "--out", out, Fixtures.clip("jfk"),
        ])
        #expect(prompted.status == 0, "\(prompted.err)")
        #expect(try SafeTensorsFile(path: out).entries["decoder.hook_logits"]?.shape.first ?? 0 > 26)
        let both = try run([
            "cache", "--hooks", "decoder.hook_logits", "--tokens", "50257,50362", "--prefix", "And", "--out", out,
            Fixtures.clip("jfk"),
        ])
        #expect(both.status != 0 && both.err.contains("--tokens gives the whole decoder input"), "\(both.err)")
    }
}
