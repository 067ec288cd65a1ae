// What an experiment changes: a component of the model (a block's write to the residual stream,
// a set of blocks, or one hook point, optionally some heads) and how it is ablated.
import AuscultWhisper

/// How a component is ablated.
public enum AblationMode: String, Codable, Sendable, CaseIterable {
    /// Its output is 0; for a block, what it writes to the residual stream is 0 (the block is skipped).
    case zero
    /// Replaced by its mean over the clips of the run (per frame in the encoder, per position in
    /// the decoder, from the clean run teacher-forced on its own transcript).
    case mean
    /// Replaced by its value on another clip (a "data swap"). In the decoder the donor clip's
    /// value is computed on the same tokens, so only the audio differs.
    case resample
}

/// A part of the model an ablation targets.
public struct Component: Hashable, Codable, Sendable {
    public var side: Side
    /// Blocks whose whole write is ablated (`hook == nil`), or the block holding `hook`.
    public var blocks: [Int]
    /// A hook point inside `blocks[0]` (e.g. `encoder.blocks.1.hook_attn_out`), or nil for the block write.
    public var hook: String?
    /// Heads of `hook` to touch (hooks with a head axis or a `[…, d]` width split into heads).
    public var heads: [Int]?
    /// `hook` is a pattern whose every point is ablated at once (`blocks` then lists their blocks).
    public var together = false

    public init(side: Side, blocks: [Int], hook: String? = nil, heads: [Int]? = nil, together: Bool = false) {
        self.side = side; self.blocks = Array(Set(blocks)).sorted(); self.hook = hook; self.heads = heads
        self.together = together
    }

    /// The first block whose output can change: everything before it is reused from the clean run.
    public var firstBlock: Int { blocks.min() ?? 0 }

    /// `encoder.blocks.3`, `encoder.blocks.2+3`, or the hook name (with ` heads=1,2`, and
    /// ` together` for a pattern ablated at once).
    public var name: String {
        if let hook {
            return hook + (heads.map { " heads=" + $0.map(String.init).joined(separator: ",") } ?? "")
                + (together ? " together" : "")
        }
        return "\(side.rawValue).blocks." + blocks.map(String.init).joined(separator: "+")
    }
}

/// One ablation applied to every clip of a run.
public struct Condition: Hashable, Codable, Sendable {
    public var component: Component?
    public var mode: AblationMode
    /// Which donor draw (resample with several donors per clip), 0 otherwise.
    public var draw: Int

    public init(_ component: Component?, _ mode: AblationMode = .zero, draw: Int = 0) {
        self.component = component; self.mode = mode; self.draw = draw
    }

    /// The unablated model.
    public static let clean = Condition(nil)
    public var isClean: Bool { component == nil }
    public var side: Side? { component?.side }

    /// The condition in Auscult's condition syntax (`ConditionSpec`): `skip encoder.blocks.3`,
    /// `zero encoder.blocks.1.hook_attn_out`, `mean decoder.blocks.0`, `swap encoder.blocks.2`
    /// (the donor is a field of each result, since it differs per clip); `clean` for none.
    public var description: String {
        guard let c = component else { return "clean" }
        switch mode {
        case .zero: return (c.hook == nil ? "skip " : "zero ") + c.name
        case .mean: return "mean " + c.name
        case .resample: return "swap " + c.name
        }
    }
}

