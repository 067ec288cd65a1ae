// What `auscult paths` scores: dataset clips, and inputs that make Whisper hallucinate (silence,
// white noise, a pure tone, and the runs of an ablation sweep that looped to the length limit,
// replayed with their condition).
import AuscultAudio
import AuscultTensor
import AuscultWhisper
import Foundation

/// One input of a path analysis: audio, where it comes from, and the interventions every run of
/// it applies (a sweep condition's; none for clips and synthetic sounds).
public struct PathInput: Sendable {
    public var id: String
    /// `dataset`, `silence`, `noise`, `tone` or `length-limit hits`: the group its tokens are
    /// summarised in.
    public var source: String
    /// 16 kHz mono samples.
    public var samples: [Float]
    /// The dataset's transcript, scored with `PathAnalysis.onReference`.
    public var reference: String?
    /// Applied to every run of this input (clean, no audio, no cross-attention, patched).
    public var interventions: [Intervention]
    /// The condition behind `interventions`, in the condition syntax (nil: none).
    public var condition: String?

    public init(
        id: String, source: String, samples: [Float], reference: String? = nil, interventions: [Intervention] = [],
        condition: String? = nil
    ) {
        self.id = id; self.source = source; self.samples = samples; self.reference = reference
        self.interventions = interventions; self.condition = condition
    }

    /// A dataset clip, read from its file.
    public static func clip(_ item: DatasetItem) throws -> PathInput {
        PathInput(
            id: item.id, source: "dataset", samples: try AudioClip(contentsOf: item.path).samples,
            reference: item.reference)
    }

    /// The synthetic inputs Whisper is known to hallucinate on, `seconds` long at 16 kHz:
    /// `silence` (zeros), `noise` (Gaussian white noise, RMS 0.1, i.e. −20 dBFS, seeded) and
    /// `tone` (a 440 Hz sine of amplitude 0.25).
    public static func synthetic(_ names: [String], seconds: Double = 30, seed: UInt64 = 0) throws -> [PathInput] {
        guard seconds.isFinite, seconds > 0, seconds <= 30 else {
            throw LensError(.invalidArgument, "synthetic inputs: length \(seconds) s; want (0, 30] s")
        }
        let n = Int(seconds * 16_000)
        return try names.map { name in
            switch name {
            case "silence":
                return PathInput(id: "silence", source: name, samples: [Float](repeating: 0, count: n))
            case "noise":
                var rng = SplitMix64(seed: seed)
                var samples = [Float](repeating: 0, count: n)
                for i in stride(from: 0, to: n, by: 2) {
                    // Box–Muller: two independent normal draws per pair of uniforms.
                    let u1 = max(Double(rng.next() >> 11) / Double(1 << 53), 1e-300)
                    let u2 = Double(rng.next() >> 11) / Double(1 << 53)
                    let r = (-2 * log(u1)).squareRoot() * 0.1
                    samples[i] = Float(r * cos(2 * .pi * u2))
                    if i + 1 < n { samples[i + 1] = Float(r * sin(2 * .pi * u2)) }
                }
                return PathInput(id: "noise", source: name, samples: samples)
            case "tone":
                let samples = (0..<n).map { Float(0.25 * sin(2 * Double.pi * 440 * Double($0) / 16_000)) }
                return PathInput(id: "tone", source: name, samples: samples)
            default:
                throw LensError(
                    .invalidArgument,
                    "synthetic input '\(name)': want one of \(syntheticNames.joined(separator: ", "))")
            }
        }
    }

    public static let syntheticNames = ["silence", "noise", "tone"]

    /// The runs of the ablation sweep in `directory` (its `results.jsonl`) that stopped at the
    /// length limit, each with its clip (found in `items`) and its condition's interventions;
    /// with a `limit`, taken round-robin over the conditions (each one's first hit, then second).
    /// `zero` and `skip` conditions are replayed (a decoder block's skip as zeros of its three
    /// outputs, the same run, so the decomposition stays exact); `mean` and `swap` need the
    /// sweep's other clips and donors and are returned in `skipped` with the reason.
    public static func limitHits(
        sweep directory: String, items: [DatasetItem], loaded: LoadedModel, limit: Int? = nil
    ) throws -> (inputs: [PathInput], skipped: [String]) {
        let store = SweepStore(reading: directory)
        guard FileManager.default.fileExists(atPath: store.jsonlPath) else {
            throw LensError(.invalidArgument, "sweep \(directory): no results.jsonl (run auscult ablate there first)")
        }
        let settings = store.settings()
        if let hash = settings["model_sha256"], hash != loaded.contentHash {
            throw LensError(
                .conflictingRun,
                "sweep \(directory) was run with other weights (\(settings["model"] ?? "?")), not \(loaded.path)")
        }
        if settings["model_sha256"] == nil, let model = settings["model"], model != loaded.path {
            throw LensError(
                .conflictingRun, "sweep \(directory) was run with \(model), not \(loaded.path); give the same model")
        }
        let byId = Dictionary(items.map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
        var inputs = [PathInput](), skipped = [String]()
        // Each condition's first hit, then each one's second, …: a limit spreads over conditions.
        var byCondition = [String: [SweepEntry]](), order = [String]()
        for e in store.load() where e.hitLimit {
            if byCondition[e.condition] == nil { order.append(e.condition) }
            byCondition[e.condition, default: []].append(e)
        }
        let depth = byCondition.values.map(\.count).max() ?? 0
        let hits = (0..<depth).flatMap { k in
            order.compactMap { c in k < byCondition[c]!.count ? byCondition[c]![k] : nil }
        }
        for e in hits {
            if let limit, inputs.count >= limit { break }
            let name = "\(e.clip) · \(e.condition)"
            guard let item = byId[e.clip] else {
                skipped.append("\(name): clip not in the dataset given"); continue
            }
            let spec = try ConditionSpec(parsing: e.condition)
            guard spec.verb == .zero || spec.verb == .skip else {
                skipped.append("\(name): \(spec.verb.rawValue) conditions need the sweep's other clips"); continue
            }
            var interventions = [Intervention]()
            for it in try Intervention.make(spec, model: loaded) {
                if case .skip = it.kind, it.hook.hasPrefix("decoder.blocks."),
                    let l = Int(it.hook.split(separator: ".")[2])
                {
                    let b = HookName.decoder(l)
                    interventions += [b.attnOut, b.crossAttnOut, b.mlpOut].map { Intervention.zero($0) }
                } else {
                    interventions.append(it)
                }
            }
            var input = try PathInput.clip(item)
            input.id = name
            input.source = "length-limit hits"
            input.interventions = interventions
            input.condition = e.condition
            inputs.append(input)
        }
        return (inputs, skipped)
    }
}
