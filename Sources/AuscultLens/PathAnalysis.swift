// `auscult paths`: where the decoder's words come from, the audio or the language model. Each
// clip's transcript is teacher-forced under conditions that take the audio away (the decoder
// reading 30 s of silence's encoder output; every cross-attention zeroed at once) beside the
// clean run and a unigram baseline, scored by per-token cross-entropy; and on the clean run each
// component's direct contribution to the log-probability of every token, and the size of what it
// writes. Definitions: docs/paths.md.
import AuscultAudio
import AuscultTensor
import AuscultWhisper
import Foundation

/// One condition's per-token loss over every scored token.
public struct PathCondition: Codable, Sendable {
    public var name: String
    public var description: String
    /// Mean cross-entropy (nats per token) of the text tokens and end-of-text (when the run chose it).
    public var loss: Double
    /// Share of those tokens that are the condition's most likely next token.
    public var accuracy: Double
    public var tokens: Int
}

/// One component of the decoder's residual stream, over every scored position of every clip.
public struct PathComponent: Codable, Sendable {
    enum CodingKeys: String, CodingKey { case name, direct, directLogit = "direct_logit", norm }
    /// `embed`, `pos_embed`, `decoder.blocks.L.hook_attn_out`, `…hook_cross_attn_out`, `…hook_mlp_out`.
    public var name: String
    /// Mean direct contribution to logit(target) − E_p[logit] (see `PathAnalysis`).
    public var direct: Double
    /// Mean direct contribution to the raw logit of the target (direct logit attribution).
    public var directLogit: Double
    /// Mean L2 norm of what it writes (before the final LayerNorm).
    public var norm: Double
}

/// Path patching of one decoder component: its output replaced by its value when the decoder
/// reads silence, as change in per-token loss (nats; positive: the audio-run value helped).
public struct PathPatch: Codable, Sendable {
    /// `decoder.blocks.L.hook_attn_out`, `…hook_cross_attn_out` or `…hook_mlp_out`.
    public var name: String
    /// Every later component sees the replacement (activation patching).
    public var total: Double
    /// Only the path straight to the final LayerNorm and the logits sees it; every later block
    /// reads the clean value.
    public var direct: Double
    /// `total − direct`: the effect carried through later blocks.
    public var indirect: Double
}

/// The scored tokens of one kind of input (`dataset`, `noise`, `length-limit hits`, …) that do or
/// do not continue a token pair seen earlier in their text.
public struct PathGroup: Codable, Sendable {
    enum CodingKeys: String, CodingKey {
        case source, repeated, tokens, loss, accuracy, direct, patchTotal = "patch_total", patchDirect = "patch_direct"
    }
    public var source: String
    /// Tokens that repeat: the pair (previous token, token) occurred earlier in the same text,
    /// the copy an induction head makes (`PathAnalysis.repeats`).
    public var repeated: Bool
    public var tokens: Int
    /// Mean loss per condition (`PathResult.conditions` order).
    public var loss: [Double]
    /// Top-1 share per condition.
    public var accuracy: [Double]
    /// Mean direct contribution per component (`PathResult.components` order).
    public var direct: [Double]
    /// Mean total and direct patching effect per patched component (`PathResult.patching` order).
    public var patchTotal: [Double]
    public var patchDirect: [Double]
}

/// One input's view: its tokens and, per condition, each token's loss; per component each
/// position's direct contribution.
public struct PathClip: Codable, Sendable {
    public var clip: String
    /// Which kind of input (`PathInput.source`), and the sweep condition replayed on it.
    public var source: String
    public var condition: String?
    public var tokens: [String]
    /// Per token: whether it repeats a token pair seen earlier in the text.
    public var repeated: [Bool]
    /// `losses[condition][position]`, conditions in `PathResult.conditions` order.
    public var losses: [[Double]]
    /// `direct[component][position]`, components in `PathResult.components` order.
    public var direct: [[Double]]
}

/// What `auscult paths` measured.
public struct PathResult: Codable, Sendable {
    /// "paths": what the Studio's experiment view recognises the file by.
    public var kind = "paths"
    public var model: String
    /// `transcript` (each clip's clean greedy transcript) or `reference` (the dataset's).
    public var text: String
    public var conditions: [PathCondition]
    public var components: [PathComponent]
    /// Each decoder component patched with its value on silence, over every scored token.
    public var patching: [PathPatch]
    /// Per kind of input, repeated and new tokens apart.
    public var groups: [PathGroup]
    /// Largest |Σ contributions + bias − (logit(target) − E_p[logit])| over every position: how
    /// exactly the decomposition adds up (float32 activations).
    public var sumError: Double
    public var clips: [PathClip]
    public var skipped: [String]
    enum CodingKeys: String, CodingKey {
        case kind, model, text, conditions, components, patching, groups, sumError = "sum_error", clips, skipped
    }
}

