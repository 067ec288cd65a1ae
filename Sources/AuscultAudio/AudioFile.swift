// Decoding audio files with libsndfile and resampling with soxr to Whisper's 16 kHz mono.
import AuscultTensor
import CSndfile
import CSoxr
import Foundation

/// Audio decoded to Float32 mono samples at 16 kHz, Whisper's input rate.
public struct AudioClip: Sendable {
    /// Samples in [-1, 1) at `AudioClip.sampleRate` (PCM16 is scaled by 1/32768, as openai-whisper does).
    public var samples: [Float]
    /// Sample rate and channel count of the file before conversion.
    public var sourceRate: Int
    public var sourceChannels: Int
    public static let sampleRate = 16_000

    /// Duration in seconds.
    public var duration: Double { Double(samples.count) / Double(Self.sampleRate) }

    public init(samples: [Float], sourceRate: Int = AudioClip.sampleRate, sourceChannels: Int = 1) {
        self.samples = samples; self.sourceRate = sourceRate; self.sourceChannels = sourceChannels
    }

    /// Reads wav/flac/ogg/opus/mp3 (anything libsndfile 1.2 reads), downmixes to mono by averaging
    /// the channels and resamples to 16 kHz with soxr at high quality.
    public init(contentsOf path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw AudioError(.fileNotFound, path: path, "no such audio file")
        }
        var info = SF_INFO()
        guard let handle = sf_open(path, Int32(SFM_READ), &info) else {
            let why = String(cString: sf_strerror(nil))
            throw AudioError(
                .unreadable, path: path,
                "not a readable audio file (wav, flac, ogg, opus or "
                    + "mp3)", cause: LibraryMessage(why))
        }
        defer { sf_close(handle) }
        try self.init(handle: handle, info: info, path: path)
    }

    /// Decodes an open libsndfile handle (the file's or an in-memory buffer's).
    init(handle: OpaquePointer, info: SF_INFO, path: String) throws {
        let channels = Int(info.channels), frames = Int(info.frames)
        guard channels > 0, info.samplerate > 0 else {
            throw AudioError(.unreadable, path: path, "the file declares \(channels) channels at \(info.samplerate) Hz")
        }
        guard frames > 0 else { throw AudioError(.empty, path: path, "the file holds no audio samples") }
        var interleaved = [Float](repeating: 0, count: frames * channels)
        let got = Int(
            interleaved.withUnsafeMutableBufferPointer { sf_readf_float(handle, $0.baseAddress!, sf_count_t(frames)) })
        guard got > 0 else {
            throw AudioError(
                .unreadable, path: path, "decoding produced no samples",
                cause: LibraryMessage(String(cString: sf_strerror(handle))))
        }
        var mono = [Float](repeating: 0, count: got)
        if channels == 1 {
            mono = Array(interleaved[0..<got])
        } else {
            let inv = 1 / Float(channels)
            for i in 0..<got {
                var s: Float = 0
                for c in 0..<channels { s += interleaved[i * channels + c] }
                mono[i] = s * inv
            }
        }
        // A float file may hold NaN or ±Inf: refused by name here, so that no run turns them into a
        // transcript of "!!!!" and a dataset run skips this clip and carries on with the rest.
        if let bad = mono.firstIndex(where: { !$0.isFinite }) {
            let count = mono.lazy.filter { !$0.isFinite }.count
            throw AudioError(
                .nonFinite, path: path,
                "sample \(bad) is \(mono[bad]) (\(count) samples are not finite numbers); audio must be finite")
        }
        let rate = Int(info.samplerate)
        self.samples = rate == Self.sampleRate ? mono : try Self.resample(mono, from: rate, path: path)
        self.sourceRate = rate
        self.sourceChannels = channels
    }

    /// Duration in seconds from the file's header alone (nil if libsndfile cannot open it).
    public static func duration(of path: String) -> Double? {
        var info = SF_INFO()
        guard let handle = sf_open(path, Int32(SFM_READ), &info) else { return nil }
        sf_close(handle)
        return info.samplerate > 0 ? Double(info.frames) / Double(info.samplerate) : nil
    }

    /// Resamples mono samples from `rate` to 16 kHz with soxr's high-quality (20-bit) preset;
    /// its one-shot default is low quality, so the quality is passed explicitly.
    public static func resample(_ x: [Float], from rate: Int, path: String = "<memory>") throws -> [Float] {
        let outCount = Int((Double(x.count) * Double(sampleRate) / Double(rate)).rounded(.up)) + 16
        var out = [Float](repeating: 0, count: outCount)
        var done = 0
        var q = soxr_quality_spec(UInt(SOXR_HQ), 0)
        var io = soxr_io_spec(SOXR_FLOAT32_I, SOXR_FLOAT32_I)
        let err: soxr_error_t? = x.withUnsafeBufferPointer { i in
            out.withUnsafeMutableBufferPointer { o in
                soxr_oneshot(
                    Double(rate), Double(sampleRate), 1, i.baseAddress, x.count, nil,
                    o.baseAddress, outCount, &done, &io, &q, nil)
            }
        }
        if let err {
            throw AudioError(
                .resampleFailed, path: path,
                "resampling from \(rate) Hz "
                    + "failed", cause: LibraryMessage(String(cString: err)))
        }
        return Array(out[0..<done])
    }
}
