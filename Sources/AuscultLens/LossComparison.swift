// `auscult losses`: models compared by what they find hard. Every subject (a model, a model under
// an intervention or with an SAE spliced in, or a model's direct path from token embedding to
// unembedding) scores the same
// reference transcripts; its per-word losses form one vector, and PCA over the vectors puts each
// subject at a point, with the words that load most on each component (Olsson et al. 2022 compare
// models by per-token losses this way). Words, not tokens, because tiny.en and base split text
// with different tokenizers. Definitions: docs/losses.md.
import AuscultAudio
import AuscultTensor
import AuscultWhisper
import Foundation

/// One subject's place among the others.
public struct LossPoint: Codable, Sendable {
    public var name: String
    /// Mean loss per word (nats; a word's loss is the sum of its tokens').
    public var meanLoss: Double
    /// Coordinates on the first principal components.
    public var coordinates: [Double]
    enum CodingKeys: String, CodingKey { case name, meanLoss = "mean_loss", coordinates }
}

/// A word of the scored texts and how strongly it loads on a component.
public struct WordLoading: Codable, Sendable {
    public var clip: String
    public var word: String
    public var loading: Double
}

/// One principal component of the subjects' loss vectors.
public struct LossComponent: Codable, Sendable {
    /// Share of the variance across subjects it explains.
    public var explained: Double
    /// The words loading most positively and most negatively on it.
    public var positive: [WordLoading]
    public var negative: [WordLoading]
}

/// What `auscult losses` measured.
public struct LossComparisonResult: Codable, Sendable {
    /// "losses": what the Studio's experiment view recognises the file by.
    public var kind = "losses"
    public var clips: [String]
    public var words: Int
    public var points: [LossPoint]
    public var components: [LossComponent]
    /// Per subject, every word's loss (`losses[subject][word]`, words in `wordLabels` order).
    public var losses: [[Double]]
    public var wordLabels: [String]
    enum CodingKeys: String, CodingKey {
        case kind, clips, words, points, components, losses, wordLabels = "word_labels"
    }
}

/// Subjects compared by their per-word losses on the same texts (see `LossComparisonResult`).
public struct LossComparison {
    /// One thing that scores text: a model, with interventions, or its direct path alone.
    public struct Subject {
        public var name: String
        public var loaded: LoadedModel
        public var interventions: [Intervention]
        /// Score with the zero-layer path only: each token's embedding through the final
        /// LayerNorm to the unembedding (bigram statistics; no audio, no position, no layer).
        public var directPath: Bool
        /// Makes a hook handler for one clip's run from the encoder frames holding its audio: an
        /// SAE spliced in (`SAESplice`, which splices only those frames), or any other handler.
        public var hooks: ((_ audioFrames: Int) throws -> HookHandler)?
        public init(
            name: String, loaded: LoadedModel, interventions: [Intervention] = [], directPath: Bool = false,
            hooks: ((_ audioFrames: Int) throws -> HookHandler)? = nil
        ) {
            self.name = name; self.loaded = loaded; self.interventions = interventions; self.directPath = directPath
            self.hooks = hooks
        }
    }

    public var subjects: [Subject]
    /// Words listed per component and sign.
    public var topWords = 8
    public init(subjects: [Subject]) { self.subjects = subjects }

