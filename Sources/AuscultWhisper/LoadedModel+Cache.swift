// Run with cache: the named activations of one clip, for the encoder and a teacher-forced or
// greedily generated decoder pass, keyed by hook name and ready to export as safetensors.
import AuscultAudio
import AuscultTensor
import Foundation

extension LoadedModel {
    /// Activations at the hook points matching `patterns` (names, aliases, globs) for the clip at
    /// `path`. With `tokens` the decoder is teacher-forced on them; otherwise it generates greedily
    /// and decoder entries cover the prompt and every sampled token fed back (end-of-text is not
    /// fed). Shapes drop the batch axis. Also returns the decoder input tokens (`decoder.tokens`).
    public func runWithCache(_ path: String, hooks patterns: [String], tokens: [Int]? = nil,
                             options: DecodingOptions = DecodingOptions()) throws -> [String: Tensor] {
        let reg = HookRegistry(dims: model.dims)
        var wanted = Set<String>()
        for p in patterns { wanted.formUnion(try reg.resolve(p)) }
        let rec = ActivationRecorder { wanted.contains($0) }
        let mel = LogMel(nMels: model.dims.n_mels).window(try AudioClip(contentsOf: path).samples)
        let audio = try model.encode(mel.reshaped([1] + mel.shape), hooks: rec)
        var fed: [Int]
        if let tokens {
            _ = try model.decode([tokens], cache: try model.makeCache(audio: audio, audioIndex: [0], hooks: rec), hooks: rec)
            fed = tokens
        } else {
            var o = options
            o.beamSize = nil
            let r = try decoder.decode(audio: audio, options: o, hooks: rec)[0]
            fed = decoder.initialTokens(o, language: r.language) + r.tokens
        }
        var out = [String: Tensor]()
        for (k, v) in rec.store { out[k] = v.reshaped(Array(v.shape.dropFirst())) }
        out["decoder.tokens"] = Tensor(shape: [fed.count], storage: fed.map(Float.init))
        return out
    }
}
