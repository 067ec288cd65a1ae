// `auscult heads`: every attention head of a Whisper model scored for what it does, over random
// token sequences and a dataset's clips. Decoder self-attention as TransformerLens's head detector
// and Olsson et al. 2022 score it; encoder self-attention by locality and sinks; cross-attention by
// how monotonic it is and how well its own DTW path times the words, so that the alignment heads
// openai-whisper lists for word timestamps are found, not looked up. Definitions: docs/heads.md.
import AuscultAudio
import AuscultTensor
import AuscultWhisper
import Foundation

/// The three kinds of attention in Whisper.
public enum AttentionKind: String, Codable, Sendable, CaseIterable {
    case decoderSelf = "decoder_self", encoderSelf = "encoder_self", cross
    /// The hook point of layer `layer`'s pattern of this kind.
    public func pattern(_ layer: Int) -> HookName {
        switch self {
        case .decoderSelf: return HookName.decoder(layer).attn.pattern
        case .encoderSelf: return HookName.encoder(layer).attn.pattern
        case .cross: return HookName.decoder(layer).crossAttn.pattern
        }
    }
}

/// One head of one kind of attention.
public struct HeadRef: Codable, Sendable, Hashable, CustomStringConvertible {
    public var layer: Int
    public var head: Int
    public init(layer: Int, head: Int) { self.layer = layer; self.head = head }
    public var description: String { "L\(layer).H\(head)" }
}

/// One score for every head of one kind of attention: `values[layer][head]`, nil where the data
/// gave it no value (no clip with a repeated token, a clip too short to rank).
public struct HeadScoreMap: Codable, Sendable {
    /// The score's name (`induction`, `band_width`, `timing_agreement`, or a custom pattern's).
    public var name: String
    public var attention: AttentionKind
    /// What the score measures, in a sentence.
    public var description: String
    public var values: [[Double?]]
    public subscript(_ h: HeadRef) -> Double? { values[h.layer][h.head] }
}

/// One head's attention on one example, pooled for display: `values[query][key]`.
public struct HeadPatternExample: Codable, Sendable {
    public var attention: AttentionKind
    public var layer: Int
    public var head: Int
    public var values: [[Float]]
    public var rowLabels: [String]
    public var colLabels: [String]
    enum CodingKeys: String, CodingKey {
        case attention, layer, head, values, rowLabels = "row_labels", colLabels = "col_labels"
    }
}

/// A cross-attention head ranked as a candidate alignment head.
public struct AlignmentCandidate: Codable, Sendable {
    public var layer: Int
    public var head: Int
    /// Share of word boundaries the head alone times within the tolerance of the reference timing.
    public var agreement: Double
    /// Mean distance of its boundaries from the reference (ms).
    public var errorMs: Double
    public var monotonicity: Double?
    /// In openai-whisper's list for this model.
    public var known: Bool
    enum CodingKeys: String, CodingKey { case layer, head, agreement, errorMs = "error_ms", monotonicity, known }
}

/// Cross-attention heads ranked by how well each alone times the words.
public struct AlignmentDiscovery: Codable, Sendable {
    /// Every cross-attention head, best first.
    public var ranked: [AlignmentCandidate]
    /// openai-whisper's alignment heads for this model (nil when the model is not in its table).
    public var known: [HeadRef]?
    /// k: how many of `known` there are (or 8).
    public var k: Int
    /// Share of the top k that openai-whisper lists.
    public var precisionAtK: Double?
    public var toleranceSeconds: Double
    /// The timing each head is compared with.
    public var reference: String
    /// Rounds until the reference (the top k) stopped changing.
    public var rounds: Int
    public var words: Int
    enum CodingKeys: String, CodingKey {
        case ranked, known, k, precisionAtK = "precision_at_k", toleranceSeconds = "tolerance_seconds"
        case reference, rounds, words
    }
}

/// A detection pattern of one's own for decoder self-attention (TransformerLens's `detect_head`
/// with a tensor): the decoder input it is scored on and `pattern` `[n, n]` over that input.
public struct CustomHeadPattern: Codable, Sendable {
    public var name: String
    /// The whole decoder input, prompt included (`LoadedModel.prompt()` + text tokens).
    public var tokens: [Int]
    public var pattern: [[Float]]
    public init(name: String, tokens: [Int], pattern: [[Float]]) {
        self.name = name; self.tokens = tokens; self.pattern = pattern
    }
}

