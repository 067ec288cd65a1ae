// Intervention flags shared by subcommands that run the model.
import ArgumentParser
import AuscultTensor
import AuscultWhisper
import Foundation

struct InterventionOptions: ParsableArguments {
    @Option(
        name: .customLong("zero"),
        help: ArgumentHelp("Set a hook point's activation to 0 (repeatable).", valueName: "hook"))
    var zero: [String] = []
    @Option(
        name: .customLong("mean"),
        help: ArgumentHelp(
            "Replace an encoder hook's activation by its mean over the files of this run (per frame).",
            valueName: "hook"))
    var mean: [String] = []
    @Option(
        name: .customLong("skip"),
        help: ArgumentHelp(
            "Skip a block: it returns its input (encoder.blocks.N or decoder.blocks.N; N+M skips several).",
            valueName: "block"))
    var skip: [String] = []
    @Option(
        name: .customLong("swap"),
        help: ArgumentHelp(
            "Replace an encoder hook's activation by the one computed on another file.", valueName: "hook=file"))
    var swap: [String] = []
    @Option(
        name: .customLong("scale"),
        help: ArgumentHelp("Multiply a hook's activation by a factor.", valueName: "hook=factor"))
    var scale: [String] = []
    @Option(
        help: ArgumentHelp(
            "Restrict to these heads (hooks with a head axis, or attention outputs split by head).",
            valueName: "h,h,..."))
    var heads: String?
    @Option(
        help: ArgumentHelp("Restrict encoder interventions to frames start:end (20 ms each).", valueName: "start:end"))
    var frames: String?
    @Option(
        help: ArgumentHelp(
            "Restrict decoder interventions to absolute token positions (prompt included).", valueName: "p,p,..."))
    var positions: String?

    var isEmpty: Bool { zero.isEmpty && mean.isEmpty && skip.isEmpty && swap.isEmpty && scale.isEmpty }

    /// Builds the interventions for `loaded`; `files` are the inputs of this run (for --mean).
    func make(_ loaded: LoadedModel, files: [String]) throws -> [Intervention] {
        let h = try heads.map { try Self.ints($0, "--heads") }
        let f = try frames.map { s -> Range<Int> in
            let p = s.split(separator: ":").map { Int($0) }
            guard p.count == 2, let a = p[0], let b = p[1], a < b else {
                throw ValidationError("--frames wants start:end, got '\(s)'")
            }
            return a..<b
        }
        let pos = try positions.map { Set(try Self.ints($0, "--positions")) }
        func make(_ hook: String, _ kind: InterventionKind) -> Intervention {
            Intervention(hook: hook, kind: kind, heads: h, frames: f, positions: pos)
        }
        var out = zero.map { make($0, .zero) }
        for s in skip {
            let parts = s.split(separator: ".")
            let prefix = parts.dropLast().joined(separator: ".")
            for n in parts.last!.split(separator: "+") { out.append(make("\(prefix).\(n)", .skip)) }
        }
        for s in scale {
            guard let eq = s.lastIndex(of: "="), let factor = Float(s[s.index(after: eq)...]) else {
                throw ValidationError("--scale wants hook=factor, got '\(s)'")
            }
            out.append(make(String(s[..<eq]), .scale(factor)))
        }
        for s in swap {
            guard let eq = s.lastIndex(of: "=") else { throw ValidationError("--swap wants hook=file, got '\(s)'") }
            let donor = try loaded.activation(HookName(String(s[..<eq])), on: .file(String(s[s.index(after: eq)...])))
            out.append(make(String(s[..<eq]), .replace(donor)))
        }
        for hook in mean where !files.isEmpty {
            out.append(
                make(hook, try Intervention.mean(HookName(hook), over: files.map { .file($0) }, model: loaded).kind))
        }
        return out
    }

    static func ints(_ s: String, _ flag: String) throws -> [Int] {
        try s.split(separator: ",").map {
            guard let v = Int($0.trimmingCharacters(in: .whitespaces)) else {
                throw ValidationError("\(flag): '\($0)' is not a number")
            }
            return v
        }
    }
}
