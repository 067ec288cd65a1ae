// Every hook point of a Whisper model with its shape (docs/hook-points.md), name resolution with the
// aliases users type, and filters (name, list, glob, predicate).
import Foundation

/// One named place in the forward pass where activations can be read or replaced.
public struct HookPoint: Sendable, Equatable, Codable {
    public var name: String
    /// Shape without the batch axis, with symbolic axes: "F" audio frames, "T" token positions.
    public var shape: [String]
    /// Computed only when something listens (attention patterns, scores, per-head results).
    public var optIn: Bool
    /// Observed only: a hook may read it but not replace it (patterns, scores, LayerNorm scales).
    public var readOnly: Bool {
        name.hasSuffix("hook_pattern") || name.hasSuffix("hook_attn_scores") || name.hasSuffix("hook_scale")
    }
}

/// The hook points of a model with given dimensions.
public struct HookRegistry: Sendable {
    public let dims: ModelDimensions
    public let points: [HookPoint]
    private let index: [String: Int]

    public init(dims: ModelDimensions) {
        self.dims = dims
        var p = [HookPoint]()
        let da = String(dims.n_audio_state), dt = String(dims.n_text_state)
        let ha = String(dims.n_audio_head), ht = String(dims.n_text_head)
        let dha = String(dims.n_audio_state / dims.n_audio_head), dht = String(dims.n_text_state / dims.n_text_head)
        func add(_ n: HookName, _ s: [String], optIn: Bool = false) {
            p.append(HookPoint(name: n.name, shape: s, optIn: optIn))
        }
        add(.mel, [String(dims.n_mels), String(2 * dims.n_audio_ctx)])
        add(.convOut, ["F", da])
        add(.encoderPosEmbed, ["F", da])
        func attention(_ a: AttentionHooks, seq: String, keys: String, d: String, h: String, dh: String) {
            add(a.q, [seq, h, dh]); add(a.k, [keys, h, dh]); add(a.v, [keys, h, dh])
            // Pre-softmax scores: the encoder's only (the decoder's cached attention does not form them).
            if keys == seq {
                add(a.z, [seq, h, dh]); if seq == "F" { add(a.attnScores, [h, seq, keys], optIn: true) }
            }
            add(a.pattern, [h, seq, keys], optIn: true)
            if keys != seq { add(a.z, [seq, h, dh]) }
            add(a.result, [seq, h, d], optIn: true)
        }
        func norm(_ n: LayerNormHooks, _ seq: String, _ d: String) {
            add(n.scale, [seq, "1"]); add(n.normalized, [seq, d])
        }
        func block(_ b: BlockHooks, seq: String, d: String, h: String, dh: String) {
            add(b.residPre, [seq, d])
            norm(b.ln1, seq, d)
            attention(b.attn, seq: seq, keys: seq, d: d, h: h, dh: dh)
            add(b.attnOut, [seq, d]); add(b.residMid, [seq, d])
            norm(b.ln2, seq, d)
            if b.isDecoder {
                attention(b.crossAttn, seq: seq, keys: "F", d: d, h: h, dh: dh)
                add(b.crossAttnOut, [seq, d]); add(b.residMidCross, [seq, d])
                norm(b.ln3, seq, d)
            }
            let d4 = String(4 * Int(d)!)
            add(b.mlp.pre, [seq, d4]); add(b.mlp.post, [seq, d4])
            add(b.mlpOut, [seq, d]); add(b.residPost, [seq, d])
        }
        for i in 0..<dims.n_audio_layer { block(HookName.encoder(i), seq: "F", d: da, h: ha, dh: dha) }
        norm(HookName.lnPost, "F", da)
        add(.embed, ["T", dt]); add(.posEmbed, ["T", dt])
        for i in 0..<dims.n_text_layer { block(HookName.decoder(i), seq: "T", d: dt, h: ht, dh: dht) }
        norm(HookName.lnFinal, "T", dt)
        add(.logits, ["T", String(dims.n_vocab)])
        points = p
        index = Dictionary(uniqueKeysWithValues: p.enumerated().map { ($1.name, $0) })
    }

    public var names: [String] { points.map(\.name) }

    public func point(_ name: String) -> HookPoint? { index[name].map { points[$0] } }

