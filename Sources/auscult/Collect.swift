// `auscult collect`: activations for SAE training, to an on-disk store.
import ArgumentParser
import AuscultSAE
import AuscultWhisper
import Foundation

struct Collect: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Store an encoder hook point's activations over a dataset (only frames that hold audio).",
        discussion: """
            The store is a directory: manifest.json (model, hook, dtype, width, and for
            each clip its shard, first row and frame count) and raw row-major shards
            (shard-K-of-N.bin) that readers map into memory. Clips are appended one by one
            and the manifest is replaced atomically, so running the command again after an
            interruption resumes where it stopped. --shard k/N takes every N-th clip
            starting at k (one job of a Slurm array each); the per-shard stores then merge
            by manifest with --merge.

            Examples:
              auscult collect --hook encoder.blocks.2.hook_resid_post \\
                  --data data/clips --out store/
              auscult collect --hook encoder.blocks.2.mlp.hook_post --data DIR \\
                  --shard 0/4 --out part0/
              auscult collect --merge part0/ part1/ part2/ part3/ --out store/
            """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Encoder hook point (names, aliases: encoder.blocks.2 = its hook_resid_post).") var hook: String?
    @Option(help: "Dataset folder.") var data: String?
    @Option(help: "Output store directory.") var out: String
    @Option(help: "f16 (half the disk) or f32.") var dtype: String = "f16"
    @Option(help: ArgumentHelp("This job's part: clips whose index ≡ k mod N.", valueName: "k/N")) var shard: String =
        "0/1"
    @Option(help: "Use only the first N clips.") var limit: Int?
    @Option(parsing: .upToNextOption, help: "Merge these stores into --out instead of collecting.") var merge:
        [String] = []

    func run() throws {
        if !merge.isEmpty {
            let s = try ActivationStore.merge(merge, into: out)
            print(
                "merged \(merge.count) stores: \(s.manifest.clips.count) clips, \(s.manifest.rows) rows of "
                    + "\(s.manifest.width) → \(out)"
            )
            return
        }
        guard let hook, let data else { throw ValidationError("give --hook and --data (or --merge STORE...)") }
        guard let dt = StoreDType(rawValue: dtype) else { throw ValidationError("--dtype is f16 or f32") }
        let parts = shard.split(separator: "/").compactMap { Int($0) }
        guard parts.count == 2, parts[1] >= 1, parts[0] >= 0, parts[0] < parts[1] else {
            throw ValidationError("--shard wants k/N with 0 ≤ k < N, got '\(shard)'")
        }
        let loaded = try LoadedModel(modelOptions.model)
        let collector = try ActivationCollector(loaded: loaded, hook: hook)
        var items = try Dataset.load(data).items
        if let limit { items = Array(items.prefix(limit)) }
        let store = try ActivationStore(
            directory: out,
            creating: StoreManifest(
                model: loaded.path, hook: collector.hook, dtype: dt,
                width: collector.width, clips: []))
        let before = store.manifest.clips.count
        if before > 0 {
            FileHandle.standardError.write("resuming: \(before) clips already in \(out)\n".data(using: .utf8)!)
        }
        let mine = items.indices.filter { $0 % parts[1] == parts[0] }.count
        let progress = ProgressReporter(total: mine, label: "clips")
        let started = Date()
        try collector.collect(items, into: store, shard: parts[0], of: parts[1], progress: progress) { item, error in
            FileHandle.standardError.write("\nskipping \(item.path): \(error)\n".data(using: .utf8)!)
        }
        let m = store.manifest
        print(
            String(
                format: "%d clips (%d new) · %d rows × %d (%@) of %@ in %.1f s → %@", m.clips.count,
                m.clips.count - before,
                m.rows, m.width, m.dtype.rawValue, m.hook, Date().timeIntervalSince(started), out))
    }
}
