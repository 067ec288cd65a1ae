// Interventions as values users compose: zero, mean, resample (data swap), patch from a cache,
// scale, add a vector (steering), skip a block; each optionally restricted to heads, frames or
// token positions. An `Interventions` value is a HookHandler scoped to the runs it is passed to.
import AuscultTensor
import Foundation

/// What to do to an activation.
public enum InterventionKind: Sendable {
    /// Set to 0.
    case zero
    /// Replace by a mean activation: `[F, …]` (per frame) or `[…]` (one vector for every row).
    case mean(Tensor)
    /// Replace by another clip's activation: `donors[clip]` is `[F, …]` for clip `clip` of the batch.
    case resample([Int: Tensor])
    /// Replace every clip's activation by the same one, `[F, …]` (a swap with one donor file).
    case replace(Tensor)
    /// Replace by the activation recorded in a cache (clean → corrupted patching): `[B, F|T, …]`,
    /// decoder entries indexed by absolute position.
    case patch(Tensor)
    /// Multiply by a factor.
    case scale(Float)
    /// Add a vector `[d]` to every selected row (steering).
    case add(Tensor)
    /// The block returns its input (apply to `<side>.blocks.N`).
    case skip
}

/// One intervention at one hook point, optionally restricted.
public struct Intervention: Sendable {
    public var hook: String
    public var kind: InterventionKind
    /// Heads to touch (hooks with a head axis: attn/cross_attn `hook_q|k|v|z`, and `[…, d]` hooks
    /// whose d splits into heads of the block's attention).
    public var heads: [Int]?
    /// Encoder frames to touch (the F axis).
    public var frames: Range<Int>?
    /// Absolute decoder token positions to touch (the T axis).
    public var positions: Set<Int>?

    public init(
        hook: String, kind: InterventionKind, heads: [Int]? = nil, frames: Range<Int>? = nil, positions: Set<Int>? = nil
    ) {
        self.hook = hook; self.kind = kind; self.heads = heads; self.frames = frames; self.positions = positions
    }

    /// The condition in the CLI's syntax (`zero encoder.blocks.1.hook_attn_out`).
    public var description: String {
        switch kind {
        case .zero: return "zero \(hook)"
        case .mean: return "mean \(hook)"
        case .resample, .replace: return "swap \(hook)"
        case .patch: return "patch \(hook)"
        case .scale(let f): return "scale \(hook)=\(f)"
        case .add: return "add \(hook)"
        case .skip: return "skip \(hook)"
        }
    }
}

/// A set of interventions applied through the hook points of a run.
public final class Interventions: HookHandler, @unchecked Sendable {
    public private(set) var items: [Intervention]
    private var byHook: [String: [Intervention]] = [:]
    private var skipInputs: [String: Tensor] = [:]
    /// Another handler that sees the activations after the interventions (e.g. a recorder).
    public var next: HookHandler?

    /// Validates every hook name against `registry` (unknown names are rejected with the closest
    /// valid ones) and prepares the lookup.
    public init(_ items: [Intervention], registry: HookRegistry, next: HookHandler? = nil) throws {
        var resolved = [Intervention]()
        for var it in items {
            if case .skip = it.kind {
                guard Regex.matches("^(encoder|decoder)\\.blocks\\.\\d+$", it.hook),
                    registry.point(it.hook + ".hook_resid_post") != nil
                else {
                    throw ConditionError(
                        .unknownTarget,
                        "skip needs a block such as encoder.blocks.3 or decoder.blocks.1, got '\(it.hook)'; closest: \(registry.closest(it.hook + ".hook_resid_post").joined(separator: ", "))"
                    )
                }
                resolved.append(it)
                continue
            }
            for name in try registry.resolve(it.hook) {
                if name.hasSuffix("hook_pattern") || name.hasSuffix("hook_attn_scores") || name.hasSuffix("hook_scale")
                {
                    throw HookError(
                        .readOnly,
                        "'\(name)' is read-only: the forward pass does not read it back; intervene on attn.hook_z (with heads), attn.hook_result, ln*.hook_normalized or the block outputs"
                    )
                }
                it.hook = name
                resolved.append(it)
            }
        }
        self.items = resolved
        self.next = next
        for it in resolved {
            if case .skip = it.kind {
                byHook[it.hook + ".hook_resid_pre", default: []].append(it)
                byHook[it.hook + ".hook_resid_post", default: []].append(it)
            } else {
                byHook[it.hook, default: []].append(it)
            }
        }
    }

    public func isActive(_ name: String) -> Bool { byHook[name] != nil || (next?.isActive(name) ?? false) }

    public func visit(_ name: String, _ x: inout Tensor, _ context: HookContext) throws {
        for it in byHook[name] ?? [] { try apply(it, name: name, &x, context) }
        try next?.visit(name, &x, context)
    }

