// `eval-sae`: how good an SAE is, measured two ways. On the activations: FVU, explained variance,
// L0, dead and dense latents, the feature-density histogram. Downstream, the test that matters:
// transcripts and per-token cross-entropy with the reconstruction spliced in at the hook, against
// the clean model and against zero-ablating the hook, giving the fraction of loss recovered
// (CE_zero − CE_spliced) / (CE_zero − CE_clean).
import AuscultAudio
import AuscultTensor
import AuscultWhisper
import Foundation

/// The result of evaluating an SAE on a set of clips (the `eval.json` of `auscult eval-sae`).
public struct SAEEvaluation: Codable, Sendable {
    public struct Clip: Codable, Sendable {
        public var id: String
        public var reference: String?
        public var clean: String
        public var spliced: String
        public var zeroed: String
        /// Mean per-token cross-entropy (nats) of the clean transcript under each condition.
        public var ceClean: Double, ceSpliced: Double, ceZeroed: Double
        enum CodingKeys: String, CodingKey {
            case id, reference, clean, spliced, zeroed
            case ceClean = "ce_clean", ceSpliced = "ce_spliced", ceZeroed = "ce_zeroed"
        }
    }
    /// One bar of the density histogram: latents whose firing density lies in [lo, hi) (log10).
    public struct DensityBin: Codable, Sendable {
        public var log10Low: Double, log10High: Double, latents: Int
        enum CodingKeys: String, CodingKey { case log10Low = "log10_low", log10High = "log10_high", latents }
    }

    public var hook: String
    public var architecture: String
    public var dSAE: Int
    public var rows: Int
    public var fvu: Double
    /// 1 − FVU.
    public var explainedVariance: Double
    public var l0: Double
    /// Latents that never fired on these clips.
    public var deadFraction: Double
    /// Latents firing in more than `denseThreshold` of rows.
    public var denseFraction: Double
    public var denseThreshold: Double
    public var densityHistogram: [DensityBin]
    /// Corpus WER (%, normalised text) against the references, per condition (nil when no reference
    /// holds a word).
    public var werClean: Double?, werSpliced: Double?, werZeroed: Double?
    /// Corpus WER (%) of the spliced and zeroed transcripts against the clean ones.
    public var werSplicedVsClean: Double, werZeroedVsClean: Double
    /// Mean per-token cross-entropy over all clips' clean-transcript tokens.
    public var ceClean: Double, ceSpliced: Double, ceZeroed: Double
    /// (CE_zeroed − CE_spliced) / (CE_zeroed − CE_clean): 1 means the SAE loses nothing downstream.
    public var lossRecovered: Double
    public var clips: [Clip]

    enum CodingKeys: String, CodingKey {
        case hook, architecture, rows, fvu, l0, clips
        case dSAE = "d_sae", explainedVariance = "explained_variance", deadFraction = "dead_fraction"
        case denseFraction = "dense_fraction", denseThreshold = "dense_threshold", densityHistogram =
            "density_histogram"
        case werClean = "wer_clean", werSpliced = "wer_spliced", werZeroed = "wer_zeroed"
        case werSplicedVsClean = "wer_spliced_vs_clean", werZeroedVsClean = "wer_zeroed_vs_clean"
        case ceClean = "ce_clean", ceSpliced = "ce_spliced", ceZeroed = "ce_zeroed", lossRecovered = "loss_recovered"
    }

    /// Firing densities binned by log10 from 10⁻⁶ to 1 in half decades; latents that never fired
    /// get their own first bin (−∞).
    public static func histogram(_ density: [Double]) -> [DensityBin] {
        var bins = [DensityBin(log10Low: -.infinity, log10High: -6, latents: density.filter { $0 == 0 }.count)]
        var lo = -6.0
        while lo < 0 {
            let hi = lo + 0.5
            let n = density.filter { $0 > 0 && log10($0) >= lo && (log10($0) < hi || (hi == 0 && $0 <= 1)) }.count
            bins.append(DensityBin(log10Low: lo, log10High: hi, latents: n))
            lo = hi
        }
        // Densities below 10⁻⁶ (never on datasets this size, but possible) join the lowest bin.
        bins[1].latents += density.filter { $0 > 0 && log10($0) < -6 }.count
        return bins
    }
}

/// Runs the three conditions (clean, spliced, zeroed) over clips and measures them.
public struct SAEEvaluator {
    public let loaded: LoadedModel
    public let sae: SparseAutoencoder
    public let hook: String
    public var batchSize = 8
    public var denseThreshold = 0.1
    public var language = "en"

