// Long audio in successive 30 s windows, following openai-whisper `transcribe.py`: one log-mel of
// the whole (30 s-padded) audio, a seek pointer advanced by the last timestamp of each window,
// the previous text as prompt, temperature fallback on repetitive or unlikely output, and
// no-speech skipping; hook handlers (interventions, an SAE) run on every window; word timestamps
// per window (`add_word_timestamps`), with the seek moved to the last word's end. (clip_timestamps,
// carry_initial_prompt and hallucination_silence_threshold are not implemented.)
import AuscultAudio
import AuscultTensor
import CZlib
import Foundation

/// One timed piece of a long-form transcript.
public struct Segment: Sendable, Codable, Equatable {
    public var id: Int
    public var seek: Int
    public var start: Double
    public var end: Double
    public var text: String
    /// Tokens of the segment including its timestamp tokens.
    public var tokens: [Int]
    public var temperature: Double
    public var avgLogprob: Double
    public var compressionRatio: Double
    public var noSpeechProb: Double
    /// The segment's words with their times, when `TranscribeOptions.wordTimestamps` asks for them.
    public var words: [WordTiming]? = nil
}

/// The result of transcribing a whole file.
public struct Transcript: Sendable, Codable {
    public var text: String
    public var segments: [Segment]
    public var language: String
}

/// openai-whisper's `transcribe()` settings.
public struct TranscribeOptions: Sendable {
    public var decoding = DecodingOptions()
    public var temperatures: [Double] = [0, 0.2, 0.4, 0.6, 0.8, 1.0]
    public var compressionRatioThreshold: Double? = 2.4
    public var logprobThreshold: Double? = -1
    public var noSpeechThreshold: Double? = 0.6
    public var conditionOnPreviousText = true
    /// Text tokens the first window reads as previous context (openai-whisper's `initial_prompt`,
    /// encoded as `" " + text.strip()`: `LoadedModel.promptTokens`); later windows read the
    /// transcript so far after it, until the prompt is reset.
    public var initialPrompt: [Int] = []
    /// Sampled candidates per window when the temperature is above 0.
    public var bestOf: Int = 5
    /// Times every word from the alignment heads, window by window; the next window then starts
    /// at the last word's end (openai-whisper's `word_timestamps`).
    public var wordTimestamps = false
    /// Marks joined to the word after them when timing words (openai-whisper's default).
    public var prependPunctuations = "\"'“¿([{-"
    /// Marks joined to the word before them when timing words (openai-whisper's default).
    public var appendPunctuations = "\"'.。,，!！?？:：”)]}、"
    public init() { decoding.withoutTimestamps = false }
}

/// gzip-style compression ratio of `text` (UTF-8 bytes over zlib-compressed bytes), as
/// openai-whisper's `compression_ratio`: above 2.4 means the text repeats itself.
public func compressionRatio(_ text: String) -> Double {
    let bytes = Array(text.utf8)
    guard !bytes.isEmpty else { return 0 }
    var destLen = compressBound(uLong(bytes.count))
    var dest = [UInt8](repeating: 0, count: Int(destLen))
    let rc = compress(&dest, &destLen, bytes, uLong(bytes.count))
    return rc == Z_OK ? Double(bytes.count) / Double(destLen) : 0
}