    private func apply(_ it: Intervention, name: String, _ x: inout Tensor, _ ctx: HookContext) throws {
        if case .skip = it.kind {
            if name.hasSuffix(".hook_resid_pre") { skipInputs[it.hook] = x; return }
            guard let input = skipInputs[it.hook], input.shape == x.shape else {
                throw HookError(.invalidValue, "skip \(it.hook): block input not seen in this step")
            }
            x = input
            return
        }
        // x: [rows, seq, rest…]; element (r, s, j) at ((r * seq) + s) * inner + j.
        let rows = x.shape[0], seq = x.rank >= 3 ? x.shape[1] : 1
        let inner = x.count / max(1, rows * seq)
        let encoderSide = name.hasPrefix("encoder.") || name.hasPrefix("audio.")
        let headCount = x.rank == 4 ? x.shape[2] : nil
        var cols = Array(0..<inner)
        if let heads = it.heads {
            let nh = headCount ?? headsOf(name)
            let width = inner / nh
            guard heads.allSatisfy({ $0 >= 0 && $0 < nh }) else {
                throw HookError(.invalidSelector, "\(it.description): heads \(heads) outside 0..<\(nh)")
            }
            cols = heads.flatMap { hd in (hd * width)..<((hd + 1) * width) }
        }
        // Replacement activations must cover every position this step touches.
        let needed = (ctx.positionOffset + seq) * inner
        func check(_ t: Tensor, _ what: String) throws {
            guard t.count == inner || t.count >= needed else {
                throw HookError(
                    .shapeMismatch,
                    "\(it.description): \(what) has shape \(t.shape), too small for positions up to \(ctx.positionOffset + seq) of width \(inner)"
                )
            }
        }
        switch it.kind {
        case .mean(let m), .replace(let m): try check(m, "the replacement")
        case .resample(let donors): for d in donors.values { try check(d, "a donor") }
        case .patch(let clean):
            guard clean.rank >= 2, clean.count / clean.shape[0] / clean.shape[1] == inner else {
                throw HookError(
                    .shapeMismatch,
                    "\(it.description): cached activation has shape \(clean.shape), the run's is \(x.shape)")
            }
        default: break
        }
        func selected(_ s: Int) -> Bool {
            let abs = ctx.positionOffset + s
            if encoderSide { return it.frames.map { $0.contains(abs) } ?? true }
            return it.positions.map { $0.contains(abs) } ?? true
        }
        x.storage.withUnsafeMutableBufferPointer { buf in
            for r in 0..<rows {
                let clip = r < ctx.clips.count ? ctx.clips[r] : r
                for s in 0..<seq where selected(s) {
                    let base = (r * seq + s) * inner
                    let abs = ctx.positionOffset + s
                    switch it.kind {
                    case .zero: for j in cols { buf[base + j] = 0 }
                    case .scale(let f): for j in cols { buf[base + j] *= f }
                    case .add(let v): for j in cols { buf[base + j] += v.storage[j % v.count] }
                    case .mean(let m), .replace(let m):
                        let perRow = m.count == inner
                        for j in cols { buf[base + j] = perRow ? m.storage[j] : m.storage[abs * inner + j] }
                    case .resample(let donors):
                        if let d = donors[clip] {
                            let perRow = d.count == inner
                            for j in cols { buf[base + j] = perRow ? d.storage[j] : d.storage[abs * inner + j] }
                        }
                    case .patch(let clean):
                        let cseq = clean.shape[1]
                        if abs < cseq && clip < clean.shape[0] {
                            for j in cols { buf[base + j] = clean.storage[(clip * cseq + abs) * inner + j] }
                        }
                    case .skip: break
                    }
                }
            }
        }
    }

    /// Heads of the attention a `[…, d]` hook belongs to (encoder or decoder side).
    private func headsOf(_ name: String) -> Int { name.hasPrefix("encoder.") ? encoderHeads : decoderHeads }
    public var encoderHeads = 1
    public var decoderHeads = 1
}

extension Interventions {
    /// Interventions for `model`, with head counts taken from its dimensions.
    public convenience init(_ items: [Intervention], model: Whisper, next: HookHandler? = nil) throws {
        try self.init(items, registry: HookRegistry(dims: model.dims), next: next)
        encoderHeads = model.dims.n_audio_head
        decoderHeads = model.dims.n_text_head
    }
}

extension Intervention {
    /// A resample ("data swap") intervention whose donor for each clip of a batch is drawn at
    /// random, with `seed`, from `candidates` (activations `[F, …]` of other clips), never the
    /// clip's own activation when `own[clip]` names its index among the candidates.
    public static func resampleRandom(
        hook: String, clips: Int, candidates: [Tensor], own: [Int: Int] = [:],
        seed: UInt64
    ) -> Intervention {
        var rng = SplitMix64(seed: seed)
        var donors = [Int: Tensor]()
        for c in 0..<clips {
            let pool = candidates.indices.filter { $0 != own[c] }
            if let pick = pool.randomElement(using: &rng) { donors[c] = candidates[pick] }
        }
        return Intervention(hook: hook, kind: .resample(donors))
    }
}
