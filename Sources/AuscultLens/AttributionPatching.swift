// Attribution patching (Nanda 2023, "Attribution Patching: Activation Patching At Industrial
// Scale"; Kramár et al. 2024, AtP): the effect of patching an activation from the clean run into
// the corrupted one, estimated to first order by one backward pass of the corrupted run:
// m(corrupt with a_clean) − m(corrupt) ≈ (a_clean − a_corrupt) · ∂m/∂a at the corrupted run.
import AuscultAudio
import AuscultTensor
import AuscultWhisper
import Foundation

/// One grid of attribution patching beside real patching on the same cells.
public struct AttributionGrid: Codable, Sendable {
    public var hook: String
    public var rows: [String]
    public var cols: [String]
    /// First-order estimates of each cell's metric change.
    public var estimated: [[Double]]
    /// Real patching's metric change on the same cell (patched run − corrupted run).
    public var patched: [[Double]]
    /// Spearman's rank correlation of the two over the grid's cells.
    public var spearman: Double
}

/// Integrated gradients of the metric on the log-mel from the corrupted clip's to the clean one's,
/// for a report: mel bins (lowest first) × columns of `frameStep` mel frames (10 ms each) over the
/// audio, each the sum of its frames' attributions.
public struct MelAttribution: Codable, Sendable {
    public var steps: Int
    public var frameStep: Int
    public var values: [[Double]]
    /// The clean clip's log-mel pooled the same way (mean per column), to read the map against.
    public var spectrogram: [[Double]]
    /// Σ of every attribution (the whole window), and m(clean) − m(corrupted) it should approach.
    public var total: Double
    public var expected: Double
}

/// The outcome of `auscult attribute`.
public struct AttributionResult: Codable, Sendable {
    public var clean: String
    public var corruption: String
    public var metric: String
    public var cleanValue: Double
    public var corruptValue: Double
    public var grids: [AttributionGrid]
    public var integratedGradients: MelAttribution?
}

/// Attribution patching for one clean / corrupted pair on the grids `Patching` measures:
/// decoder `resid_pre` by layer × position, encoder `resid_pre` by layer × frame window, and every
/// head's `z` of encoder self-attention, decoder self-attention and cross-attention. Two forward
/// passes and one backward pass give every estimate; real patching (`Patching.run`, one run per
/// cell) runs beside it so the two can be compared.
public struct AttributionPatching {
    public let patching: Patching
    /// Steps of integrated gradients on the log-mel (nil: none).
    public var integratedGradientSteps: Int?

    public init(patching: Patching, integratedGradientSteps: Int? = nil) {
        self.patching = patching
        self.integratedGradientSteps = integratedGradientSteps
    }

    /// The gradient metric matching a patching metric, for `seq` (prompt included) of which the
    /// first `prompt` tokens are the prompt.
    static func gradientMetric(_ metric: PatchMetric, seq: [Int], prompt: Int) throws -> GradientMetric {
        switch metric {
        case .logprob:
            let positions = Array((prompt - 1)..<(seq.count - 1))
            return .logProbability(positions: positions, tokens: positions.map { seq[$0 + 1] })
        case .logitDiff(let a, let b, let position):
            return .logitDifference(position: position, token: a, versus: b)
        case .wer: throw notDifferentiable
        }
    }

    static let notDifferentiable = LensError(
        .invalidArgument, "attribution patching needs a differentiable metric (logprob or logit-diff), not wer")

