import AuscultWhisper
import Foundation
import Testing
import _TestSupport

@Suite("Finding models")
struct ModelLookupTests {
    /// Runs auscult from `directory`, with `AUSCULT_MODELS` set to `models` (nil: unset).
    func auscult(
        in directory: String, models: String?, _ args: [String]
    ) throws -> (status: Int32, out: String, err: String) {
        var env = ProcessInfo.processInfo.environment
        env["AUSCULT_MODELS"] = models
        let quoted = ([AuscultCLI.binary] + args).map { "'\($0)'" }.joined(separator: " ")
        return try runProcess("/bin/sh", ["-c", "cd '\(directory)' && exec \(quoted)"], environment: env)
    }

    @Test("a models/ folder or a tiny.en folder in the working directory does not hide the installed models")
    func workingDirectoryComesLast() throws {
        let dir = try Fixtures.temporaryDirectory()
        for bogus in [dir + "/models/tiny.en", dir + "/tiny.en"] {
            try FileManager.default.createDirectory(atPath: bogus, withIntermediateDirectories: true)
            try Data("not a model".utf8).write(to: URL(fileURLWithPath: bogus + "/model.bin"))
            try Data("{}".utf8).write(to: URL(fileURLWithPath: bogus + "/config.json"))
        }
        let expected = try Fixtures.loaded("tiny.en").run(.file(Fixtures.clip("jfk"))).text
        for model in [[], ["--model", "tiny.en"]] {
            let r = try auscult(in: dir, models: nil, ["transcribe"] + model + [Fixtures.clip("jfk")])
            #expect(r.status == 0, "\(model): \(r.err)")
            #expect(r.out.trimmingCharacters(in: .whitespacesAndNewlines) == expected)
        }
        // An empty $AUSCULT_MODELS counts as unset; a set one is used first (here: the bogus folder).
        #expect(try auscult(in: dir, models: "", ["transcribe", Fixtures.clip("jfk")]).status == 0)
        let chosen = try auscult(in: "/", models: dir + "/models", ["transcribe", Fixtures.clip("jfk")])
        #expect(chosen.status != 0 && chosen.err.contains(dir + "/models/tiny.en"), "\(chosen.err)")
        // A path is still a path.
        let byPath = try auscult(
            in: dir, models: nil, ["transcribe", "--model", Fixtures.model("tiny.en"), Fixtures.clip("jfk")])
        #expect(byPath.status == 0 && byPath.out.trimmingCharacters(in: .whitespacesAndNewlines) == expected)
    }
}
