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
    /// Mean cross-entropy (nats per token) of the text tokens and end-of-text.
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

/// One clip's view: its tokens and, per condition, each token's loss; per component each
/// position's direct contribution.
public struct PathClip: Codable, Sendable {
    public var clip: String
    public var tokens: [String]
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
    /// Largest |Σ contributions + bias − (logit(target) − E_p[logit])| over every position: how
    /// exactly the decomposition adds up (float32 activations).
    public var sumError: Double
    public var clips: [PathClip]
    public var skipped: [String]
    enum CodingKeys: String, CodingKey {
        case kind, model, text, conditions, components, sumError = "sum_error", clips, skipped
    }
}

/// Where the words come from, audio or language (see `PathResult`).
///
///     let r = try PathAnalysis(loaded: try LoadedModel("tiny.en")).run(clips: items)
///     for c in r.conditions { print(c.name, c.loss) }
public struct PathAnalysis {
    public var loaded: LoadedModel
    /// Score the dataset's reference transcripts instead of the clean model's own.
    public var onReference = false
    /// Add-α smoothing of the unigram baseline, fitted on the other clips' texts.
    public var unigramSmoothing = 0.1

    /// Progress units `run` reports: each clip transcribed, then scored.
    public static func steps(clips: Int) -> Int { 2 * clips }

    public init(loaded: LoadedModel) { self.loaded = loaded }

    public static let conditionNames = ["clean", "no audio (silence)", "no cross-attention", "unigram"]

    public func run(clips items: [DatasetItem], progress: ProgressReporter? = nil) throws -> PathResult {
        guard unigramSmoothing > 0, unigramSmoothing.isFinite else {
            throw LensError(.invalidArgument, "unigram smoothing \(unigramSmoothing): want a positive number")
        }
        let d = loaded.model.dims, eot = loaded.tokenizer.eot, prompt = loaded.prompt()
        // The texts to score.
        var texts = [(item: DatasetItem, samples: [Float], tokens: [Int])]()
        var skipped = [String]()
        for item in items {
            let samples = try AudioClip(contentsOf: item.path).samples
            let text: [Int]
            if onReference {
                guard let r = item.reference, !r.trimmingCharacters(in: .whitespaces).isEmpty else {
                    skipped.append("\(item.id): no reference transcript"); progress?.advance(by: 2); continue
                }
                text = loaded.promptTokens(r)
            } else {
                text = try loaded.run(.samples(samples)).tokens
            }
            guard !text.isEmpty else {
                skipped.append("\(item.id): nothing transcribed"); progress?.advance(by: 2); continue
            }
            guard prompt.count + text.count + 1 <= d.n_text_ctx else {
                skipped.append("\(item.id): \(text.count) tokens exceed the decoder's context")
                progress?.advance(by: 2); continue
            }
            texts.append((item, samples, text))
            progress?.advance(by: 1)
        }
        guard !texts.isEmpty else { throw LensError(.noClips, "paths: no clip has a transcript to score") }

        // Unigram counts, each clip scored by the others' (all of them when there is one clip).
        var counts = [Int: Int](), total = 0
        for t in texts { for x in t.tokens + [eot] { counts[x, default: 0] += 1; total += 1 } }
        let vocabulary = Double(d.n_vocab)

        let crossOff = (0..<d.n_text_layer).map { Intervention.zero(HookName.decoder($0).crossAttnOut) }
        var sums = [Double](repeating: 0, count: 4), hits = [Int](repeating: 0, count: 4), scored = 0
        var componentNames = [String](), directSum = [Double](), normSum = [Double](), logitSum = [Double]()
        var positions = 0
        var sumError = 0.0
        var clips = [PathClip]()
        for t in texts {
            let tokens = prompt + t.tokens + [eot]
            let targets = Array(tokens[prompt.count...]), from = prompt.count - 1
            var losses = [[Double]]()
            // Clean, with the cache for the decomposition.
            let (clean, cache) = try loaded.runWithCache(
                .samples(t.samples),
                names: [
                    HookName.embed, HookName.posEmbed, "decoder.blocks.*.hook_attn_out",
                    "decoder.blocks.*.hook_cross_attn_out", "decoder.blocks.*.hook_mlp_out", HookName.lnFinal.scale,
                ],
                tokens: tokens, logits: true)
            let silence = try loaded.run(LoadedModel.silence, tokens: tokens, logits: true)
            let noCross = try loaded.run(.samples(t.samples), tokens: tokens, interventions: crossOff, logits: true)
            for (k, run) in [clean, silence, noCross].enumerated() {
                let (l, correct) = try Self.losses(run.logits, targets: targets, from: from)
                losses.append(l)
                sums[k] += l.reduce(0, +); hits[k] += correct
            }
            // Unigram, leave this clip out.
            var others = counts
            if texts.count > 1 { for x in targets { others[x, default: 0] -= 1 } }
            let rest = texts.count > 1 ? total - targets.count : total
            let best = others.max { ($0.value, $1.key) < ($1.value, $0.key) }?.key
            let unigram = targets.map { x -> Double in
                -log((Double(others[x] ?? 0) + unigramSmoothing) / (Double(rest) + unigramSmoothing * vocabulary))
            }
            losses.append(unigram)
            sums[3] += unigram.reduce(0, +); hits[3] += targets.filter { $0 == best }.count
            scored += targets.count

            // Direct contributions to logit(target) − E_p[logit] at each scoring position.
            let (stack, labels) = try cache.decomposeResid(.decoder, applyLN: false)
            let normed = try cache.applyLNToStack(stack, .decoder)
            guard let logits = clean.logits else {
                throw LensError(.invalidArgument, "paths: the clean run of \(t.item.id) returned no logits")
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
            clips.append(
                PathClip(
                    clip: t.item.id, tokens: targets.map { loaded.tokenizer.decodeWithSpecials([$0]) }, losses: losses,
                    direct: direct))
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
        return PathResult(
            model: loaded.name, text: onReference ? "reference" : "transcript", conditions: conditions,
            components: components, sumError: sumError, clips: clips, skipped: skipped)
    }

    /// Cross-entropy of `targets[k]` at position `from + k` of `logits` `[T, V]`, and how many
    /// targets were the most likely token.
    static func losses(_ logits: Tensor?, targets: [Int], from: Int) throws -> (losses: [Double], correct: Int) {
        guard let logits, logits.rank == 2, logits.shape[0] >= from + targets.count else {
            throw LensError(.invalidArgument, "paths: a run returned no logits for \(targets.count) targets")
        }
        let v = logits.shape[1], all = logits.scalars
        var out = [Double](), correct = 0
        for (k, target) in targets.enumerated() {
            let row = all[((from + k) * v)..<((from + k + 1) * v)]
            let top = Double(row.max() ?? 0)
            let z = row.reduce(0.0) { $0 + exp(Double($1) - top) }
            out.append(top + log(z) - Double(row[row.startIndex + target]))
            if row.firstIndex(of: row.max()!)! - row.startIndex == target { correct += 1 }
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
