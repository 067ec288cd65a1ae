// The condition syntax: one line saying what a run changes, shared by the command line
// (`--condition`, and the `--zero`/`--scale`/… flags, which build the same value), sweeps and the
// tests against openai-whisper's reference runs.
//
//     zero encoder.blocks.1.hook_attn_out heads=0,3
//     skip decoder.blocks.2+3
//     scale encoder.blocks.2.mlp.hook_post by 2 frames=0:150
//     swap encoder.blocks.2.hook_resid_post from jfk
//     mean decoder.blocks.0.hook_mlp_out positions=3,4
import AuscultTensor

/// One parsed condition: a verb, its target (a hook point, pattern or block set) and what the
/// verb needs (a factor, a donor), restricted by optional selectors.
///
/// `ConditionSpec(parsing: s).description` is the canonical spelling of `s`, and parsing it again
/// gives the same value. Every value is checked here, so a spec that exists is well formed.
public struct ConditionSpec: Hashable, Sendable, CustomStringConvertible {
    public enum Verb: String, Sendable, CaseIterable {
        /// Set the activation to 0 (for a block: it writes nothing, i.e. `skip`).
        case zero
        /// Replace it by its mean over the clips of a run.
        case mean
        /// The blocks return their input (`encoder.blocks.3`, `decoder.blocks.2+3`).
        case skip
        /// Replace it by its value on another clip: `from` names the donor; without one a sweep
        /// draws a donor per clip.
        case swap
        /// Multiply it by `by`.
        case scale
    }
    public var verb: Verb
    /// A hook point, alias or glob, or a block set `encoder.blocks.N[+M…]`.
    public var target: String
    /// The factor of `scale`.
    public var factor: Float?
    /// The donor of `swap` (a file, or a clip id the caller resolves).
    public var source: String?
    /// Heads of the target's attention to touch.
    public var heads: [Int]?
    /// Encoder frames to touch.
    public var frames: Range<Int>?
    /// Absolute decoder token positions to touch.
    public var positions: Set<Int>?
    /// Every point a pattern names changed in one condition (`zero decoder.blocks.*.hook_cross_attn_out
    /// together`): a sweep otherwise makes one condition per point. A single run always changes
    /// them all, so there it changes nothing.
    public var together = false

    /// A condition from its parts; throws a `ConditionError` for a missing or impossible part.
    public init(
        _ verb: Verb, _ target: String, factor: Float? = nil, source: String? = nil, heads: [Int]? = nil,
        frames: Range<Int>? = nil, positions: Set<Int>? = nil, together: Bool = false
    ) throws {
        self.verb = verb; self.target = target; self.factor = factor; self.source = source
        self.heads = heads; self.frames = frames; self.positions = positions; self.together = together
        try check()
    }

    /// Parses `VERB TARGET [by FACTOR] [from SOURCE] [heads=H,H…] [frames=A:B] [positions=P,P…]
    /// [together]`.
    public init(parsing text: String) throws {
        let words = text.split(whereSeparator: { $0 == " " || $0 == "\t" }).map(String.init)
        guard words.count >= 2, let verb = Verb(rawValue: words[0]) else {
            throw ConditionError(
                .syntax,
                "condition '\(text)': expected VERB TARGET with VERB one of "
                    + Verb.allCases.map(\.rawValue).joined(separator: ", "))
        }
        var factor: Float?, source: String?, heads: [Int]?, frames: Range<Int>?, positions: Set<Int>?
        var together = false
        var i = 2
        func value(after word: String) throws -> String {
            guard i + 1 < words.count else {
                throw ConditionError(
                    .syntax,
                    "condition '\(text)': '\(word)' needs a "
                        + "value")
            }
            i += 1
            return words[i]
        }
        while i < words.count {
            let w = words[i]
            if w == "by" {
                let v = try value(after: w)
                guard let f = Float(v) else {
                    throw ConditionError(.syntax, "condition '\(text)': factor '\(v)' is not a number")
                }
                factor = f
            } else if w == "from" {
                source = try value(after: w)
            } else if w == "together" {
                together = true
            } else if let (key, v) = Self.selector(w) {
                switch key {
                case "heads": heads = try Self.integers(v, "heads", in: text)
                case "positions": positions = Set(try Self.integers(v, "positions", in: text))
                default:
                    let ends = v.split(separator: ":", omittingEmptySubsequences: false).map { Int($0) }
                    guard ends.count == 2, let a = ends[0], let b = ends[1] else {
                        throw ConditionError(.syntax, "condition '\(text)': frames '\(v)' is not START:END")
                    }
                    guard a >= 0, a < b else {
                        throw ConditionError(
                            .invalidSelector,
                            "condition '\(text)': frames \(a):\(b) is empty or "
                                + "negative")
                    }
                    frames = a..<b
                }
            } else {
                throw ConditionError(
                    .syntax,
                    "condition '\(text)': unexpected '\(w)'; after the target come 'by FACTOR', 'from SOURCE', "
                        + "heads=…, frames=START:END, positions=…, together")
            }
            i += 1
        }
        try self.init(
            verb, words[1], factor: factor, source: source, heads: heads, frames: frames, positions: positions,
            together: together)
    }

