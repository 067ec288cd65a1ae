// `auscult bench`: times Auscult's own stages; scripts/benchmark.sh runs it next to the peers.
import ArgumentParser
import AuscultAudio
import AuscultTensor
import AuscultWhisper
import Foundation

struct Bench: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Time log-mel, encoder forward and whole-set transcription (JSON on stdout).",
        discussion: "Use scripts/benchmark.sh to compare against openai-whisper, transformers and CTranslate2.")
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Repetitions of the single-window stages (the minimum is reported).") var repeats: Int = 5
    @Option(help: "Clips decoded together.") var batchSize: Int = 16
    @Option(help: "Stages to run: mel, encoder, transcribe, hooks, kernels, gradient (comma-separated).")
    var stages: String =
        "mel,encoder,transcribe"
    @Argument(help: "Audio files; the first one is used for the single-window stages.") var files: [String]

    func run() throws {
        let loaded = try LoadedModel(modelOptions.model)
        let wanted = Set(stages.split(separator: ",").map(String.init))
        let clip = try AudioClip(contentsOf: files[0])
        let mel = LogMel(nMels: loaded.model.dims.n_mels)
        var out: [String: Any] = ["model": loaded.path, "workers": Threading.workers, "blas_core": BLAS.coreName]
        func best(_ body: () throws -> Void) rethrows -> Double {
            var t = Double.infinity
            for _ in 0..<repeats {
                let s = DispatchTime.now().uptimeNanoseconds
                try body()
                t = min(t, Double(DispatchTime.now().uptimeNanoseconds - s) / 1e9)
            }
            return t
        }
        func best1(_ body: () throws -> Void) rethrows -> Double {
            let s = DispatchTime.now().uptimeNanoseconds
            try body()
            return Double(DispatchTime.now().uptimeNanoseconds - s) / 1e9
        }
        let window = mel.window(clip.samples)
        if wanted.contains("mel") { out["mel_s"] = best { _ = mel.window(clip.samples) } }
        if wanted.contains("encoder") {
            let input = window.reshaped([1] + window.shape)
            _ = try loaded.model.encode(input)
            out["encoder_s"] = try best { _ = try loaded.model.encode(input) }
        }
        if wanted.contains("kernels") {
            // Single operations at the encoder's shapes, to see where its time goes.
            let d = loaded.model.dims.n_audio_state, f = loaded.model.dims.n_audio_ctx,
                h = loaded.model.dims.n_audio_head
            let x = Tensor(shape: [f, d], storage: (0..<(f * d)).map { Float(($0 * 7919) % 1000) / 1000 - 0.5 })
            let w1 = Tensor(shape: [4 * d, d], storage: (0..<(4 * d * d)).map { Float(($0 * 104729) % 1000) / 1e4 })
            let hidden = x.linear(w1)
            let w2 = Tensor(shape: [d, 4 * d], storage: w1.storage)
            let qkv = Tensor(shape: [f, 3 * d], storage: (0..<(f * 3 * d)).map { Float(($0 * 31) % 997) / 997 - 0.5 })
            var kernels = [String: Double]()
            kernels["fc1_ms"] = 1e3 * best { _ = x.linear(w1) }
            kernels["fc2_ms"] = 1e3 * best { _ = hidden.linear(w2) }
            kernels["gelu_ms"] = 1e3 * best { _ = hidden.gelu() }
            var z = Tensor(zeros: [f, d])
            kernels["attention_ms"] =
                1e3
                * best {
                    qkv.storage.withUnsafeBufferPointer { a in
                        z.storage.withUnsafeMutableBufferPointer { o in
                            Attention.forwardHeadsParallel(
                                q: a.baseAddress!, ldq: 3 * d, k: a.baseAddress! + d, ldk: 3 * d,
                                v: a.baseAddress! + 2 * d, ldv: 3 * d, n: f, heads: h, dh: d / h,
                                out: o.baseAddress!, ldo: d)
                        }
                    }
                }
            var sm = Tensor(zeros: [f, f])
            kernels["softmax_1500x1500_ms"] =
                1e3
                * best {
                    sm.storage.withUnsafeMutableBufferPointer {
                        Kernels.softmaxRows($0.baseAddress!, rows: f, cols: f, stride: f)
                    }
                }
            kernels["layernorm_ms"] =
                1e3 * best { _ = x.layerNorm(gamma: Tensor(zeros: [d], value: 1), beta: Tensor(zeros: [d])) }
            out["kernels"] = kernels
        }
        if wanted.contains("hooks") {
            // One encoder + teacher-forced decoder forward: plain, with a handler attached that
            // listens nowhere, and caching every residual stream.
            final class Silent: HookHandler {
                func isActive(_ name: String) -> Bool { false }
                func visit(_ name: String, _ x: inout Tensor, _ context: HookContext) throws {}
            }
            let input = window.reshaped([1] + window.shape)
            let tokens =
                loaded.decoder.initialTokens(DecodingOptions(), language: "en") + Array(repeating: 262, count: 30)
            func forward(_ h: HookHandler?) throws {
                let audio = try loaded.model.encode(input, hooks: h)
                _ = try loaded.model.decode(
                    [tokens], cache: try loaded.model.makeCache(audio: audio, audioIndex: [0], hooks: h), hooks: h)
            }
            var plain = Double.infinity, silent = Double.infinity, caching = Double.infinity
            for _ in 0..<max(repeats, 3) {  // interleaved so drifting machine load hits all three alike
                plain = min(plain, try best1 { try forward(nil) })
                silent = min(silent, try best1 { try forward(Silent()) })
                caching = min(caching, try best1 { try forward(ActivationRecorder { $0.contains(".hook_resid_") }) })
            }
            out["hooks"] = [
                "plain_s": plain, "silent_hook_s": silent, "cache_resid_s": caching,
                "silent_ratio": silent / plain, "cache_ratio": caching / plain,
            ]
        }
        if wanted.contains("gradient") {
            // One clip teacher-forced on its transcript: the forward alone, and forward + backward of
            // the transcript's cross-entropy down to the log-mel (gradients at every hook point).
            let audio = AudioInput.logMel(window)
            let tokens = try loaded.run(audio).inputTokens + [loaded.tokenizer.eot]
            let saves = loaded.model.backwardInputs.map { HookName(stringLiteral: $0) }
            var forward = Double.infinity, saving = Double.infinity, both = Double.infinity
            for _ in 0..<max(repeats, 3) {
                forward = min(forward, try best1 { _ = try loaded.run(audio, tokens: tokens, logits: true) })
                saving = min(saving, try best1 { _ = try loaded.runWithCache(audio, names: saves, tokens: tokens) })
                both = min(
                    both,
                    try best1 {
                        _ = try loaded.runWithCache(audio, names: [.mel], tokens: tokens, backward: .crossEntropy())
                    })
            }
            // The backward pass: forward + backward less the forward that saves what it reads.
            out["gradient"] = [
                "forward_s": forward, "saving_forward_s": saving, "forward_backward_s": both,
                "backward_over_forward": (both - saving) / forward, "tokens": tokens.count,
                "peak_rss_mb": Memory.peakResidentMegabytes() ?? -1,
            ]
        }
        if wanted.contains("transcribe") {
            let items = files.map { DatasetItem(id: $0, path: $0, reference: nil) }
            let s = DispatchTime.now().uptimeNanoseconds
            var tokens = 0
            try BatchTranscriber(loaded: loaded, options: DecodingOptions(), batchSize: batchSize).run(items) { _, r in
                if case .success(let d) = r { tokens += d.tokens.count }
            }
            out["transcribe_s"] = Double(DispatchTime.now().uptimeNanoseconds - s) / 1e9
            out["transcribe_tokens"] = tokens
            out["clips"] = files.count
        }
        print(String(data: try JSONSerialization.data(withJSONObject: out, options: [.sortedKeys]), encoding: .utf8)!)
    }
}