    /// Checks that `hook` exists and has the SAE's width.
    public init(loaded: LoadedModel, sae: SparseAutoencoder, hook: String) throws {
        let reg = HookRegistry(dims: loaded.model.dims)
        let names = try reg.resolve(hook)
        guard names.count == 1, let point = reg.point(names[0]) else {
            throw HookError(.ambiguousHook, "an SAE splices into one hook point, '\(hook)' names \(names.count)")
        }
        guard !point.readOnly else {
            throw HookError(.readOnly, "\(point.name) is observed, not read back: splicing there would change nothing")
        }
        let width = point.shape.dropFirst().compactMap { Int($0) }.reduce(1, *)
        guard width == sae.config.dIn else {
            throw HookError(
                .shapeMismatch,
                "the SAE reads \(sae.config.dIn) values per row but \(point.name) has \(width) on this model; was it "
                    + "trained on another hook or model?"
            )
        }
        self.loaded = loaded; self.sae = sae; self.hook = point.name
    }

    /// Clips per wave. A wave's clean, spliced and zeroed transcripts (three sequences per clip)
    /// are generated together, as the sweep's waves are: sequences that run to the length limit
    /// (a zeroed hook's usually do) then share each step's pass over the vocabulary matrix
    /// instead of paying it eight rows at a time.
    public var waveClips = 53
    /// Previous-context and forced-prefix tokens for every transcript (openai-whisper's prompt
    /// and prefix; nil: none).
    public var prompt: [Int]? = nil
    public var prefix: [Int]? = nil

    /// Progress units `evaluate` reports for `clips` clips: each clip once when it is encoded
    /// under the three conditions and once when its transcripts are generated and scored.
    public static func progressUnits(clips: Int) -> Int { 2 * clips }

    /// Runs the three conditions over `items`, reporting `progressUnits(clips:)` units.
    ///
    /// Encoder hooks: the clean encoder pass keeps the residual stream entering the hook's block,
    /// and the spliced and zeroed passes restart from it there. Every condition's audio features
    /// then decode as rows of one batch (attention reads the features). Decoder hooks: the clean
    /// audio serves all three conditions, which differ only in the splice applied to their rows.
    public func evaluate(_ items: [DatasetItem], progress: ProgressReporter? = nil) throws -> SAEEvaluation {
        let model = loaded.model, decoder = loaded.decoder
        let mel = LogMel(nMels: model.dims.n_mels)
        var options = DecodingOptions()
        options.language = language
        options.beamSize = nil
        options.prompt = self.prompt
        options.prefix = self.prefix
        let prompt = decoder.initialTokens(options, language: language)
        let isEncoder = !hook.hasPrefix("decoder.")
        // Statistics come from the splice that reconstructs the encoder hook (it sees the clean
        // activation, everything before the hook being clean) or from an observer of the clean
        // rows' scoring pass at a decoder hook.
        let spliced = try SAESplice(sae: sae, hook: hook, mode: .reconstruct)
        let zeroed = try SAESplice(sae: sae, hook: hook, mode: .zero)
        let observer = try SAESplice(sae: sae, hook: hook, mode: .observe)
        let restart = EncoderRestart(hook: hook, layers: model.dims.n_audio_layer)
        var clips = [SAEEvaluation.Clip]()
        var tokenSums = [0.0, 0.0, 0.0], tokenCount = 0
        var at = 0
        while at < items.count {
            let wave = Array(items[at..<min(items.count, at + max(1, waveClips))])
            at += wave.count
            let w = wave.count
            // Audio features per condition: clean, spliced, zeroed (encoder hooks); clean only otherwise.
            var features: [[Tensor]] = isEncoder ? [[], [], []] : [[]]
            var start = 0
            while start < w {
                let batch = Array(wave[start..<min(w, start + max(1, batchSize))])
                start += batch.count
                // An unreadable clip stops the evaluation: its three conditions could not be compared.
                let loadedClips = try mel.load(batch) { item, error in
                    throw error
                }
                let frames = loadedClips.map { $0.validFrames(maxFrames: model.dims.n_audio_ctx) }
                let input = Tensor.stack(loadedClips.map(\.mel))
                var outs = [Tensor]()
                if isEncoder {
                    spliced.frames = frames; zeroed.frames = frames
                    if let restart {
                        let (streams, clean) = try model.encodeKeepingStreams(input)
                        outs = [clean]
                        for s in [spliced, zeroed] { outs.append(try restart.run(model, streams, hooks: s)) }
                    } else {
                        outs = [try model.encode(input)]
                        for s in [spliced, zeroed] { outs.append(try model.encode(input, hooks: s)) }
                    }
                } else {
                    outs = [try model.encode(input)]
                }
                for (c, out) in outs.enumerated() { features[c] += batch.indices.map { out.row($0) } }
                progress?.advance(by: batch.count)
            }
            // Sequence c·w + i is clip i under condition c (0 clean, 1 spliced, 2 zeroed).
            let audio: Tensor, rows: [Int], kv: CrossAttentionKV
            var generateHooks: HookHandler?, scoreHooks: HookHandler?
            if isEncoder {
                audio = Tensor.stack(features.flatMap { $0 })
                rows = Array(0..<(3 * w))
                kv = try model.crossAttentionKV(audio, form: .features)
            } else {
                audio = Tensor.stack(features[0])
                rows = (0..<3).flatMap { _ in Array(0..<w) }
                kv = try model.crossAttentionKV(audio)
                spliced.sequences = Set(w..<(2 * w))
                zeroed.sequences = Set((2 * w)..<(3 * w))
                observer.sequences = Set(0..<w)
                generateHooks = HookChain([spliced, zeroed])
                scoreHooks = HookChain([observer, spliced, zeroed])
            }
            let results = try decoder.decode(
                audio: audio, rows: rows, tokensFrom: nil, options: options, kv: kv, hooks: generateHooks)
            let targets = (0..<w).map { prompt + results[$0].tokens + [loaded.tokenizer.eot] }
            let lp = try decoder.scoreTokens(
                audio: audio, rows: rows, sequences: (0..<3).flatMap { _ in targets }, from: prompt.count,
                chunk: isEncoder ? 8 : 16, kv: kv, hooks: scoreHooks)
            let mean = { (v: [Double]) in -v.reduce(0, +) / Double(max(1, v.count)) }
            for (i, item) in wave.enumerated() {
                clips.append(
                    .init(
                        id: item.id, reference: item.reference, clean: results[i].text, spliced: results[w + i].text,
                        zeroed: results[2 * w + i].text,
                        ceClean: mean(lp[i]), ceSpliced: mean(lp[w + i]), ceZeroed: mean(lp[2 * w + i])))
                for c in 0..<3 { tokenSums[c] -= lp[c * w + i].reduce(0, +) }
                tokenCount += lp[i].count
            }
            progress?.advance(by: w)
        }
        progress?.finish()
        let norm = try EnglishTextNormalizer()
        func wer(_ pairs: [(String, String)]) -> Double {
            100 * WordErrorRate.corpus(pairs.map { (reference: $0.0, hypothesis: $0.1) }, normalizer: norm).rate
        }
        // References that normalise to no words cannot measure an error rate.
        let withRef = clips.filter { $0.reference.map { !norm($0).split(separator: " ").isEmpty } ?? false }
        let hasRefs = !withRef.isEmpty
        let ce = tokenSums.map { $0 / Double(max(1, tokenCount)) }
        let s = isEncoder ? spliced.stats : observer.stats
        let density = s.density
        return SAEEvaluation(
            hook: hook, architecture: sae.config.architecture.rawValue, dSAE: sae.config.dSAE, rows: s.rows,
            fvu: s.fvu, explainedVariance: 1 - s.fvu, l0: s.l0,
            deadFraction: Double(density.filter { $0 == 0 }.count) / Double(max(1, density.count)),
            denseFraction: Double(density.filter { $0 > denseThreshold }.count) / Double(max(1, density.count)),
            denseThreshold: denseThreshold, densityHistogram: SAEEvaluation.histogram(density),
            werClean: hasRefs ? wer(withRef.map { ($0.reference!, $0.clean) }) : nil,
            werSpliced: hasRefs ? wer(withRef.map { ($0.reference!, $0.spliced) }) : nil,
            werZeroed: hasRefs ? wer(withRef.map { ($0.reference!, $0.zeroed) }) : nil,
            werSplicedVsClean: wer(clips.map { ($0.clean, $0.spliced) }),
            werZeroedVsClean: wer(clips.map { ($0.clean, $0.zeroed) }),
            ceClean: ce[0], ceSpliced: ce[1], ceZeroed: ce[2],
            lossRecovered: ce[2] - ce[0] != 0 ? (ce[2] - ce[1]) / (ce[2] - ce[0]) : 1,
            clips: clips)
    }
}