/// Everything `auscult heads` measured.
public struct HeadScanResult: Codable, Sendable {
    /// "heads": what the Studio's experiment view recognises the file by.
    public var kind = "heads"
    public var model: String
    public var clips: [String]
    /// Clips left out of the transcript-based scores (nothing transcribed), with why.
    public var skipped: [String]
    public var randomSequences: Int
    public var randomLength: Int
    public var seed: UInt64
    public var detection: HeadDetector.Options
    public var maps: [HeadScoreMap]
    public var alignment: AlignmentDiscovery
    public var examples: [HeadPatternExample]

    /// The score map named `name` for `attention`.
    public func map(_ name: String, _ attention: AttentionKind) -> HeadScoreMap? {
        maps.first { $0.name == name && $0.attention == attention }
    }
    enum CodingKeys: String, CodingKey {
        case kind, model, clips, skipped, randomSequences = "random_sequences", randomLength = "random_length", seed
        case detection, maps, alignment, examples
    }
}

/// Scores every attention head of `loaded` (see `HeadScanResult`).
///
///     let scan = HeadScan(loaded: try LoadedModel("tiny.en"))
///     let r = try scan.run(clips: try Dataset.load("data/clips").items)
///     print(r.alignment.ranked.prefix(8).map { "L\($0.layer).H\($0.head)" })
public struct HeadScan {
    public var loaded: LoadedModel
    /// Random token sequences, each repeated twice, for the decoder self-attention scores.
    public var randomSequences = 4
    public var randomLength = 25
    public var seed: UInt64 = 0
    public var detection = HeadDetector.Options()
    /// A head's word boundary agrees with the reference when within this many seconds.
    public var timingTolerance = 0.1
    public var custom: [CustomHeadPattern] = []
    /// How each clip's transcript is decoded (prompt and prefix) for the scores on real
    /// transcripts and the word timing; the random sequences read the plain prompt.
    public var decoding = DecodingOptions()

    public init(loaded: LoadedModel) { self.loaded = loaded }

    /// Work units for a progress bar: the random sequences and the clips.
    public func steps(clips: Int) -> Int { randomSequences + clips + (custom.isEmpty ? 0 : 1) }

    /// The random sequences: `prompt() + r + r` with `r` `randomLength` text tokens drawn uniformly
    /// below end-of-text by SplitMix64 seeded with `seed + sequence`.
    public func randomInputs() -> [[Int]] {
        let eot = UInt64(loaded.tokenizer.eot), prompt = loaded.prompt()
        return (0..<randomSequences).map { s in
            var g = SplitMix64(seed: seed &+ UInt64(s))
            let r = (0..<randomLength).map { _ in Int(g.next() % eot) }
            return prompt + r + r
        }
    }

