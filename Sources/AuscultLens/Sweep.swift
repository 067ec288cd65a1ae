// Ablation sweeps over a dataset (block ablations; whisper_logit_lens's block removal), run so
// that nothing is computed twice: the clean residual stream entering every encoder block is kept,
// an encoder ablation at block L restarts from it at L (or L+1 for a block write, which needs no
// compute), a decoder ablation reuses the clean audio features and their cross-attention keys,
// and every condition of a batch of clips decodes in one batched generation.
import AuscultAudio
import AuscultTensor
import AuscultWhisper
import Foundation

/// Settings of a sweep.
public struct SweepOptions: Sendable {
    /// Conditions to run besides the clean one.
    public var conditions: [Condition]
    /// Donor draws per clip for resample conditions.
    public var donors: Int = 1
    public var seed: UInt64 = 0
    /// Encoder rows (condition × clip) per forward batch.
    public var encoderBatch: Int = 8
    /// Sequences generated together for encoder conditions. Each reads its own audio features
    /// (2.3 MB per row for tiny.en) at every step; 320 rows at once were slower than two waves
    /// of 160 (85 against 82 s for the block-ablation sweep), the larger set streaming from memory.
    public var decodeRows: Int = 160
    /// Clips per decoder batch (each brings one row per decoder condition, plus shadow rows).
    /// When every clip fits in one batch, the clean run's cross-attention keys and values serve
    /// all of them, donors included, and each clip's are read once per step for all its rows.
    public var decoderClips: Int = 40
    public var decoding = DecodingOptions()
    public init(conditions: [Condition]) { self.conditions = conditions }
}

/// Runs ablation conditions over clips and reports one `SweepEntry` per condition and clip.
public final class Sweep {
    public let loaded: LoadedModel
    public let items: [DatasetItem]
    public let options: SweepOptions
    let normalizer: EnglishTextNormalizer
    var model: Whisper { loaded.model }

    // Clean run state.
    var residuals: [[Tensor]] = []  // [clip][block 0…n] the stream entering block L, [F, d]
    var features: [Tensor] = []  // [clip] clean audio features [F, d]
    var encoderHooks: [String: [Tensor]] = [:]  // clean activations at encoder hook targets, per clip
    var decoderMeans: [String: Tensor] = [:]  // per-position means for decoder mean ablations
    var cleanTokens: [[Int]] = []
    var cleanText: [String] = []
    var cleanLogprob: [[Double]] = []
    /// The clean audio features `[A, F, d]` and their cross-attention keys and values, kept for
    /// the decoder conditions when all clips fit in one decoder batch.
    var cleanAudio: Tensor?
    var cleanKV: CrossAttentionKV?
    var prompt: [Int] = []
    let tracing = ProcessInfo.processInfo.environment["AUSCULT_TRACE"] != nil
    var traceClock = Date()

    /// With AUSCULT_TRACE set, prints the time since the last trace point (profiling sweeps).
    func trace(_ what: String) {
        guard tracing else { return }
        FileHandle.standardError.write(
            String(format: "\n[trace] %@ %.2f s\n", what, Date().timeIntervalSince(traceClock)).data(using: .utf8)!)
        traceClock = Date()
    }

    /// Prepares a sweep; `items` must already be loadable (see `SweepInputs`).
    public init(
        loaded: LoadedModel, items: [DatasetItem], options: SweepOptions, normalizer: EnglishTextNormalizer
    ) throws {
        self.loaded = loaded; self.items = items; self.options = options; self.normalizer = normalizer
        for c in options.conditions {
            if let comp = c.component, comp.blocks.count > 1, comp.hook == nil, c.mode != .zero {
                throw ConditionError(
                    .unsupported,
                    "\(c.description): only zero ablation (removal) takes several blocks at once; several hook "
                        + "points take zero, mean or swap with 'together'")
            }
        }
        if options.conditions.contains(where: { $0.mode == .resample }) && items.count < 2 {
            throw ConditionError(
                .unsupported, "resample ablation needs at least 2 clips (a donor other than the clip itself)")
        }
    }

    /// The donor of clip `clip` in draw `draw`: uniform over the other clips, from SplitMix64
    /// seeded with `seed + 1_000_003·clip + draw` (scripts reproduce it to compare with PyTorch).
    public static func donor(clip: Int, draw: Int, clips: Int, seed: UInt64) -> Int {
        var g = SplitMix64(seed: seed &+ UInt64(clip) &* 1_000_003 &+ UInt64(draw))
        let k = Int(g.next() % UInt64(clips - 1))
        return k >= clip ? k + 1 : k
    }

