// What `auscult studio` serves with no arguments: the demo's results (scripts/demo.sh) on the
// bundled clips and tiny.en: the raw-neuron index of encoder.blocks.2.mlp.hook_post (the layer
// er537's "Interpreting OpenAI's Whisper" and FREUD find phoneme neurons in) and the demo's TopK
// SAE on encoder.blocks.2.hook_resid_post with its index. Whatever is missing is built first,
// each step resuming what an earlier run left.
import AuscultSAE
import AuscultTensor
import AuscultWhisper
import Foundation

/// The demo's files under `out`, and how to build the missing ones.
public struct StudioDemo {
    public static let neuronHook = "encoder.blocks.2.mlp.hook_post"
    public static let saeHook = "encoder.blocks.2.hook_resid_post"
    /// The demo SAE's settings, as scripts/demo.sh trains it.
    public static let saeSettings = (k: 32, expansion: 8, steps: 300, batchSize: 512, lr: Float(1e-3), warmup: 30)

    public let out: String
    public let data: String
    public init(out: String = "out", data: String = "data/clips") { self.out = out; self.data = data }

    public var neuronIndex: String { out + "/neurons.sqlite" }
    public var saeDirectory: String { out + "/sae/topk" }
    public var saeIndex: String { out + "/sae/features.sqlite" }
    var storeDirectory: String { out + "/sae/store" }

    /// Builds what is missing (the neuron index; the SAE's activations, training and index) and
    /// returns the index files to serve. `log` gets one line per step.
    public func prepare(loaded: LoadedModel, log: (String) -> Void) throws -> [String] {
        let items = try Dataset.load(data).items
        let failed: (DatasetItem, Error) -> Void = { item, error in log("skipping \(item.path): \(error)") }
        if !Self.complete(neuronIndex, clips: items.count) {
            log("building the neuron index of \(Self.neuronHook) over \(items.count) clips → \(neuronIndex)")
            try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
            let builder = try FeatureIndexBuilder(loaded: loaded, source: .neurons(hook: Self.neuronHook))
            try builder.build(
                items, path: neuronIndex, fresh: Self.outdated(neuronIndex),
                progress: ProgressReporter(total: items.count, label: "clips"),
                failed: failed)
        }
        if !FileManager.default.fileExists(atPath: saeDirectory + "/cfg.json") {
            log("collecting \(Self.saeHook) over \(items.count) clips → \(storeDirectory)")
            let collector = try ActivationCollector(loaded: loaded, hook: Self.saeHook)
            let store = try ActivationStore(
                directory: storeDirectory,
                creating: StoreManifest(
                    model: loaded.path, hook: collector.hook, dtype: .f16, width: collector.width, clips: []))
            try collector.collect(
                items, into: store, progress: ProgressReporter(total: items.count, label: "clips"), failed: failed)
            let s = Self.saeSettings
            log("training the demo's TopK SAE (k \(s.k), \(s.expansion)× \(collector.width)) → \(saeDirectory)")
            let rows = try Tensor.concatenate(store.manifest.clips.map { try store.rows(of: $0.id) })
            var options = SAETrainingOptions()
            options.steps = s.steps; options.batchSize = s.batchSize; options.learningRate = s.lr
            options.warmupSteps = s.warmup
            let config = SAEConfig(
                architecture: .topk, dIn: collector.width, dSAE: s.expansion * collector.width, k: s.k)
            let job = SAETrainingJob(
                directory: saeDirectory, config: config, options: options, hook: collector.hook, model: loaded.path)
            _ = try job.run(rows: rows, progress: ProgressReporter(total: s.steps, label: "steps"))
        }
        if !Self.complete(saeIndex, clips: items.count) {
            log("indexing the SAE's latents over \(items.count) clips → \(saeIndex)")
            let sae = try SAECheckpoint.load(saeDirectory)
            let builder = try FeatureIndexBuilder(
                loaded: loaded,
                source: .sae(sae, hook: Self.saeHook, path: (saeDirectory as NSString).standardizingPath))
            try builder.build(
                items, path: saeIndex, fresh: Self.outdated(saeIndex),
                progress: ProgressReporter(total: items.count, label: "clips"), failed: failed)
        }
        return [neuronIndex, saeIndex]
    }

    /// Whether `path` holds an index of an earlier version (rebuilt from scratch, not resumed).
    static func outdated(_ path: String) -> Bool {
        guard let index = try? FeatureIndex(path: path) else { return false }
        return index.meta["version"] != FeatureIndex.currentVersion
    }

    /// Whether `path` is an index of the current version holding every clip.
    static func complete(_ path: String, clips: Int) -> Bool {
        guard let index = try? FeatureIndex(path: path), index.meta["version"] == FeatureIndex.currentVersion,
            let n = try? index.db.rows("SELECT COUNT(*) FROM clips")[0][0].int
        else { return false }
        return n >= clips
    }
}
