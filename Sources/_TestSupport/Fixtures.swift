// Paths and readers for the test fixtures; tolerance asserts that report at the caller's line.
import AuscultAudio
import AuscultTensor
import AuscultWhisper
import Foundation
import Testing

/// Where the project's fixtures and installed models are.
public enum Fixtures {
    /// The package root (found from this file's location).
    public static let root: String = {
        var url = URL(fileURLWithPath: #filePath)
        for _ in 0..<3 { url.deleteLastPathComponent() }
        return url.path
    }()
    public static func path(_ rel: String) -> String { (root as NSString).appendingPathComponent(rel) }
    public static let reference = path("Tests/Fixtures/reference")
    public static let clips = path("data/clips")
    public static let models = path("models")

    /// A model installed by scripts/setup.sh (`tiny.en`, `base`).
    public static func model(_ name: String) -> String { (models as NSString).appendingPathComponent(name) }

    /// The reference transcript records of `model` (openai-whisper, greedy, one padded window).
    public static func transcripts(_ model: String) throws -> [ReferenceTranscript] {
        let text = try String(contentsOfFile: "\(reference)/\(model)/transcripts.jsonl", encoding: .utf8)
        return try text.split(separator: "\n").map {
            try JSONDecoder().decode(ReferenceTranscript.self, from: Data($0.utf8))
        }
    }

    /// The clip file of reference id `id`.
    public static func clip(_ id: String) -> String { "\(clips)/\(id).wav" }

    /// The 30 s log-mel window `[80, 3000]` of bundled clip `id`, as the model's input.
    public static func mel(_ id: String) throws -> Tensor {
        LogMel().window(try AudioClip(contentsOf: clip(id)).samples)
    }

    /// A dataset folder (links to bundled clips + metadata.csv with their references) holding `ids`.
    public static func dataset(_ ids: [String]) throws -> String {
        let dir = try temporaryDirectory()
        var csv = "file_name,transcription\n"
        let refs = Dictionary(uniqueKeysWithValues: try Dataset.load(clips).items.map { ($0.id, $0.reference ?? "") })
        for id in ids {
            try FileManager.default.createSymbolicLink(atPath: "\(dir)/\(id).wav", withDestinationPath: clip(id))
            csv += "\(id).wav,\"\(refs[id]!.replacingOccurrences(of: "\"", with: "\"\""))\"\n"
        }
        try csv.write(toFile: dir + "/metadata.csv", atomically: true, encoding: .utf8)
        return dir
    }

    /// The activations openai-whisper recorded on jfk.wav with tiny.en.
    public static func jfkActivations() throws -> SafeTensorsFile {
        try SafeTensorsFile(path: "\(reference)/activations/tiny.en/jfk.safetensors")
    }

    /// Loaded models are shared between tests (loading base takes ~1 s).
    nonisolated(unsafe) private static var cache = [String: LoadedModel]()
    private static let lock = NSLock()
    public static func loaded(_ name: String) throws -> LoadedModel {
        lock.lock(); defer { lock.unlock() }
        if let m = cache[name] { return m }
        if cache.isEmpty { Memory.retainFreedMemory() }  // as the CLI does (ProcessSetup.configure)
        let m = try LoadedModel(model(name))
        cache[name] = m
        return m
    }

    /// A fresh temporary directory.
    public static func temporaryDirectory() throws -> String {
        let p = (NSTemporaryDirectory() as NSString).appendingPathComponent("auscult-test-\(UUID().uuidString)")
        try FileManager.default.createDirectory(atPath: p, withIntermediateDirectories: true)
        return p
    }
}

/// One line of `reference/<model>/transcripts.jsonl`.
public struct ReferenceTranscript: Decodable, Sendable {
    public var id: String
    public var kind: String
    public var prompt: [Int]
    public var tokens: [Int]
    public var text: String
    public var sum_logprob: Double
    public var avg_logprob: Double
    public var no_speech_prob: Double
    public var reference: String
    public var ref_norm: String
    public var hyp_norm: String
    public var S: Int
    public var D: Int
    public var I: Int
    public var N: Int
}

/// Expects `actual` to match `expected` element-wise within `atol + rtol·|expected|`, reporting
/// the worst element at the caller's source location.
public func expectClose(
    _ actual: Tensor, _ expected: Tensor, rtol: Float = 1e-4, atol: Float = 1e-5,
    _ what: String = "", sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(
        actual.shape == expected.shape, "\(what): shape \(actual.shape) vs \(expected.shape)",
        sourceLocation: sourceLocation)
    guard actual.shape == expected.shape else { return }
    var worst = (excess: Float(0), index: -1)
    for i in 0..<actual.count {
        let e = expected.storage[i], a = actual.storage[i]
        let excess = abs(a - e) - (atol + rtol * abs(e))
        if excess > worst.excess || a.isNaN { worst = (a.isNaN ? .infinity : excess, i) }
    }
    let got = worst.index >= 0 ? actual.storage[worst.index] : 0
    let want = worst.index >= 0 ? expected.storage[worst.index] : 0
    #expect(
        worst.index < 0,
        "\(what): element \(worst.index) is \(got), expected \(want) (rtol \(rtol), atol \(atol))",
        sourceLocation: sourceLocation)
}

