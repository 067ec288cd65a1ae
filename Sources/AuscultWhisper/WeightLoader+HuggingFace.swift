// Hugging Face transformers Whisper directories (`config.json` + `model.safetensors`), read and
// written with the key mapping of transformers' `convert_openai_to_hf.py` (model.encoder.layers.N…).
import AuscultTensor
import Foundation

enum HuggingFaceLoader {
    /// openai-whisper key → Hugging Face key.
    static func hfName(_ key: String) -> String {
        var k = key
        let pairs: [(String, String)] = [
            (".blocks.", ".layers."), (".mlp_ln.", ".final_layer_norm."), (".mlp.0.", ".fc1."), (".mlp.2.", ".fc2."),
            (".cross_attn_ln.", ".encoder_attn_layer_norm."), (".attn_ln.", ".self_attn_layer_norm."),
            (".cross_attn.query.", ".encoder_attn.q_proj."), (".cross_attn.key.", ".encoder_attn.k_proj."),
            (".cross_attn.value.", ".encoder_attn.v_proj."), (".cross_attn.out.", ".encoder_attn.out_proj."),
            (".attn.query.", ".self_attn.q_proj."), (".attn.key.", ".self_attn.k_proj."),
            (".attn.value.", ".self_attn.v_proj."), (".attn.out.", ".self_attn.out_proj."),
            ("encoder.ln_post.", "encoder.layer_norm."), ("decoder.ln.", "decoder.layer_norm."),
            ("decoder.token_embedding.", "decoder.embed_tokens."),
        ]
        for (a, b) in pairs { k = k.replacingOccurrences(of: a, with: b) }
        if k == "encoder.positional_embedding" { k = "encoder.embed_positions.weight" }
        if k == "decoder.positional_embedding" { k = "decoder.embed_positions.weight" }
        return "model." + k
    }

    static func load(_ path: String) throws -> WhisperWeights {
        var isDir: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
        let dir = isDir.boolValue ? path : (path as NSString).deletingLastPathComponent
        let file = isDir.boolValue ? (path as NSString).appendingPathComponent("model.safetensors") : path
        let st: SafeTensorsFile
        do { st = try SafeTensorsFile(path: file) } catch {
            throw ModelLoadError(.corruptModel, "\(file): cannot read the Hugging Face weights", cause: error)
        }
        let configPath = (dir as NSString).appendingPathComponent("config.json")
        guard let data = FileManager.default.contents(atPath: configPath),
            let cfg = try? JSONSerialization.jsonObject(with: data) as? [String: Any]
        else {
            throw ModelLoadError(
                .corruptModel, "\(configPath): missing or unreadable config.json beside the safetensors weights")
        }
        func int(_ k: String) throws -> Int {
            guard let v = cfg[k] as? Int else {
                throw ModelLoadError(
                    .corruptModel,
                    "\(configPath): no integer "
                        + "'\(k)'")
            }
            return v
        }
        let dims = ModelDimensions(
            n_mels: try int("num_mel_bins"), n_audio_ctx: try int("max_source_positions"),
            n_audio_state: try int("d_model"),
            n_audio_head: try int("encoder_attention_heads"), n_audio_layer: try int("encoder_layers"),
            n_vocab: try int("vocab_size"), n_text_ctx: try int("max_target_positions"),
            n_text_state: try int("d_model"),
            n_text_head: try int("decoder_attention_heads"), n_text_layer: try int("decoder_layers"))
        try dims.validate(source: configPath)
        var byHF = [String: String]()
        for key in dims.expectedShapes().keys { byHF[hfName(key)] = key }
        var tensors = [String: Tensor]()
        for name in st.names {
            if name == "proj_out.weight" { continue }  // tied to the token embedding
            // Unknown names are kept under their own name so strict verification reports them.
            tensors[byHF[name] ?? name] = try st.tensor(name)
        }
        return try WhisperWeights(dims: dims, tensors: tensors, source: dir, format: "Hugging Face")
    }

    /// Writes `weights` as a Hugging Face directory: `model.safetensors` (in `precision`) and `config.json`.
    /// `tokens` gives the start-of-transcript and end-of-text ids from the model's tokenizer; without
    /// one they follow openai-whisper's vocabularies (GPT-2's for English-only models, the
    /// multilingual one's, one id further, otherwise).
    static func write(
        _ w: WhisperWeights, to dir: String, precision: FloatPrecision = .f32, tokens: (sot: Int, eot: Int)? = nil
    ) throws {
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        var out = [String: Tensor]()
        for (k, t) in w.tensors { out[hfName(k)] = t }
        try SafeTensorsFile.write(
            out, metadata: ["format": "pt"], precision: precision,
            to: (dir as NSString).appendingPathComponent("model.safetensors"))
        let d = w.dims
        let (sot, eot) = tokens ?? (d.isMultilingual ? (50258, 50257) : (50257, 50256))
        let cfg: [String: Any] = [
            "architectures": ["WhisperForConditionalGeneration"], "model_type": "whisper",
            "num_mel_bins": d.n_mels, "max_source_positions": d.n_audio_ctx, "d_model": d.n_audio_state,
            "encoder_attention_heads": d.n_audio_head, "encoder_layers": d.n_audio_layer,
            "encoder_ffn_dim": 4 * d.n_audio_state, "decoder_ffn_dim": 4 * d.n_text_state,
            "vocab_size": d.n_vocab, "max_target_positions": d.n_text_ctx,
            "decoder_attention_heads": d.n_text_head, "decoder_layers": d.n_text_layer,
            "activation_function": "gelu", "scale_embedding": false, "tie_word_embeddings": true,
            "dtype": precision.torchName, "torch_dtype": precision.torchName,
            "decoder_start_token_id": sot, "eos_token_id": eot, "pad_token_id": eot, "bos_token_id": eot,
        ]
        let json = try JSONSerialization.data(withJSONObject: cfg, options: [.prettyPrinted, .sortedKeys])
        try json.write(
            to: URL(fileURLWithPath: (dir as NSString).appendingPathComponent("config.json")), options: .atomic)
    }
}

extension WhisperWeights {
    /// Writes these weights alone as a Hugging Face transformers directory (`config.json` +
    /// `model.safetensors` in `precision`); `LoadedModel.writeHuggingFace` adds the tokenizer,
    /// feature extractor and generation files transformers needs to transcribe with it.
    public func writeHuggingFace(to dir: String, precision: FloatPrecision = .f32) throws {
        try HuggingFaceLoader.write(self, to: dir, precision: precision)
    }
}
