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
    /// What the block writes to the residual stream (`hook_resid_post − hook_resid_pre`) is
    /// replaced (apply to `<side>.blocks.N`).
    case blockWrite(BlockWrite)
    /// Replace by the same hook point's value in another sequence of the batch, named by its
    /// `HookContext.sequences` id: a run of the same tokens on a donor clip's audio, beside it.
    case fromSequence(Int)
    /// Replace by the same hook point's value on other audio fed the same tokens: `LoadedModel`'s
    /// runs add that audio as a sequence beside the run (`fromSequence`, or a block's write for a
    /// `decoder.blocks.N` target), so a generated transcript can be swapped into as it grows.
    /// Decoder hook points and blocks only.
    case fromAudio(AudioInput)
}

/// What replaces a block's write to the residual stream.
public enum BlockWrite: Sendable {
    /// A write by absolute position `[P, d]` (or one row `[d]` for every position).
    case table(Tensor)
    /// The write of another sequence of the batch (its `HookContext.sequences` id).
    case fromSequence(Int)
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
    /// Sequences of a batch to touch (`HookContext.sequences` ids: the clips of an encoder batch,
    /// the sequences of a decoding run); nil touches every row. Several conditions then run as
    /// rows of one batch, each with its own interventions.
    public var sequences: Set<Int>?

    public init(
        hook: String, kind: InterventionKind, heads: [Int]? = nil, frames: Range<Int>? = nil,
        positions: Set<Int>? = nil,
        sequences: Set<Int>? = nil
    ) {
        self.hook = hook; self.kind = kind; self.heads = heads; self.frames = frames; self.positions = positions
        self.sequences = sequences
    }

    /// Whether this reads another sequence of the batch.
    var readsAnotherSequence: Bool {
        switch kind {
        case .fromSequence, .blockWrite(.fromSequence): return true
        default: return false
        }
    }

    /// Whether this reads a run on other audio that `LoadedModel.run` adds beside the clip.
    public var runsBeside: Bool {
        if case .fromAudio = kind { return true }
        return false
    }

    /// Whether this changes a whole block's write (`skip`, `blockWrite`) rather than one hook point.
    var isBlockLevel: Bool {
        switch kind {
        case .skip, .blockWrite: return true
        default: return false
        }
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
        case .blockWrite: return "write \(hook)"
        case .fromSequence(let d): return "swap \(hook) from sequence \(d)"
        case .fromAudio: return "swap \(hook) from other audio"
        }
    }
}

/// A set of interventions applied through the hook points of a run.
public final class Interventions: HookHandler, @unchecked Sendable {
    public private(set) var items: [Intervention]
    private var byHook: [String: [Intervention]] = [:]
    /// The residual stream entering each block with a block-level intervention, kept at its
    /// `hook_resid_pre` for the `hook_resid_post` of the same step.
    private var blockInputs: [String: Tensor] = [:]
    /// Resolved points whose first axis is encoder frames (F), where frames select.
    private var frameAxis = Set<String>()
    /// Another handler that sees the activations after the interventions (e.g. a recorder).
    public var next: HookHandler?