/// Where the words come from, audio or language (see `PathResult`).
///
///     let r = try PathAnalysis(loaded: try LoadedModel("tiny.en")).run(clips: items)
///     for c in r.conditions { print(c.name, c.loss) }
public struct PathAnalysis {
    public var loaded: LoadedModel
    /// Score the dataset's reference transcripts instead of the clean model's own (dataset
    /// inputs only: synthetic sounds and sweep runs are scored on what the model produced).
    public var onReference = false
    /// Add-α smoothing of the unigram baseline, fitted on the other clips' texts.
    public var unigramSmoothing = 0.1
    /// The decoder's context: a previous-context prompt read before every scored text, and a
    /// prefix each transcript is decoded after (not with `onReference`: a reference is whole).
    public var decoding = DecodingOptions()

    /// Progress units `run` reports: each input transcribed, then scored.
    public static func steps(clips: Int) -> Int { 2 * clips }

    public init(loaded: LoadedModel) { self.loaded = loaded }

    public static let conditionNames = ["clean", "no audio (silence)", "no cross-attention", "unigram"]

    /// The hook points a decomposition reads.
    static let decompositionNames: [HookName] = [
        HookName.embed, HookName.posEmbed, "decoder.blocks.*.hook_attn_out",
        "decoder.blocks.*.hook_cross_attn_out", "decoder.blocks.*.hook_mlp_out", HookName.lnFinal.scale,
    ]

    /// Scores dataset clips (see `run(inputs:)`).
    public func run(clips items: [DatasetItem], progress: ProgressReporter? = nil) throws -> PathResult {
        try run(inputs: items.map(PathInput.clip), progress: progress)
    }

