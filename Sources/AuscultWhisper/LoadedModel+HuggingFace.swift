// A loaded model written as a directory Hugging Face transformers uses as it is: the weights and
// `config.json` (HuggingFaceLoader.write), plus what `WhisperProcessor`, `generate` and
// `pipeline("automatic-speech-recognition")` read beside them — `generation_config.json`,
// `preprocessor_config.json` and the tokenizer files — with the values openai-whisper decodes
// with (its suppress lists, language and task tokens, alignment heads), so that transformers'
// greedy `generate` gives openai-whisper's tokens. The file names and keys follow the
// openai/whisper-* repositories as transformers' `convert_openai_to_hf.py` writes them.
import AuscultAudio
import AuscultTensor
import Foundation

extension LoadedModel {
    /// Writes this model as a Hugging Face transformers directory at `dir` (created if needed):
    /// `model.safetensors` in `precision`, `config.json`, `generation_config.json`,
    /// `preprocessor_config.json`, `tokenizer.json` (with the timestamp tokens), `tokenizer_config.json`,
    /// `special_tokens_map.json`, `vocab.json`, `merges.txt` and, where setup fetched it,
    /// `normalizer.json` (openai-whisper's English spelling map). Each file is written atomically.
    public func writeHuggingFace(to dir: String, precision: FloatPrecision = .f32) throws {
        let dims = model.dims
        guard let tdir = ModelStore.tokenizerDirectory(for: path, multilingual: dims.isMultilingual) else {
            throw ModelLoadError(.tokenizerMissing, "\(path): no tokenizer.json to write beside the converted model")
        }
        let tokenizerPath = (tdir as NSString).appendingPathComponent("tokenizer.json")
        guard let data = FileManager.default.contents(atPath: tokenizerPath),
            var tokenizerJSON = try? JSONSerialization.jsonObject(with: data) as? [String: Any],
            let bpe = tokenizerJSON["model"] as? [String: Any], let vocab = bpe["vocab"] as? [String: Int]
        else {
            throw ModelLoadError(.tokenizerMissing, "\(tokenizerPath): missing or unreadable tokenizer.json")
        }
        try HuggingFaceLoader.write(
            model.weights, to: dir, precision: precision, tokens: (tokenizer.sot, tokenizer.eot))
        func file(_ name: String) -> URL { URL(fileURLWithPath: (dir as NSString).appendingPathComponent(name)) }
        func writeJSON(_ object: Any, _ name: String) throws {
            let json = try JSONSerialization.data(withJSONObject: object, options: [.prettyPrinted, .sortedKeys])
            try json.write(to: file(name), options: .atomic)
        }
        let tok = tokenizer

        // The tokenizer: Whisper's byte-level BPE with its special tokens, and the timestamp tokens
        // added after them (as the openai/whisper-* repositories list them), so that the vocabulary
        // has the model's n_vocab entries.
        var added = (tokenizerJSON["added_tokens"] as? [[String: Any]]) ?? []
        let listed = Set(added.compactMap { $0["id"] as? Int })
        for id in tok.timestampBegin..<dims.n_vocab where !listed.contains(id) {
            added.append([
                "id": id, "content": tok.vocabulary[id], "single_word": false, "lstrip": false, "rstrip": false,
                "normalized": false, "special": false,
            ])
        }
        tokenizerJSON["added_tokens"] = added
        try writeJSON(tokenizerJSON, "tokenizer.json")
        try writeJSON(vocab, "vocab.json")
        let merges = ((bpe["merges"] as? [Any]) ?? []).compactMap { m -> String? in
            if let s = m as? String { return s }
            if let pair = m as? [String], pair.count == 2 { return pair.joined(separator: " ") }
            return nil
        }
        try Data((["#version: 0.2"] + merges).joined(separator: "\n").utf8).write(
            to: file("merges.txt"), options: .atomic)
        let endOfText = tok.vocabulary[tok.eot]
        let specials = added.filter { ($0["special"] as? Bool) == true }.compactMap { $0["content"] as? String }
        try writeJSON(
            [
                "bos_token": endOfText, "eos_token": endOfText, "unk_token": endOfText, "pad_token": endOfText,
                "additional_special_tokens": specials,
            ], "special_tokens_map.json")
        try writeJSON(
            [
                "tokenizer_class": "WhisperTokenizer", "processor_class": "WhisperProcessor",
                "bos_token": endOfText, "eos_token": endOfText, "unk_token": endOfText, "pad_token": endOfText,
                "add_prefix_space": false, "errors": "replace", "model_max_length": 1024,
                "clean_up_tokenization_spaces": false, "return_attention_mask": false,
            ], "tokenizer_config.json")
        if let models = ModelStore.modelsDirectory() {
            let spelling = (models as NSString).appendingPathComponent("english.json")
            if let map = FileManager.default.contents(atPath: spelling) {
                try map.write(to: file("normalizer.json"), options: .atomic)
            }
        }

        // The feature extractor: 30 s windows of n_mels log-mel bins, 25 ms windows every 10 ms (audio.py).
        try writeJSON(
            [
                "feature_extractor_type": "WhisperFeatureExtractor", "processor_class": "WhisperProcessor",
                "feature_size": dims.n_mels, "sampling_rate": AudioClip.sampleRate, "hop_length": LogMel.hop,
                "n_fft": LogMel.nFFT, "chunk_length": 30, "n_samples": LogMel.windowSamples,
                "nb_max_frames": LogMel.windowFrames, "padding_side": "right",
                "padding_value": 0.0, "return_attention_mask": false,
            ], "preprocessor_config.json")

        // Generation: openai-whisper's defaults (decoding.py) — its suppress list (suppress_tokens="-1"),
        // a blank or end of text refused as the first token, the start token, and the language and
        // task tokens a multilingual model is prompted with.
        let suppress = decoder.suppressTokens(DecodingOptions())
        var generation: [String: Any] = [
            "decoder_start_token_id": tok.sot, "bos_token_id": tok.eot, "eos_token_id": tok.eot,
            "pad_token_id": tok.eot, "max_length": dims.n_text_ctx, "suppress_tokens": suppress,
            "begin_suppress_tokens": tok.encode(" ") + [tok.eot], "no_timestamps_token_id": tok.noTimestamps,
            "prev_sot_token_id": tok.sotPrev, "is_multilingual": dims.isMultilingual,
            "max_initial_timestamp_index": 50, "return_timestamps": false,
            "alignment_heads": AlignmentHeads.heads(for: dims).map { [$0.layer, $0.head] },
        ]
        if dims.isMultilingual {
            generation["lang_to_id"] = Dictionary(
                uniqueKeysWithValues: zip(tok.languageCodes.map { "<|\($0)|>" }, tok.languageTokens))
            generation["task_to_id"] = ["transcribe": tok.transcribe, "translate": tok.translate]
        }
        try writeJSON(generation, "generation_config.json")
    }
}