    /// Validates every hook name against `registry` (unknown names are rejected with the closest
    /// valid ones) and prepares the lookup.
    public init(_ items: [Intervention], registry: HookRegistry, next: HookHandler? = nil) throws {
        var resolved = [Intervention]()
        for var it in items {
            if case .fromAudio = it.kind {
                throw ConditionError(
                    .unsupported,
                    "\(it.description): a swap from other audio runs that audio beside the run; use "
                        + "LoadedModel.run or runWithCache, or give the donor's activation (Intervention.resample)")
            }
            if it.isBlockLevel {
                guard it.heads == nil, it.frames == nil, it.positions == nil else {
                    throw ConditionError(
                        .invalidSelector,
                        "\(it.description): a block's write is changed whole; heads, frames and positions select "
                            + "parts of hook points (e.g. \(it.hook).attn.hook_z with heads)")
                }
                guard Regex.matches("^(encoder|decoder)\\.blocks\\.\\d+$", it.hook),
                    registry.point(it.hook + ".hook_resid_post") != nil
                else {
                    throw ConditionError(
                        .unknownTarget,
                        "skip needs a block such as encoder.blocks.3 or decoder.blocks.1, got '\(it.hook)'; closest: "
                            + "\(registry.closest(it.hook + ".hook_resid_post").joined(separator: ", "))"
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
                        "'\(name)' is read-only: the forward pass does not read it back; intervene on attn.hook_z "
                            + "(with heads), attn.hook_result, ln*.hook_normalized or the block outputs"
                    )
                }
                if let point = registry.point(name) {
                    try Self.checkSelectors(it, at: point, dims: registry.dims)
                    if point.shape.first == "F" { frameAxis.insert(name) }
                }
                it.hook = name
                resolved.append(it)
            }
        }
        self.items = resolved
        self.next = next
        encoderHeads = registry.dims.n_audio_head
        decoderHeads = registry.dims.n_text_head
        for it in resolved {
            if it.isBlockLevel {
                byHook[it.hook + ".hook_resid_pre", default: []].append(it)
                byHook[it.hook + ".hook_resid_post", default: []].append(it)
            } else {
                byHook[it.hook, default: []].append(it)
            }
        }
    }

    public func isActive(_ name: String) -> Bool { byHook[name] != nil || (next?.isActive(name) ?? false) }

    public func visit(_ name: String, _ x: inout Tensor, _ context: HookContext) throws {
        if let items = byHook[name] { try apply(items, name: name, &x, context) }
        try next?.visit(name, &x, context)
    }

    private func apply(_ items: [Intervention], name: String, _ x: inout Tensor, _ ctx: HookContext) throws {
        // Rows of the batch by sequence id; sequences that finished have left the batch.
        var rowOf = [Int: Int]()
        if items.contains(where: { $0.sequences != nil || $0.readsAnotherSequence }) {
            for (r, s) in ctx.sequences.enumerated() { rowOf[s] = r }
        }
        let rowCount = x.shape[0]
        func rows(_ it: Intervention) -> [Int] {
            guard let seqs = it.sequences else { return Array(0..<rowCount) }
            return seqs.compactMap { rowOf[$0] }.sorted()
        }
        let blockItems = items.filter(\.isBlockLevel)
        if !blockItems.isEmpty {
            if name.hasSuffix(".hook_resid_pre") {
                // Kept for every row: other sequences' writes can be the replacement.
                blockInputs[blockItems[0].hook] = x
            } else {
                // The unchanged output, read only where a write comes from another sequence.
                let original = blockItems.contains(where: \.readsAnotherSequence) ? x : Tensor(zeros: [0])
                for it in blockItems { try write(it, rows: rows(it), &x, original: original, rowOf: rowOf, ctx) }
            }
        }
        for it in items where !it.isBlockLevel { try apply(it, rows: rows(it), rowOf: rowOf, name: name, &x, ctx) }
    }