extension Component {
    /// Components named by `patterns`: a block (`encoder.blocks.3`), a block set
    /// (`decoder.blocks.2+3`), every block of a side (`encoder`, `decoder`, `encoder.blocks.*`),
    /// or hook points (names, aliases, globs such as `encoder.blocks.*.hook_attn_out`), with
    /// `heads` applied to hook targets. `together` makes each pattern of hook points one
    /// component that ablates all its points at once.
    public static func parse(
        _ patterns: [String], registry: HookRegistry, heads: [Int]? = nil, together: Bool = false
    ) throws -> [Component] {
        let dims = registry.dims
        var out = [Component]()
        func layers(_ s: Side) -> Int { s == .encoder ? dims.n_audio_layer : dims.n_text_layer }
        for pattern in patterns {
            let p = pattern.trimmingCharacters(in: .whitespaces)
            if let side = Side(rawValue: p) ?? (p.hasSuffix(".blocks.*") ? Side(rawValue: String(p.dropLast(9))) : nil)
            {
                out += (0..<layers(side)).map { Component(side: side, blocks: [$0]) }
                continue
            }
            if let (side, rest) = splitBlock(p), !rest.contains("."), rest.allSatisfy({ $0.isNumber || $0 == "+" }) {
                let blocks = rest.split(separator: "+").compactMap { Int($0) }
                guard !blocks.isEmpty, blocks.allSatisfy({ $0 >= 0 && $0 < layers(side) }) else {
                    throw ConditionError(
                        .unknownTarget,
                        "'\(p)': the \(side.rawValue) has blocks "
                            + "0…\(layers(side) - 1)")
                }
                out.append(Component(side: side, blocks: blocks))
                continue
            }
            var found = [Component]()
            for name in try registry.resolve(p) {
                guard let (side, rest) = splitBlock(name), let dot = rest.firstIndex(of: "."),
                    let block = Int(rest[..<dot])
                else {
                    throw ConditionError(
                        .unknownTarget,
                        "'\(name)' is outside the blocks; ablation targets are blocks or hook points inside "
                            + "encoder.blocks.N / decoder.blocks.N"
                    )
                }
                if registry.point(name)?.readOnly == true || name.contains("cross_attn.hook_k")
                    || name.contains("cross_attn.hook_v")
                {
                    throw ConditionError(
                        .notAblatable,
                        "'\(name)' cannot be ablated in a sweep (read-only, or computed once per clip); pick "
                            + "attn.hook_z, hook_attn_out, hook_mlp_out or a block"
                    )
                }
                found.append(Component(side: side, blocks: [block], hook: name, heads: heads))
            }
            guard together, found.count > 1 else { out += found; continue }
            guard Set(found.map(\.side)).count == 1 else {
                throw ConditionError(
                    .unsupported, "'\(p)' together: its points are on both sides; name encoder or decoder points")
            }
            out.append(
                Component(side: found[0].side, blocks: found.flatMap(\.blocks), hook: p, heads: heads, together: true))
        }
        return out
    }

    /// `encoder.blocks.REST` → (.encoder, "REST").
    static func splitBlock(_ s: String) -> (Side, Substring)? {
        for side in Side.allCases {
            let prefix = side.rawValue + ".blocks."
            if s.hasPrefix(prefix) { return (side, s.dropFirst(prefix.count)) }
        }
        return nil
    }
}

extension Condition {
    /// The sweep conditions that `spec` names: a removed block set (`skip` or `zero` of blocks) is
    /// one condition; `zero`, `mean` and `swap` of a block, a side or hook patterns give one per
    /// block or point (`swap` draws a donor per clip). Scaling, a fixed donor, frames and positions
    /// belong to single runs, not sweeps, and are refused.
    public static func from(_ spec: ConditionSpec, registry: HookRegistry) throws -> [Condition] {
        guard spec.verb != .scale, spec.source == nil, spec.frames == nil, spec.positions == nil else {
            throw ConditionError(
                .unsupported,
                "\(spec): sweeps zero, mean, swap (a donor drawn per clip) or skip whole activations; "
                    + "scaling, a fixed donor, frames and positions are for single runs")
        }
        let mode: AblationMode
        switch spec.verb {
        case .zero, .skip: mode = .zero
        case .mean: mode = .mean
        case .swap: mode = .resample
        case .scale: mode = .zero  // refused above
        }
        return try Component.parse([spec.target], registry: registry, heads: spec.heads, together: spec.together)
            .map { Condition($0, mode) }
    }
}
