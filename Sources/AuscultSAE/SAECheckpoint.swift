// SAE checkpoints in SAELens's layout: `cfg.json` + `sae_weights.safetensors` (W_enc [d_in, d_sae],
// b_enc, W_dec [d_sae, d_in], b_dec, and JumpReLU's threshold [d_sae]), plus
// `trainer_state.safetensors` (Adam moments, step, rows since each latent fired) so training
// resumes. Written as SAELens 6 writes it (`metadata` block; BatchTopK as JumpReLU with its
// learnt threshold, as SAELens saves a trained BatchTopK SAE for inference); read in that layout,
// the earlier one (hook_name at the top) and sparsify's (`sae.safetensors`).
import AuscultTensor
import Foundation

/// Why an SAE checkpoint could not be read or written: a missing file, a config that names an
/// unknown architecture or an impossible value, a tensor missing, misshapen or not finite.
public struct SAEFileError: AuscultError, Sendable {
    public enum Code: String, Sendable {
        case missingFile, invalidConfig, missingTensor, shapeMismatch, notFinite, writeFailed, unsupported
    }
    public var code: Code
    public var message: String
    public var underlying: (any Error)?
    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code; self.message = message; self.underlying = cause
    }
}

public enum SAECheckpoint {
    /// Writes `sae` (and the trainer's state, if given) into `directory`.
    public static func save(
        _ sae: SparseAutoencoder, to directory: String, hook: String, model: String,
        trainer: SAETrainer? = nil
    ) throws {
        try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
        let c = sae.config
        // BatchTopK with a learnt threshold is saved as SAELens saves it for inference: JumpReLU,
        // the threshold in every latent; `metadata.training_architecture` and `k` let Auscult
        // load it back as BatchTopK and resume training.
        let trained = c.architecture == .relu ? "standard" : c.architecture.rawValue  // SAELens's name
        let asJumpReLU = c.architecture == .jumprelu || (c.architecture == .batchtopk && sae.threshold != nil)
        var cfg: [String: Any] = [
            "architecture": asJumpReLU ? "jumprelu" : trained,
            "d_in": c.dIn, "d_sae": c.dSAE, "dtype": "float32", "device": "cpu",
            "apply_b_dec_to_input": sae.applyBDecToInput, "normalize_activations": "none",
            "reshape_activations": "none",
            "metadata": [
                // The layout version these files follow (without it SAELens reads them as pre-6 files).
                "sae_lens_version": "6.0.0", "sae_lens_training_version": NSNull(),
                "hook_name": hook, "model_name": model, "model_class_name": "auscult",
                "hook_head_index": NSNull(), "prepend_bos": false,
                "training_architecture": trained,
            ] as [String: Any],
            // Auscult's training settings (SAELens ignores keys it does not know).
            "l1_coefficient": c.l1, "k_aux": c.kAux, "aux_coefficient": c.auxCoefficient,
        ]
        if c.architecture == .topk || c.architecture == .batchtopk { cfg["k"] = c.k }
        if c.architecture == .topk { cfg["rescale_acts_by_decoder_norm"] = false }
        try JSONSerialization.data(withJSONObject: cfg, options: [.prettyPrinted, .sortedKeys])
            .write(
                to: URL(fileURLWithPath: (directory as NSString).appendingPathComponent("cfg.json")), options: .atomic)
        let weights = (directory as NSString).appendingPathComponent("sae_weights.safetensors")
        var tensors = ["W_enc": sae.wEnc, "b_enc": sae.bEnc, "W_dec": sae.wDec, "b_dec": sae.bDec]
        if let threshold = sae.threshold, c.architecture == .jumprelu || c.architecture == .batchtopk {
            tensors["threshold"] = threshold
        }
        try SafeTensorsFile.write(tensors, to: weights + ".tmp")
        try replace(weights)
        if let t = trainer {
            var state = [String: Tensor]()
            for (i, m) in t.moments.enumerated() { state["adam.\(i)"] = Tensor(shape: [m.count], storage: m) }
            state["since_fired"] = Tensor(shape: [t.sinceFired.count], storage: t.sinceFired.map(Float.init))
            let path = (directory as NSString).appendingPathComponent("trainer_state.safetensors")
            try SafeTensorsFile.write(state, metadata: ["step": "\(t.step)"], to: path + ".tmp")
            try replace(path)
        }
    }

    /// Moves `path.tmp` over `path` in one step (rename), so a kill never leaves half a file.
    static func replace(_ path: String) throws {
        guard rename(path + ".tmp", path) == 0 else {
            throw SAEFileError(.writeFailed, "cannot move \(path).tmp into place (errno \(errno))")
        }
    }

