// `auscult ablate`: does component X matter? Seed 000's layer ablations over a dataset.
import ArgumentParser
import AuscultLens
import AuscultReport
import AuscultWhisper
import Foundation

struct Ablate: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Ablation sweep: transcripts, WER and cross-entropy per condition, components ranked by damage.",
        discussion: """
            By default every encoder block and every decoder block is ablated, one at a
            time. Ablating a block means ablating what it writes to the residual stream
            (attention + MLP outputs):
              zero      the block writes nothing (it is skipped: resid_post = resid_pre)
              mean      it writes its mean over the clips of the run (per frame / per
                        position)
              resample  it writes what it writes on another clip (a random donor,
                        --donors draws); for decoder blocks the donor's audio is read
                        with the same tokens
            Targets can also be hook points, down to single heads:
              --targets 'encoder.blocks.*.hook_attn_out'
              --targets decoder.blocks.2.attn.hook_z --heads 0,3
            Per clip and condition: transcript, WER (against the dataset's transcript),
            cross-entropy of the clean transcript teacher-forced under the ablation, and
            its change from clean. Results are appended to OUT/results.jsonl as they are
            made; running the same command again resumes. At the end: OUT/results.json,
            OUT/summary.json and OUT/report.html.

            Example:
              auscult ablate --data data/clips --out out/ablate --modes zero,resample \\
                  --donors 1
            """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var dataOptions: DataOptions
    @OptionGroup(title: "Prompt and prefix") var promptOptions: PromptOptions
    @Option(
        parsing: .upToNextOption,
        help: ArgumentHelp(
            "What to ablate under every --modes mode: encoder, decoder, encoder.blocks.3, decoder.blocks.2+3, "
                + "or hook patterns (default: encoder decoder, unless --condition is given).",
            valueName: "pattern"))
    var targets: [String] = []
    @Option(
        name: .customLong("condition"),
        help: ArgumentHelp(
            "A condition in Auscult's syntax (repeatable): 'skip decoder.blocks.2+3', "
                + "'zero decoder.blocks.1.attn.hook_z heads=0,3', 'swap encoder.blocks.2', "
                + "'zero decoder.blocks.*.hook_cross_attn_out together' (every point at once; docs/conditions.md).",
            valueName: "text"))
    var conditions: [String] = []
    @Option(help: ArgumentHelp("Ablation modes, comma-separated: zero, mean, resample.", valueName: "modes"))
    var modes: String = "zero,resample"
    @Option(help: "Restrict hook targets to these heads (comma-separated).") var heads: String?
    @Option(help: "Donor draws per clip for resample.") var donors: Int = 1
    @Option(help: "Seed for donor draws.") var seed: UInt64 = 0
    @Option(help: "Encoder rows per batch.") var batchSize: Int = 8

    func validate() throws {
        if donors < 1 { throw ValidationError("--donors must be at least 1") }
        if batchSize < 1 { throw ValidationError("--batch-size must be at least 1") }
        for m in modes.split(separator: ",") where AblationMode(rawValue: String(m)) == nil {
            throw ValidationError("unknown mode '\(m)'; use zero, mean, resample")
        }
    }

    func run() throws {
        let loaded = try LoadedModel(modelOptions.model)
        let items = try dataOptions.items()
        let h = try heads.map { try InterventionOptions.ints($0, "--heads") }
        let registry = HookRegistry(dims: loaded.model.dims)
        let patterns = targets.isEmpty && conditions.isEmpty ? ["encoder", "decoder"] : targets
        let components = try Component.parse(patterns, registry: registry, heads: h)
        let modeList = modes.split(separator: ",").compactMap { AblationMode(rawValue: String($0)) }
        var list = components.flatMap { c in modeList.map { Condition(c, $0) } }
        for text in conditions {
            for c in try Condition.from(ConditionSpec(parsing: text), registry: registry) where !list.contains(c) {
                list.append(c)
            }
        }
        var options = SweepOptions(conditions: list)
        options.donors = donors
        options.seed = seed
        options.encoderBatch = batchSize
        try promptOptions.apply(to: &options.decoding, loaded)
        let settings = [
            "command": "ablate", "model": loaded.path, "model_sha256": loaded.contentHash,
            "clips": items.map(\.id).joined(separator: "|"),
            "conditions": options.conditions.map(\.description).joined(separator: "|"),
            "donors": "\(donors)", "seed": "\(seed)",
        ].merging(options.decoding.contextSettings) { a, _ in a }
        let (entries, store, seconds) = try SweepRunner.run(
            loaded, items: items, options: options, data: dataOptions, settings: settings)
        try store.finish(entries, extra: ["model": loaded.path, "seconds": String(format: "%.2f", seconds)])
        try SweepReport.ablation(
            entries, title: "Ablation sweep — \((loaded.path as NSString).lastPathComponent)",
            subtitle:
                "\(items.count) clips from \(dataOptions.data) · modes \(modes) · \(donors) donor draw(s), seed \(seed)"
        )
        .write(to: store.reportPath)
        SweepRunner.printSummary(entries, store: store, seconds: seconds)
    }
}