/// Where the spliced and zeroed encoder runs restart from the clean run's residual streams.
enum EncoderRestart {
    /// The hook is the stream entering block `i` (a block's `hook_resid_pre`, or the
    /// `hook_resid_post` of the block before): splice it there and run on from block `i`.
    case stream(Int)
    /// The hook lies inside block `i` (or `encoder.ln_post` when `i` is the block count): rerun
    /// from block `i` with the splice.
    case block(Int)

    /// nil for hooks before the first block (the stem): those runs start from the log-mel.
    init?(hook: String, layers: Int) {
        if hook.hasPrefix("encoder.ln_post") { self = .block(layers); return }
        guard let (side, i) = HookName(hook).block, side == .encoder else { return nil }
        if hook.hasSuffix(".hook_resid_pre") {
            self = .stream(i)
        } else if hook.hasSuffix(".hook_resid_post") {
            self = .stream(i + 1)
        } else {
            self = .block(i)
        }
    }

    /// The encoder's output `[B, F, d]` with `hooks` applied, from `streams` of a clean
    /// `encodeKeepingStreams`.
    func run(_ model: Whisper, _ streams: [Tensor], hooks: SAESplice) throws -> Tensor {
        switch self {
        case .stream(let i):
            var x = streams[i]
            try hooks.visit(hooks.hook, &x, HookContext(clips: Array(0..<x.shape[0])))
            return try model.encodeBlocks(x, from: i)
        case .block(let i):
            return try model.encodeBlocks(streams[i], from: i, hooks: hooks)
        }
    }
}