    /// The canonical name for `name`, accepting the module-style aliases of PyTorch users:
    /// `encoder.blocks.2` → `encoder.blocks.2.hook_resid_post`, `encoder.blocks.2.mlp.1` →
    /// `encoder.blocks.2.mlp.hook_post` (the GELU output), `encoder.blocks.2.mlp.0` → `mlp.hook_pre`.
    public func canonical(_ name: String) -> String {
        if index[name] != nil { return name }
        if Regex.matches("^(encoder|decoder)\\.blocks\\.\\d+$", name) { return name + ".hook_resid_post" }
        if name.hasSuffix(".mlp.1") { return String(name.dropLast(2)) + ".hook_post" }
        if name.hasSuffix(".mlp.0") { return String(name.dropLast(2)) + ".hook_pre" }
        if name == "encoder" || name == "encoder.ln_post" { return "encoder.ln_post.hook_normalized" }
        return name
    }

    /// Resolves a name, alias or glob (`*` any run of characters, `?` one) to hook point names,
    /// or throws naming the closest valid names.
    public func resolve(_ pattern: String) throws -> [String] {
        let c = canonical(pattern)
        if index[c] != nil { return [c] }
        if pattern.contains("*") || pattern.contains("?") {
            let glob = Array(pattern.utf8)
            let hits = names.filter { Self.globMatches(glob, Array($0.utf8)) }
            if !hits.isEmpty { return hits }
            throw HookError(
                .unknownHook,
                "hook pattern '\(pattern)' matches no hook point; for example: "
                    + "\(closest(pattern).joined(separator: ", "))"
            )
        }
        throw HookError(
            .unknownHook,
            "unknown hook point '\(pattern)'; closest valid names: \(closest(pattern).joined(separator: ", ")) "
                + "(auscult hooks lists them all)"
        )
    }

    /// Resolves a comma-separated list of names, aliases and globs.
    public func resolveList(_ patterns: String) throws -> [String] {
        var out = [String]()
        for p in patterns.split(separator: ",").map({ $0.trimmingCharacters(in: .whitespaces) }) where !p.isEmpty {
            for n in try resolve(p) where !out.contains(n) { out.append(n) }
        }
        return out
    }

    /// The three names with the smallest edit distance to `name`.
    public func closest(_ name: String, count: Int = 3) -> [String] {
        // Names are under 60 characters; a longer query is compared by its first 120 (edit
        // distance costs the product of the lengths, and this runs on any text a user types).
        let target = Array(canonical(name).utf8.prefix(120))
        let scored: [(name: String, distance: Int)] = names.map { ($0, Self.editDistance(Array($0.utf8), target)) }
        let sorted = scored.sorted { a, b in a.distance != b.distance ? a.distance < b.distance : a.name < b.name }
        return sorted.prefix(count).map { $0.name }
    }

    /// Whether `text` matches the glob `pattern` (`*` any run, `?` one character), in at most
    /// |pattern| · |text| steps: on a mismatch the last `*` takes one more character, the greedy
    /// scheme that never backtracks further (a regular expression of many `.*` did, exponentially).
    static func globMatches(_ pattern: [UInt8], _ text: [UInt8]) -> Bool {
        let star = UInt8(ascii: "*"), any = UInt8(ascii: "?")
        var p = 0, t = 0, starAt = -1, resume = 0
        while t < text.count {
            if p < pattern.count && (pattern[p] == any || pattern[p] == text[t]) {
                p += 1; t += 1
            } else if p < pattern.count && pattern[p] == star {
                starAt = p; resume = t; p += 1
            } else if starAt >= 0 {
                p = starAt + 1; resume += 1; t = resume
            } else {
                return false
            }
        }
        while p < pattern.count && pattern[p] == star { p += 1 }
        return p == pattern.count
    }

    static func editDistance(_ a: [UInt8], _ b: [UInt8]) -> Int {
        var prev = Array(0...b.count)
        for i in 1...max(a.count, 1) where !a.isEmpty {
            var cur = [i] + [Int](repeating: 0, count: b.count)
            for j in 1...max(b.count, 1) where !b.isEmpty {
                cur[j] = min(prev[j] + 1, cur[j - 1] + 1, prev[j - 1] + (a[i - 1] == b[j - 1] ? 0 : 1))
            }
            prev = cur
        }
        return a.isEmpty ? b.count : prev[b.count]
    }
}
