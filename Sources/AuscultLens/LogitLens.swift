// Lenses (whisper_logit_lens, after nostalgebraist's logit lens): read the decoder's residual stream after each
// block through the final LayerNorm and the unembedding, and decode from the encoder's
// intermediate blocks through ln_post. Direct logit attribution splits the final logit of a
// token into what each head and MLP wrote.
import AuscultAudio
import AuscultTensor
import AuscultWhisper
import Foundation

/// One candidate token of a lens: id, text and probability.
public struct TokenProb: Codable, Sendable, Equatable {
    public var id: Int
    public var text: String
    public var p: Double
}

/// The logit lens at one decoder layer, for every position of the teacher-forced sequence.
public struct LensLayer: Codable, Sendable {
    /// `embed` (the stream entering block 0) or `decoder.blocks.i` (after block i).
    public var layer: String
    /// Most likely token at each position.
    public var top1: [Int]
    /// The k most likely tokens at each position.
    public var topk: [[TokenProb]]
    /// Probability and rank (0 = top) at this layer of the token the final layer predicts.
    public var finalProb: [Double]
    public var finalRank: [Int]
    /// KL(final ‖ this layer) in nats at each position.
    public var kl: [Double]

    enum CodingKeys: String, CodingKey {
        case layer, top1, topk, kl, finalProb = "final_prob", finalRank = "final_rank"
    }
}

/// What the encoder lens decodes when the decoder reads ln_post of block `layer`'s output.
public struct EncoderLensLayer: Codable, Sendable {
    public var layer: Int
    public var tokens: [Int]
    public var text: String
}

/// Each component's direct contribution to the logit of the transcript's next token.
public struct Attribution: Codable, Sendable {
    /// `embed`, `decoder.blocks.i.attn.hN`, `….attn.bias`, `….cross_attn.hN`, `….cross_attn.bias`, `….mlp`.
    public var components: [String]
    /// `[component][position]`: contribution to the logit of `targets[position]`.
    public var values: [[Double]]
    /// The token each position's logit is attributed for (the next token of the sequence).
    public var targets: [Int]
    /// The final-LayerNorm bias term `β · W_U[t]` per position; components + bias = the logit.
    public var bias: [Double]
    /// The model's logit of each target (for checking the sum).
    public var logits: [Double]
}

/// Everything `auscult lens` computes for one clip.
public struct LensResult: Codable, Sendable {
    public var clip: String
    /// The teacher-forced decoder input: prompt, the clean transcript's tokens, end-of-text.
    public var tokens: [Int]
    public var tokenText: [String]
    public var decoderLens: [LensLayer]
    public var encoderLens: [EncoderLensLayer]
    public var attribution: Attribution

    enum CodingKeys: String, CodingKey {
        case clip, tokens, attribution
        case tokenText = "token_text", decoderLens = "decoder_lens", encoderLens = "encoder_lens"
    }
}

/// Attention patterns of one clip for the report (not written to JSON: they are large).
public struct AttentionMaps: Sendable {
    /// `encoder.blocks.i.attn.hook_pattern` etc. → `[h, q, k]`.
    public var patterns: [String: Tensor]
    /// Audio frames that hold sound (the rest is the 30 s padding).
    public var contentFrames: Int
}

/// Runs the lenses, attribution and attention capture on clips.
public struct Lens {
    public let loaded: LoadedModel
    public var topK = 5
    /// How the clean transcript is decoded (a previous-context prompt and a prefix, as
    /// openai-whisper's `prompt` and `prefix`); the teacher-forced input starts with them.
    public var decoding = DecodingOptions()
    public init(loaded: LoadedModel) { self.loaded = loaded }
    var model: Whisper { loaded.model }

