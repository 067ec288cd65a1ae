// The readers of untrusted input, each as one function of a byte string: what the libFuzzer
// harness (`auscult-fuzz`, scripts/fuzz.sh) calls for every generated input, and what the
// regression test replays for every input committed under Fuzz/. A thrown error is the expected
// answer to bad input; a trap, an out-of-bounds read (AddressSanitizer) or a runaway allocation
// is a bug.
import AuscultLens
import AuscultSAE
import AuscultTensor
import AuscultWhisper
import Foundation

/// One reader of untrusted input.
public enum FuzzTarget: String, CaseIterable, Sendable {
    case safetensors, ctranslate2, pytorch
    case hfConfig = "hf-config", saeConfig = "sae-config", saeWeights = "sae-weights"
    case manifest, condition

    /// Feeds `bytes` to the reader through files under `scratch` (a directory this process owns),
    /// returning the error it refused them with (nil: accepted); every error is caught here.
    @discardableResult
    public func run(_ bytes: [UInt8], scratch: String) -> (any Error)? {
        let data = Data(bytes)
        func file(_ rel: String, _ contents: Data) -> String {
            let path = (scratch as NSString).appendingPathComponent(rel)
            try? FileManager.default.createDirectory(
                atPath: (path as NSString).deletingLastPathComponent, withIntermediateDirectories: true)
            try? contents.write(to: URL(fileURLWithPath: path))
            return path
        }
        do {
            switch self {
            case .safetensors:
                let f = try SafeTensorsFile(path: file("x.safetensors", data))
                for name in f.names.prefix(16) {
                    _ = try? f.tensor(name)
                    _ = try? f.integers(name)
                }
            case .ctranslate2:
                _ = file("ct2/model.bin", data)
                _ = try WeightLoader.load((scratch as NSString).appendingPathComponent("ct2"))
            case .pytorch:
                _ = try WeightLoader.load(file("model.pt", data))
            case .hfConfig:
                _ = file("hf/config.json", data)
                _ = file("hf/model.safetensors", Self.emptySafetensors)
                _ = try WeightLoader.load((scratch as NSString).appendingPathComponent("hf"))
            case .saeConfig:
                let dir = (file("sae-config/cfg.json", data) as NSString).deletingLastPathComponent
                _ = file("sae-config/sae_weights.safetensors", try Self.smallSAEWeights())
                _ = SAECheckpoint.origin(dir)
                try Self.exercise(try SAECheckpoint.load(dir))
            case .saeWeights:
                _ = file("sae-weights/cfg.json", Data(#"{"architecture": "topk", "k": 2}"#.utf8))
                let dir = (file("sae-weights/sae_weights.safetensors", data) as NSString).deletingLastPathComponent
                try Self.exercise(try SAECheckpoint.load(dir))
            case .manifest:
                // The first byte picks the manifest's kind; the rest is its text.
                let names = ["metadata.csv", "manifest.jsonl", "manifest.csv", "a-b.trans.txt"]
                let name = names[Int(bytes.first ?? 0) % names.count]
                let dir = (scratch as NSString).appendingPathComponent("ds")
                try? FileManager.default.removeItem(atPath: dir)
                _ = file("ds/" + name, Data(bytes.dropFirst()))
                _ = try Dataset.load(dir)
            case .condition:
                // A condition (`zero encoder.blocks.1.hook_attn_out heads=0,3`) as the sweep reads it,
                // or a pattern of components (`encoder.blocks.*`): accepted if either reads it.
                let text = String(decoding: bytes, as: UTF8.self)
                let registry = HookRegistry(dims: Self.tiny)
                do {
                    let spec = try ConditionSpec(parsing: text)
                    _ = try? Condition.from(spec, registry: registry)
                } catch {
                    guard (try? Component.parse([text], registry: registry)) != nil else { throw error }
                }
            }
            return nil
        } catch {
            return error
        }
    }

    /// tiny.en's dimensions (what the condition syntax is checked against).
    static let tiny = ModelDimensions(
        n_mels: 80, n_audio_ctx: 1500, n_audio_state: 384, n_audio_head: 6, n_audio_layer: 4, n_vocab: 51864,
        n_text_ctx: 448, n_text_state: 384, n_text_head: 6, n_text_layer: 4)

    /// A safetensors file holding no tensor.
    static let emptySafetensors: Data = {
        var d = Data()
        withUnsafeBytes(of: UInt64(8).littleEndian) { d.append(contentsOf: $0) }
        d.append(contentsOf: Array("{}      ".utf8))
        return d
    }()

    /// The weights of a 4 → 8 SAE, for configs to be read against.
    static func smallSAEWeights() throws -> Data {
        let path = NSTemporaryDirectory() + "auscult-fuzz-sae-\(getpid()).safetensors"
        if let d = FileManager.default.contents(atPath: path) { return d }
        try SafeTensorsFile.write(
            [
                "W_enc": Tensor(zeros: [4, 8], value: 0.5), "b_enc": Tensor(zeros: [8]),
                "W_dec": Tensor(zeros: [8, 4], value: 0.25), "b_dec": Tensor(zeros: [4]),
            ], to: path)
        return try Data(contentsOf: URL(fileURLWithPath: path))
    }

    /// Runs a loaded SAE on two rows (small ones only: a big SAE is a valid file, not a bug).
    static func exercise(_ sae: SparseAutoencoder) throws {
        guard sae.config.dIn * sae.config.dSAE <= 1 << 20 else { return }
        _ = sae(Tensor(zeros: [2, sae.config.dIn], value: 1))
    }
}
