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
    /// Corpus WER (%, normalised text) against the references, per condition (nil without references).
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
            throw StoreError(.mismatch, "an SAE splices into one hook point, '\(hook)' names \(names.count)")
        }
        guard !point.readOnly else {
            throw StoreError(.mismatch, "\(point.name) is observed, not read back: splicing there would change nothing")
        }
        let width = point.shape.dropFirst().compactMap { Int($0) }.reduce(1, *)
        guard width == sae.config.dIn else {
            throw StoreError(
                .mismatch,
                "the SAE reads \(sae.config.dIn) values per row but \(point.name) has \(width) on this model; was it trained on another hook or model?"
            )
        }
        self.loaded = loaded; self.sae = sae; self.hook = point.name
    }

    public func evaluate(_ items: [DatasetItem], progress: ProgressReporter? = nil) throws -> SAEEvaluation {
        let model = loaded.model, decoder = loaded.decoder
        let mel = LogMel(nMels: model.dims.n_mels)
        var options = DecodingOptions()
        options.language = language
        let prompt = decoder.initialTokens(options, language: language)
        let observer = try SAESplice(sae: sae, hook: hook, mode: .observe)
        var clips = [SAEEvaluation.Clip]()
        var tokenSums = [0.0, 0.0, 0.0], tokenCount = 0
        var at = 0
        while at < items.count {
            let batch = Array(items[at..<min(items.count, at + batchSize)])
            at += batch.count
            // An unreadable clip stops the evaluation: its three conditions could not be compared.
            let loadedClips = try mel.load(batch) { item, error in
                throw StoreError(.missing, "\(item.path): cannot read", cause: "\(error)")
            }
            let frames = loadedClips.map { $0.validFrames(maxFrames: model.dims.n_audio_ctx) }
            let input = Tensor.stack(loadedClips.map(\.mel))
            observer.frames = frames
            let isEncoder = hook.hasPrefix("encoder.")
            // Clean: the observer sees the clean activation once (encoder pass or scoring pass).
            let cleanAudio = try model.encode(input, hooks: isEncoder ? observer : nil)
            let clean = try decoder.decode(audio: cleanAudio, options: options, hooks: nil)
            let targets = clean.map { prompt + $0.tokens + [loaded.tokenizer.eot] }
            let rows = Array(batch.indices)
            let ceClean = try decoder.scoreTokens(
                audio: cleanAudio, rows: rows, sequences: targets, from: prompt.count,
                hooks: isEncoder ? nil : observer)
            var texts = [[String]](), ces = [[[Double]]]()
            for mode in [SAESplice.Mode.reconstruct, .zero] {
                let splice = try SAESplice(sae: sae, hook: hook, mode: mode, frames: frames)
                let audio = try model.encode(input, hooks: splice)
                texts.append(try decoder.decode(audio: audio, options: options, hooks: splice).map(\.text))
                ces.append(
                    try decoder.scoreTokens(
                        audio: audio, rows: rows, sequences: targets, from: prompt.count, hooks: splice))
            }
            for (i, item) in batch.enumerated() {
                let mean = { (v: [Double]) in -v.reduce(0, +) / Double(max(1, v.count)) }
                clips.append(
                    .init(
                        id: item.id, reference: item.reference, clean: clean[i].text, spliced: texts[0][i],
                        zeroed: texts[1][i],
                        ceClean: mean(ceClean[i]), ceSpliced: mean(ces[0][i]), ceZeroed: mean(ces[1][i])))
                tokenSums[0] -= ceClean[i].reduce(0, +); tokenSums[1] -= ces[0][i].reduce(0, +);
                tokenSums[2] -= ces[1][i].reduce(0, +)
                tokenCount += ceClean[i].count
            }
            progress?.advance(by: batch.count)
        }
        progress?.finish()
        let norm = try EnglishTextNormalizer()
        func wer(_ pairs: [(String, String)]) -> Double {
            100 * WordErrorRate.corpus(pairs.map { (reference: $0.0, hypothesis: $0.1) }, normalizer: norm).rate
        }
        let withRef = clips.filter { $0.reference != nil }
        let hasRefs = !withRef.isEmpty
        let ce = tokenSums.map { $0 / Double(max(1, tokenCount)) }
        let s = observer.stats
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