    /// The canonical spelling.
    public var description: String {
        var s = "\(verb.rawValue) \(target)"
        if let factor { s += " by \(factor)" }
        if let source { s += " from \(source)" }
        if let heads { s += " heads=" + heads.map(String.init).joined(separator: ",") }
        if let frames { s += " frames=\(frames.lowerBound):\(frames.upperBound)" }
        if let positions { s += " positions=" + positions.sorted().map(String.init).joined(separator: ",") }
        if together { s += " together" }
        return s
    }

    /// The blocks of a `side.blocks.N[+M…]` target, nil for a hook target.
    public var blocks: (side: Side, indices: [Int])? {
        for side in Side.allCases {
            let prefix = side.rawValue + ".blocks."
            guard target.hasPrefix(prefix) else { continue }
            let rest = target.dropFirst(prefix.count)
            let parts = rest.split(separator: "+", omittingEmptySubsequences: false)
            let indices = parts.compactMap { Int($0) }
            return indices.count == parts.count && !indices.isEmpty ? (side, indices) : nil
        }
        return nil
    }

    private func check() throws {
        let me = "condition '\(verb.rawValue) \(target)'"
        guard !target.isEmpty, !target.contains(" ") else { throw ConditionError(.syntax, "\(me): no target") }
        switch verb {
        case .scale:
            guard let factor else { throw ConditionError(.syntax, "\(me): scale needs 'by FACTOR'") }
            guard factor.isFinite else {
                throw ConditionError(.invalidSelector, "\(me): factor \(factor) is not a finite number")
            }
        default:
            if factor != nil { throw ConditionError(.syntax, "\(me): only scale takes 'by FACTOR'") }
        }
        if source != nil && verb != .swap { throw ConditionError(.syntax, "\(me): only swap takes 'from SOURCE'") }
        if verb == .skip {
            guard blocks != nil else {
                throw ConditionError(
                    .unknownTarget, "\(me): skip takes blocks such as encoder.blocks.3 or decoder.blocks.2+3")
            }
            guard heads == nil, frames == nil, positions == nil else {
                throw ConditionError(.invalidSelector, "\(me): a skipped block has no heads, frames or positions")
            }
        }
        if together && (blocks != nil || verb == .skip) {
            throw ConditionError(
                .syntax, "\(me): 'together' joins the points of a pattern; a block set is removed together already")
        }
        if let heads, let bad = heads.first(where: { $0 < 0 }) {
            throw ConditionError(.invalidSelector, "\(me): head \(bad) is negative")
        }
        if let positions, let bad = positions.first(where: { $0 < 0 }) {
            throw ConditionError(.invalidSelector, "\(me): position \(bad) is negative")
        }
        if frames != nil && target.hasPrefix("decoder.") {
            throw ConditionError(
                .invalidSelector,
                "\(me): frames select encoder frames; decoder targets take "
                    + "positions")
        }
        if positions != nil && !target.hasPrefix("decoder.") {
            throw ConditionError(
                .invalidSelector,
                "\(me): positions select decoder tokens; encoder targets take "
                    + "frames")
        }
    }

    static func selector(_ word: String) -> (String, String)? {
        guard let eq = word.firstIndex(of: "=") else { return nil }
        let key = String(word[..<eq])
        guard ["heads", "frames", "positions"].contains(key) else { return nil }
        return (key, String(word[word.index(after: eq)...]))
    }

    static func integers(_ text: String, _ what: String, in condition: String) throws -> [Int] {
        let values = text.split(separator: ",", omittingEmptySubsequences: false).map { Int($0) }
        guard !values.isEmpty, values.allSatisfy({ $0 != nil }) else {
            throw ConditionError(.syntax, "condition '\(condition)': \(what) '\(text)' is not a list of integers")
        }
        return values.map { $0! }
    }
}