extension LoadedModel {
    /// Transcribes all of `samples` (16 kHz) window by window; `progress` gets frames done / total.
    /// `hooks`, given how many encoder frames of a window hold audio, makes the handler that
    /// window's encoder and decoder passes run through (a fresh one per window).
    public func transcribe(
        _ samples: [Float], options: TranscribeOptions = TranscribeOptions(),
        progress: ((Int, Int) -> Void)? = nil, hooks: ((_ audioFrames: Int) throws -> HookHandler?)? = nil
    ) throws -> Transcript {
        let nFrames = LogMel.windowFrames
        let mel = LogMel(nMels: model.dims.n_mels).compute(samples + [Float](repeating: 0, count: LogMel.windowSamples))
        let contentFrames = mel.shape[1] - nFrames
        let timePrecision = 0.02, inputStride = 2
        var language = options.decoding.language ?? "en"
        if options.decoding.language == nil && model.dims.isMultilingual {
            let first = try model.encode(Self.window(mel, from: 0, count: min(nFrames, contentFrames)))
            language = try decoder.detectLanguage(first)[0].code
        }
        var seek = 0
        var allTokens = options.initialPrompt
        var segments = [Segment]()
        var promptResetSince = 0
        var lastSpeech = 0.0
        while seek < contentFrames {
            let timeOffset = Double(seek * 160) / 16_000
            let segmentSize = min(nFrames, contentFrames - seek)
            // Two log-mel frames make one encoder frame (the second convolution's stride).
            let handler = try hooks?(min(model.dims.n_audio_ctx, (segmentSize + 1) / 2))
            let audio = try model.encode(Self.window(mel, from: seek, count: segmentSize), hooks: handler)
            var opts = options.decoding
            opts.language = language
            opts.prompt = Array(allTokens[promptResetSince...])
            let result = try decodeWithFallback(audio, opts, options, hooks: handler)
            if let nst = options.noSpeechThreshold, result.noSpeechProb > nst,
                !(options.logprobThreshold.map { result.avgLogprob > $0 } ?? false)
            {
                seek += segmentSize
                progress?(min(seek, contentFrames), contentFrames)
                continue
            }
            let tokens = result.tokens
            let tb = tokenizer.timestampBegin
            let isTs = tokens.map { $0 >= tb }
            let singleTimestampEnding = isTs.count >= 2 && !isTs[isTs.count - 2] && isTs[isTs.count - 1]
            var consecutive = [Int]()
            if isTs.count >= 2 {
                for i in 0..<(isTs.count - 1) where isTs[i] && isTs[i + 1] { consecutive.append(i + 1) }
            }
            var current = [Segment]()
            func segment(_ start: Double, _ end: Double, _ toks: [Int]) -> Segment {
                Segment(
                    id: 0, seek: seek, start: start, end: end,
                    text: tokenizer.decode(toks.filter { $0 < tokenizer.eot }),
                    tokens: toks, temperature: result.temperature, avgLogprob: result.avgLogprob,
                    compressionRatio: compressionRatio(result.text), noSpeechProb: result.noSpeechProb)
            }
            if !consecutive.isEmpty {
                var slices = consecutive
                if singleTimestampEnding { slices.append(tokens.count) }
                var last = 0
                for cur in slices {
                    let piece = Array(tokens[last..<cur])
                    current.append(
                        segment(
                            timeOffset + Double(piece.first! - tb) * timePrecision,
                            timeOffset + Double(piece.last! - tb) * timePrecision, piece))
                    last = cur
                }
                if singleTimestampEnding { seek += segmentSize } else { seek += (tokens[last - 1] - tb) * inputStride }
            } else {
                var duration = Double(segmentSize) * 0.01
                if let lastTs = tokens.last(where: { $0 >= tb }), lastTs != tb {
                    duration = Double(lastTs - tb) * timePrecision
                }
                current.append(segment(timeOffset, timeOffset + duration, tokens))
                seek += segmentSize
            }
            if options.wordTimestamps {
                try addWordTimestamps(
                    &current, audio: audio, segmentFrames: segmentSize, language: language, lastSpeech: lastSpeech,
                    options: options)
                // The next window starts where the last word ended, unless this one ended in silence.
                let lastWordEnd = current.reversed().lazy.compactMap { $0.words?.last?.end }.first ?? current.last?.end
                if !singleTimestampEnding, let end = lastWordEnd, end > timeOffset {
                    seek = Int((end * 100).rounded(.toNearestOrEven))
                }
                if let end = lastWordEnd { lastSpeech = end }
            }
            for i in current.indices
            where current[i].start == current[i].end || current[i].text.trimmingCharacters(in: .whitespaces).isEmpty {
                current[i].text = ""; current[i].tokens = []
                if options.wordTimestamps { current[i].words = [] }
            }
            for var s in current { s.id = segments.count; segments.append(s); allTokens += s.tokens }
            if !options.conditionOnPreviousText || result.temperature > 0.5 { promptResetSince = allTokens.count }
            progress?(min(seek, contentFrames), contentFrames)
        }
        return Transcript(text: segments.map(\.text).joined(), segments: segments, language: language)
    }

    /// `mel[:, from : from + count]` padded with zeros (in log-mel space, as `pad_or_trim` does) to 3000 frames.
    static func window(_ mel: Tensor, from: Int, count: Int) -> Tensor {
        let nMels = mel.shape[0], n = LogMel.windowFrames, taken = min(count, mel.shape[1] - from)
        var out = Tensor(zeros: [nMels, n])
        out.replaceSlice(0..<taken, axis: 1, with: mel.slice(from..<(from + taken), axis: 1))
        return out.reshaped([1, nMels, n])
    }

    /// `decode_with_fallback`: retry at higher temperatures while the result is too repetitive
    /// (compression ratio) or too unlikely (average log-probability), unless it is silence.
    func decodeWithFallback(
        _ audio: Tensor, _ base: DecodingOptions, _ t: TranscribeOptions, hooks: HookHandler? = nil
    ) throws -> DecodingResult {
        var result: DecodingResult?
        for (i, temp) in t.temperatures.enumerated() {
            var o = base
            o.temperature = temp
            o.seed = UInt64(i)
            if temp > 0 {
                o.beamSize = nil
                // best_of: sample several candidates and keep the most likely (length-normalised).
                let batch = Tensor.concatenate([Tensor](repeating: audio, count: t.bestOf))
                let cands = try decoder.decode(audio: batch, options: o, hooks: hooks)
                result = cands.max { a, b in
                    a.sumLogprob / Double(max(1, a.tokens.count)) < b.sumLogprob / Double(max(1, b.tokens.count))
                }
            } else {
                result = try decoder.decode(audio: audio, options: o, hooks: hooks)[0]
            }
            let r = result!
            var fallback = false
            if let c = t.compressionRatioThreshold, compressionRatio(r.text) > c { fallback = true }
            if let l = t.logprobThreshold, r.avgLogprob < l { fallback = true }
            if let n = t.noSpeechThreshold, r.noSpeechProb > n, let l = t.logprobThreshold, r.avgLogprob < l {
                fallback = false
            }
            if !fallback { break }
        }
        return result!
    }
}
