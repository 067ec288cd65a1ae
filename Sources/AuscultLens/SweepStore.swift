// On-disk state of a sweep: results are appended to `results.jsonl` batch by batch, so an
// interrupted run loses at most the batch in flight and a second run picks up where it stopped.
import AuscultTensor
import Foundation

/// The output directory of a sweep.
public struct SweepStore {
    public let directory: String
    var jsonlPath: String { (directory as NSString).appendingPathComponent("results.jsonl") }
    var settingsPath: String { (directory as NSString).appendingPathComponent("run.json") }
    public var resultsPath: String { (directory as NSString).appendingPathComponent("results.json") }
    public var summaryPath: String { (directory as NSString).appendingPathComponent("summary.json") }
    public var reportPath: String { (directory as NSString).appendingPathComponent("report.html") }

    /// Opens `directory` for a run described by `settings` (model, clips, conditions, seed …).
    /// A directory holding a run with other settings is refused unless `fresh`, which starts over.
    public init(directory: String, settings: [String: String], fresh: Bool) throws {
        self.directory = directory
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try OutputLock.hold(directory)
        if fresh { try? fm.removeItem(atPath: jsonlPath) }
        try Self.claim(directory, settings: settings, fresh: fresh, holdsResults: fm.fileExists(atPath: jsonlPath))
    }

    /// Opens `directory` to read a finished or interrupted run, claiming nothing.
    public init(reading directory: String) { self.directory = directory }

    /// The settings the run in the directory recorded (`run.json`), empty when there are none.
    public func settings() -> [String: String] { recordedSettings() ?? [:] }

    /// The recorded settings, nil when there is no readable `run.json`.
    func recordedSettings() -> [String: String]? {
        guard let data = FileManager.default.contents(atPath: settingsPath) else { return nil }
        return try? JSONDecoder().decode([String: String].self, from: data)
    }

    /// Records `settings` in `directory/run.json`; when the directory already holds results made
    /// with other settings, refuses (unless `fresh`) and names the settings that differ, so a
    /// resumed run never mixes in another run's results.
    public static func claim(_ directory: String, settings: [String: String], fresh: Bool, holdsResults: Bool) throws {
        try OutputLock.hold(directory)
        let store = SweepStore(reading: directory)
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        if !fresh, holdsResults, let oldSettings = store.recordedSettings(), oldSettings != settings {
            let diff = Set(settings.keys).union(oldSettings.keys).sorted().filter { oldSettings[$0] != settings[$0] }
            throw LensError(
                .conflictingRun,
                "\(directory) holds results of a run with other settings (\(diff.joined(separator: ", ")) differ); "
                    + "start the run over there or write it to another directory")
        }
        try encoder.encode(settings).write(to: URL(fileURLWithPath: store.settingsPath), options: .atomic)
    }

    /// Entries already on disk (a torn last line from an interruption is dropped).
    public func load() -> [SweepEntry] {
        guard let text = try? String(contentsOfFile: jsonlPath, encoding: .utf8) else { return [] }
        let decoder = JSONDecoder.results()
        return text.split(separator: "\n").compactMap { try? decoder.decode(SweepEntry.self, from: Data($0.utf8)) }
    }

    /// Appends entries and flushes them to disk.
    public func append(_ entries: [SweepEntry]) throws {
        let encoder = JSONEncoder.results()
        var blob = Data()
        for e in entries { blob.append(try encoder.encode(e)); blob.append(0x0A) }
        if !FileManager.default.fileExists(atPath: jsonlPath) {
            FileManager.default.createFile(atPath: jsonlPath, contents: nil)
        }
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: jsonlPath))
        defer { try? h.close() }
        // Drop a torn line left by an interruption before appending.
        let data = try Data(contentsOf: URL(fileURLWithPath: jsonlPath))
        if let last = data.last, last != 0x0A, let cut = data.lastIndex(of: 0x0A).map({ $0 + 1 }) ?? Optional(0) {
            try h.truncate(atOffset: UInt64(cut))
        }
        try h.seekToEnd()
        try h.write(contentsOf: blob)
        try h.synchronize()
    }

    /// Writes `results.json` (the array of entries, in run order) and `summary.json`.
    public func finish(_ entries: [SweepEntry], extra: [String: String] = [:]) throws {
        let encoder = JSONEncoder.results(pretty: true)
        // Written whole or not at all: a full disk leaves the previous file, never half of one.
        try encoder.encode(entries).write(to: URL(fileURLWithPath: resultsPath), options: .atomic)
        struct Summary: Encodable { var conditions: [ConditionSummary]; var info: [String: String] }
        try encoder.encode(Summary(conditions: ConditionSummary.rank(entries), info: extra)).write(
            to: URL(fileURLWithPath: summaryPath), options: .atomic)
    }
}

/// Why an experiment could not run: a code, a message naming the thing and what to do, the cause.
public struct LensError: AuscultError, Sendable {
    public enum Code: String, Sendable { case invalidArgument, conflictingRun, noClips }
    public var code: Code
    public var message: String
    public var underlying: (any Error)?
    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code; self.message = message; self.underlying = cause
    }
}