    /// Loads an SAE from a SAELens directory (`cfg.json` + `sae_weights.safetensors`) or a
    /// sparsify one (`cfg.json` + `sae.safetensors`, encoder stored `[d_sae, d_in]`).
    public static func load(_ directory: String) throws -> SparseAutoencoder {
        let cfgPath = (directory as NSString).appendingPathComponent("cfg.json")
        guard let data = FileManager.default.contents(atPath: cfgPath) else {
            throw SAEFileError(.missingFile, "\(cfgPath): no SAE config (expected SAELens or sparsify layout)")
        }
        let cfg: [String: Any]
        do {
            guard let object = try JSONSerialization.jsonObject(with: data) as? [String: Any] else {
                throw SAEFileError(.invalidConfig, "\(cfgPath): not a JSON object")
            }
            cfg = object
        } catch let e as SAEFileError {
            throw e
        } catch {
            throw SAEFileError(.invalidConfig, "\(cfgPath): not JSON", cause: error)
        }
        try refuseUnsupported(cfg, path: cfgPath)
        let lens = (directory as NSString).appendingPathComponent("sae_weights.safetensors")
        let sparsify = (directory as NSString).appendingPathComponent("sae.safetensors")
        let fm = FileManager.default
        func tensor(_ f: SafeTensorsFile, _ name: String, _ shape: [Int]?) throws -> Tensor {
            guard f.entries[name] != nil else { throw SAEFileError(.missingTensor, "\(f.path): no tensor '\(name)'") }
            let t = try f.tensor(name)
            if let shape, t.shape != shape {
                throw SAEFileError(.shapeMismatch, "\(f.path): '\(name)' is \(t.shape), expected \(shape)")
            }
            if let bad = t.firstNonFiniteIndex {
                throw SAEFileError(.notFinite, "\(f.path): '\(name)' holds \(t.scalars[bad]) at flat index \(bad)")
            }
            return t
        }
        func matrix(_ f: SafeTensorsFile, _ name: String) throws -> Tensor {
            let t = try tensor(f, name, nil)
            guard t.rank == 2, t.shape.allSatisfy({ $0 > 0 }) else {
                throw SAEFileError(.shapeMismatch, "\(f.path): '\(name)' is \(t.shape), expected a non-empty matrix")
            }
            return t
        }
        func k(dSAE: Int) throws -> Int {
            guard let value = cfg["k"] else { return min(32, dSAE) }
            guard let k = value as? Int, k >= 1, k <= dSAE else {
                throw SAEFileError(.invalidConfig, "\(cfgPath): k \(value) outside 1…\(dSAE) (d_sae)")
            }
            return k
        }
        if fm.fileExists(atPath: lens) {
            let f = try SafeTensorsFile(path: lens)
            let wEnc = try matrix(f, "W_enc")
            let dIn = wEnc.shape[0], dSAE = wEnc.shape[1]
            let wDec = try tensor(f, "W_dec", [dSAE, dIn])
            let meta = cfg["metadata"] as? [String: Any] ?? [:]
            let name = cfg["architecture"] as? String ?? "standard"
            // A BatchTopK SAE saved for inference is a JumpReLU one; Auscult's own (with k) load
            // back as BatchTopK, which infers by the same threshold and can resume training.
            let trained = meta["training_architecture"] as? String
            let resolved = name == "jumprelu" && trained == "batchtopk" && cfg["k"] != nil ? "batchtopk" : name
            guard let arch = resolved == "standard" ? .relu : SAEArchitecture(rawValue: resolved) else {
                throw SAEFileError(
                    .invalidConfig,
                    "\(cfgPath): architecture '\(name)' is not one Auscult runs (standard, relu, topk, batchtopk, "
                        + "jumprelu)")
            }
            var threshold: Tensor?
            if f.entries["threshold"] != nil {
                guard arch == .jumprelu || arch == .batchtopk else {
                    throw SAEFileError(
                        .unsupported,
                        "\(f.path): a 'threshold' tensor with architecture '\(name)': only JumpReLU and BatchTopK "
                            + "SAEs use one; it would be dropped")
                }
                threshold = try tensor(f, "threshold", [dSAE])
            } else if arch == .jumprelu {
                throw SAEFileError(.missingTensor, "\(f.path): a JumpReLU SAE needs its 'threshold' tensor [\(dSAE)]")
            }
            let config = SAEConfig(
                architecture: arch, dIn: dIn, dSAE: dSAE,
                k: arch == .topk || arch == .batchtopk ? try k(dSAE: dSAE) : min(32, dSAE),
                l1: Float(cfg["l1_coefficient"] as? Double ?? 5e-3), kAux: cfg["k_aux"] as? Int,
                auxCoefficient: Float(cfg["aux_coefficient"] as? Double ?? 1.0 / 32))
            return SparseAutoencoder(
                config: config, wEnc: wEnc, bEnc: try tensor(f, "b_enc", [dSAE]), wDec: wDec,
                bDec: try tensor(f, "b_dec", [dIn]), threshold: threshold,
                applyBDecToInput: [cfg["apply_b_dec_to_input"], meta["apply_b_dec_to_input"]]
                    .compactMap { $0 as? Bool }.first ?? true)
        }
        if fm.fileExists(atPath: sparsify) {
            // sparsify: encoder.weight [d_sae, d_in], encoder.bias, W_dec [d_sae, d_in], b_dec; TopK with k in cfg.
            let f = try SafeTensorsFile(path: sparsify)
            if let activation = cfg["activation"] as? String, activation != "topk" {
                throw SAEFileError(
                    .unsupported, "\(cfgPath): sparsify's activation '\(activation)' is not one Auscult runs (topk)")
            }
            if (cfg["transcode"] as? Bool) == true {
                throw SAEFileError(
                    .unsupported,
                    "\(cfgPath): a sparsify transcoder (transcode = true) predicts another point's output; Auscult "
                        + "splices autoencoders only")
            }
            if f.entries["W_skip"] != nil {
                throw SAEFileError(
                    .unsupported,
                    "\(f.path): sparsify's skip connection 'W_skip' is not one Auscult runs; it would be dropped")
            }
            let enc = try matrix(f, "encoder.weight")
            let dSAE = enc.shape[0], dIn = enc.shape[1]
            let wDec = try tensor(f, "W_dec", [dSAE, dIn])
            let wEnc = enc.transposed()  // sparsify's encoder.weight is [d_sae, d_in]
            let config = SAEConfig(architecture: .topk, dIn: dIn, dSAE: dSAE, k: try k(dSAE: dSAE))
            return SparseAutoencoder(
                config: config, wEnc: wEnc, bEnc: try tensor(f, "encoder.bias", [dSAE]), wDec: wDec,
                bDec: try tensor(f, "b_dec", [dIn]))
        }
        throw SAEFileError(
            .missingFile, "\(directory): neither sae_weights.safetensors (SAELens) nor sae.safetensors (sparsify)")
    }

