import AuscultWhisper
import Foundation
import Testing
import _TestSupport

/// One case of make_prompt_reference.py: openai-whisper's decode with a prompt and/or a prefix.
private struct PromptCase: Decodable {
    var model: String
    var clip: String
    var prompt: String?
    var prefix: String?
    var tokens: [Int]
    var text: String

    static func load() throws -> [PromptCase] {
        try String(contentsOfFile: Fixtures.reference + "/prompts.jsonl", encoding: .utf8)
            .split(separator: "\n").map { try JSONDecoder().decode(PromptCase.self, from: Data($0.utf8)) }
    }
}

@Suite("Prompts and prefixes as openai-whisper decodes them", .serialized)
struct PromptTests {
    @Test("transcribe --prompt/--prefix gives openai-whisper's tokens and text, the prefix left out of both")
    func transcribeMatchesReference() throws {
        let cases = try PromptCase.load()
        #expect(cases.count == 6)
        for c in cases {
            var args = ["transcribe", "--model", c.model, "--format", "jsonl", "--mode", "window"]
            if let p = c.prompt { args += ["--prompt", p] }
            if let p = c.prefix { args += ["--prefix", p] }
            let r = try AuscultCLI.run(args + [Fixtures.clip(c.clip)])
            #expect(r.status == 0, "\(r.err)")
            let row = try #require(
                try JSONSerialization.jsonObject(with: Data(r.out.utf8)) as? [String: Any], "\(r.out)")
            #expect(
                row["tokens"] as? [Int] == c.tokens,
                "\(c.model) \(c.clip) prompt \(c.prompt ?? "-") prefix \(c.prefix ?? "-")")
            #expect(row["text"] as? String == c.text.trimmingCharacters(in: .whitespaces))
        }
    }

    @Test("the library's run takes the same options: prompt tokens after <|startofprev|>, the prefix forced")
    func libraryRun() throws {
        let c = try #require(
            try PromptCase.load().first { $0.prompt != nil && $0.prefix != nil && $0.model == "tiny.en" })
        let loaded = try Fixtures.loaded("tiny.en")
        var options = DecodingOptions()
        options.prompt = loaded.promptTokens(c.prompt!)
        options.prefix = loaded.promptTokens(c.prefix!)
        let r = try loaded.run(.file(Fixtures.clip(c.clip)), options: options)
        #expect(r.tokens == c.tokens)
        #expect(r.inputTokens.first == loaded.tokenizer.sotPrev)
        #expect(r.inputTokens.prefix(1 + options.prompt!.count).dropFirst().elementsEqual(options.prompt!))
        #expect(loaded.prompt(options).suffix(options.prefix!.count).elementsEqual(options.prefix!))
    }

    @Test("tokens --next --prompt reads the prompt first: the predictions change, and equal the library's")
    func nextTokensWithPrompt() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let plain = try AuscultCLI.run(["tokens", " And so", "--next", "--top", "5", "--format", "json"])
        let prompted = try AuscultCLI.run([
            "tokens", " And so", "--next", "--top", "5", "--format", "json", "--prompt", "Kennedy speech.",
        ])
        #expect(plain.status == 0 && prompted.status == 0, "\(prompted.err)")
        func probabilities(_ s: String) throws -> [Double] {
            try #require(try JSONSerialization.jsonObject(with: Data(s.utf8)) as? [[String: Any]])
                .compactMap { $0["probability"] as? Double }
        }
        let a = try probabilities(plain.out), b = try probabilities(prompted.out)
        #expect(a.count == 5 && b.count == 5 && a != b)
        var options = DecodingOptions()
        options.prompt = loaded.promptTokens("Kennedy speech.")
        let library = try loaded.nextTokens(after: loaded.tokenizer.encode(" And so"), k: 5, options: options)
        for (x, y) in zip(library.map(\.probability), b) { #expect(abs(x - y) < 1e-9) }
    }

    @Test("a prompt of special tokens or over half the context is refused, and a sweep resumed with another prefix")
    func refusals() throws {
        let special = try AuscultCLI.run(["transcribe", "--prompt", "ids:1,50257", Fixtures.clip("jfk")])
        #expect(
            special.status != 0 && special.err.contains("--prompt") && special.err.contains("50257"), "\(special.err)")
        let long = try AuscultCLI.run([
            "transcribe", "--prefix", "ids:" + Array(repeating: "262", count: 300).joined(separator: ","),
            Fixtures.clip("jfk"),
        ])
        #expect(long.status != 0 && long.err.contains("--prefix") && long.err.contains("300"), "\(long.err)")
        let bad = try AuscultCLI.run(["transcribe", "--prompt", "ids:1,x", Fixtures.clip("jfk")])
        #expect(bad.status != 0 && bad.err.contains("'x'"), "\(bad.err)")
        let dir = try Fixtures.temporaryDirectory()
        let data = try Fixtures.dataset(["jfk"])
        let first = try AuscultCLI.run([
            "ablate", "--data", data, "--out", dir, "--targets", "decoder.blocks.3", "--modes", "zero",
            "--prefix", "And so",
        ])
        #expect(first.status == 0, "\(first.err)")
        let entries = try String(contentsOfFile: dir + "/results.jsonl", encoding: .utf8)
        #expect(
            entries.contains("\"condition\":\"clean\"") && !entries.contains("And so my"), "the prefix is not output")
        let again = try AuscultCLI.run([
            "ablate", "--data", data, "--out", dir, "--targets", "decoder.blocks.3", "--modes", "zero",
        ])
        #expect(again.status != 0 && again.err.contains("prefix"), "\(again.err)")
    }
}