    /// Scores every subject on every clip's reference transcript (clips without one are refused).
    public func run(clips items: [DatasetItem], progress: ProgressReporter? = nil) throws -> LossComparisonResult {
        guard subjects.count >= 2 else {
            throw LensError(.invalidArgument, "losses: compare at least 2 subjects, got \(subjects.count)")
        }
        guard Set(subjects.map(\.name)).count == subjects.count else {
            throw LensError(.invalidArgument, "losses: subject names must differ (\(subjects.map(\.name)))")
        }
        // One space between words, so that every tokenizer starts each word with a space token.
        let texts = items.compactMap { i -> (DatasetItem, String)? in
            let r = (i.reference ?? "").split(whereSeparator: \.isWhitespace).joined(separator: " ")
            return r.isEmpty ? nil : (i, r)
        }
        guard !texts.isEmpty else { throw LensError(.noClips, "losses: no clip has a reference transcript to score") }
        var audio = [String: [Float]]()
        var losses = [[Double]](), labels = [String](), perClip = [Int]()
        for s in subjects {
            var vector = [Double]()
            for (c, (item, text)) in texts.enumerated() {
                if audio[item.id] == nil { audio[item.id] = try AudioClip(contentsOf: item.path).samples }
                let (words, values) = try wordLosses(s, text: text, audio: audio[item.id]!)
                if losses.isEmpty {
                    labels += words.map { "\(item.id): \($0)" }; perClip.append(words.count)
                } else if words.count != perClip[c] {
                    throw LensError(
                        .invalidArgument,
                        "losses: \(s.name) splits \(item.id)'s text into \(words.count) words, \(subjects[0].name) into "
                            + "\(perClip[c])")
                }
                vector += values
                progress?.advance(by: 1)
            }
            losses.append(vector)
        }
        // PCA through the subjects × subjects Gram matrix of the centred vectors.
        let p = losses.count, w = labels.count
        let mean = (0..<w).map { j in losses.reduce(0) { $0 + $1[j] } / Double(p) }
        let centred = losses.map { v in (0..<w).map { v[$0] - mean[$0] } }
        var gram = [Double](repeating: 0, count: p * p)
        for a in 0..<p {
            for b in 0..<p { gram[a * p + b] = zip(centred[a], centred[b]).reduce(0) { $0 + $1.0 * $1.1 } }
        }
        let (values, vectors) = try LinearAlgebra.symmetricEigen(gram, n: p)
        let total = values.reduce(0) { $0 + max(0, $1) }
        let kept = (0..<min(3, p - 1)).filter { values[$0] > 1e-12 * max(1, total) }
        var components = [LossComponent]()
        for k in kept {
            let s = values[k].squareRoot()
            // Word loadings: the unit direction in word space, Xᵀu / σ.
            let loading = (0..<w).map { j in (0..<p).reduce(0) { $0 + centred[$1][j] * vectors[k][$1] } / s }
            let order = loading.indices.sorted { loading[$0] > loading[$1] }
            func words(_ idx: some Sequence<Int>) -> [WordLoading] {
                idx.prefix(topWords).map { j in
                    let parts = labels[j].split(separator: ":", maxSplits: 1)
                    return WordLoading(
                        clip: String(parts[0]), word: String(parts[1].dropFirst()), loading: loading[j])
                }
            }
            components.append(
                LossComponent(
                    explained: total > 0 ? values[k] / total : 0, positive: words(order),
                    negative: words(order.reversed())))
        }
        let points = (0..<p).map { a in
            LossPoint(
                name: subjects[a].name, meanLoss: losses[a].reduce(0, +) / Double(w),
                coordinates: kept.map { vectors[$0][a] * values[$0].squareRoot() })
        }
        return LossComparisonResult(
            clips: texts.map(\.0.id), words: w, points: points, components: components, losses: losses,
            wordLabels: labels)
    }

    /// Progress units: one per subject and clip.
    public func steps(clips: Int) -> Int { subjects.count * clips }

    /// `text`'s words (as spoken: split where a token starts with a space; end-of-text last) and
    /// each word's loss under `s`: the sum of its tokens' cross-entropies, teacher-forced.
    func wordLosses(_ s: Subject, text: String, audio: [Float]) throws -> (words: [String], losses: [Double]) {
        let loaded = s.loaded, tok = loaded.tokenizer
        let ids = loaded.promptTokens(text), prompt = loaded.prompt()
        let tokens = prompt + ids + [tok.eot]
        guard tokens.count <= loaded.model.dims.n_text_ctx else {
            throw LensError(.invalidArgument, "losses: a \(ids.count)-token text exceeds the decoder's context")
        }
        let logits: Tensor
        if s.directPath {
            logits = try directPathLogits(loaded, tokens: tokens)
        } else {
            let frames = LoadedClip.validFrames(samples: audio.count, maxFrames: loaded.model.dims.n_audio_ctx)
            guard
                let l = try loaded.run(
                    .samples(audio), tokens: tokens, interventions: s.interventions, hooks: try s.hooks?(frames),
                    logits: true
                ).logits
            else { throw LensError(.invalidArgument, "losses: \(s.name) returned no logits") }
            logits = l
        }
        let v = logits.shape[1], all = logits.scalars
        var words = [String](), losses = [Double]()
        for (k, target) in (ids + [tok.eot]).enumerated() {
            let row = all[((prompt.count - 1 + k) * v)..<((prompt.count + k) * v)]
            let top = Double(row.max() ?? 0)
            let loss = top + log(row.reduce(0.0) { $0 + exp(Double($1) - top) }) - Double(row[row.startIndex + target])
            let piece = target == tok.eot ? "<|endoftext|>" : tok.decode([target])
            if words.isEmpty || piece.hasPrefix(" ") || target == tok.eot {
                words.append(piece.trimmingCharacters(in: .whitespaces)); losses.append(loss)
            } else {
                words[words.count - 1] += piece; losses[losses.count - 1] += loss
            }
        }
        return (words, losses)
    }

    /// The zero-layer path's logits `[T, n_vocab]`: each token's embedding through the final
    /// LayerNorm (its own mean and σ), times the unembedding (the embedding, tied).
    func directPathLogits(_ loaded: LoadedModel, tokens: [Int]) throws -> Tensor {
        let w = loaded.model.weights, e = w["decoder.token_embedding.weight"], d = e.shape[1]
        let gamma = w["decoder.ln.weight"].scalars, beta = w["decoder.ln.bias"].scalars, all = e.scalars
        var x = [Float]()
        for t in tokens {
            let row = all[(t * d)..<((t + 1) * d)].map(Double.init)
            let mean = row.reduce(0, +) / Double(d)
            let sigma = (row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(d) + 1e-5).squareRoot()
            x += (0..<d).map { Float((row[$0] - mean) / sigma) * gamma[$0] + beta[$0] }
        }
        return Tensor(shape: [tokens.count, d], storage: x).linear(e)
    }
}