struct Layers: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract:
            "Layer removal (as in whisper_logit_lens): remove the last k blocks of the encoder or decoder, for every "
            + "k.",
        discussion: """
            Removing a block means it returns its input. For each side and each k = 1 … n
            the last k blocks are removed; --remove names other sets (encoder.blocks.1+3).
            The report plots WER against blocks kept and marks where repetition loops or
            length-limit hits start. Removing encoder blocks from the end is also the
            encoder lens: the decoder reads ln_post of an intermediate block.

            Example:
              auscult layers --data data/clips --out out/layers --side encoder
            """)

    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var dataOptions: DataOptions
    @OptionGroup(title: "Prompt and prefix") var promptOptions: PromptOptions
    @Option(help: ArgumentHelp("encoder, decoder or both.", valueName: "side")) var side: String = "both"
    @Option(
        parsing: .upToNextOption,
        help: ArgumentHelp("Block sets to remove instead of the last-k series.", valueName: "blocks"))
    var remove: [String] = []

    func run() throws {
        let loaded = try LoadedModel(modelOptions.model)
        let items = try dataOptions.items()
        let dims = loaded.model.dims
        var comps = [Component]()
        if remove.isEmpty {
            let sides: [Side] =
                side == "both"
                ? [.encoder, .decoder]
                : try [Side(rawValue: side) ?? { throw ValidationError("--side: encoder, decoder or both") }()]
            for s in sides {
                let n = s == .encoder ? dims.n_audio_layer : dims.n_text_layer
                for k in 1...n { comps.append(Component(side: s, blocks: Array((n - k)..<n))) }
            }
        } else {
            comps = try Component.parse(remove, registry: HookRegistry(dims: dims)).filter { $0.hook == nil }
        }
        var options = SweepOptions(conditions: comps.map { Condition($0, .zero) })
        try promptOptions.apply(to: &options.decoding, loaded)
        let settings = [
            "command": "layers", "model": loaded.path, "model_sha256": loaded.contentHash,
            "clips": items.map(\.id).joined(separator: "|"),
            "conditions": options.conditions.map(\.description).joined(separator: "|"),
        ].merging(options.decoding.contextSettings) { a, _ in a }
        let (entries, store, seconds) = try SweepRunner.run(
            loaded, items: items, options: options, data: dataOptions, settings: settings)
        try store.finish(entries, extra: ["model": loaded.path, "seconds": String(format: "%.2f", seconds)])
        try SweepReport.layers(
            entries, layers: ["encoder": dims.n_audio_layer, "decoder": dims.n_text_layer],
            title: "Layer removal — \((loaded.path as NSString).lastPathComponent)",
            subtitle: "\(items.count) clips from \(dataOptions.data)"
        )
        .write(to: store.reportPath)
        SweepRunner.printSummary(entries, store: store, seconds: seconds, top: 16)
    }
}
