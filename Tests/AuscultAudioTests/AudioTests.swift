import AuscultAudio
import AuscultTensor
import Foundation
import Testing
import _TestSupport

@Suite("Log-mel is Whisper-exact")
struct LogMelTests {
    @Test("the Slaney filterbank equals openai-whisper's mel_80 and mel_128", arguments: [80, 128])
    func filterbank(nMels: Int) throws {
        let ref = try SafeTensorsFile(path: Fixtures.reference + "/mel_filters.safetensors").tensor("mel_\(nMels)")
        expectClose(LogMel(nMels: nMels).filters, ref, rtol: 1e-5, atol: 1e-8, "mel_\(nMels)")
    }

    @Test("jfk.wav's log-mel matches openai-whisper's within 2e-4 (audio padded to 30 s before the STFT)")
    func jfkMel() throws {
        let ref = try Fixtures.jfkActivations().tensor("audio.hook_mel")
        let got = LogMel().window(try AudioClip(contentsOf: Fixtures.clip("jfk")).samples)
        #expect(got.shape == [80, 3000])
        expectClose(got, ref, rtol: 0, atol: 2e-4, "log-mel")
    }

    @Test("padding is applied to the audio, not the log-mel: the tail of a short clip is not constant")
    func padsAudio() {
        let tone = (0..<16_000).map { Float(sin(Double($0) * 0.3)) * 0.5 }
        let mel = LogMel().window(tone)
        // Frame 101 straddles the end of the audio and must differ from the silent frames after it.
        #expect(mel.storage[101] != mel.storage[2000])
        #expect(mel.storage[2000] == mel.storage[2999])
    }
}

@Suite("Audio decoding reports bad files and converts unusual ones")
struct AudioFileTests {
    @Test("a missing file is reported by name")
    func missing() {
        #expect { try AudioClip(contentsOf: "/nonexistent/clip.wav") } throws: {
            ($0 as? AudioError)?.code == .fileNotFound && "\($0)".contains("/nonexistent/clip.wav")
        }
    }

    @Test("a file that is not audio is reported as unreadable, naming it")
    func notAudio() throws {
        let p = try Fixtures.temporaryDirectory() + "/text.wav"
        try "this is not audio".write(toFile: p, atomically: true, encoding: .utf8)
        #expect { try AudioClip(contentsOf: p) } throws: {
            ($0 as? AudioError)?.code == .unreadable && "\($0)".contains(p)
        }
    }

    @Test("an empty WAV (header, no samples) is reported as empty")
    func empty() throws {
        let p = try Fixtures.temporaryDirectory() + "/empty.wav"
        try writeWAV(p, samples: [], rate: 16_000)
        #expect { try AudioClip(contentsOf: p) } throws: { ($0 as? AudioError)?.code == .empty && "\($0)".contains(p) }
    }

    @Test("a float WAV holding NaN or Inf samples is refused by name, from a file and from memory")
    func nonFinite() throws {
        let dir = try Fixtures.temporaryDirectory()
        for (name, bad) in [("nan", Float.nan), ("inf", Float.infinity)] {
            var samples = (0..<16_000).map { Float(sin(Double($0) * 0.05)) * 0.3 }
            samples[1234] = bad; samples[5000] = bad
            let data = floatWAV(samples, rate: 16_000)
            let p = "\(dir)/\(name).wav"
            try data.write(to: URL(fileURLWithPath: p))
            #expect { try AudioClip(contentsOf: p) } throws: {
                ($0 as? AudioError)?.code == .nonFinite && "\($0)".contains(p) && "\($0)".contains("sample 1234")
                    && "\($0)".contains("2 samples")
            }
            #expect { try AudioClip(data: data, name: "upload.wav") } throws: {
                ($0 as? AudioError)?.code == .nonFinite && "\($0)".contains("upload.wav")
            }
        }
        // The same file with finite samples decodes exactly.
        let fine = (0..<1600).map { Float($0 % 7) / 10 }
        #expect(try AudioClip(data: floatWAV(fine, rate: 16_000), name: "fine.wav").samples == fine)
    }

    @Test("44.1 kHz stereo is downmixed and resampled to 16 kHz, keeping a 440 Hz tone at 440 Hz")
    func resampleAndDownmix() throws {
        let rate = 44_100, n = rate
        var inter = [Float]()
        for i in 0..<n {
            let s = Float(sin(2 * Double.pi * 440 * Double(i) / Double(rate))) * 0.5
            inter += [s, s]  // identical channels: the mono mix is the tone itself
        }
        let p = try Fixtures.temporaryDirectory() + "/stereo.wav"
        try writeWAV(p, samples: inter, rate: rate, channels: 2)
        let clip = try AudioClip(contentsOf: p)
        #expect(clip.sourceRate == 44_100 && clip.sourceChannels == 2)
        #expect(abs(clip.samples.count - 16_000) <= 2)
        // Zero crossings of a 440 Hz tone over 1 s: 880.
        var crossings = 0
        for i in 1..<clip.samples.count where (clip.samples[i - 1] < 0) != (clip.samples[i] < 0) { crossings += 1 }
        #expect(abs(crossings - 880) <= 2, "zero crossings \(crossings)")
        let peak = clip.samples[1000..<15000].map(abs).max()!
        #expect(abs(peak - 0.5) < 0.01, "amplitude \(peak)")
    }

    @Test("an 8 kHz six-channel file is accepted (mono average of the channels, upsampled)")
    func sixChannels() throws {
        let p = try Fixtures.temporaryDirectory() + "/six.wav"
        let frames = 8000
        var inter = [Float]()
        for i in 0..<frames { for c in 0..<6 { inter.append(c == 0 ? Float(sin(Double(i) * 0.1)) * 0.6 : 0) } }
        try writeWAV(p, samples: inter, rate: 8000, channels: 6)
        let clip = try AudioClip(contentsOf: p)
        #expect(abs(clip.samples.count - 16_000) <= 2)
        let peak = clip.samples[2000..<14000].map(abs).max()!
        #expect(abs(peak - 0.1) < 0.005, "mono mix of one loud channel among six: \(peak)")
    }
}
