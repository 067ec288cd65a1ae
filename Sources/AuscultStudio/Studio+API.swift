// The JSON API's answers: what each endpoint returns, computed from the indexes and the model.
// The routes (Studio+Routes.swift) only parse parameters and call these.
import AuscultAudio
import AuscultSAE
import AuscultTensor
import AuscultWhisper
import Foundation

/// One served index, as `GET /api/indexes` lists it.
struct IndexInfo: Codable, Sendable {
    var id: String
    var kind: String
    var hook: String
    var source: String
    var model: String
    var width: Int
    var rows: Int
    var clips: Int
}

/// A feature in a ranking or a word search.
struct FeatureSummary: Codable, Sendable {
    var feature: Int
    var density: Double?
    var maxValue: Double?
    /// Top examples on the searched word.
    var examples: Int?
    enum CodingKeys: String, CodingKey { case feature, density, examples; case maxValue = "max_value" }
}

/// A window of a clip with one feature's value per encoder frame: what an example card draws.
struct Trace: Codable, Sendable {
    var clip: String
    var feature: Int
    var start: Double
    var end: Double
    /// Seconds per encoder frame (20 ms) and the first frame of `activation`.
    var frameSeconds: Double
    var firstFrame: Int
    var activation: [Float]
    var mel: MelImage
    var words: [WordSpan]
    enum CodingKeys: String, CodingKey {
        case clip, feature, start, end, activation, mel, words
        case frameSeconds = "frame_seconds", firstFrame = "first_frame"
    }
}

/// A feature's values over a whole inspected clip.
struct FeatureTrack: Codable, Sendable {
    var feature: Int
    var max: Float
    var values: [Float]
}

/// A clip through one index: transcript, word timing, spectrogram and its most active features.
struct Inspection: Codable, Sendable {
    var index: String
    var clip: String
    var upload: Bool
    var duration: Double
    var frames: Int
    var transcript: String
    var words: [WordSpan]
    var mel: MelImage
    var features: [FeatureTrack]
}

/// `POST /api/steer`'s body.
struct SteerRequest: Codable, Sendable {
    var index: String
    var clip: String?
    var upload: String?
    var feature: Int
    /// `scale` (multiply by `value`) or `clamp` (set to `value`) wherever the clip holds audio.
    var mode: String
    var value: Double
    /// SAE indexes: add the SAE's error back so that only the edit changes the run (default true).
    var keepError: Bool?
    enum CodingKeys: String, CodingKey { case index, clip, upload, feature, mode, value; case keepError = "keep_error" }
}

/// One word of a word-level diff between two transcripts.
struct DiffWord: Codable, Sendable, Equatable {
    /// `same`, `removed` (only in the clean transcript) or `added` (only in the steered one).
    var op: String
    var word: String
    var start: Double?
    var end: Double?
}

struct SteerResult: Codable, Sendable {
    var edit: String
    var clean: Transcript
    var steered: Transcript
    var diff: [DiffWord]
    var changed: Bool
}

extension Studio {
    func indexList() throws -> [IndexInfo] {
        try indexes.map { i in
            let clips = try i.pool.read { try $0.db.rows("SELECT COUNT(*) FROM clips")[0][0].int ?? 0 }
            return IndexInfo(
                id: i.id, kind: i.kind, hook: i.hook,
                source: (i.pool.meta["source"].map { ($0 as NSString).lastPathComponent }) ?? "",
                model: loaded.name, width: i.width, rows: Int(i.pool.meta["rows"] ?? "") ?? 0, clips: clips)
        }
    }

    func featureList(_ index: ServedIndex, sort: String, limit: Int, word: String?) throws -> [FeatureSummary] {
        try index.pool.read { idx in
            if let word, !word.isEmpty {
                return try idx.features(onWordsContaining: word, limit: limit).map {
                    FeatureSummary(
                        feature: $0.feature, density: $0.density, maxValue: $0.maxValue, examples: $0.examples)
                }
            }
            return try idx.ranked(by: sort, limit: limit).map {
                FeatureSummary(feature: $0.feature, density: $0.density, maxValue: $0.maxValue, examples: nil)
            }
        }
    }

    func featurePage(_ index: ServedIndex, _ feature: Int, examples: Int) throws -> FeaturePage {
        guard feature >= 0 && feature < index.width,
            let page = try index.pool.read({ try $0.page(feature, examples: examples) })
        else {
            throw StudioError(.notFound, "index '\(index.id)' has features 0…\(index.width - 1), not \(feature)")
        }
        return page
    }

    /// The phoneme and word a feature's top and most negative examples fall on, against a null
    /// (`FeatureLabeler`; the same as `auscult features --label --format json`).
    func featureLabels(_ index: ServedIndex, _ feature: Int) throws -> FeatureLabels {
        guard feature >= 0 && feature < index.width else {
            throw StudioError(.notFound, "index '\(index.id)' has features 0…\(index.width - 1), not \(feature)")
        }
        guard let dictionary else {
            throw StudioError(.notFound, "no pronouncing dictionary is installed (scripts/setup.sh fetches CMUdict)")
        }
        guard
            let labels = try index.pool.read({ try FeatureLabeler(index: $0, dictionary: dictionary).labels(feature) })
        else {
            throw StudioError(.notFound, "index '\(index.id)' has no feature \(feature)")
        }
        return labels
    }