    public func run(clips items: [DatasetItem], progress: ProgressReporter? = nil) throws -> HeadScanResult {
        let d = loaded.model.dims
        guard randomSequences >= 1, randomLength >= 2 else {
            throw LensError(
                .invalidArgument, "random sequences: \(randomSequences) of length \(randomLength); want ≥ 1 of ≥ 2")
        }
        guard loaded.prompt().count + 2 * randomLength <= d.n_text_ctx else {
            throw LensError(
                .invalidArgument,
                "random length \(randomLength): twice it after the prompt exceeds the decoder's \(d.n_text_ctx) positions"
            )
        }
        guard timingTolerance > 0, timingTolerance.isFinite else {
            throw LensError(.invalidArgument, "timing tolerance \(timingTolerance) s: want a positive number")
        }
        let (lt, ht, la, ha) = (d.n_text_layer, d.n_text_head, d.n_audio_layer, d.n_audio_head)
        var maps = [HeadScoreMap]()
        var examples = [HeadPatternExample]()

        // Decoder self-attention on random tokens repeated twice (on 30 s of silence).
        var prev = Mean(lt, ht), dup = Mean(lt, ht), ind = Mean(lt, ht), prefix = Mean(lt, ht)
        let selfNames = (0..<lt).map { AttentionKind.decoderSelf.pattern($0) }
        for (s, tokens) in randomInputs().enumerated() {
            let (_, cache) = try loaded.runWithCache(LoadedModel.silence, names: selfNames, tokens: tokens)
            let n = tokens.count, start = loaded.prompt().count
            let dPrev = HeadDetector.previousTokenPattern(count: n), dDup = HeadDetector.duplicateTokenPattern(tokens)
            let dInd = HeadDetector.inductionPattern(tokens)
            // The example patterns' axis labels: the first sequence's tokens, decoded once.
            let labels = s == 0 ? tokens.map { loaded.tokenizer.decodeWithSpecials([$0]) } : []
            for l in 0..<lt {
                let all = try cache.tensor(selfNames[l]).scalars
                for h in 0..<ht {
                    let p = Array(all[(h * n * n)..<((h + 1) * n * n)])
                    prev.add(l, h, try HeadDetector.score(pattern: p, detection: dPrev, n: n, options: detection))
                    dup.add(l, h, try HeadDetector.score(pattern: p, detection: dDup, n: n, options: detection))
                    ind.add(l, h, try HeadDetector.score(pattern: p, detection: dInd, n: n, options: detection))
                    prefix.add(l, h, HeadDetector.prefixMatching(pattern: p, n: n, start: start, length: randomLength))
                    if s == 0 {
                        examples.append(
                            HeadPatternExample(
                                attention: .decoderSelf, layer: l, head: h,
                                values: (0..<n).map { Array(p[($0 * n)..<($0 * n + n)]) }, rowLabels: labels,
                                colLabels: labels))
                    }
                }
            }
            progress?.advance(by: 1)
        }
        let random = "on \(randomSequences) random sequences of \(randomLength) tokens repeated twice"
        maps.append(
            prev.map(
                "previous_token", .decoderSelf, "Attention to the previous token (\(detection.measure)) \(random)."))
        maps.append(
            dup.map("duplicate_token", .decoderSelf, "Attention to earlier copies of the same token \(random)."))
        maps.append(ind.map("induction", .decoderSelf, "Attention to the token after an earlier copy \(random)."))
        maps.append(
            prefix.map(
                "prefix_matching", .decoderSelf,
                "Olsson et al.'s prefix matching: mean attention from the second copy to the token after the first."))
        maps.append(try copyingMap())

        // Encoder self-attention, decoder self-attention on transcripts, cross-attention, per clip.
        var encoder = (0..<5).map { _ in Mean(la, ha) }
        var prevText = Mean(lt, ht), dupText = Mean(lt, ht), indText = Mean(lt, ht), mono = Mean(lt, ht)
        var timed = [TimedClip]()
        var skipped = [String]()
        let crossNames = (0..<lt).map { AttentionKind.cross.pattern($0) }
        for item in items {
            let samples = try AudioClip(contentsOf: item.path).samples
            let audio = AudioInput.samples(samples)
            let frames = LoadedClip.validFrames(samples: samples.count, maxFrames: d.n_audio_ctx), f = d.n_audio_ctx
            let box = EncoderBox()
            let wantExamples = !examples.contains { $0.attention == .encoderSelf }
            let hooks = HookFunctions(model: loaded.model).add(where: {
                $0.hasSuffix(".attn.hook_pattern") && $0.hasPrefix("encoder.")
            }) {
                x, call in
                guard let l = HookName(call.name).block?.index else { return nil }
                let all = x.scalars
                box.stats[l] = (0..<ha).map { h in
                    HeadDetector.encoderStats(
                        pattern: all[(h * f * f)..<((h + 1) * f * f)], frames: f, audioFrames: frames)
                }
                if wantExamples {
                    for h in 0..<ha {
                        box.examples.append(
                            Self.pooledExample(
                                all, offset: h * f * f, rows: frames, cols: frames, stride: f, bins: 60,
                                kind: .encoderSelf, layer: l, head: h))
                    }
                }
                return nil
            }
            let greedy = try loaded.run(audio, hooks: hooks, options: decoding)
            for (l, stats) in box.stats {
                for (h, s) in stats.enumerated() {
                    encoder[0].add(l, h, s.previousFrame); encoder[1].add(l, h, s.bandWidth)
                    encoder[2].add(l, h, s.localShare); encoder[3].add(l, h, s.paddingShare)
                    encoder[4].add(l, h, s.firstFrameShare)
                }
            }
            if wantExamples {
                examples += box.examples.sorted { ($0.layer, $0.head) < ($1.layer, $1.head) }
            }
            guard !greedy.tokens.isEmpty else {
                skipped.append("\(item.id): nothing transcribed")
                progress?.advance(by: 1)
                continue
            }
            let tokens = loaded.prompt(decoding) + greedy.tokens + [loaded.tokenizer.eot], n = tokens.count
            let promptCount = loaded.prompt(decoding).count
            let (_, cache) = try loaded.runWithCache(audio, names: selfNames + crossNames, tokens: tokens)
            let dPrev = HeadDetector.previousTokenPattern(count: n), dDup = HeadDetector.duplicateTokenPattern(tokens)
            let dInd = HeadDetector.inductionPattern(tokens)
            let hasDup = dDup.contains(1), hasInd = dInd.contains(1)
            var cross = [Tensor]()
            for l in 0..<lt {
                let all = try cache.tensor(selfNames[l]).scalars
                for h in 0..<ht {
                    let p = Array(all[(h * n * n)..<((h + 1) * n * n)])
                    prevText.add(l, h, try HeadDetector.score(pattern: p, detection: dPrev, n: n, options: detection))
                    if hasDup {
                        dupText.add(l, h, try HeadDetector.score(pattern: p, detection: dDup, n: n, options: detection))
                    }
                    if hasInd {
                        indText.add(l, h, try HeadDetector.score(pattern: p, detection: dInd, n: n, options: detection))
                    }
                }
                let c = try cache.tensor(crossNames[l])
                cross.append(c)
                let cs = c.scalars
                for h in 0..<ht {
                    mono.add(
                        l, h,
                        HeadDetector.monotonicity(
                            pattern: cs[(h * n * f)..<((h + 1) * n * f)], rows: promptCount..<(n - 1), frames: f,
                            audioFrames: frames))
                    if !examples.contains(where: { $0.attention == .cross && $0.layer == l && $0.head == h }) {
                        var e = Self.pooledExample(
                            cs, offset: h * n * f + promptCount * f, rows: n - 1 - promptCount, cols: frames, stride: f,
                            bins: 100, kind: .cross, layer: l, head: h, poolRows: false)
                        e.rowLabels = greedy.tokens.map { loaded.tokenizer.decodeWithSpecials([$0]) }
                        examples.append(e)
                    }
                }
            }
            var evidence = [[[[Float]]]]()
            for l in 0..<lt {
                evidence.append(
                    try (0..<ht).map { h in
                        try loaded.alignmentEvidence(
                            crossAttention: { cross[$0] }, inputTokens: tokens, promptCount: promptCount,
                            samples: samples.count, layer: l, head: h)
                    })
            }
            let own = try evidence.map { layer in
                try layer.map { try loaded.timeWords(evidence: [$0], inputTokens: tokens, promptCount: promptCount) }
            }
            if own.first?.first?.count ?? 0 >= 2 {
                timed.append(TimedClip(tokens: tokens, promptCount: promptCount, evidence: evidence, own: own))
            }
            progress?.advance(by: 1)
        }
        let audioNote = "over the frames holding audio of \(items.count) clip(s)"
        maps.append(encoder[0].map("previous_frame", .encoderSelf, "Attention to the frame before, \(audioNote)."))
        maps.append(
            encoder[1].map(
                "band_width", .encoderSelf,
                "Median half-mass radius: the smallest ±w (frames of 20 ms) holding half a frame's attention."))
        maps.append(encoder[2].map("local_share", .encoderSelf, "Share of attention within ±5 frames (±100 ms)."))
        maps.append(
            encoder[3].map("padding_share", .encoderSelf, "Share of attention on padding after the audio (a sink)."))
        maps.append(encoder[4].map("first_frame_share", .encoderSelf, "Share of attention on frame 0 (a sink)."))
        let text = "on the clips' own transcripts (teacher-forced)"
        maps.append(prevText.map("previous_token_text", .decoderSelf, "Attention to the previous token \(text)."))
        maps.append(
            dupText.map(
                "duplicate_token_text", .decoderSelf, "Attention to earlier copies \(text), clips with a repeat."))
        maps.append(indText.map("induction_text", .decoderSelf, "Induction attention \(text), clips with a repeat."))
        let known = loaded.knownAlignmentHeads
        let discovery = try discoverAlignmentHeads(timed, known: known, monotonicity: mono.map("", .cross, "").values)
        maps.append(
            HeadScoreMap(
                name: "monotonicity", attention: .cross,
                description: "Spearman ρ between a text token's position and the audio frame it attends to most.",
                values: mono.map("", .cross, "").values))
        var agreement = [[Double?]](repeating: [Double?](repeating: nil, count: ht), count: lt), errorMs = agreement
        for c in discovery.ranked where discovery.words > 0 {
            agreement[c.layer][c.head] = c.agreement; errorMs[c.layer][c.head] = c.errorMs
        }
        maps.append(
            HeadScoreMap(
                name: "timing_agreement", attention: .cross,
                description: String(
                    format:
                        "Share of word boundaries this head alone (openai-whisper's DTW on its pattern) times within "
                        + "%.0f ms of the reference timing (%@).", timingTolerance * 1000, discovery.reference),
                values: agreement))
        maps.append(
            HeadScoreMap(
                name: "timing_error_ms", attention: .cross,
                description: "Mean distance (ms) of this head's word boundaries from the reference timing.",
                values: errorMs))
        for c in custom { maps.append(try customMap(c)) }
        if !custom.isEmpty { progress?.advance(by: 1) }

        return HeadScanResult(
            model: loaded.name, clips: items.map(\.id), skipped: skipped, randomSequences: randomSequences,
            randomLength: randomLength, seed: seed, detection: detection, maps: maps, alignment: discovery,
            examples: examples)
    }

