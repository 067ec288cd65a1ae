// Activation patching (clean → corrupted): which activations carry what makes the clean clip's
// transcript? The corrupted run gets one clean activation back at a time, by decoder layer ×
// token position, encoder layer × frame window, and per attention head; a metric says how much of
// the clean behaviour returns (0 = still corrupted, 1 = fully restored).
import AuscultAudio
import AuscultTensor
import AuscultWhisper
import Foundation

/// How to make a corrupted clip from the clean one.
public enum Corruption: Sendable, CustomStringConvertible {
    /// Another recording.
    case file(String)
    /// Gaussian noise at this signal-to-noise ratio (dB), seeded.
    case noise(snrDB: Double, seed: UInt64)
    /// Samples in [start, end) seconds set to 0.
    case silence(start: Double, end: Double)
    /// Delayed by this many seconds (zeros in front; negative cuts the start).
    case shift(seconds: Double)

    public var description: String {
        switch self {
        case .file(let p): return "file \(p)"
        case .noise(let snr, let seed): return String(format: "noise at %.1f dB SNR (seed %llu)", snr, seed)
        case .silence(let a, let b): return String(format: "silence %.2f–%.2f s", a, b)
        case .shift(let s): return String(format: "shift by %.2f s", s)
        }
    }

    /// Throws a `LensError` naming a value that is not finite or outside what a 30 s window allows.
    public func validate() throws {
        switch self {
        case .file: return
        case .noise(let snr, _):
            guard snr.isFinite else { throw LensError(.invalidArgument, "noise at \(snr) dB: the SNR must be finite") }
        case .silence(let a, let b):
            guard a.isFinite, b.isFinite, a >= 0, a < b else {
                throw LensError(.invalidArgument, "silence \(a):\(b) s: wants 0 ≤ start < end, finite seconds")
            }
        case .shift(let s):
            guard s.isFinite, abs(s) < 30 else {
                throw LensError(.invalidArgument, "shift by \(s) s: wants a finite shift within ±30 s (one window)")
            }
        }
    }

    /// The corrupted samples (16 kHz) for clean `samples`.
    public func apply(_ samples: [Float]) throws -> [Float] {
        try validate()
        let rate = Double(AudioClip.sampleRate)
        switch self {
        case .file(let p): return try AudioClip(contentsOf: p).samples
        case .noise(let snr, let seed):
            let power = samples.reduce(0.0) { $0 + Double($1) * Double($1) } / Double(max(1, samples.count))
            let sd = (power / pow(10, snr / 10)).squareRoot()
            var g = SplitMix64(seed: seed)
            return samples.map { x in
                // Box–Muller from two uniforms in (0, 1].
                let u1 = Double(g.next() >> 11 | 1) / Double(1 << 53), u2 = Double(g.next() >> 11) / Double(1 << 53)
                return x + Float(sd * (-2 * log(u1)).squareRoot() * cos(2 * .pi * u2))
            }
        case .silence(let a, let b):
            var out = samples
            let i0 = max(0, Int(a * rate)), i1 = min(samples.count, Int(b * rate))
            if i0 < i1 { for i in i0..<i1 { out[i] = 0 } }
            return out
        case .shift(let s):
            let n = Int((abs(s) * rate).rounded())
            return s >= 0 ? [Float](repeating: 0, count: n) + samples : Array(samples.dropFirst(min(n, samples.count)))
        }
    }
}

/// What is measured on each patched run.
public enum PatchMetric: Sendable, Equatable {
    /// Total log-probability of the clean transcript (teacher-forced).
    case logprob
    /// logit(a) − logit(b) at `position` (absolute, prompt included), teacher-forced.
    case logitDiff(a: Int, b: Int, position: Int)
    /// Word error rate of the greedy transcript against the clean one (generation per patch).
    case wer

    public var name: String {
        switch self {
        case .logprob: return "log-prob of the clean transcript"
        case .logitDiff(let a, let b, let p): return "logit(\(a)) − logit(\(b)) at position \(p)"
        case .wer: return "WER against the clean transcript"
        }
    }
}

/// One patching grid: raw metric values and the normalised restoration
/// `(m − m_corrupt) / (m_clean − m_corrupt)`.
public struct PatchGrid: Codable, Sendable {
    public var hook: String
    public var rows: [String]
    public var cols: [String]
    public var values: [[Double]]
    public var restored: [[Double]]
}

/// The outcome of `auscult patch`.
public struct PatchResult: Codable, Sendable {
    public var clean: String
    public var corruption: String
    public var metric: String
    public var cleanText: String
    public var corruptText: String
    public var tokens: [Int]
    public var tokenText: [String]
    public var cleanValue: Double
    public var corruptValue: Double
    public var grids: [PatchGrid]

    enum CodingKeys: String, CodingKey {
        case clean, corruption, metric, tokens, grids
        case cleanText = "clean_text", corruptText = "corrupt_text", tokenText = "token_text"
        case cleanValue = "clean_value", corruptValue = "corrupt_value"
    }
}

