// `auscult hooks`: every hook point of a model with its shape.
import ArgumentParser
import AuscultWhisper
import Foundation

struct Hooks: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "List the hook points of a model with their shapes (F frames, T tokens).",
        discussion: """
            Names follow TransformerLens with encoder/decoder prefixes. Anywhere a hook is
            asked for you may also write a module-style alias (encoder.blocks.2 = its
            hook_resid_post, encoder.blocks.2.mlp.1 = mlp.hook_post) or a glob
            (encoder.blocks.*.hook_resid_post). Points marked opt-in (attention scores,
            patterns, per-head results) are computed only when requested; read-only ones
            (patterns, scores, LayerNorm scales) can be observed, not replaced.
            """)
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "text or json.") var format: String = "text"
    @Argument(help: "Optional patterns to filter by (names, aliases, globs).") var patterns: [String] = []

    func run() throws {
        let weights = try WeightLoader.load(try ModelStore.resolve(modelOptions.model))
        let reg = HookRegistry(dims: weights.dims)
        var points = reg.points
        if !patterns.isEmpty {
            let names = Set(try patterns.flatMap { try reg.resolve($0) })
            points = points.filter { names.contains($0.name) }
        }
        if format == "json" {
            let data = try JSONEncoder().encode(points)
            print(String(data: data, encoding: .utf8)!)
        } else {
            let w = points.map(\.name.count).max() ?? 0
            for p in points {
                print(
                    p.name.padding(toLength: w + 2, withPad: " ", startingAt: 0) + "[" + p.shape.joined(separator: ", ")
                        + "]" + (p.optIn ? "  opt-in" : "") + (p.readOnly ? "  read-only" : ""))
            }
        }
    }
}