    /// Ranks the cross-attention heads by how well each alone times the words of `timed` against
    /// a reference timing: first every head of the decoder's upper half (openai-whisper's choice
    /// for models it has no list for), then the current top k, until the top k stops changing
    /// (at most 5 rounds). k is the size of openai-whisper's list when there is one, else 8.
    func discoverAlignmentHeads(
        _ timed: [TimedClip], known: [HeadRef]?, monotonicity: [[Double?]]
    ) throws -> AlignmentDiscovery {
        let d = loaded.model.dims, lt = d.n_text_layer, ht = d.n_text_head
        let k = min(lt * ht, known?.count ?? 8)
        let knownSet = Set(known ?? [])
        var reference = (lt / 2..<lt).flatMap { l in (0..<ht).map { HeadRef(layer: l, head: $0) } }
        var ranked = [AlignmentCandidate](), rounds = 0, words = 0
        while rounds < 5 {
            rounds += 1
            var hits = [[Int]](repeating: [Int](repeating: 0, count: ht), count: lt)
            var errors = [[Double]](repeating: [Double](repeating: 0, count: ht), count: lt)
            var boundaries = 0
            words = 0
            for c in timed {
                let ref = try loaded.timeWords(
                    evidence: reference.map { c.evidence[$0.layer][$0.head] }, inputTokens: c.tokens,
                    promptCount: c.promptCount)
                words += ref.count; boundaries += 2 * ref.count
                for l in 0..<lt {
                    for h in 0..<ht {
                        for (a, b) in zip(c.own[l][h], ref) {
                            for delta in [Swift.abs(a.start - b.start), Swift.abs(a.end - b.end)] {
                                if delta <= timingTolerance + 1e-9 { hits[l][h] += 1 }
                                errors[l][h] += delta
                            }
                        }
                    }
                }
            }
            ranked = []
            for l in 0..<lt {
                for h in 0..<ht {
                    ranked.append(
                        AlignmentCandidate(
                            layer: l, head: h, agreement: boundaries > 0 ? Double(hits[l][h]) / Double(boundaries) : 0,
                            errorMs: boundaries > 0 ? 1000 * errors[l][h] / Double(boundaries) : 0,
                            monotonicity: monotonicity[l][h], known: knownSet.contains(HeadRef(layer: l, head: h))))
                }
            }
            ranked.sort {
                ($0.agreement, $0.monotonicity ?? -2, -$0.layer, -$0.head)
                    > ($1.agreement, $1.monotonicity ?? -2, -$1.layer, -$1.head)
            }
            let top = ranked.prefix(k).map { HeadRef(layer: $0.layer, head: $0.head) }
            if Set(top) == Set(reference) || timed.isEmpty { break }
            reference = top
        }
        let precision = known.map { _ in Double(ranked.prefix(k).filter(\.known).count) / Double(k) }
        return AlignmentDiscovery(
            ranked: ranked, known: known, k: k, precisionAtK: words > 0 ? precision : nil,
            toleranceSeconds: timingTolerance,
            reference: "word timing from the top \(k) heads, found in \(rounds) round(s) starting from every head of "
                + "decoder layers \(lt / 2)…\(lt - 1) (openai-whisper's choice for models without a list): "
                + reference.map(\.description).joined(separator: " "),
            rounds: rounds, words: words)
    }

