// `auscult train-sae` as a library job: training into a checkpoint directory that resumes from
// its last checkpoint, with the log, the summary and the report written beside it.
import AuscultReport
import AuscultTensor
import AuscultWhisper
import Foundation

/// What a training run ends with (`summary.json`).
public struct SAETrainingSummary: Codable, Sendable {
    public var step: Int
    /// FVU over every row of the data, after the last step.
    public var fvuAllRows: Double
    public var fvuLastBatch: Double, l0: Double, deadFraction: Double, loss: Double
    public var rows: Int
    /// Rows seen per second in this run, and its duration.
    public var rowsPerSecond: Double, seconds: Double
    /// The step this run resumed from (0 for a fresh start).
    public var resumedFrom: Int
    enum CodingKeys: String, CodingKey {
        case step, l0, loss, rows, seconds
        case fvuAllRows = "fvu_all_rows", fvuLastBatch = "fvu_last_batch", deadFraction = "dead_fraction"
        case rowsPerSecond = "rows_per_second", resumedFrom = "resumed_from"
    }
}

/// Trains an SAE into `directory` (SAELens layout, optimiser state, `train_log.jsonl`,
/// `summary.json`, `report.html`), resuming from the checkpoint there.
///
/// A checkpoint is resumed only when it was made by the same training: the same architecture
/// and sizes, hook, model, rows (by content: SHA-256 of their values), and every option that
/// shapes the run (steps, batch size, learning rate, warm-up, seed, dead-after, b_dec start),
/// recorded in `run.json`. Anything else
/// is refused, naming what differs, instead of continuing another run's optimiser.
public struct SAETrainingJob {
    public let directory: String
    public var config: SAEConfig
    public var options: SAETrainingOptions
    /// The hook and model the rows come from (the store's manifest).
    public var hook: String, model: String

    public init(directory: String, config: SAEConfig, options: SAETrainingOptions, hook: String, model: String) {
        self.directory = directory; self.config = config; self.options = options; self.hook = hook
        self.model = model
    }

    var logPath: String { (directory as NSString).appendingPathComponent("train_log.jsonl") }
    var settingsPath: String { (directory as NSString).appendingPathComponent("run.json") }

    /// What a checkpoint must share with this run to be resumed.
    func settings(rows: Int) -> [String: String] {
        let o = options
        return [
            "architecture": config.architecture.rawValue, "d_in": "\(config.dIn)", "d_sae": "\(config.dSAE)",
            "k": "\(config.k)", "l1": "\(config.l1)", "hook": hook, "model": model, "rows": "\(rows)",
            "steps": "\(o.steps)", "batch_size": "\(o.batchSize)", "lr": "\(o.learningRate)",
            "warmup": "\(o.warmupSteps)", "seed": "\(o.seed)", "dead_after": "\(o.deadAfter)",
            "b_dec_init": o.bDecInit.rawValue,
        ]
    }