    /// Replaces the block's write in `rows` of its `hook_resid_post` `x`: the output becomes the
    /// kept input plus the new write (nothing for `skip`).
    private func write(
        _ it: Intervention, rows: [Int], _ x: inout Tensor, original: Tensor, rowOf: [Int: Int], _ ctx: HookContext
    ) throws {
        guard !rows.isEmpty else { return }  // its sequences have left the batch
        guard let input = blockInputs[it.hook], input.shape == x.shape else {
            throw HookError(.invalidValue, "\(it.description): block input not seen in this step")
        }
        if it.sequences == nil, case .skip = it.kind {
            x = input
            return
        }
        let seq = x.rank >= 3 ? x.shape[1] : 1, inner = x.count / max(1, x.shape[0] * seq), rowSize = seq * inner
        var donorRow: Int?
        switch it.kind {
        case .blockWrite(.table(let t)):
            guard t.count == inner || t.count >= (ctx.positionOffset + seq) * inner else {
                throw HookError(
                    .shapeMismatch,
                    "\(it.description): the write has shape \(t.shape), too small for positions up to "
                        + "\(ctx.positionOffset + seq) of width \(inner)")
            }
        case .blockWrite(.fromSequence(let d)):
            guard let r = rowOf[d] else {
                throw HookError(.invalidValue, "\(it.description): sequence \(d) is not in the batch")
            }
            donorRow = r
        default: break
        }
        // Row r of x is the sequence's `rowSize` elements; the output is the kept input plus the write.
        x.updateRows(rows, width: rowSize) { r, out in
            input.withRow(r, width: rowSize) { pre in
                out.assign(0..<rowSize, from: pre)
                switch it.kind {
                case .blockWrite(.table(let t)):
                    let perRow = t.count == inner
                    for s in 0..<seq {
                        t.withRow(perRow ? 0 : ctx.positionOffset + s, width: inner) { write in
                            out.add((s * inner)..<((s + 1) * inner), from: write, at: 0)
                        }
                    }
                case .blockWrite(.fromSequence):
                    original.withRow(donorRow!, width: rowSize) { post in
                        input.withRow(donorRow!, width: rowSize) { donorPre in
                            for j in 0..<rowSize { out[j] = pre[j] + (post[j] - donorPre[j]) }
                        }
                    }
                default: break
                }
            }
        }
    }

