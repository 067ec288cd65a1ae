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
            "Replace a hook's activation (or a decoder block's write) by its value on another file: encoder points "
                + "frame by frame, decoder ones from that file run beside this one on the same tokens.",
            valueName: "hook=file"))
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

    @Option(
        name: .customLong("condition"),
        help: ArgumentHelp(
            "A condition in Auscult's syntax (repeatable), e.g. 'zero encoder.blocks.1.hook_attn_out heads=0,3', "
                + "'skip decoder.blocks.2+3', 'scale encoder.blocks.2.mlp.hook_post by 2 frames=0:150', "
                + "'swap encoder.blocks.2.hook_resid_post from other.wav' (docs/conditions.md).",
            valueName: "text"))
    var conditions: [String] = []

    var isEmpty: Bool {
        zero.isEmpty && mean.isEmpty && skip.isEmpty && swap.isEmpty && scale.isEmpty && conditions.isEmpty
    }

    /// The conditions the flags name, in the one condition syntax (`ConditionSpec`).
    func specs() throws -> [ConditionSpec] {
        let h = try heads.map { try Self.ints($0, "--heads") }
        let f = try frames.map { s -> Range<Int> in
            let p = s.split(separator: ":").map { Int($0) }
            guard p.count == 2, let a = p[0], let b = p[1], a >= 0, a < b else {
                throw ValidationError("--frames wants start:end with 0 ≤ start < end, got '\(s)'")
            }
            return a..<b
        }
        let pos = try positions.map { Set(try Self.ints($0, "--positions")) }
        if h != nil || f != nil || pos != nil, zero.isEmpty && scale.isEmpty && swap.isEmpty && mean.isEmpty {
            throw ValidationError(
                "--heads, --frames and --positions restrict --zero, --scale, --swap and --mean"
                    + (skip.isEmpty ? "; none is given" : "; --skip removes whole blocks")
                    + (conditions.isEmpty ? "" : " (a --condition takes its own: 'zero HOOK heads=0,3')"))
        }
        func spec(
            _ verb: ConditionSpec.Verb, _ target: String, factor: Float? = nil, source: String? = nil
        ) throws
            -> ConditionSpec
        {
            let blocks = verb == .skip
            return try ConditionSpec(
                verb, target, factor: factor, source: source, heads: blocks ? nil : h, frames: blocks ? nil : f,
                positions: blocks ? nil : pos)
        }
        func split(_ s: String, _ flag: String, _ what: String) throws -> (String, String) {
            guard let eq = s.lastIndex(of: "=") else { throw ValidationError("\(flag) wants hook=\(what), got '\(s)'") }
            return (String(s[..<eq]), String(s[s.index(after: eq)...]))
        }
        var out = try zero.map { try spec(.zero, $0) }
        out += try skip.map { try spec(.skip, $0) }
        for s in scale {
            let (hook, value) = try split(s, "--scale", "factor")
            guard let factor = Float(value) else { throw ValidationError("--scale \(s): '\(value)' is not a number") }
            out.append(try spec(.scale, hook, factor: factor))
        }
        for s in swap {
            let (hook, file) = try split(s, "--swap", "file")
            out.append(try spec(.swap, hook, source: file))
        }
        out += try mean.map { try spec(.mean, $0) }
        out += try conditions.map(ConditionSpec.init(parsing:))
        return out
    }

    /// Builds the interventions for `loaded`; `files` are the inputs of this run (for mean).
    func make(_ loaded: LoadedModel, files: [String]) throws -> [Intervention] {
        try specs().flatMap { try Intervention.make($0, model: loaded, clips: files.map { .file($0) }) }
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
