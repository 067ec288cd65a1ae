import AuscultLens
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

@Suite("Experiment commands")
struct CLIContractTests {
    /// A dataset folder (metadata.csv with the reference transcripts) holding links to `ids`' clips.
    static func dataset(_ ids: [String]) throws -> String { try Fixtures.dataset(ids) }

    struct Entry: Decodable {
        var clip: String; var condition: String; var tokens: [Int]; var text: String; var wer: Double; var ce: Double
    }

    @Test("ablate writes results.json entries with clip, condition, tokens, text, wer and ce, and resumes")
    func ablateContract() throws {
        let data = try Self.dataset(["jfk", "ls_1089-134691-0000"])
        let out = try Fixtures.temporaryDirectory() + "/ab"
        let args = [
            "ablate", "--data", data, "--out", out, "--targets", "encoder.blocks.2", "decoder.blocks.1", "--modes",
            "zero,mean,resample",
        ]
        let r = try AuscultCLI.run(args)
        #expect(r.status == 0, "\(r.err)")
        let entries = try JSONDecoder().decode(
            [Entry].self, from: Data(contentsOf: URL(fileURLWithPath: out + "/results.json")))
        #expect(entries.count == 2 * (1 + 6))
        let conditions = Set(entries.map(\.condition))
        #expect(
            conditions == [
                "clean", "skip encoder.blocks.2", "mean encoder.blocks.2", "swap encoder.blocks.2",
                "skip decoder.blocks.1", "mean decoder.blocks.1", "swap decoder.blocks.1",
            ])
        let clean = entries.filter { $0.condition == "clean" }
        #expect(clean.allSatisfy { !$0.tokens.isEmpty && $0.wer < 0.2 && $0.ce > 0 && $0.ce < 1 })
        #expect(entries.contains { $0.condition != "clean" && $0.ce > clean[0].ce + 0.5 })
        #expect(r.err.contains("conditions × clips") && r.out.contains("report:"))
        // Running it again finds everything done.
        let again = try AuscultCLI.run(args)
        #expect(again.status == 0)
        #expect(again.err.contains("resuming: 14 of 14"))
        let reread = try JSONDecoder().decode(
            [Entry].self, from: Data(contentsOf: URL(fileURLWithPath: out + "/results.json")))
        #expect(reread.map(\.tokens) == entries.map(\.tokens))
    }

    @Test("layers removes blocks from the end of each side and reports WER against blocks kept")
    func layersContract() throws {
        let data = try Self.dataset(["jfk", "ls_1089-134686-0001"])
        let out = try Fixtures.temporaryDirectory() + "/layers"
        let r = try AuscultCLI.run(["layers", "--data", data, "--out", out, "--side", "encoder"])
        #expect(r.status == 0, "\(r.err)")
        let entries = try JSONDecoder().decode(
            [Entry].self, from: Data(contentsOf: URL(fileURLWithPath: out + "/results.json")))
        #expect(
            Set(entries.map(\.condition)) == [
                "clean", "skip encoder.blocks.3", "skip encoder.blocks.2+3",
                "skip encoder.blocks.1+2+3", "skip encoder.blocks.0+1+2+3",
            ])
        let wer = Dictionary(grouping: entries, by: \.condition).mapValues { $0.map(\.wer).reduce(0, +) }
        #expect(wer["skip encoder.blocks.0+1+2+3"]! > wer["clean"]!)
    }

    @Test("bad experiment input gets a message naming the problem")
    func badInput() throws {
        let data = try Self.dataset(["jfk"])
        let out = try Fixtures.temporaryDirectory()
        let unknown = try AuscultCLI.run([
            "ablate", "--data", data, "--out", out + "/a", "--targets", "encoder.blocks.2.hook_atn_out",
        ])
        #expect(unknown.status != 0 && unknown.err.contains("hook_attn_out"))
        let one = try AuscultCLI.run(["ablate", "--data", data, "--out", out + "/b", "--modes", "resample"])
        #expect(one.status != 0 && one.err.contains("at least 2 clips"))
        let missing = try AuscultCLI.run(["patch", "/nonexistent.wav", "--noise", "0", "--out", out + "/c"])
        #expect(missing.status != 0 && missing.err.contains("/nonexistent.wav"))
        let twoCorruptions = try AuscultCLI.run([
            "patch", Fixtures.clip("jfk"), "--noise", "0", "--shift", "1", "--out", out + "/d",
        ])
        #expect(twoCorruptions.status != 0 && twoCorruptions.err.contains("exactly one"))
        // Values that would read memory or allocate without bound are refused before any work.
        for (flag, value, words) in [
            ("--shift", "nan", "shift by nan"), ("--shift", "1e9", "±30 s"), ("--noise", "inf", "must be finite"),
        ] {
            let bad = try AuscultCLI.run(["patch", Fixtures.clip("jfk"), flag, value, "--out", out + "/f"])
            #expect(bad.status != 0 && bad.err.contains(words), "\(flag) \(value): \(bad.err)")
        }
        let farPosition = try AuscultCLI.run([
            "patch", Fixtures.clip("jfk"), "--noise", "0", "--metric", "logit-diff", "--tokens", "1,2", "--position",
            "9999", "--out", out + "/g",
        ])
        #expect(farPosition.status != 0 && farPosition.err.contains("positions 0..<"), "\(farPosition.err)")
        let wer = try AuscultCLI.run([
            "attribute", Fixtures.clip("jfk"), "--noise", "0", "--metric", "wer", "--out", out + "/h",
        ])
        #expect(wer.status != 0 && wer.err.contains("differentiable"), "\(wer.err)")
        let steps = try AuscultCLI.run([
            "attribute", Fixtures.clip("jfk"), "--noise", "0", "--integrated-gradients", "0", "--out", out + "/i",
        ])
        #expect(steps.status != 0 && steps.err.contains("1…1000"), "\(steps.err)")
        // Another run's directory is not overwritten silently.
        _ = try AuscultCLI.run(["layers", "--data", data, "--out", out + "/e", "--side", "decoder"])
        let clash = try AuscultCLI.run(["layers", "--data", data, "--out", out + "/e", "--side", "encoder"])
        #expect(clash.status != 0 && clash.err.contains("--fresh"))
    }
}
