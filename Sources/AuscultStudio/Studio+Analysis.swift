// The model work behind the Studio's views: a clip's feature values over time (per index),
// its transcript with word timing, and steered runs. Runs on the model queue.
import AuscultAudio
import AuscultSAE
import AuscultTensor
import AuscultWhisper
import Foundation

/// One clip seen through one index: its log-mel window and every feature's value per frame.
struct ClipAnalysis: Sendable {
    let samples: [Float]
    /// Encoder frames (20 ms) holding audio.
    let frames: Int
    /// The log-mel window `[n_mels, 3000]` (10 ms columns).
    let mel: Tensor
    /// Feature values `[frames, width]`, row-major: SAE latents or the hook's raw values.
    let values: [Float]
    let width: Int

    /// Feature `f`'s value at each frame of `range`.
    func column(_ f: Int, _ range: Range<Int>) -> [Float] { range.map { values[$0 * width + f] } }
}

/// A log-mel spectrogram as 8-bit levels between `min` and `max`, frame-major
/// (`data[frame * bins + bin]`), base64: 80 × 3000 levels are 320 kB instead of ~2 MB of JSON numbers.
struct MelImage: Codable, Sendable {
    var bins: Int
    var frames: Int
    /// Seconds per column (10 ms) and the time of the first.
    var hop: Double
    var start: Double
    var min: Float
    var max: Float
    var data: String

    init(_ mel: Tensor, columns: Range<Int>) {
        let bins = mel.shape[0], width = mel.shape[1]
        let v = mel.scalars
        var lo = Float.infinity, hi = -Float.infinity
        for b in 0..<bins {
            for c in columns { lo = Swift.min(lo, v[b * width + c]); hi = Swift.max(hi, v[b * width + c]) }
        }
        // An empty window (a trace of less than one frame) has no levels: its scale is 0…1, never ±inf.
        if columns.isEmpty { lo = 0; hi = 1 }
        if !(lo < hi) { hi = lo + 1 }
        var bytes = [UInt8](repeating: 0, count: columns.count * bins)
        let scale = 255 / (hi - lo)
        for (j, c) in columns.enumerated() {
            for b in 0..<bins { bytes[j * bins + b] = UInt8(((v[b * width + c] - lo) * scale).rounded()) }
        }
        self.bins = bins; frames = columns.count; hop = 0.01; start = Double(columns.lowerBound) * 0.01
        min = lo; max = hi; data = Data(bytes).base64EncodedString()
    }
}

extension Studio {
    /// The samples of a clip of `index` by its name there (its file is read only because the
    /// index lists it).
    func indexedSamples(_ index: ServedIndex, _ name: String) throws -> [Float] {
        guard let path = try index.pool.read({ try $0.clipPath(name) }) else {
            throw StudioError(.notFound, "index '\(index.id)' has no clip '\(name)'")
        }
        do { return try AudioClip(contentsOf: path).samples } catch {
            throw StudioError(
                .notFound, "clip '\(name)' of index '\(index.id)': its audio cannot be read", cause: error)
        }
    }

    /// A clip's feature values through `index`, computed once and cached under `key`.
    func analysis(
        _ index: ServedIndex, key: String, samples: @escaping @Sendable () throws -> [Float]
    )
        async throws -> ClipAnalysis
    {
        let cacheKey = index.id + "|" + key
        if let hit = clips.get(cacheKey) { return hit }
        let a = try await model.run { [self] in
            try analyse(samples(), index: index).analysis
        }
        clips.put(cacheKey, a)
        return a
    }

    /// The padded log-mel window of `samples` and the encoder frames holding audio, as every
    /// model run of the Studio starts (analysis, transcripts, attention).
    func window(_ samples: [Float]) throws -> (mel: Tensor, frames: Int, input: AudioInput) {
        do {
            let (mel, frames) = try AudioInput.samples(samples).window(for: loaded.model.dims)
            return (mel, frames, .logMel(mel, audioFrames: frames))
        } catch {
            throw StudioError(.badRequest, "the audio cannot be analysed", cause: error)
        }
    }