    /// Refuses, by name, settings of a SAELens config that change what the SAE computes and that
    /// Auscult does not run, so that none is silently dropped: `rescale_acts_by_decoder_norm` true,
    /// `normalize_activations` other than `none`, `reshape_activations` other than `none`.
    static func refuseUnsupported(_ cfg: [String: Any], path: String) throws {
        let meta = cfg["metadata"] as? [String: Any] ?? [:]
        // Either layout may hold a setting; a value in either that Auscult cannot run is refused.
        func values(_ key: String) -> [Any] { [cfg[key], meta[key]].compactMap { $0 } }
        if let v = values("reshape_activations").compactMap({ $0 as? String }).first(where: { $0 != "none" }) {
            throw SAEFileError(
                .unsupported, "\(path): reshape_activations = '\(v)' is not supported (only 'none')")
        }
        if values("rescale_acts_by_decoder_norm").contains(where: { ($0 as? Bool) == true }) {
            throw SAEFileError(.unsupported, "\(path): rescale_acts_by_decoder_norm = true is not supported")
        }
        if let v = values("normalize_activations").compactMap({ $0 as? String }).first(where: { $0 != "none" }) {
            throw SAEFileError(
                .unsupported, "\(path): normalize_activations = '\(v)' is not supported (only 'none')")
        }
    }

    /// The hook point and model named in a checkpoint's `cfg.json` (SAELens `hook_name`,
    /// `model_name`; sparsify checkpoints name neither).
    public static func origin(_ directory: String) -> (hook: String?, model: String?) {
        let cfgPath = (directory as NSString).appendingPathComponent("cfg.json")
        guard let data = FileManager.default.contents(atPath: cfgPath),
            let cfg = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else { return (nil, nil) }
        // SAELens 6 keeps them in a `metadata` block; earlier versions at the top.
        let meta = cfg["metadata"] as? [String: Any] ?? [:]
        return (
            cfg["hook_name"] as? String ?? meta["hook_name"] as? String,
            cfg["model_name"] as? String ?? meta["model_name"] as? String
        )
    }

    /// The trainer state saved beside a checkpoint: step, Adam moments, rows since each latent fired.
    public static func trainerState(_ directory: String) throws -> (step: Int, moments: [[Float]], sinceFired: [Int])? {
        let path = (directory as NSString).appendingPathComponent("trainer_state.safetensors")
        guard FileManager.default.fileExists(atPath: path) else { return nil }
        let f = try SafeTensorsFile(path: path)
        let step = Int(f.metadata["step"] ?? "") ?? 0
        let moments = try (0..<8).map { try f.tensor("adam.\($0)").scalars }
        return (step, moments, try f.tensor("since_fired").scalars.map { Int($0) })
    }
}
