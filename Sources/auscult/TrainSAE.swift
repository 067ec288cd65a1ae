// `auscult train-sae`: a sparse autoencoder on a collected activation store.
import ArgumentParser
import AuscultSAE
import AuscultTensor
import AuscultWhisper
import Foundation

struct TrainSAE: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "train-sae",
        abstract:
            "Train a sparse autoencoder (ReLU+L1, TopK+AuxK, BatchTopK) on an activation store or a model's "
            + "activations.",
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

    func validate() throws {
        guard let a = SAEArchitecture(rawValue: arch), a.isTrainable else {
            throw ValidationError("--arch \(arch): relu, topk or batchtopk (JumpReLU SAEs are loaded, not trained)")
        }
        guard SAETrainingOptions.BDecInit(rawValue: bDecInit) != nil else {
            throw ValidationError("--b-dec-init is mean or median")
        }
        for (flag, value) in [
            ("--steps", steps), ("--batch-size", batchSize), ("--k", k), ("--expansion", expansion),
            ("--checkpoint-every", checkpointEvery), ("--dead-after", deadAfter),
        ] where value < 1 {
            throw ValidationError("\(flag) \(value): must be at least 1")
        }
        if let dSae, dSae < 1 { throw ValidationError("--d-sae \(dSae): must be at least 1") }
        if warmup < 0 { throw ValidationError("--warmup \(warmup): must be 0 or more") }
        guard lr.isFinite && lr > 0 else { throw ValidationError("--lr \(lr): must be a positive number") }
        guard l1.isFinite && l1 >= 0 else { throw ValidationError("--l1 \(l1): must be 0 or a positive number") }
    }

    func run() throws {
        let s = try activationStore()
        let rows = try Tensor.concatenate(s.manifest.clips.map { try s.rows(of: $0.id) })
        let d = s.manifest.width
        var options = SAETrainingOptions()
        options.steps = steps; options.batchSize = batchSize; options.learningRate = lr; options.warmupSteps = warmup
        options.deadAfter = deadAfter; options.seed = seed; options.checkpointEvery = checkpointEvery
        options.bDecInit = SAETrainingOptions.BDecInit(rawValue: bDecInit)!
        let width = dSae ?? expansion * d
        guard k <= width else { throw ValidationError("--k \(k): at most the \(width) latents") }
        let config = SAEConfig(
            architecture: SAEArchitecture(rawValue: arch)!, dIn: d, dSAE: width, k: k, l1: l1)
        let job = SAETrainingJob(
            directory: out, config: config, options: options, hook: s.manifest.hook, model: s.manifest.model)
        let summary = try job.run(rows: rows, progress: ProgressReporter(total: steps, label: "steps")) { step in
            FileHandle.standardError.write("resuming at step \(step) of \(steps)\n".data(using: .utf8)!)
        }
        print(
            String(
                format: "step %d: FVU %.4f over all %d rows (last batch %.4f), L0 %.1f, dead %.3f, loss %.5f"
                    + " · %.0f rows/s · checkpoint %@",
                summary.step, summary.fvuAllRows, summary.rows, summary.fvuLastBatch, summary.l0,
                summary.deadFraction, summary.loss, summary.rowsPerSecond, out))
    }
}