    /// Transcribes each input (with its interventions), teacher-forces the text under every
    /// condition, decomposes the clean run's residual stream and patches each decoder component
    /// with its value on silence.
    public func run(inputs: [PathInput], progress: ProgressReporter? = nil) throws -> PathResult {
        guard unigramSmoothing > 0, unigramSmoothing.isFinite else {
            throw LensError(.invalidArgument, "unigram smoothing \(unigramSmoothing): want a positive number")
        }
        if onReference && decoding.prefix != nil {
            throw LensError(.invalidArgument, "paths: a reference transcript is scored whole; a prefix does not apply")
        }
        let d = loaded.model.dims, eot = loaded.tokenizer.eot, prompt = loaded.prompt(decoding)
        // The texts to score.
        var texts = [(input: PathInput, tokens: [Int], ended: Bool)]()
        var skipped = [String]()
        for input in inputs {
            let text: [Int]
            var ended = true
            if onReference && input.source == "dataset" {
                guard let r = input.reference, !r.trimmingCharacters(in: .whitespaces).isEmpty else {
                    skipped.append("\(input.id): no reference transcript"); progress?.advance(by: 2); continue
                }
                text = loaded.promptTokens(r)
            } else {
                text = try loaded.run(.samples(input.samples), interventions: input.interventions, options: decoding)
                    .tokens
                // A run cut at the sample length never chose end-of-text: it is not scored.
                ended = text.count < d.n_text_ctx / 2
            }
            guard !text.isEmpty else {
                skipped.append("\(input.id): nothing transcribed"); progress?.advance(by: 2); continue
            }
            guard prompt.count + text.count + 1 <= d.n_text_ctx else {
                skipped.append("\(input.id): \(text.count) tokens exceed the decoder's context")
                progress?.advance(by: 2); continue
            }
            texts.append((input, text, ended))
            progress?.advance(by: 1)
        }
        guard !texts.isEmpty else { throw LensError(.noClips, "paths: no clip has a transcript to score") }

        // Unigram counts of the dataset's texts (every text's when none is from the dataset);
        // a text among them is scored by the others' counts (all of them when it is alone).
        let fitted =
            texts.contains { $0.input.source == "dataset" } ? texts.filter { $0.input.source == "dataset" } : texts
        var counts = [Int: Int](), total = 0
        for t in fitted { for x in t.tokens + (t.ended ? [eot] : []) { counts[x, default: 0] += 1; total += 1 } }
        let vocabulary = Double(d.n_vocab)

        let crossOff = (0..<d.n_text_layer).map { Intervention.zero(HookName.decoder($0).crossAttnOut) }
        var sums = [Double](repeating: 0, count: 4), hits = [Int](repeating: 0, count: 4), scored = 0
        var componentNames = [String](), directSum = [Double](), normSum = [Double](), logitSum = [Double]()
        var patchNames = [String](), patchTotal = [Double](), patchDirect = [Double]()
        var groups = [String: PathGroupSums]()
        var groupOrder = [String]()
        var positions = 0
        var sumError = 0.0
        var clips = [PathClip]()
        for t in texts {
            let tokens = prompt + t.tokens + (t.ended ? [eot] : [])
            let targets = Array(tokens[prompt.count...]), from = prompt.count - 1
            let hooks = t.input.interventions
            let audio = AudioInput.samples(t.input.samples)
            var losses = [[Double]](), correct = [[Bool]]()
            // Clean, and on silence, with the caches for the decomposition and the direct paths.
            let (clean, cache) = try loaded.runWithCache(
                audio, names: Self.decompositionNames, tokens: tokens, interventions: hooks, logits: true)
            let (silence, silenceCache) = try loaded.runWithCache(
                LoadedModel.silence, names: Self.decompositionNames, tokens: tokens, interventions: hooks,
                logits: true)
            let noCross = try loaded.run(audio, tokens: tokens, interventions: hooks + crossOff, logits: true)
            for run in [clean, silence, noCross] {
                let (l, c) = try Self.losses(run.logits, targets: targets, from: from)
                losses.append(l); correct.append(c)
            }
            // Unigram, this text left out when it was counted.
            var others = counts, rest = total
            let counted = fitted.count > 1 && fitted.contains { $0.input.id == t.input.id }
            if counted { for x in targets { others[x, default: 0] -= 1 }; rest -= targets.count }
            let best = others.max { ($0.value, $1.key) < ($1.value, $0.key) }?.key
            losses.append(
                targets.map { x -> Double in
                    -log((Double(others[x] ?? 0) + unigramSmoothing) / (Double(rest) + unigramSmoothing * vocabulary))
                })
            correct.append(targets.map { $0 == best })
            for k in 0..<4 { sums[k] += losses[k].reduce(0, +); hits[k] += correct[k].filter { $0 }.count }
            scored += targets.count

            // Direct contributions to logit(target) − E_p[logit] at each scoring position.
            let (stack, labels) = try cache.decomposeResid(.decoder, applyLN: false)
            let normed = try cache.applyLNToStack(stack, .decoder)
            guard let logits = clean.logits else {
                throw LensError(.invalidArgument, "paths: the clean run of \(t.input.id) returned no logits")
            }
            let (directions, centred) = try expectedDirections(logits, targets: targets, from: from)
            let rows = Array(from..<(tokens.count - 1))
            let gathered = normed.gather(positions: rows)
            let attrs = try cache.logitAttrs(gathered, directions: directions)
            let raw = try cache.logitAttrs(gathered, tokens: targets).scalars
            let bias = cache.logitBias(directions: directions)
            if componentNames.isEmpty {
                componentNames = labels
                directSum = [Double](repeating: 0, count: labels.count); normSum = directSum; logitSum = directSum
                patchNames = labels.filter { $0.hasPrefix("decoder.blocks.") }
                patchTotal = [Double](repeating: 0, count: patchNames.count); patchDirect = patchTotal
            }
            let values = attrs.scalars, n = rows.count, written = stack.scalars
            var direct = [[Double]]()
            for c in 0..<labels.count {
                let row = (0..<n).map { Double(values[c * n + $0]) }
                direct.append(row)
                directSum[c] += row.reduce(0, +)
                logitSum[c] += (0..<n).reduce(0.0) { $0 + Double(raw[c * n + $1]) }
                normSum[c] += Self.norms(written, shape: stack.shape, component: c, rows: rows).reduce(0, +)
            }
            for p in 0..<n {
                let total = (0..<labels.count).reduce(bias[p]) { $0 + direct[$1][p] }
                sumError = max(sumError, abs(total - centred[p]))
            }
            positions += n

            // Path patching with each component's value on silence.
            let (silenceStack, _) = try silenceCache.decomposeResid(.decoder, applyLN: false)
            let effects = try patchEffects(
                input: t.input, tokens: tokens, targets: targets, from: from, clean: losses[0],
                components: patchNames, labels: labels, cleanStack: stack, silenceStack: silenceStack, rows: rows)
            for c in patchNames.indices {
                patchTotal[c] += effects.total[c].reduce(0, +); patchDirect[c] += effects.direct[c].reduce(0, +)
            }

            // Repeated and new tokens of this kind of input.
            let repeated = Array(Self.repeats(tokens)[prompt.count...])
            for flag in [false, true] {
                let key = t.input.source + (flag ? " · repeated" : " · new")
                let picked = repeated.indices.filter { repeated[$0] == flag }
                guard !picked.isEmpty else { continue }
                if groups[key] == nil {
                    groups[key] = PathGroupSums(
                        source: t.input.source, repeated: flag, conditions: 4, components: labels.count,
                        patched: patchNames.count)
                    groupOrder.append(key)
                }
                groups[key]!.add(
                    picked, losses: losses, correct: correct, direct: direct, total: effects.total,
                    patched: effects.direct)
            }
            clips.append(
                PathClip(
                    clip: t.input.id, source: t.input.source, condition: t.input.condition,
                    tokens: targets.map { loaded.tokenizer.decodeWithSpecials([$0]) }, repeated: repeated,
                    losses: losses, direct: direct))
            progress?.advance(by: 1)
        }
        let descriptions = [
            "the clip's audio", "the decoder reads the encoder output of 30 s of silence: language alone",
            "every decoder block's cross-attention output zeroed at once",
            String(
                format: "token frequencies of the other clips' texts, add-%.2g smoothing over the vocabulary",
                unigramSmoothing),
        ]
        let conditions = (0..<4).map {
            PathCondition(
                name: Self.conditionNames[$0], description: descriptions[$0], loss: sums[$0] / Double(scored),
                accuracy: Double(hits[$0]) / Double(scored), tokens: scored)
        }
        let components = componentNames.indices.map {
            PathComponent(
                name: componentNames[$0], direct: directSum[$0] / Double(positions),
                directLogit: logitSum[$0] / Double(positions), norm: normSum[$0] / Double(positions))
        }
        let patching = patchNames.indices.map { c -> PathPatch in
            let total = patchTotal[c] / Double(scored), direct = patchDirect[c] / Double(scored)
            return PathPatch(name: patchNames[c], total: total, direct: direct, indirect: total - direct)
        }
        return PathResult(
            model: loaded.name, text: onReference ? "reference" : "transcript", conditions: conditions,
            components: components, patching: patching, groups: groupOrder.map { groups[$0]!.group },
            sumError: sumError, clips: clips, skipped: skipped)
    }