/// Expects |actual − expected| ≤ tolerance.
public func expectClose(
    _ actual: Double, _ expected: Double, tolerance: Double, _ what: String = "",
    sourceLocation: SourceLocation = #_sourceLocation
) {
    #expect(
        abs(actual - expected) <= tolerance, "\(what): \(actual) vs \(expected) (±\(tolerance))",
        sourceLocation: sourceLocation)
}

/// Writes a 16-bit PCM WAV file of `channels` interleaved channels at `rate` Hz.
public func writeWAV(_ path: String, samples: [Float], rate: Int, channels: Int = 1) throws {
    var d = Data()
    func u32(_ v: Int) { withUnsafeBytes(of: UInt32(v).littleEndian) { d.append(contentsOf: $0) } }
    func u16(_ v: Int) { withUnsafeBytes(of: UInt16(v).littleEndian) { d.append(contentsOf: $0) } }
    d.append(contentsOf: Array("RIFF".utf8)); u32(36 + 2 * samples.count); d.append(contentsOf: Array("WAVE".utf8))
    d.append(contentsOf: Array("fmt ".utf8)); u32(16); u16(1); u16(channels); u32(rate); u32(rate * channels * 2);
    u16(channels * 2); u16(16)
    d.append(contentsOf: Array("data".utf8)); u32(2 * samples.count)
    for s in samples {
        withUnsafeBytes(of: Int16(max(-32768, min(32767, (s * 32768).rounded()))).littleEndian) {
            d.append(contentsOf: $0)
        }
    }
    try d.write(to: URL(fileURLWithPath: path))
}

/// A mono 32-bit float WAV file (format tag 3), which can carry NaN and Inf.
public func floatWAV(_ samples: [Float], rate: Int) -> Data {
    var d = Data()
    func u32(_ v: Int) { withUnsafeBytes(of: UInt32(v).littleEndian) { d.append(contentsOf: $0) } }
    func u16(_ v: Int) { withUnsafeBytes(of: UInt16(v).littleEndian) { d.append(contentsOf: $0) } }
    d.append(contentsOf: Array("RIFF".utf8)); u32(36 + 4 * samples.count); d.append(contentsOf: Array("WAVE".utf8))
    d.append(contentsOf: Array("fmt ".utf8)); u32(16); u16(3); u16(1); u32(rate); u32(rate * 4); u16(4); u16(32)
    d.append(contentsOf: Array("data".utf8)); u32(4 * samples.count)
    for s in samples { withUnsafeBytes(of: s.bitPattern.littleEndian) { d.append(contentsOf: $0) } }
    return d
}

/// Runs the `auscult` executable as a user would.
public enum AuscultCLI {
    /// The auscult built beside this test bundle (same configuration), else the release build.
    public static let binary: String = {
        let beside = URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent().appendingPathComponent(
            "auscult"
        ).path
        return FileManager.default.isExecutableFile(atPath: beside) ? beside : Fixtures.path(".build/release/auscult")
    }()

    /// Runs auscult with `args`; returns exit status, stdout and stderr.
    public static func run(_ args: [String]) throws -> (status: Int32, out: String, err: String) {
        try runProcess(
            binary, args,
            environment: ProcessInfo.processInfo.environment.merging(["AUSCULT_MODELS": Fixtures.models]) { $1 })
    }
}

/// Runs `executable` with `args` to completion; returns exit status, stdout and stderr.
public func runProcess(
    _ executable: String, _ args: [String], environment: [String: String]? = nil
) throws -> (status: Int32, out: String, err: String) {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: executable)
    p.arguments = args
    if let environment { p.environment = environment }
    let out = Pipe(), err = Pipe()
    p.standardOutput = out
    p.standardError = err
    try p.run()
    // Drain stderr while stdout is read (a full stderr pipe would block the process).
    let box = DataBox()
    let done = DispatchSemaphore(value: 0)
    DispatchQueue.global().async {
        box.data = err.fileHandleForReading.readDataToEndOfFile(); done.signal()
    }
    let o = out.fileHandleForReading.readDataToEndOfFile()
    done.wait()
    p.waitUntilExit()
    return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: box.data, as: UTF8.self))
}

final class DataBox: @unchecked Sendable { var data = Data() }

/// Runs `body` on a GCD thread and waits for it without holding one of Swift's cooperative
/// threads. A test that computes for a minute would otherwise hold one of the pool's two threads
/// (on a 2-core machine), and two such tests starve the Studio server the Studio tests run in the
/// same process, whose handlers answer on that pool. Check results after it returns: issues are
/// recorded where the test's task runs.
public func offCooperativePool<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async { continuation.resume(with: Result { try body() }) }
    }
}