    /// Runs the encoder on `samples` and computes `index`'s feature values; with `transcribe`,
    /// also the greedy transcript (decoded with `options`: prompt and prefix) and its word timing.
    func analyse(
        _ samples: [Float], index: ServedIndex, transcribe: Bool = false,
        options: DecodingOptions = DecodingOptions()
    ) throws
        -> (analysis: ClipAnalysis, result: RunResult?, words: [WordSpan])
    {
        let dims = loaded.model.dims
        let (mel, frames, input) = try window(samples)
        var acts: Tensor, result: RunResult?, words = [WordSpan]()
        if transcribe {
            let (r, cache) = try loaded.runWithCache(
                input, names: [HookName(index.hook), HookName.lnPost.normalized], options: options)
            acts = try cache.tensor(HookName(index.hook))
            words = try alignedWords(r, cache, samples: samples.count)
            result = r
        } else {
            acts = try loaded.activation(HookName(index.hook), on: input)
        }
        let width = acts.count / dims.n_audio_ctx
        acts = acts.reshaped([dims.n_audio_ctx, width]).rows(0..<frames)
        let values = index.sae.map { $0.activate($0.preActivations(acts)) } ?? acts
        return (
            ClipAnalysis(samples: samples, frames: frames, mel: mel, values: values.scalars, width: index.width),
            result, words
        )
    }

    /// Word timing of a run whose cache holds the encoder's output.
    func alignedWords(_ r: RunResult, _ cache: ActivationCache, samples: Int) throws -> [WordSpan] {
        let audio = try cache.tensor(HookName.lnPost.normalized)
        return try loaded.alignWords(
            audio: audio.reshaped([1] + audio.shape), textTokens: r.tokens, samples: samples, language: r.language
        ).map { WordSpan(word: $0.word.trimmingCharacters(in: .whitespaces), start: $0.start, end: $0.end) }
    }

    /// The transcript and word timing of `samples` with `hooks` in the run (nil: the clean model).
    func transcript(_ samples: [Float], hooks: HookHandler?) throws -> Transcript {
        let (r, cache) = try loaded.runWithCache(
            window(samples).input, names: [HookName.lnPost.normalized], hooks: hooks)
        return Transcript(text: r.text, words: try alignedWords(r, cache, samples: samples.count))
    }
}

/// A transcript with its words' times.
struct Transcript: Codable, Sendable {
    var text: String
    var words: [WordSpan]
}

/// Scales or clamps one value of an encoder hook point on the frames holding audio: steering a
/// raw neuron as `SAESplice` steers a latent.
final class NeuronEdit: HookHandler, @unchecked Sendable {
    let hook: String
    let neuron: Int
    let edit: LatentEdit.Kind
    let frames: Int

    init(hook: String, neuron: Int, edit: LatentEdit.Kind, frames: Int) {
        self.hook = hook; self.neuron = neuron; self.edit = edit; self.frames = frames
    }

    func isActive(_ name: String) -> Bool { name == hook }

    func visit(_ name: String, _ x: inout Tensor, _ context: HookContext) throws {
        guard name == hook, x.rank >= 2 else { return }
        let b = x.shape[0], n = x.shape[1], width = x.count / max(1, b * n)
        guard neuron < width else {
            throw StudioError(.badRequest, "neuron \(neuron): \(hook) has 0…\(width - 1)")
        }
        // x as rows of one position's `width` values: row r · n + f is frame f of clip r.
        let rows = (0..<b).flatMap { r in (0..<min(n, frames)).map { r * n + $0 } }
        x.updateRows(rows, width: width) { _, row in
            switch edit {
            case .scale(let s): row[neuron] *= s
            case .clamp(let v): row[neuron] = v
            }
        }
    }
}