    /// The lenses for the clip at `path`, teacher-forced on `tokens` (prompt included) or on the
    /// clip's greedy transcript; with `attention`, its attention patterns too.
    public func run(
        _ path: String, id: String? = nil, tokens given: [Int]? = nil,
        attention: Bool = false
    ) throws -> (LensResult, AttentionMaps?) {
        let dims = model.dims
        let samples = try AudioClip(contentsOf: path).samples
        let mel = LogMel(nMels: dims.n_mels).window(samples)
        var names = Set((0..<dims.n_text_layer).map { "decoder.blocks.\($0).hook_resid_post" })
        names.insert("decoder.blocks.0.hook_resid_pre")
        for i in 0..<dims.n_text_layer {
            for part in ["attn", "cross_attn"] { names.insert("decoder.blocks.\(i).\(part).hook_result") }
            names.insert("decoder.blocks.\(i).hook_mlp_out")
            names.insert("decoder.blocks.\(i).hook_attn_out"); names.insert("decoder.blocks.\(i).hook_cross_attn_out")
        }
        names.formUnion([HookName.embed.name, HookName.posEmbed.name, HookName.lnFinal.scale.name])
        if attention {
            for i in 0..<dims.n_audio_layer { names.insert("encoder.blocks.\(i).attn.hook_pattern") }
            for i in 0..<dims.n_text_layer {
                names.insert("decoder.blocks.\(i).attn.hook_pattern");
                names.insert("decoder.blocks.\(i).cross_attn.hook_pattern")
            }
        }
        let encoderNames = Set(names.filter { $0.hasPrefix("encoder.") })
        let rec = ActivationRecorder { names.contains($0) }
        // Encoder: keep the stream between blocks for the encoder lens.
        let (streams, audio) = try model.encodeKeepingStreams(
            mel.reshaped([1] + mel.shape), hooks: encoderNames.isEmpty ? nil : rec)
        var seq: [Int]
        if let given {
            seq = given
        } else {
            let r = try loaded.decoder.decode(audio: audio, options: decoding)[0]
            seq = loaded.decoder.initialTokens(decoding, language: r.language) + r.tokens + [loaded.tokenizer.eot]
        }
        let logits = try model.decode([seq], cache: try model.makeCache(audio: audio, audioIndex: [0]), hooks: rec)
        let t = seq.count, v = dims.n_vocab, d = dims.n_text_state
        let store = rec.store.mapValues { $0.reshaped(Array($0.shape.dropFirst())) }
        // Decoder lens.
        let finalLogits = logits.reshaped([t, v])
        let finalLogp = finalLogits.logSoftmaxRows()
        let finalTop = finalLogits.argmax(axis: -1)
        var layers = [LensLayer]()
        let layerNames = ["embed"] + (0..<dims.n_text_layer).map { "decoder.blocks.\($0)" }
        for (li, name) in layerNames.enumerated() {
            let resid =
                li == 0 ? store["decoder.blocks.0.hook_resid_pre"]! : store["decoder.blocks.\(li - 1).hook_resid_post"]!
            let lg = model.unembed(resid.reshaped([t, d]))
            let lp = lg.logSoftmaxRows()
            var layer = LensLayer(layer: name, top1: [], topk: [], finalProb: [], finalRank: [], kl: [])
            for p in 0..<t {
                let row = lp[p]
                let order = topIndices(row, k: topK)
                layer.top1.append(order[0])
                layer.topk.append(order.map { TokenProb(id: $0, text: loaded.tokenizer.decode([$0]), p: exp(row[$0])) })
                let f = finalTop[p]
                layer.finalProb.append(exp(row[f]))
                layer.finalRank.append(row.reduce(0) { $0 + ($1 > row[f] ? 1 : 0) })
                var kl = 0.0
                for j in 0..<v { let pf = finalLogp[p][j]; kl += exp(pf) * (pf - row[j]) }
                layer.kl.append(kl)
            }
            layers.append(layer)
        }
        // Encoder lens: the decoder reads ln_post of each intermediate block's output.
        var encLens = [EncoderLensLayer]()
        let feats = try (1..<dims.n_audio_layer).map { try model.encoderOutput(streams[$0]).row(0) }
        let results = try loaded.decoder.decode(audio: Tensor.stack(feats + [audio.row(0)]), options: decoding)
        for (l, r) in results.enumerated() {
            encLens.append(EncoderLensLayer(layer: l, tokens: r.tokens, text: r.text))
        }
        let frames = LoadedClip.validFrames(samples: samples.count, maxFrames: dims.n_audio_ctx)
        let cache = ActivationCache(loaded: loaded, activations: store, tokens: seq, audioFrames: frames)
        let attribution = try attribute(cache, finalLogits: finalLogits)
        let result = LensResult(
            clip: id ?? path, tokens: seq, tokenText: seq.map { loaded.tokenizer.decode([$0]) },
            decoderLens: layers, encoderLens: encLens, attribution: attribution)
        var maps: AttentionMaps?
        if attention {
            var pats = [String: Tensor]()
            for (k, val) in store where k.hasSuffix("hook_pattern") { pats[k] = val }
            maps = AttentionMaps(patterns: pats, contentFrames: frames)
        }
        return (result, maps)
    }

    /// Direct logit attribution through the final LayerNorm (`ActivationCache.headDecomposition`,
    /// `applyLNToStack`, `logitAttrs`): component c at position p adds
    /// `((c_p − mean(c_p)) / σ_p) · (γ ⊙ W_U[t])` to the logit of t, σ_p the final LayerNorm's
    /// cached scale. The parts sum to the logit minus `β · W_U[t]`.
    func attribute(_ cache: ActivationCache, finalLogits: Tensor) throws -> Attribution {
        let tokens = cache.tokens, t = tokens.count
        // Targets: the next token at each position (the last position predicts end-of-text's successor: itself).
        let targets = (0..<t).map { $0 + 1 < t ? tokens[$0 + 1] : tokens[$0] }
        let (stack, names) = try cache.headDecomposition()
        let attrs = try cache.logitAttrs(try cache.applyLNToStack(stack), tokens: targets)
        let values = (0..<names.count).map { c in (0..<t).map { Double(attrs[c, $0]) } }
        let logits = (0..<t).map { Double(finalLogits[$0, targets[$0]]) }
        return Attribution(
            components: names, values: values, targets: targets,
            bias: try cache.logitBias(tokens: targets), logits: logits)
    }

    func topIndices(_ row: [Double], k: Int) -> [Int] {
        var top = [Int]()
        for j in row.indices {
            if top.count < k || row[j] > row[top[top.count - 1]] {
                var at = top.count
                while at > 0 && row[top[at - 1]] < row[j] { at -= 1 }
                top.insert(j, at: at)
                if top.count > k { top.removeLast() }
            }
        }
        return top
    }
}