    /// One feature over `start…end` seconds (at most 10 s) of an analysed clip.
    func trace(
        _ a: ClipAnalysis, clip: String, feature: Int, start: Double, end: Double, words: [WordSpan]
    ) throws -> Trace {
        guard feature >= 0 && feature < a.width else {
            throw StudioError(.notFound, "feature \(feature): the index has 0…\(a.width - 1)")
        }
        guard start.isFinite, end.isFinite, start >= 0, end > start, end - start <= 10 else {
            throw StudioError(
                .badRequest, "start \(start), end \(end): give 0 ≤ start < end with at most 10 s between them")
        }
        let duration = Double(a.samples.count) / Double(AudioClip.sampleRate)
        let s = min(start, duration), e = min(end, max(duration, s))
        // Frames overlapping start…end (the small margins absorb 0.02's binary rounding: 1 s is frame 50).
        let f0 = min(a.frames, Int((s / 0.02 + 1e-6).rounded(.down)))
        let f1 = max(f0, min(a.frames, Int((e / 0.02 - 1e-6).rounded(.up))))
        let c0 = min(LogMel.windowFrames, 2 * f0), c1 = min(LogMel.windowFrames, 2 * f1)
        return Trace(
            clip: clip, feature: feature, start: s, end: e, frameSeconds: 0.02, firstFrame: f0,
            activation: a.column(feature, f0..<f1), mel: MelImage(a.mel, columns: c0..<c1),
            words: words.filter { $0.end > s && $0.start < e })
    }

    /// The `prompt` and `prefix` query parameters as decoding options, checked (text, at most
    /// 400 characters; the tokens must be text tokens that fit the decoder's context).
    func decodingContext(_ query: Query) throws -> DecodingOptions {
        var options = DecodingOptions()
        func ids(_ name: String) throws -> [Int]? {
            guard let text = query.get(name), !text.trimmingCharacters(in: .whitespaces).isEmpty else { return nil }
            guard text.count <= 400 else {
                throw StudioError(.badRequest, "\(name): \(text.count) characters; at most 400")
            }
            let ids = loaded.promptTokens(text)
            do { try loaded.checkTextTokens(ids, what: name) } catch {
                throw StudioError(.badRequest, "\(name): \(error)", cause: error)
            }
            return ids
        }
        options.prompt = try ids("prompt")
        options.prefix = try ids("prefix")
        return options
    }

    /// Transcript, words, spectrogram and the `count` features with the largest peak.
    func inspection(
        _ samples: [Float], index: ServedIndex, clip: String, upload: Bool, count: Int,
        options: DecodingOptions = DecodingOptions()
    ) throws
        -> (Inspection, ClipAnalysis)
    {
        let (a, r, words) = try analyse(samples, index: index, transcribe: true, options: options)
        var peaks = [(Int, Float)]()
        for f in 0..<a.width {
            var m: Float = 0
            for t in 0..<a.frames { m = max(m, a.values[t * a.width + f]) }
            if m > 0 { peaks.append((f, m)) }
        }
        peaks.sort { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }
        let tracks = peaks.prefix(count).map {
            FeatureTrack(feature: $0.0, max: $0.1, values: a.column($0.0, 0..<a.frames))
        }
        let inspection = Inspection(
            index: index.id, clip: clip, upload: upload, duration: Double(samples.count) / Double(AudioClip.sampleRate),
            frames: a.frames, transcript: r?.text ?? "", words: words,
            mel: MelImage(a.mel, columns: 0..<min(LogMel.windowFrames, 2 * a.frames)), features: tracks)
        return (inspection, a)
    }

    /// The clean and steered transcripts of `samples` with one feature scaled or clamped.
    func steer(_ samples: [Float], index: ServedIndex, request: SteerRequest) throws -> SteerResult {
        guard request.feature >= 0 && request.feature < index.width else {
            throw StudioError(.badRequest, "feature \(request.feature): index '\(index.id)' has 0…\(index.width - 1)")
        }
        guard request.value.isFinite, abs(request.value) <= 1e4 else {
            throw StudioError(.badRequest, "value \(request.value): give a finite number within ±10000")
        }
        let kind: LatentEdit.Kind
        switch request.mode {
        case "scale": kind = .scale(Float(request.value))
        case "clamp": kind = .clamp(Float(request.value))
        default: throw StudioError(.badRequest, "mode '\(request.mode)': use scale or clamp")
        }
        let frames = LoadedClip.validFrames(samples: samples.count, maxFrames: loaded.model.dims.n_audio_ctx)
        let hooks: HookHandler
        if let sae = index.sae {
            hooks = try SAESplice(
                sae: sae, hook: index.hook, edits: [LatentEdit(latent: request.feature, kind: kind)],
                keepError: request.keepError ?? true, frames: [frames])
        } else {
            hooks = NeuronEdit(hook: index.hook, neuron: request.feature, edit: kind, frames: frames)
        }
        let clean = try transcript(samples, hooks: nil)
        let steered = try transcript(samples, hooks: hooks)
        let what = index.sae == nil ? "neuron" : "latent"
        let edit =
            request.mode == "scale"
            ? "\(what) \(request.feature) × \(request.value)" : "\(what) \(request.feature) = \(request.value)"
        let diff = Self.wordDiff(clean.words, steered.words)
        return SteerResult(
            edit: edit, clean: clean, steered: steered, diff: diff, changed: diff.contains { $0.op != "same" })
    }