    /// Olsson et al.'s copying score of every decoder self-attention head: the eigenvalues of its
    /// full OV circuit from token embedding to logits, through the LayerNorms' centring and gains
    /// (their per-token scales left out), E·P·Γ₁·W_Vᵀ·W_Oᵀ·P·Γ_f·Eᵀ (`[n_vocab, n_vocab]`). Its
    /// nonzero eigenvalues are those of the `d_head × d_head` matrix W_Oᵀ·P·Γ_f·EᵀE·P·Γ₁·W_Vᵀ.
    public func copyingMap() throws -> HeadScoreMap {
        let d = loaded.model.dims, w = loaded.model.weights
        let dm = d.n_text_state, ht = d.n_text_head, dh = dm / ht
        let g = LinearAlgebra.gram(w["decoder.token_embedding.weight"])
        let gf = w["decoder.ln.weight"].scalars.map(Double.init)
        // P·Γf·G·P: centring is x − mean(x) on either side.
        func centred(_ m: [Double]) -> [Double] {
            var r = m
            for i in 0..<dm {
                let mean = (0..<dm).reduce(0.0) { $0 + r[i * dm + $1] } / Double(dm)
                for j in 0..<dm { r[i * dm + j] -= mean }
            }
            for j in 0..<dm {
                let mean = (0..<dm).reduce(0.0) { $0 + r[$1 * dm + j] } / Double(dm)
                for i in 0..<dm { r[i * dm + j] -= mean }
            }
            return r
        }
        var fg = g
        for i in 0..<dm { for j in 0..<dm { fg[i * dm + j] *= gf[i] } }
        let core = centred(fg)
        var values = [[Double?]]()
        for l in 0..<d.n_text_layer {
            let p = "decoder.blocks.\(l)"
            let g1 = w[p + ".attn_ln.weight"].scalars.map(Double.init)
            let wv = w[p + ".attn.value.weight"].scalars.map(Double.init),
                wo = w[p + ".attn.out.weight"].scalars.map(Double.init)
            var k = core
            for i in 0..<dm { for j in 0..<dm { k[i * dm + j] *= g1[j] } }
            var row = [Double?]()
            for h in 0..<ht {
                // kv = K · W_V,hᵀ  [d, dh]; m = W_O,hᵀ · kv  [dh, dh].
                var kv = [Double](repeating: 0, count: dm * dh)
                for i in 0..<dm {
                    for c in 0..<dh {
                        var s = 0.0
                        let vr = (h * dh + c) * dm
                        for j in 0..<dm { s += k[i * dm + j] * wv[vr + j] }
                        kv[i * dh + c] = s
                    }
                }
                var m = [Double](repeating: 0, count: dh * dh)
                for r in 0..<dh {
                    for c in 0..<dh {
                        var s = 0.0
                        for i in 0..<dm { s += wo[i * dm + h * dh + r] * kv[i * dh + c] }
                        m[r * dh + c] = s
                    }
                }
                row.append(HeadDetector.copyingScore(eigenvalues: try LinearAlgebra.eigenvalues(m, n: dh)))
            }
            values.append(row)
        }
        return HeadScoreMap(
            name: "copying", attention: .decoderSelf,
            description: "Olsson et al.'s copying score: Σ Re λ / Σ |λ| over the eigenvalues of the head's full OV "
                + "circuit (token embedding → value → output → unembedding, LayerNorm gains and centring folded in).",
            values: values)
    }