/// Runs the patching experiments for one clean / corrupted pair.
public struct Patching {
    public let loaded: LoadedModel
    public var metric: PatchMetric = .logprob
    /// Frames (20 ms) per encoder window.
    public var window = 50
    public var encoderBatch = 8
    /// How the clean and corrupted transcripts are decoded (prompt and prefix); the metric's
    /// teacher-forced input starts with them.
    public var decoding = DecodingOptions()
    public let normalizer: EnglishTextNormalizer
    var model: Whisper { loaded.model }

    public init(loaded: LoadedModel, normalizer: EnglishTextNormalizer) {
        self.loaded = loaded; self.normalizer = normalizer
    }

    public func run(clean path: String, corruption: Corruption, progress: ProgressReporter? = nil) throws -> PatchResult
    {
        let dims = model.dims
        let cleanSamples = try AudioClip(contentsOf: path).samples
        let corruptSamples = try corruption.apply(cleanSamples)
        let mel = LogMel(nMels: dims.n_mels)
        // Clean run: residual streams entering every encoder block, per-head z, the transcript.
        var zNames = Set((0..<dims.n_audio_layer).map { "encoder.blocks.\($0).attn.hook_z" })
        for i in 0..<dims.n_text_layer {
            zNames.insert("decoder.blocks.\(i).hook_resid_pre")
            zNames.insert("decoder.blocks.\(i).attn.hook_z"); zNames.insert("decoder.blocks.\(i).cross_attn.hook_z")
        }
        func encode(_ samples: [Float], record: ActivationRecorder?) throws -> ([Tensor], Tensor) {
            let m = mel.window(samples)
            return try model.encodeKeepingStreams(m.reshaped([1] + m.shape), hooks: record)
        }
        let cleanRec = ActivationRecorder { zNames.contains($0) }
        let (cleanStreams, cleanAudio) = try encode(cleanSamples, record: cleanRec)
        let (corruptStreams, corruptAudio) = try encode(corruptSamples, record: nil)
        let cleanResult = try loaded.decoder.decode(audio: cleanAudio, options: decoding)[0]
        let corruptResult = try loaded.decoder.decode(audio: corruptAudio, options: decoding)[0]
        let prompt = loaded.decoder.initialTokens(decoding, language: cleanResult.language)
        let seq = prompt + cleanResult.tokens + [loaded.tokenizer.eot]
        _ = try model.decode([seq], cache: try model.makeCache(audio: cleanAudio, audioIndex: [0]), hooks: cleanRec)
        let clean = cleanRec.store.mapValues { $0.reshaped(Array($0.shape.dropFirst())) }
        let t = seq.count
        if case .logitDiff(_, _, let position) = metric, position < 0 || position >= t {
            throw LensError(
                .invalidArgument,
                "logit difference at position \(position): the clean transcript has positions 0..<\(t) "
                    + "(prompt included)")
        }

        // Metric of a batch of runs: rows read features `audio` rows, with per-row ops.
        func measure(_ audio: Tensor, rows: [Int], ops: [Intervention]) throws -> [Double] {
            let handler = ops.isEmpty ? nil : try Interventions(ops, model: model)
            switch metric {
            case .logprob:
                return try loaded.decoder.scoreTokens(
                    audio: audio, rows: rows, sequences: rows.map { _ in seq }, from: prompt.count,
                    chunk: 12, hooks: handler
                ).map { $0.reduce(0, +) }
            case .logitDiff(let a, let b, let position):
                var out = [Double](repeating: 0, count: rows.count)
                try loaded.decoder.teacherForced(
                    audio: audio, rows: rows, sequences: rows.map { _ in seq }, chunk: 12, hooks: handler
                ) { i, p, lg in
                    if p == position { out[i] = Double(lg[a]) - Double(lg[b]) }
                }
                return out
            case .wer:
                let results = try loaded.decoder.decode(
                    audio: audio, rows: rows, tokensFrom: nil, options: decoding, hooks: handler)
                let ref = normalizer(cleanResult.text).split(separator: " ")
                return results.map {
                    WordErrorRate.align(reference: ref, hypothesis: normalizer($0.text).split(separator: " ")).rate
                }
            }
        }
        let ends = try measure(Tensor.stack([cleanAudio.row(0), corruptAudio.row(0)]), rows: [0, 1], ops: [])
        let (mClean, mCorrupt) = (ends[0], ends[1])
        func restored(_ v: Double) -> Double {
            abs(mClean - mCorrupt) < 1e-12 ? 0 : (v - mCorrupt) / (mClean - mCorrupt)
        }
        var grids = [PatchGrid]()
        let tokenLabels = seq.enumerated().map { "\($0.offset):" + loaded.tokenizer.decode([$0.element]) }

        // Decoder: resid_pre of block L at position p from the clean run, into the corrupted run.
        var ops = [Intervention]()
        for l in 0..<dims.n_text_layer {
            let name = "decoder.blocks.\(l).hook_resid_pre"
            for p in 0..<t {
                ops.append(
                    Intervention(hook: name, kind: .replace(clean[name]!), positions: [p], sequences: [ops.count]))
            }
        }
        let idx = ops.count
        let decValues = try measure(corruptAudio, rows: [Int](repeating: 0, count: idx), ops: ops)
        progress?.advance(by: 1)
        grids.append(
            grid(
                "decoder.blocks.*.hook_resid_pre", rows: (0..<dims.n_text_layer).map { "decoder.blocks.\($0)" },
                cols: tokenLabels, flat: decValues, restored: restored))

        // Encoder: resid_pre of block L in a frame window from the clean run; blocks L… rerun.
        let frames = min(
            dims.n_audio_ctx, Int((Double(max(cleanSamples.count, corruptSamples.count)) / 320).rounded(.up)))
        let windows = stride(from: 0, to: max(frames, 1), by: window).map { $0..<min($0 + window, dims.n_audio_ctx) }
        var encValues = [Double]()
        for l in 0..<dims.n_audio_layer {
            var feats = [Tensor]()
            var at = 0
            let clean = cleanStreams[l].row(0), corrupt = corruptStreams[l].row(0)  // [F, d]
            while at < windows.count {
                let batch = Array(windows[at..<min(windows.count, at + encoderBatch)])
                at += batch.count
                let inputs = batch.map { w -> Tensor in
                    var x = corrupt
                    x.replaceSlice(w, axis: 0, with: clean.slice(w, axis: 0))
                    return x
                }
                let out = try model.encodeBlocks(Tensor.stack(inputs), from: l)
                feats += batch.indices.map { out.row($0) }
            }
            encValues += try measure(Tensor.stack(feats), rows: Array(feats.indices), ops: [])
            progress?.advance(by: 1)
        }
        grids.append(
            grid(
                "encoder.blocks.*.hook_resid_pre", rows: (0..<dims.n_audio_layer).map { "encoder.blocks.\($0)" },
                cols: windows.map {
                    String(format: "%.1f–%.1fs", Double($0.lowerBound) * 0.02, Double($0.upperBound) * 0.02)
                },
                flat: encValues, restored: restored))

        // Heads: one head's z from the clean run (all frames / positions).
        let ha = dims.n_audio_head
        var headValues = [Double]()
        for l in 0..<dims.n_audio_layer {
            let name = "encoder.blocks.\(l).attn.hook_z"
            let table = clean[name]!.reshaped([dims.n_audio_ctx, dims.n_audio_state])
            let ops = (0..<ha).map { h in
                Intervention(hook: name, kind: .replace(table), heads: [h], sequences: [h])
            }
            let out = try model.encodeBlocks(
                Tensor.stack([Tensor](repeating: corruptStreams[l].row(0), count: ha)), from: l,
                hooks: try Interventions(ops, model: model))
            headValues += try measure(out, rows: Array(0..<ha), ops: [])
        }
        progress?.advance(by: 1)
        grids.append(
            grid(
                "encoder.blocks.*.attn.hook_z", rows: (0..<dims.n_audio_layer).map { "encoder.blocks.\($0)" },
                cols: (0..<ha).map { "head \($0)" }, flat: headValues, restored: restored))
        let ht = dims.n_text_head
        for part in ["attn", "cross_attn"] {
            var ops = [Intervention]()
            for l in 0..<dims.n_text_layer {
                let name = "decoder.blocks.\(l).\(part).hook_z"
                let table = clean[name]!.reshaped([t, dims.n_text_state])
                for h in 0..<ht {
                    ops.append(Intervention(hook: name, kind: .replace(table), heads: [h], sequences: [ops.count]))
                }
            }
            let values = try measure(corruptAudio, rows: [Int](repeating: 0, count: ops.count), ops: ops)
            grids.append(
                grid(
                    "decoder.blocks.*.\(part).hook_z", rows: (0..<dims.n_text_layer).map { "decoder.blocks.\($0)" },
                    cols: (0..<ht).map { "head \($0)" }, flat: values, restored: restored))
            progress?.advance(by: 1)
        }
        return PatchResult(
            clean: path, corruption: corruption.description, metric: metric.name, cleanText: cleanResult.text,
            corruptText: corruptResult.text, tokens: seq, tokenText: seq.map { loaded.tokenizer.decode([$0]) },
            cleanValue: mClean, corruptValue: mCorrupt, grids: grids)
    }

    /// Number of progress steps `run` reports.
    public var steps: Int { 4 + model.dims.n_audio_layer }

    func grid(_ hook: String, rows: [String], cols: [String], flat: [Double], restored: (Double) -> Double) -> PatchGrid
    {
        let values = rows.indices.map { r in Array(flat[(r * cols.count)..<((r + 1) * cols.count)]) }
        return PatchGrid(hook: hook, rows: rows, cols: cols, values: values, restored: values.map { $0.map(restored) })
    }
}