    private func apply(
        _ it: Intervention, rows rowList: [Int], rowOf: [Int: Int], name: String, _ x: inout Tensor,
        _ ctx: HookContext
    ) throws {
        guard !rowList.isEmpty else { return }  // its sequences have left the batch
        // x: [rows, seq, rest…]; element (r, s, j) at ((r * seq) + s) * inner + j.
        let rows = x.shape[0], seq = x.rank >= 3 ? x.shape[1] : 1
        let inner = x.count / max(1, rows * seq)
        // Frames select along an F axis (the encoder's points, cross-attention keys and values),
        // positions along a T axis.
        let encoderSide = frameAxis.contains(name)
        let headCount = x.rank == 4 ? x.shape[2] : nil
        // The columns touched, as ranges: every column, or the selected heads' slices.
        var ranges = [0..<inner]
        if let heads = it.heads {
            let nh = headCount ?? headsOf(name)
            let width = inner / nh
            guard heads.allSatisfy({ $0 >= 0 && $0 < nh }) else {
                throw HookError(.invalidSelector, "\(it.description): heads \(heads) outside 0..<\(nh)")
            }
            ranges = heads.map { hd in (hd * width)..<((hd + 1) * width) }
        }
        // Replacement activations must cover every position this step touches.
        let needed = (ctx.positionOffset + seq) * inner
        func check(_ t: Tensor, _ what: String) throws {
            guard t.count == inner || t.count >= needed else {
                throw HookError(
                    .shapeMismatch,
                    "\(it.description): \(what) has shape \(t.shape), too small for positions up to "
                        + "\(ctx.positionOffset + seq) of width \(inner)"
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
        // x as rows of `inner` elements: row r * seq + s is position s of sequence row r.
        let targets = rowList.flatMap { r in (0..<seq).filter(selected).map { r * seq + $0 } }
        if case .fromSequence(let d) = it.kind {
            guard let donor = rowOf[d] else {
                throw HookError(.invalidValue, "\(it.description): sequence \(d) is not in the batch")
            }
            for t in targets { x.copyElements(ofRow: donor * seq + t % seq, toRow: t, width: inner, ranges) }
            return
        }
        x.updateRows(targets, width: inner) { t, row in
            let (r, s) = t.quotientAndRemainder(dividingBy: seq)
            let clip = r < ctx.clips.count ? ctx.clips[r] : r
            let abs = ctx.positionOffset + s
            switch it.kind {
            case .zero: for c in ranges { row.fill(c, with: 0) }
            case .scale(let f): for c in ranges { row.scale(c, by: f) }
            case .add(let v):
                v.withRow(0, width: v.count) { v in for c in ranges { for j in c { row[j] += v[j % v.count] } } }
            case .mean(let m), .replace(let m):
                m.withRow(m.count == inner ? 0 : abs, width: inner) { m in for c in ranges { row.assign(c, from: m) } }
            case .resample(let donors):
                if let donor = donors[clip] {
                    donor.withRow(donor.count == inner ? 0 : abs, width: inner) { d in
                        for c in ranges { row.assign(c, from: d) }
                    }
                }
            case .patch(let clean):
                let cseq = clean.shape[1]
                if abs < cseq && clip < clean.shape[0] {
                    clean.withRow(clip * cseq + abs, width: inner) { p in for c in ranges { row.assign(c, from: p) } }
                }
            case .skip, .blockWrite, .fromAudio, .fromSequence: break
            }
        }
    }

    /// Heads of the attention a `[…, d]` hook belongs to (encoder or decoder side).
    private func headsOf(_ name: String) -> Int { name.hasPrefix("encoder.") ? encoderHeads : decoderHeads }
    public private(set) var encoderHeads = 1
    public private(set) var decoderHeads = 1

    /// Refuses selectors that cannot apply at `point` or fall outside it, before any work: heads
    /// on a point without a head axis (MLP, residual, LayerNorm; the attention outputs split their
    /// width by head), frames on a point without an F axis or past `n_audio_ctx`, positions on a
    /// point without a T axis or past `n_text_ctx`.
    static func checkSelectors(_ it: Intervention, at point: HookPoint, dims: ModelDimensions) throws {
        let name = point.name, axis = point.shape.first
        let at = (it.hook == name ? "" : " at \(name)") + " [\(point.shape.joined(separator: ", "))]"
        if let heads = it.heads {
            let headAxis = point.shape.count == 3
            let splitByHead = name.hasSuffix(".hook_attn_out") || name.hasSuffix(".hook_cross_attn_out")
            guard headAxis || splitByHead else {
                throw ConditionError(
                    .invalidSelector,
                    "\(it.description)\(at): heads select parts of attention hook points "
                        + "(attn.hook_q|k|v|z|result, hook_attn_out), not of this one")
            }
            let nh = name.hasPrefix("encoder.") ? dims.n_audio_head : dims.n_text_head
            if let bad = heads.first(where: { $0 < 0 || $0 >= nh }) {
                throw ConditionError(.invalidSelector, "\(it.description): head \(bad) is outside 0..<\(nh)")
            }
        }
        if let frames = it.frames {
            guard axis == "F" else {
                throw ConditionError(
                    .invalidSelector,
                    "\(it.description)\(at): frames select encoder frames; this point has "
                        + "token positions")
            }
            guard frames.lowerBound >= 0, frames.upperBound <= dims.n_audio_ctx, !frames.isEmpty else {
                throw ConditionError(
                    .invalidSelector,
                    "\(it.description): frames \(frames.lowerBound):\(frames.upperBound) fall outside the "
                        + "\(dims.n_audio_ctx) encoder frames (0:\(dims.n_audio_ctx), 20 ms each)")
            }
        }
        if let positions = it.positions {
            guard axis == "T" else {
                throw ConditionError(
                    .invalidSelector,
                    "\(it.description)\(at): positions select decoder tokens; this point has "
                        + "encoder frames")
            }
            if let bad = positions.first(where: { $0 < 0 || $0 >= dims.n_text_ctx }) {
                throw ConditionError(
                    .invalidSelector,
                    "\(it.description): position \(bad) is outside the text context 0..<\(dims.n_text_ctx)")
            }
        }
    }
}

extension Interventions {
    /// Interventions for `model`, with head counts taken from its dimensions.
    public convenience init(_ items: [Intervention], model: Whisper, next: HookHandler? = nil) throws {
        try self.init(items, registry: HookRegistry(dims: model.dims), next: next)
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