    /// One custom detection pattern scored on every decoder self-attention head (on silence).
    func customMap(_ c: CustomHeadPattern) throws -> HeadScoreMap {
        let n = c.tokens.count, d = loaded.model.dims
        guard n >= 2, n <= d.n_text_ctx else {
            throw LensError(.invalidArgument, "pattern '\(c.name)': \(n) tokens; want 2…\(d.n_text_ctx)")
        }
        guard c.pattern.count == n, c.pattern.allSatisfy({ $0.count == n }) else {
            throw LensError(
                .invalidArgument,
                "pattern '\(c.name)': want \(n) rows of \(n) values (one per decoder input token, prompt included), "
                    + "got \(c.pattern.count) rows")
        }
        let names = (0..<d.n_text_layer).map { AttentionKind.decoderSelf.pattern($0) }
        let (_, cache) = try loaded.runWithCache(LoadedModel.silence, names: names, tokens: c.tokens)
        let detection = c.pattern.flatMap { $0 }
        var values = [[Double?]]()
        for l in 0..<d.n_text_layer {
            let all = try cache.tensor(names[l]).scalars
            values.append(
                try (0..<d.n_text_head).map { h in
                    try HeadDetector.score(
                        pattern: Array(all[(h * n * n)..<((h + 1) * n * n)]), detection: detection, n: n,
                        options: self.detection)
                })
        }
        return HeadScoreMap(
            name: c.name, attention: .decoderSelf,
            description: "Custom detection pattern '\(c.name)' (\(self.detection.measure)) on its \(n) tokens.",
            values: values)
    }