    /// Trains on `rows` `[N, d_in]` (every value finite); `progress` counts steps, `resuming` is
    /// told the step a compatible checkpoint restarts from.
    public func run(
        rows: Tensor, progress: ProgressReporter? = nil, resuming: ((Int) -> Void)? = nil
    ) throws -> SAETrainingSummary {
        guard config.architecture.isTrainable else {
            throw StoreError(
                .mismatch, "a \(config.architecture.rawValue) SAE is loaded, not trained (relu, topk, batchtopk)")
        }
        guard rows.rank == 2, rows.shape[1] == config.dIn, rows.shape[0] > 0 else {
            throw StoreError(.mismatch, "training rows of shape \(rows.shape) for an SAE reading \(config.dIn) values")
        }
        if let bad = rows.firstNonFiniteIndex {
            throw StoreError(
                .corrupt,
                "row \(bad / config.dIn) of the training data holds \(rows.scalars[bad]); values must be "
                    + "finite")
        }
        let fm = FileManager.default
        try fm.createDirectory(atPath: directory, withIntermediateDirectories: true)
        try OutputLock.hold(directory)
        var wanted = settings(rows: rows.shape[0])
        // The rows by content: a store collected again (another model, other clips) is other data.
        var hasher = SHA256Hasher()
        hasher.update(rows.scalars)
        wanted["data_sha256"] = hasher.hexDigest()
        var trainer = SAETrainer(
            sae: SparseAutoencoder(config: config, seed: options.seed), data: rows, options: options)
        var resumedFrom = 0
        if let state = try SAECheckpoint.trainerState(directory) {
            let recorded = fm.contents(atPath: settingsPath).flatMap {
                try? JSONDecoder().decode([String: String].self, from: $0)
            }
            let sae = try SAECheckpoint.load(directory)
            let differ =
                recorded.map { r in Set(r.keys).union(wanted.keys).sorted().filter { r[$0] != wanted[$0] } }
                ?? (sae.config == config ? [] : ["architecture or sizes"])
            guard differ.isEmpty, sae.config == config, sae.applyBDecToInput else {
                throw StoreError(
                    .occupied,
                    "\(directory) holds an SAE trained with other settings (\(differ.joined(separator: ", ")) "
                        + "differ); train it in another directory or start this one over")
            }
            trainer = SAETrainer(sae: sae, data: rows, options: options)
            trainer.restore(step: state.step, sae: sae, moments: state.moments, sinceFired: state.sinceFired)
            resumedFrom = state.step
            resuming?(state.step)
            try keepLog(through: state.step)
        } else {
            try? fm.removeItem(atPath: logPath)
        }
        let encoder = JSONEncoder()
        encoder.outputFormatting = [.sortedKeys, .prettyPrinted]
        try encoder.encode(wanted).write(to: URL(fileURLWithPath: settingsPath), options: .atomic)
        if !fm.fileExists(atPath: logPath) { _ = fm.createFile(atPath: logPath, contents: nil) }
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        defer { try? log.close() }
        try log.seekToEnd()
        progress?.advance(by: trainer.step)
        let started = Date()
        // A diverged step's NaN loss is logged as "NaN", not a failed write.
        let lineEncoder = JSONEncoder.results()
        try trainer.train(
            log: { line in
                try log.write(contentsOf: try lineEncoder.encode(line) + Data([0x0A]))
                progress?.advance(by: options.logEvery)
            },
            checkpoint: { t in try SAECheckpoint.save(t.sae, to: directory, hook: hook, model: model, trainer: t) })
        progress?.finish()
        let seconds = Date().timeIntervalSince(started)
        let lines = try loggedLines()
        guard let last = lines.last else {
            throw StoreError(.corrupt, "\(logPath): no training step was logged")
        }
        let summary = SAETrainingSummary(
            step: last.step, fvuAllRows: trainer.fvuOverData(), fvuLastBatch: last.fvu, l0: last.l0,
            deadFraction: last.deadFraction, loss: last.loss, rows: rows.shape[0],
            rowsPerSecond: Double((trainer.step - resumedFrom) * min(options.batchSize, rows.shape[0]))
                / max(seconds, 1e-9),
            seconds: seconds, resumedFrom: resumedFrom)
        try encoder.encode(summary).write(
            to: URL(fileURLWithPath: (directory as NSString).appendingPathComponent("summary.json")), options: .atomic)
        try SAEReport.training(lines, hook: hook, config: config, rows: rows.shape[0]).write(
            to: (directory as NSString).appendingPathComponent("report.html"))
        return summary
    }

    /// Every line of the training log.
    public func loggedLines() throws -> [SAELogLine] {
        guard let text = try? String(contentsOfFile: logPath, encoding: .utf8) else { return [] }
        return text.split(separator: "\n").compactMap {
            try? JSONDecoder.results().decode(SAELogLine.self, from: Data($0.utf8))
        }
    }

    /// Drops log lines past the checkpoint a resumed run restarts from.
    func keepLog(through step: Int) throws {
        guard let text = try? String(contentsOfFile: logPath, encoding: .utf8) else { return }
        let kept = text.split(separator: "\n").filter { line in
            (try? JSONDecoder.results().decode(SAELogLine.self, from: Data(line.utf8)))?.step ?? Int.max <= step
        }
        try (kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).write(
            toFile: logPath, atomically: true, encoding: .utf8)
    }
}
