// What a run listens to: an audio file, 16 kHz samples, or a log-mel window made elsewhere.
import AuscultAudio
import AuscultTensor

/// The encoder or the decoder stack.
public enum Side: String, Codable, Sendable, CaseIterable {
    case encoder, decoder
}

/// The audio of one run. A string literal is a file path: `model.run("data/clips/jfk.wav")`.
public enum AudioInput: Sendable, ExpressibleByStringLiteral {
    /// Any format the audio layer reads (WAV, FLAC, OGG, MP3 …), resampled to 16 kHz mono.
    case file(String)
    /// Mono samples at 16 kHz in [-1, 1]; only the first 30 s are heard.
    case samples([Float])
    /// A log-mel window `[n_mels, 3000]` as openai-whisper's `log_mel_spectrogram` + `pad_or_trim`
    /// makes it, and how many of its 1500 encoder frames hold audio (nil: all of them).
    case logMel(Tensor, audioFrames: Int? = nil)

    public init(stringLiteral value: String) { self = .file(value) }

    /// The padded log-mel window `[n_mels, 2·n_audio_ctx]` and the encoder frames holding audio.
    public func window(for dims: ModelDimensions) throws -> (mel: Tensor, audioFrames: Int) {
        let frames = dims.n_audio_ctx
        switch self {
        case .file(let path):
            return try Self.window(AudioClip(contentsOf: path).samples, source: path, dims: dims)
        case .samples(let s):
            return try Self.window(s, source: "the samples given", dims: dims)
        case .logMel(let mel, let valid):
            guard mel.shape == [dims.n_mels, 2 * frames] else {
                throw WhisperError(
                    .invalidArgument,
                    "log-mel input has shape \(mel.shape); the model reads [\(dims.n_mels), \(2 * frames)]")
            }
            guard let bad = mel.firstNonFiniteIndex else {
                let n = valid ?? frames
                guard n >= 1 && n <= frames else {
                    throw WhisperError(.invalidArgument, "log-mel input: audioFrames \(n) outside 1…\(frames)")
                }
                return (mel, n)
            }
            throw WhisperError(
                .invalidArgument, "log-mel input holds \(mel.scalars[bad]) at element \(bad); values must be finite")
        }
    }

    static func window(
        _ samples: [Float], source: String, dims: ModelDimensions
    ) throws -> (mel: Tensor, audioFrames: Int) {
        if let bad = samples.firstIndex(where: { !$0.isFinite }) {
            throw WhisperError(.invalidArgument, "\(source): sample \(bad) is \(samples[bad]); audio must be finite")
        }
        let mel = LogMel(nMels: dims.n_mels).window(samples)
        return (mel, LoadedClip.validFrames(samples: samples.count, maxFrames: dims.n_audio_ctx))
    }
}