    /// Estimates every cell, runs real patching on the same grids, and pairs them.
    public func run(
        clean path: String, corruption: Corruption, progress: ProgressReporter? = nil
    ) throws
        -> AttributionResult
    {
        let loaded = patching.loaded, dims = loaded.model.dims
        if case .wer = patching.metric { throw Self.notDifferentiable }
        let real = try patching.run(clean: path, corruption: corruption, progress: progress)
        let seq = real.tokens
        let prompt = loaded.prompt(patching.decoding).count
        let gradientMetric = try Self.gradientMetric(patching.metric, seq: seq, prompt: prompt)
        let cleanSamples = try AudioClip(contentsOf: path).samples
        let corruptSamples = try corruption.apply(cleanSamples)
        var names = [HookName]()
        for l in 0..<dims.n_audio_layer { names += [HookName.encoder(l).residPre, HookName.encoder(l).attn.z] }
        for l in 0..<dims.n_text_layer {
            let b = HookName.decoder(l)
            names += [b.residPre, b.attn.z, b.crossAttn.z]
        }
        let (_, clean) = try loaded.runWithCache(.samples(cleanSamples), names: names, tokens: seq)
        let (_, corrupt) = try loaded.runWithCache(
            .samples(corruptSamples), names: names, tokens: seq, backward: gradientMetric)
        progress?.advance(by: 1)
        /// Σ of (clean − corrupt) ⊙ gradient over the elements of each cell (`cellOf` flat index
        /// → cell, nil for elements outside every cell).
        func estimate(_ name: HookName, cells: Int, _ cellOf: (Int) -> Int?) throws -> [Double] {
            let a = try clean.tensor(name).scalars, b = try corrupt.tensor(name).scalars
            let g = try corrupt.gradient(name).scalars
            var sums = [Double](repeating: 0, count: cells)
            for i in a.indices {
                guard let c = cellOf(i), c < cells else { continue }
                sums[c] += (Double(a[i]) - Double(b[i])) * Double(g[i])
            }
            return sums
        }
        var grids = [AttributionGrid]()
        for grid in real.grids {
            var estimated = [[Double]]()
            for (li, _) in grid.rows.enumerated() {
                let name: HookName, cells = grid.cols.count
                let cellOf: (Int) -> Int?
                switch grid.hook {
                case "decoder.blocks.*.hook_resid_pre":
                    name = HookName.decoder(li).residPre
                    let d = dims.n_text_state
                    cellOf = { $0 / d }
                case "encoder.blocks.*.hook_resid_pre":
                    name = HookName.encoder(li).residPre
                    let d = dims.n_audio_state, window = patching.window
                    cellOf = { $0 / d / window }
                case "encoder.blocks.*.attn.hook_z":
                    name = HookName.encoder(li).attn.z
                    let dh = dims.n_audio_state / dims.n_audio_head, width = dims.n_audio_state
                    cellOf = { ($0 % width) / dh }
                case "decoder.blocks.*.attn.hook_z", "decoder.blocks.*.cross_attn.hook_z":
                    let b = HookName.decoder(li)
                    name = grid.hook.contains("cross") ? b.crossAttn.z : b.attn.z
                    let dh = dims.n_text_state / dims.n_text_head, width = dims.n_text_state
                    cellOf = { ($0 % width) / dh }
                default:
                    throw LensError(.invalidArgument, "no attribution for the patching grid \(grid.hook)")
                }
                estimated.append(try estimate(name, cells: cells, cellOf))
            }
            let patched = grid.values.map { $0.map { $0 - real.corruptValue } }
            grids.append(
                AttributionGrid(
                    hook: grid.hook, rows: grid.rows, cols: grid.cols, estimated: estimated, patched: patched,
                    spearman: Statistics.spearman(estimated.flatMap { $0 }, patched.flatMap { $0 })))
        }
        var ig: MelAttribution?
        if let n = integratedGradientSteps {
            let logMel = LogMel(nMels: dims.n_mels)
            let x = logMel.window(cleanSamples), x0 = logMel.window(corruptSamples)
            let r = try IntegratedGradients(loaded: loaded, steps: n).run(
                input: x, baseline: x0, tokens: seq, metric: gradientMetric, progress: progress)
            let frames = min(x.shape[1], (max(cleanSamples.count, corruptSamples.count) + 159) / 160)
            let step = max(1, (frames + 299) / 300)
            let a = r.attribution.scalars, m = x.scalars, width = x.shape[1]
            func pooled(_ v: [Float], mean: Bool) -> [[Double]] {
                (0..<dims.n_mels).map { bin in
                    stride(from: 0, to: frames, by: step).map { c in
                        let cols = c..<min(frames, c + step)
                        let s = cols.reduce(0.0) { $0 + Double(v[bin * width + $1]) }
                        return mean ? s / Double(cols.count) : s
                    }
                }
            }
            ig = MelAttribution(
                steps: n, frameStep: step, values: pooled(a, mean: false), spectrogram: pooled(m, mean: true),
                total: a.reduce(0.0) { $0 + Double($1) }, expected: r.input - r.baseline)
        }
        return AttributionResult(
            clean: path, corruption: corruption.description, metric: patching.metric.name,
            cleanValue: real.cleanValue, corruptValue: real.corruptValue, grids: grids, integratedGradients: ig)
    }

    /// Progress steps `run` reports (real patching's, the estimate, integrated gradients' steps).
    public var steps: Int { patching.steps + 1 + (integratedGradientSteps ?? 0) }
}