    /// `rows × cols` of a strided pattern pooled into at most `bins` bins per axis: rows averaged
    /// (unless `poolRows` is false), keys summed, so a pooled row still sums to its share.
    static func pooledExample(
        _ all: [Float], offset: Int, rows: Int, cols: Int, stride: Int, bins: Int, kind: AttentionKind, layer: Int,
        head: Int, poolRows: Bool = true
    ) -> HeadPatternExample {
        let rb = poolRows ? min(bins, rows) : rows, cb = min(bins, cols)
        var v = [[Float]](repeating: [Float](repeating: 0, count: cb), count: rb)
        var counts = [Float](repeating: 0, count: rb)
        for i in 0..<rows {
            let bi = poolRows ? i * rb / rows : i
            counts[bi] += 1
            for j in 0..<cols { v[bi][j * cb / cols] += all[offset + i * stride + j] }
        }
        for i in 0..<rb where counts[i] > 0 { for j in 0..<cb { v[i][j] /= counts[i] } }
        let seconds = { (k: Int, n: Int, b: Int) in String(format: "%.2fs", Double(k * n / b) * 0.02) }
        return HeadPatternExample(
            attention: kind, layer: layer, head: head, values: v,
            rowLabels: (0..<rb).map { seconds($0, rows, rb) }, colLabels: (0..<cb).map { seconds($0, cols, cb) })
    }
}

/// One clip's cross-attention prepared for word timing: every head's evidence `[layer][head]` and
/// the words each head alone times.
struct TimedClip {
    var tokens: [Int]
    var promptCount: Int
    var evidence: [[[[Float]]]]
    var own: [[[WordTiming]]]
}

/// Per-clip encoder statistics collected inside a hook.
private final class EncoderBox {
    var stats: [Int: [HeadDetector.EncoderStats]] = [:]
    var examples: [HeadPatternExample] = []
}

/// A running mean per (layer, head) that skips undefined values.
struct Mean {
    var sum: [[Double]], count: [[Int]]
    init(_ layers: Int, _ heads: Int) {
        sum = .init(repeating: .init(repeating: 0, count: heads), count: layers)
        count = .init(repeating: .init(repeating: 0, count: heads), count: layers)
    }
    mutating func add(_ l: Int, _ h: Int, _ v: Double?) {
        guard let v, v.isFinite else { return }
        sum[l][h] += v; count[l][h] += 1
    }
    func map(_ name: String, _ kind: AttentionKind, _ description: String) -> HeadScoreMap {
        HeadScoreMap(
            name: name, attention: kind, description: description,
            values: zip(sum, count).map { s, c in zip(s, c).map { $1 > 0 ? $0 / Double($1) : nil } })
    }
}

extension LoadedModel {
    /// openai-whisper's alignment heads for this model, nil when it has no list for it.
    public var knownAlignmentHeads: [HeadRef]? {
        AlignmentHeads.isListed(model.dims)
            ? AlignmentHeads.heads(for: model.dims).map { HeadRef(layer: $0.layer, head: $0.head) } : nil
    }
}
