// `auscult collect`: run the encoder over a dataset and store one hook point's activations, only
// the frames that hold audio, resumable and shardable (`--shard k/N` takes every N-th clip).
import AuscultAudio
import AuscultTensor
import AuscultWhisper
import Foundation

/// Collects encoder activations at one hook point into an `ActivationStore`.
public struct ActivationCollector {
    public let loaded: LoadedModel
    /// The resolved hook name (an encoder point with a frame axis).
    public let hook: String
    public let block: Int?
    public var batchSize = 8

    /// Validates `hook`: it must be an encoder point whose first axis is frames.
    public init(loaded: LoadedModel, hook: String) throws {
        let reg = HookRegistry(dims: loaded.model.dims)
        let names = try reg.resolve(hook)
        guard names.count == 1, let point = reg.point(names[0]) else {
            throw StoreError(.mismatch, "collect takes one hook point, '\(hook)' names \(names.count)")
        }
        guard point.name.hasPrefix("encoder."), point.shape.first == "F", !point.readOnly else {
            throw StoreError(
                .mismatch,
                "'\(point.name)' has shape \(point.shape); collect stores encoder activations with a frame axis (e.g. "
                    + "encoder.blocks.2.hook_resid_post, encoder.blocks.2.mlp.hook_post)"
            )
        }
        self.loaded = loaded
        self.hook = point.name
        let parts = point.name.split(separator: ".")
        block = parts.count > 2 && parts[1] == "blocks" ? Int(parts[2]) : nil
    }

    /// Values per frame at the hook.
    public var width: Int {
        HookRegistry(dims: loaded.model.dims).point(hook)!.shape.dropFirst().compactMap { Int($0) }.reduce(1, *)
    }

    /// Stores every clip of `items` (shard `k` of `n`: clips whose index ≡ k mod n) not yet in
    /// `store`; unreadable clips are reported through `failed` and skipped.
    public func collect(
        _ items: [DatasetItem], into store: ActivationStore, shard k: Int = 0, of n: Int = 1,
        progress: ProgressReporter? = nil, failed: (DatasetItem, Error) -> Void = { _, _ in }
    ) throws {
        try OutputLock.hold(store.directory)
        let mine = items.enumerated().filter { $0.offset % n == k }.map(\.element)
        let done = store.storedIDs
        let todo = mine.filter { !done.contains($0.id) }
        progress?.advance(by: mine.count - todo.count)
        let shardName = "shard-\(k)-of-\(n).bin"
        let mel = LogMel(nMels: loaded.model.dims.n_mels)
        let dims = loaded.model.dims
        var at = 0
        while at < todo.count {
            let batch = Array(todo[at..<min(todo.count, at + batchSize)])
            at += batch.count
            let good = mel.load(batch, failed: failed)
            if !good.isEmpty {
                let rec = ActivationRecorder { $0 == hook }
                // Run the encoder only as far as the hook's block.
                var x = try loaded.model.encoderInput(Tensor.stack(good.map(\.mel)), hooks: rec)
                if let block {
                    for l in 0...block { x = try loaded.model.encoderBlock(l, x, hooks: rec) }
                } else if hook.hasPrefix("encoder.ln_post") {
                    _ = try loaded.model.encodeBlocks(x, from: 0, hooks: rec)
                }
                guard let acts = rec.store[hook] else {
                    throw StoreError(.missing, "the encoder did not reach \(hook)")
                }
                let w = width
                for (i, g) in good.enumerated() {
                    let rows = acts.row(i).reshaped([dims.n_audio_ctx, w]).rows(
                        0..<g.validFrames(maxFrames: dims.n_audio_ctx))
                    try store.append(id: g.item.id, rows: rows, shard: shardName)
                }
            }
            progress?.advance(by: batch.count)
        }
        progress?.finish()
    }
}