    func donor(_ clip: Int, _ draw: Int) -> Int {
        Self.donor(clip: clip, draw: draw, clips: items.count, seed: options.seed)
    }

    /// Expands conditions into their donor draws.
    var runConditions: [Condition] {
        options.conditions.flatMap { c in
            c.mode == .resample ? (0..<options.donors).map { Condition(c.component, .resample, draw: $0) } : [c]
        }
    }

    /// Runs everything not already in `done` (keys from `SweepEntry.key`), handing each batch's
    /// entries to `emit` as soon as they are ready (to be written before the next batch starts).
    public func run(
        skipping done: Set<String> = [], progress: ProgressReporter? = nil,
        emit: ([SweepEntry]) throws -> Void
    ) throws {
        traceClock = Date()
        try runClean(done: done, emit: emit)
        progress?.advance(by: items.count)
        trace("clean")
        let conds = runConditions
        try runEncoderConditions(conds.filter { $0.side == .encoder }, done: done, progress: progress, emit: emit)
        trace("encoder conditions")
        try runDecoderConditions(conds.filter { $0.side == .decoder }, done: done, progress: progress, emit: emit)
        trace("decoder conditions")
        progress?.finish()
    }

    /// Number of entries a full run produces (for progress).
    public var totalEntries: Int { items.count * (1 + runConditions.count) }

    // MARK: clean run

    func runClean(done: Set<String>, emit: ([SweepEntry]) throws -> Void) throws {
        let mel = LogMel(nMels: model.dims.n_mels)
        let encHookNames = Set(
            try options.conditions.flatMap { c -> [String] in
                guard let comp = c.component, comp.side == .encoder, c.mode != .zero else { return [] }
                return try points(comp)
            })
        residuals = []; features = []; encoderHooks = [:]
        var start = 0
        while start < items.count {
            let batch = Array(items[start..<min(items.count, start + options.encoderBatch)])
            start += batch.count
            let mels = try batch.map { mel.window(try AudioClip(contentsOf: $0.path).samples) }
            let rec = encHookNames.isEmpty ? nil : ActivationRecorder { encHookNames.contains($0) }
            let (perBlock, out) = try model.encodeKeepingStreams(Tensor.stack(mels), hooks: rec)
            for i in batch.indices {
                residuals.append(perBlock.map { $0.row(i) })
                features.append(out.row(i))
            }
            for name in encHookNames {
                encoderHooks[name, default: []] += (0..<batch.count).map { rec!.store[name]!.row($0) }
            }
        }
        // Clean transcripts, then the clean model's log-probabilities of them.
        let audio = Tensor.stack(features)
        var o = options.decoding
        o.beamSize = nil
        prompt = loaded.decoder.initialTokens(o, language: o.language ?? "en")
        let kv = try model.crossAttentionKV(audio)
        let results = try decodeChunks(audio: audio, rows: Array(items.indices), tokensFrom: nil, kv: kv, hooks: nil)
        cleanTokens = results.map(\.tokens)
        cleanText = results.map(\.text)
        let decNames = Set(
            try options.conditions.compactMap { c -> [String]? in
                guard let comp = c.component, comp.side == .decoder, c.mode == .mean else { return nil }
                return comp.hook != nil
                    ? try points(comp)
                    : [
                        "decoder.blocks.\(comp.blocks[0]).hook_resid_pre",
                        "decoder.blocks.\(comp.blocks[0]).hook_resid_post",
                    ]
            }.flatMap { $0 })
        let acc =
            decNames.isEmpty
            ? nil
            : PositionMeans(names: decNames, lengths: items.indices.map { prompt.count + cleanTokens[$0].count + 1 })
        cleanLogprob = try loaded.decoder.scoreTokens(
            audio: audio, rows: Array(items.indices), sequences: items.indices.map(targetSequence),
            from: prompt.count, kv: kv, hooks: acc)
        if let acc { decoderMeans = acc.means(positions: model.dims.n_text_ctx) }
        if items.count <= options.decoderClips { cleanAudio = audio; cleanKV = kv }
        let entries = items.indices.filter { !done.contains(SweepEntry.key(items[$0].id, "clean", 0)) }
            .map {
                entry(
                    clip: $0, condition: .clean, donor: nil, tokens: cleanTokens[$0], text: cleanText[$0],
                    hitLimit: results[$0].tokens.count >= sampleLen, logprob: cleanLogprob[$0])
            }
        if !entries.isEmpty { try emit(entries) }
    }

