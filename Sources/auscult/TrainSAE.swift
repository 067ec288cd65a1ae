// `auscult train-sae`: a sparse autoencoder on a collected activation store.
import ArgumentParser
import AuscultReport
import AuscultSAE
import AuscultTensor
import AuscultWhisper
import Foundation

struct TrainSAE: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-sae",
        abstract:
            "Train a sparse autoencoder (ReLU+L1, TopK+AuxK, BatchTopK) on an activation store or a model's activations.",
        discussion: """
            Adam with linear warm-up and a linear decay over the last 20 % of steps,
            gradient-norm clipping, unit-norm decoder rows (the gradient's component along
            each row is removed every step), b_dec initialised at the data mean (or
            geometric median), the encoder at the decoder's transpose. TopK and BatchTopK
            add the AuxK loss (coefficient 1/32) on latents dead for --dead-after rows.
            Train on a store from `auscult collect` (--store), or straight from the model
            (--hook and --data: the activations are collected into OUT/activations first,
            resumably, then trained on). OUT gets the checkpoint in SAELens layout
            (cfg.json + sae_weights.safetensors), the optimiser state, train_log.jsonl
            (loss, FVU, L0, dead fraction, learning rate), summary.json (final FVU over
            every row, throughput) and report.html; running the command again resumes from
            the last checkpoint.

            Example:
              auscult collect --hook encoder.blocks.2 --data data/clips --out store/
              auscult train-sae --store store/ --arch topk --k 32 --expansion 8 \\
                  --steps 2000 --out sae/
              auscult train-sae --hook encoder.blocks.2 --data data/clips --steps 300 \\
                  --batch-size 512 --lr 1e-3 --out sae/
            """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Activation store (from auscult collect).") var store: String?
    @Option(help: "Without --store: the encoder hook point to collect from the model.") var hook: String?
    @Option(help: "Without --store: the dataset folder to run the model on.") var data: String?
    @Option(help: "Output directory.") var out: String
    @Option(help: "relu, topk or batchtopk.") var arch: String = "topk"
    @Option(help: "Latents (default: --expansion × d_in).") var dSae: Int?
    @Option(help: "Latents per input width.") var expansion: Int = 8
    @Option(help: "Active latents per row (topk, batchtopk).") var k: Int = 32
    @Option(help: "L1 coefficient (relu).") var l1: Float = 5e-3
    @Option(help: "Optimiser steps.") var steps: Int = 2000
    @Option(help: "Rows per batch.") var batchSize: Int = 1024
    @Option(help: "Peak learning rate.") var lr: Float = 2e-4
    @Option(help: "Warm-up steps.") var warmup: Int = 100
    @Option(help: "A latent is dead after this many rows without firing.") var deadAfter: Int = 50_000
    @Option(help: "Seed (initialisation and shuffling).") var seed: UInt64 = 0
    @Option(help: "Steps between checkpoints.") var checkpointEvery: Int = 250
    @Option(
        help: ArgumentHelp("b_dec's starting point: the data mean or its geometric median.", valueName: "mean|median"))
    var bDecInit: String = "mean"

    /// The store to train on: --store, or one collected from the model into OUT/activations.
    func activationStore() throws -> ActivationStore {
        if let store {
            guard hook == nil && data == nil else {
                throw ValidationError("give --store, or --hook and --data, not both")
            }
            return try ActivationStore(directory: store)
        }
        guard let hook, let data else {
            throw ValidationError("give --store STORE, or --hook HOOK and --data DIR to collect from the model")
        }
        let loaded = try LoadedModel(modelOptions.model)
        let collector = try ActivationCollector(loaded: loaded, hook: hook)
        let dir = (out as NSString).appendingPathComponent("activations")
        // Resumes an earlier collection there; another hook's activations are refused.
        let s = try ActivationStore(
            directory: dir,
            creating: StoreManifest(
                model: loaded.path, hook: collector.hook, dtype: .f32,
                width: collector.width))
        let items = try Dataset.load(data).items
        try collector.collect(items, into: s, progress: ProgressReporter(total: items.count, label: "collect")) {
            item, error in
            FileHandle.standardError.write("skipping \(item.path): \(error)\n".data(using: .utf8)!)
        }
        return try ActivationStore(directory: dir)
    }

    func run() throws {
        guard let architecture = SAEArchitecture(rawValue: arch) else {
            throw ValidationError("--arch is relu, topk or batchtopk")
        }
        guard steps >= 1, batchSize >= 1, k >= 1 else {
            throw ValidationError("--steps, --batch-size and --k must be at least 1")
        }
        let s = try activationStore()
        let rows = try Tensor.concatenate(s.manifest.clips.map { try s.rows(of: $0.id) })
        let d = s.manifest.width
        var options = SAETrainingOptions()
        options.steps = steps; options.batchSize = batchSize; options.learningRate = lr; options.warmupSteps = warmup
        options.deadAfter = deadAfter; options.seed = seed; options.checkpointEvery = checkpointEvery
        guard let bInit = SAETrainingOptions.BDecInit(rawValue: bDecInit) else {
            throw ValidationError("--b-dec-init is mean or median")
        }
        options.bDecInit = bInit
        let config = SAEConfig(architecture: architecture, dIn: d, dSAE: dSae ?? expansion * d, k: k, l1: l1)
        let logPath = (out as NSString).appendingPathComponent("train_log.jsonl")
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        var trainer = SAETrainer(sae: SparseAutoencoder(config: config, seed: seed), data: rows, options: options)
        if let state = try SAECheckpoint.trainerState(out) {
            let sae = try SAECheckpoint.load(out)
            guard sae.config == config else {
                throw ValidationError(
                    "\(out) holds an SAE with other settings (\(sae.config)); use another --out or delete it")
            }
            trainer = SAETrainer(sae: sae, data: rows, options: options)
            trainer.restore(step: state.step, sae: sae, moments: state.moments, sinceFired: state.sinceFired)
            FileHandle.standardError.write("resuming at step \(state.step) of \(steps)\n".data(using: .utf8)!)
            // Keep the log up to the checkpoint only.
            if let text = try? String(contentsOfFile: logPath, encoding: .utf8) {
                let kept = text.split(separator: "\n").filter { line in
                    (try? JSONDecoder().decode(SAELogLine.self, from: Data(line.utf8)))?.step ?? Int.max <= state.step
                }
                try (kept.joined(separator: "\n") + (kept.isEmpty ? "" : "\n")).write(
                    toFile: logPath, atomically: true, encoding: .utf8)
            }
        } else {
            try? FileManager.default.removeItem(atPath: logPath)
        }
        FileManager.default.createFile(
            atPath: logPath, contents: (try? Data(contentsOf: URL(fileURLWithPath: logPath))) ?? Data())
        let log = try FileHandle(forWritingTo: URL(fileURLWithPath: logPath))
        try log.seekToEnd()
        let progress = ProgressReporter(total: steps, label: "steps")
        progress.advance(by: trainer.step)
        let started = Date(), startStep = trainer.step
        let enc = JSONEncoder()
        enc.outputFormatting = [.sortedKeys]
        try trainer.train(
            log: { line in
                try log.write(contentsOf: try enc.encode(line) + Data([0x0A]))
                progress.advance(by: options.logEvery)
            },
            checkpoint: { t in
                try SAECheckpoint.save(t.sae, to: out, hook: s.manifest.hook, model: s.manifest.model, trainer: t)
            })
        try log.close()
        progress.finish()
        let seconds = Date().timeIntervalSince(started)
        let all = (try String(contentsOfFile: logPath, encoding: .utf8)).split(separator: "\n")
            .compactMap { try? JSONDecoder().decode(SAELogLine.self, from: Data($0.utf8)) }
        var doc = HTMLDocument(
            title: "SAE training — \(s.manifest.hook)",
            subtitle: "\(architecture.rawValue), d_sae \(config.dSAE), k \(k), \(rows.shape[0]) rows of \(d)")
        let x = all.map { Double($0.step) }
        doc.section(
            "Training curves",
            "<div class=\"plots\">"
                + Plot.lines(
                    [("FVU", Array(zip(x, all.map(\.fvu))))], title: "Fraction of variance unexplained", xLabel: "step",
                    yLabel: "FVU")
                + Plot.lines(
                    [("L0", Array(zip(x, all.map(\.l0))))], title: "Active latents per row", xLabel: "step",
                    yLabel: "L0")
                + Plot.lines(
                    [("dead", Array(zip(x, all.map(\.deadFraction))))], title: "Dead fraction", xLabel: "step",
                    yLabel: "fraction")
                + Plot.lines(
                    [("lr", Array(zip(x, all.map { Double($0.lr) })))], title: "Learning rate", xLabel: "step",
                    yLabel: "lr")
                + "</div>")
        try doc.write(to: (out as NSString).appendingPathComponent("report.html"))
        if let last = all.last {
            let rate = Double((trainer.step - startStep) * min(batchSize, rows.shape[0])) / max(seconds, 1e-9)
            let fvu = trainer.fvuOverData()
            let summary: [String: Any] = [
                "step": last.step, "fvu_all_rows": fvu, "fvu_last_batch": last.fvu, "l0": last.l0,
                "dead_fraction": last.deadFraction, "loss": last.loss, "rows": rows.shape[0],
                "rows_per_second": rate, "seconds": seconds,
            ]
            try JSONSerialization.data(withJSONObject: summary, options: [.prettyPrinted, .sortedKeys])
                .write(
                    to: URL(fileURLWithPath: (out as NSString).appendingPathComponent("summary.json")), options: .atomic
                )
            print(
                String(
                    format:
                        "step %d: FVU %.4f over all %d rows (last batch %.4f), L0 %.1f, dead %.3f, loss %.5f · %.0f rows/s · checkpoint %@",
                    last.step, fvu, rows.shape[0], last.fvu, last.l0, last.deadFraction, last.loss, rate, out))
        }
    }
}
