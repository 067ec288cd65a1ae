// Whisper's log-mel spectrogram, following openai-whisper `audio.py` (`log_mel_spectrogram`):
// periodic Hann window, n_fft 400, hop 160, centred frames with reflect padding, power spectrum,
// Slaney mel filters (librosa, norm="slaney"), log10 with clamp 1e-10, floor at max − 8, (x + 4) / 4.
import AuscultTensor
import Foundation

/// Computes Whisper's log-mel input features from 16 kHz samples.
public struct LogMel: Sendable {
    public static let nFFT = 400
    public static let hop = 160
    /// Samples in one 30 s window, and the log-mel frames it gives.
    public static let windowSamples = 480_000
    public static let windowFrames = 3000

    /// Number of mel bins: 80, or 128 for large-v3.
    public let nMels: Int
    /// Slaney mel filterbank `[nMels, 201]`.
    public let filters: Tensor
    /// Hann-windowed DFT basis `[402, 400]`: cos rows for bins 0…200, then −sin rows.
    private let basis32: Tensor

    public init(nMels: Int = 80) {
        _ = BLAS.configured
        self.nMels = nMels
        let f = Self.melFilters(nMels: nMels)
        self.filters = Tensor(shape: [nMels, Self.nFFT / 2 + 1], storage: f.map { Float($0) })
        let bins = Self.nFFT / 2 + 1
        var b = [Double](repeating: 0, count: 2 * bins * Self.nFFT)
        for n in 0..<Self.nFFT {
            // torch.hann_window(400) is periodic: 0.5 − 0.5 cos(2πn/N).
            let w = 0.5 - 0.5 * cos(2 * Double.pi * Double(n) / Double(Self.nFFT))
            for k in 0..<bins {
                let phase = 2 * Double.pi * Double((k * n) % Self.nFFT) / Double(Self.nFFT)
                b[k * Self.nFFT + n] = w * cos(phase)
                b[(bins + k) * Self.nFFT + n] = -w * sin(phase)
            }
        }
        self.basis32 = Tensor(shape: [2 * bins, Self.nFFT], storage: b.map { Float($0) })
    }

    /// Slaney-scale mel filterbank as librosa computes it (`htk=False`, `norm="slaney"`), in float64.
    public static func melFilters(nMels: Int, sampleRate: Double = 16_000, nFFT: Int = 400) -> [Double] {
        func hzToMel(_ f: Double) -> Double {
            let fSp = 200.0 / 3, minLogHz = 1000.0, minLogMel = minLogHz / fSp, step = log(6.4) / 27
            return f >= minLogHz ? minLogMel + log(f / minLogHz) / step : f / fSp
        }
        func melToHz(_ m: Double) -> Double {
            let fSp = 200.0 / 3, minLogHz = 1000.0, minLogMel = minLogHz / fSp, step = log(6.4) / 27
            return m >= minLogMel ? minLogHz * exp(step * (m - minLogMel)) : fSp * m
        }
        let bins = nFFT / 2 + 1
        let fft = (0..<bins).map { Double($0) * (sampleRate / 2) / Double(bins - 1) }
        let lo = hzToMel(0), hi = hzToMel(sampleRate / 2)
        let melF = (0..<(nMels + 2)).map { melToHz(lo + (hi - lo) * Double($0) / Double(nMels + 1)) }
        var w = [Double](repeating: 0, count: nMels * bins)
        for i in 0..<nMels {
            let enorm = 2 / (melF[i + 2] - melF[i])
            for j in 0..<bins {
                let lower = -(melF[i] - fft[j]) / (melF[i + 1] - melF[i])
                let upper = (melF[i + 2] - fft[j]) / (melF[i + 2] - melF[i + 1])
                w[i * bins + j] = max(0, min(lower, upper)) * enorm
            }
        }
        return w
    }

    /// Log-mel `[nMels, samples.count / 160]` of `samples`, as openai-whisper computes it.
    ///
    /// `padTo` zero-pads the *audio* (not the log-mel) first: 480 000 gives the 3000 frames of one
    /// 30 s window (longer input is kept whole; use `window(_:)` for Whisper's pad-or-trim).
    /// The DFT runs as one float32 GEMM (3000×400·400×402, ~1 GFLOP: ~4 ms, split across cores;
    /// float64 took ~30 ms and bought nothing measurable: both stay within 2e-4 of PyTorch's FFT);
    /// the max − 8 floor is taken over the whole result.
    public func compute(_ samples: [Float], padTo: Int = 0) -> Tensor {
        var x = samples
        if x.count < padTo { x += [Float](repeating: 0, count: padTo - x.count) }
        let n = x.count
        let nFrames = n / Self.hop
        let bins = Self.nFFT / 2 + 1
        let half = Self.nFFT / 2
        guard nFrames > 0 else { return Tensor(zeros: [nMels, 0]) }
        // Frames with reflect padding of n_fft/2 on both sides (torch.stft center=True).
        let frames = Tensor(shape: [nFrames, Self.nFFT]) { out in
            x.withUnsafeBufferPointer { xs in
                for f in 0..<nFrames {
                    let start = f * Self.hop - half
                    let dst = out.baseAddress! + f * Self.nFFT
                    if start >= 0 && start + Self.nFFT <= n {
                        dst.update(from: xs.baseAddress! + start, count: Self.nFFT)  // interior: a plain copy
                        continue
                    }
                    for j in 0..<Self.nFFT {
                        var i = start + j
                        if i < 0 { i = -i }
                        if i >= n { i = 2 * n - 2 - i }
                        dst[j] = xs[max(0, min(n - 1, i))]
                    }
                }
            }
        }
        // One GEMM for the windowed DFT of every frame: [frames, 400] · [402, 400]ᵀ.
        let spec = frames.linear(basis32)
        var power = Tensor(shape: [nFrames, bins]) { out in
            spec.storage.withUnsafeBufferPointer { s in
                for f in 0..<nFrames {
                    let row = s.baseAddress! + f * 2 * bins
                    for k in 0..<bins { out[f * bins + k] = row[k] * row[k] + row[bins + k] * row[bins + k] }
                }
            }
        }
        power = power.linear(filters)  // [frames, nMels]
        var top = -Float.infinity
        var mel = Tensor(shape: [nMels, nFrames]) { out in
            power.storage.withUnsafeBufferPointer { p in
                for f in 0..<nFrames {
                    for m in 0..<nMels {
                        let v = log10f(max(p[f * nMels + m], 1e-10))
                        out[m * nFrames + f] = v
                        top = max(top, v)
                    }
                }
            }
        }
        let floor = top - 8
        mel.storage.withUnsafeMutableBufferPointer { buf in
            for i in buf.indices { buf[i] = (max(buf[i], floor) + 4) / 4 }
        }
        return mel
    }

    /// Whisper's single-window input: audio padded or trimmed to 30 s, then `[nMels, 3000]`.
    public func window(_ samples: [Float]) -> Tensor {
        let x = samples.count > Self.windowSamples ? Array(samples[0..<Self.windowSamples]) : samples
        return compute(x, padTo: Self.windowSamples)
    }
}