    var sampleLen: Int { options.decoding.sampleLen ?? model.dims.n_text_ctx / 2 }

    /// Prompt + clean tokens + end-of-text: what cross-entropy is measured on.
    func targetSequence(_ clip: Int) -> [Int] { prompt + cleanTokens[clip] + [loaded.tokenizer.eot] }

    func decodeChunks(
        audio: Tensor, rows: [Int], tokensFrom: [Int]?, kv: CrossAttentionKV? = nil, hooks: HookHandler?
    ) throws -> [DecodingResult] {
        var o = options.decoding
        o.beamSize = nil
        return try loaded.decoder.decode(
            audio: audio, rows: rows, tokensFrom: tokensFrom, options: o, kv: kv, hooks: hooks)
    }

    func entry(
        clip: Int, condition: Condition, donor: Int?, tokens: [Int], text: String, hitLimit: Bool,
        logprob: [Double]
    ) -> SweepEntry {
        let item = items[clip]
        let words = { (s: String) in self.normalizer(s).split(separator: " ") }
        let vsRef = WordErrorRate.align(reference: words(item.reference ?? cleanText[clip]), hypothesis: words(text))
        let vsClean = WordErrorRate.align(reference: words(cleanText[clip]), hypothesis: words(text))
        let ce = -logprob.reduce(0, +) / Double(max(1, logprob.count))
        let ceClean = -cleanLogprob[clip].reduce(0, +) / Double(max(1, cleanLogprob[clip].count))
        return SweepEntry(
            clip: item.id, condition: condition.description, mode: condition.isClean ? nil : condition.mode.rawValue,
            component: condition.component?.name, side: condition.side?.rawValue, draw: condition.draw,
            donor: donor.map { items[$0].id }, tokens: tokens, text: text, wer: vsRef.rate, werVsClean: vsClean.rate,
            wordErrors: vsRef.substitutions + vsRef.deletions + vsRef.insertions, referenceWords: vsRef.referenceWords,
            ce: ce, ceDelta: ce - ceClean, maxRepeat: SweepEntry.maxRepeat(tokens), hitLimit: hitLimit)
    }
}

extension SweepEntry {
    /// The resume key of an entry: clip, condition and donor draw.
    public static func key(_ clip: String, _ condition: String, _ draw: Int) -> String {
        "\(clip)\u{1F}\(condition)\u{1F}\(draw)"
    }
    public var key: String { Self.key(clip, condition, draw) }
}

/// Accumulates per-position means of decoder activations over teacher-forced rows, ignoring the
/// end-of-text padding beyond each row's own length.
final class PositionMeans: HookHandler {
    let names: Set<String>
    let lengths: [Int]
    var sums: [String: [Double]] = [:]
    var counts: [String: [Int]] = [:]
    var width: [String: Int] = [:]
    init(names: Set<String>, lengths: [Int]) { self.names = names; self.lengths = lengths }
    func isActive(_ name: String) -> Bool { names.contains(name) }
    func visit(_ name: String, _ x: inout Tensor, _ ctx: HookContext) throws {
        guard names.contains(name) else { return }
        let rows = x.shape[0], n = x.shape[1]
        width[name] = x.count / (rows * n)
        var s = sums[name] ?? [], c = counts[name] ?? []
        x.accumulatePositions(
            into: &s, counts: &c, offset: ctx.positionOffset, lengths: (0..<rows).map { lengths[ctx.sequences[$0]] })
        sums[name] = s; counts[name] = c
    }

    /// `[positions, width]` means; positions no row reached take the mean over all positions.
    func means(positions: Int) -> [String: Tensor] {
        var out = [String: Tensor]()
        for (name, s) in sums {
            let w = width[name]!, c = counts[name]!
            var overall = [Double](repeating: 0, count: w)
            let total = c.reduce(0, +)
            for p in c.indices { for j in 0..<w { overall[j] += s[p * w + j] } }
            var t = [Float](repeating: 0, count: positions * w)
            for p in 0..<positions {
                for j in 0..<w {
                    t[p * w + j] =
                        p < c.count && c[p] > 0
                        ? Float(s[p * w + j] / Double(c[p])) : Float(overall[j] / Double(max(1, total)))
                }
            }
            out[name] = Tensor(shape: [positions, w], storage: t)
        }
        return out
    }
}