    /// Cross-entropy of `targets[k]` at position `from + k` of `logits` `[T, V]`, and whether each
    /// target was the most likely token.
    static func losses(_ logits: Tensor?, targets: [Int], from: Int) throws -> (losses: [Double], correct: [Bool]) {
        guard let logits, logits.rank == 2, logits.shape[0] >= from + targets.count else {
            throw LensError(.invalidArgument, "paths: a run returned no logits for \(targets.count) targets")
        }
        let v = logits.shape[1], all = logits.scalars
        var out = [Double](), correct = [Bool]()
        for (k, target) in targets.enumerated() {
            let row = all[((from + k) * v)..<((from + k + 1) * v)]
            let top = Double(row.max() ?? 0)
            let z = row.reduce(0.0) { $0 + exp(Double($1) - top) }
            out.append(top + log(z) - Double(row[row.startIndex + target]))
            correct.append(row.firstIndex(of: row.max()!)! - row.startIndex == target)
        }
        return (out, correct)
    }

    /// Per scoring position: the direction u_target − Σ_v p_v u_v in unembedding space (`[n][d]`)
    /// and the quantity it attributes, logit(target) − Σ_v p_v logit_v.
    func expectedDirections(_ logits: Tensor, targets: [Int], from: Int) throws -> ([[Double]], [Double]) {
        let e = loaded.model.weights["decoder.token_embedding.weight"]
        let v = logits.shape[1], d = e.shape[1], wu = e.scalars, all = logits.scalars
        var directions = [[Double]](), centred = [Double]()
        for (k, target) in targets.enumerated() {
            let row = all[((from + k) * v)..<((from + k + 1) * v)]
            let top = Double(row.max() ?? 0)
            var p = row.map { exp(Double($0) - top) }
            let z = p.reduce(0, +)
            var expected = [Double](repeating: 0, count: d), meanLogit = 0.0
            for i in 0..<v {
                p[i] /= z
                meanLogit += p[i] * Double(row[row.startIndex + i])
                if p[i] > 1e-12 { for j in 0..<d { expected[j] += p[i] * Double(wu[i * d + j]) } }
            }
            directions.append((0..<d).map { Double(wu[target * d + $0]) - expected[$0] })
            centred.append(Double(row[row.startIndex + target]) - meanLogit)
        }
        return (directions, centred)
    }

    /// L2 norm of component `c`'s output at each of `rows` (`all`: a stack of shape `[C, T, d]`).
    static func norms(_ all: [Float], shape: [Int], component c: Int, rows: [Int]) -> [Double] {
        let t = shape[1], d = shape[2]
        return rows.map { p in
            var s = 0.0
            for j in 0..<d { let x = Double(all[(c * t + p) * d + j]); s += x * x }
            return s.squareRoot()
        }
    }
}

extension Tensor {
    /// Rows `positions` of axis 1 of a `[C, T, d]` stack: `[C, positions.count, d]`.
    func gather(positions: [Int]) -> Tensor {
        let c = shape[0], t = shape[1], d = shape[2], all = scalars
        return Tensor(shape: [c, positions.count, d]) { out in
            for k in 0..<c {
                for (i, p) in positions.enumerated() {
                    for j in 0..<d { out[(k * positions.count + i) * d + j] = all[(k * t + p) * d + j] }
                }
            }
        }
    }
}