    /// A word-level diff (longest common subsequence of words compared without case or
    /// punctuation): removed words carry the clean run's times, the others the steered run's.
    static func wordDiff(_ a: [WordSpan], _ b: [WordSpan]) -> [DiffWord] {
        func key(_ w: WordSpan) -> String { w.word.lowercased().filter { $0.isLetter || $0.isNumber || $0 == "'" } }
        let ka = a.map(key), kb = b.map(key)
        var lcs = [[Int]](repeating: [Int](repeating: 0, count: kb.count + 1), count: ka.count + 1)
        for i in stride(from: ka.count - 1, through: 0, by: -1) {
            for j in stride(from: kb.count - 1, through: 0, by: -1) {
                lcs[i][j] = ka[i] == kb[j] ? lcs[i + 1][j + 1] + 1 : max(lcs[i + 1][j], lcs[i][j + 1])
            }
        }
        var out = [DiffWord](), i = 0, j = 0
        while i < ka.count || j < kb.count {
            if i < ka.count && j < kb.count && ka[i] == kb[j] {
                out.append(DiffWord(op: "same", word: b[j].word, start: b[j].start, end: b[j].end)); i += 1; j += 1
            } else if i < ka.count && (j == kb.count || lcs[i + 1][j] >= lcs[i][j + 1]) {
                out.append(DiffWord(op: "removed", word: a[i].word, start: a[i].start, end: a[i].end)); i += 1
            } else {
                out.append(DiffWord(op: "added", word: b[j].word, start: b[j].start, end: b[j].end)); j += 1
            }
        }
        return out
    }
}

/// One attention head's pattern on a clip: encoder self-attention (frames × frames) or
/// cross-attention (decoder positions × frames), over the frames holding audio, as 8-bit levels
/// of 0…1 (row-major, base64), with the spectrogram and words to align it with.
struct AttentionView: Codable, Sendable {
    var kind: String
    var layer: Int
    var head: Int
    var heads: Int
    var layers: Int
    var rows: Int
    var cols: Int
    /// Decoder tokens as text, one per row (cross-attention).
    var tokens: [String]
    var data: String
    var mel: MelImage
    var words: [WordSpan]
    var frames: Int
}

extension Studio {
    /// The pattern of `head` in `layer` of `kind` (`encoder` or `cross`) on `samples`, greedy-decoded.
    func attention(_ samples: [Float], kind: String, layer: Int, head: Int) throws -> AttentionView {
        let dims = loaded.model.dims
        let (layers, heads) =
            kind == "encoder"
            ? (dims.n_audio_layer, dims.n_audio_head)
            : (dims.n_text_layer, dims.n_text_head)
        guard kind == "encoder" || kind == "cross" else {
            throw StudioError(.badRequest, "kind '\(kind)': use encoder (self-attention) or cross")
        }
        guard (0..<layers).contains(layer), (0..<heads).contains(head) else {
            throw StudioError(
                .badRequest,
                "layer \(layer), head \(head): \(kind) attention has layers 0…\(layers - 1), heads 0…\(heads - 1)")
        }
        let (mel, frames, input) = try window(samples)
        let hook = kind == "encoder" ? HookName.encoder(layer).attn.pattern : HookName.decoder(layer).crossAttn.pattern
        let (r, cache) = try loaded.runWithCache(input, names: [hook, HookName.lnPost.normalized])
        let pattern = try cache.tensor(hook)  // [h, rows, 1500]
        let rows = kind == "encoder" ? frames : pattern.shape[1], width = pattern.shape[2]
        let v = pattern.scalars
        var bytes = [UInt8](repeating: 0, count: rows * frames)
        for i in 0..<rows {
            for j in 0..<frames {
                let p = v[(head * pattern.shape[1] + i) * width + j]
                bytes[i * frames + j] = UInt8((min(1, max(0, p)) * 255).rounded())
            }
        }
        let tokens = kind == "cross" ? r.inputTokens.map { loaded.tokenizer.decodeWithSpecials([$0]) } : []
        return AttentionView(
            kind: kind, layer: layer, head: head, heads: heads, layers: layers, rows: rows, cols: frames,
            tokens: tokens, data: Data(bytes).base64EncodedString(),
            mel: MelImage(mel, columns: 0..<min(LogMel.windowFrames, 2 * frames)),
            words: try alignedWords(r, cache, samples: samples.count), frames: frames)
    }
}
