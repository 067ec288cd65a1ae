// Reading CTranslate2 / faster-whisper model directories (`model.bin`, version 6 layout described in
// ../shared/reference/README.md) into openai-whisper key names: fused q|k|v and cross k|v are split,
// the absent key bias is simply not a Whisper parameter, int8 weights are scaled back to Float32.
import AuscultTensor
import Foundation

enum CTranslate2Loader {
    struct Variable { var shape: [Int]; var dtype: UInt8; var offset: Int; var bytes: Int }

    static func load(directory: String) throws -> WhisperWeights {
        let path = (directory as NSString).appendingPathComponent("model.bin")
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) else {
            throw ModelLoadError(.modelNotFound, "\(path): cannot read the CTranslate2 model file")
        }
        let vars = try parse(data, path: path)
        func raw(_ name: String) throws -> Tensor {
            guard let v = vars[name] else {
                throw ModelLoadError(
                    .missingTensor,
                    "\(path): the CTranslate2 model has no variable '\(name)'; the file is incomplete or not a Whisper "
                        + "model"
                )
            }
            var t = try decode(v, data: data, name: name, path: path)
            if v.dtype == 1 || v.dtype == 2 {  // int8/int16: divide each row by its scale
                guard let s = vars[name + "_scale"] else {
                    throw ModelLoadError(.missingTensor, "\(path): quantised '\(name)' has no '\(name)_scale'")
                }
                let scale = try decode(s, data: data, name: name + "_scale", path: path)
                guard scale.count == 1 || scale.count == t.shape[0] else {
                    throw ModelLoadError(
                        .corruptModel,
                        "\(path): '\(name)_scale' holds \(scale.count) scales for the \(t.shape[0]) rows of '\(name)' "
                            + "(1 or one per row)")
                }
                t = t.dividingRows(by: scale)
            }
            return t
        }
        func scalar(_ name: String) throws -> Int {
            guard let v = vars[name] else { throw ModelLoadError(.missingTensor, "\(path): no variable '\(name)'") }
            let values = try decode(v, data: data, name: name, path: path).scalars
            guard values.count == 1, let x = values.first else {
                throw ModelLoadError(.corruptModel, "\(path): variable '\(name)' holds \(values.count) values, not one")
            }
            guard x.isFinite, x.magnitude < 1e9 else {
                throw ModelLoadError(.corruptModel, "\(path): variable '\(name)' is \(x), not a count")
            }
            return Int(x)
        }
        func layers(_ side: String) -> Int {
            var n = 0
            while vars["\(side)/layer_\(n)/ffn/linear_0/bias"] != nil { n += 1 }
            return n
        }

        let conv1 = try raw("encoder/conv1/weight")
        let encPos = try raw("encoder/position_encodings/encodings")
        let emb = try raw("decoder/embeddings/weight")
        let decPos = try raw("decoder/position_encodings/encodings")
        let dims = ModelDimensions(
            n_mels: conv1.shape[1], n_audio_ctx: encPos.shape[0], n_audio_state: conv1.shape[0],
            n_audio_head: try scalar("encoder/num_heads"), n_audio_layer: layers("encoder"),
            n_vocab: emb.shape[0], n_text_ctx: decPos.shape[0], n_text_state: emb.shape[1],
            n_text_head: try scalar("decoder/num_heads"), n_text_layer: layers("decoder"))

        var t = [String: Tensor]()
        t["encoder.conv1.weight"] = conv1
        t["encoder.conv1.bias"] = try raw("encoder/conv1/bias")
        t["encoder.conv2.weight"] = try raw("encoder/conv2/weight")
        t["encoder.conv2.bias"] = try raw("encoder/conv2/bias")
        t["encoder.positional_embedding"] = encPos
        t["decoder.token_embedding.weight"] = emb
        t["decoder.positional_embedding"] = decPos
        for (ours, theirs) in [("encoder.ln_post", "encoder/layer_norm"), ("decoder.ln", "decoder/layer_norm")] {
            t[ours + ".weight"] = try raw(theirs + "/gamma")
            t[ours + ".bias"] = try raw(theirs + "/beta")
        }
        func split(_ x: Tensor, parts: Int) -> [Tensor] {
            let rows = x.shape[0] / parts
            return (0..<parts).map { x.rows(($0 * rows)..<(($0 + 1) * rows)) }
        }
        for (side, n) in [("encoder", dims.n_audio_layer), ("decoder", dims.n_text_layer)] {
            for i in 0..<n {
                let c = "\(side)/layer_\(i)", o = "\(side).blocks.\(i)"
                let sa = c + "/self_attention"
                let qkvW = split(try raw(sa + "/linear_0/weight"), parts: 3)
                let qkvB = split(try raw(sa + "/linear_0/bias"), parts: 3)
                t[o + ".attn.query.weight"] = qkvW[0]; t[o + ".attn.query.bias"] = qkvB[0]
                t[o + ".attn.key.weight"] = qkvW[1]
                t[o + ".attn.value.weight"] = qkvW[2]; t[o + ".attn.value.bias"] = qkvB[2]
                t[o + ".attn.out.weight"] = try raw(sa + "/linear_1/weight")
                t[o + ".attn.out.bias"] = try raw(sa + "/linear_1/bias")
                t[o + ".attn_ln.weight"] = try raw(sa + "/layer_norm/gamma")
                t[o + ".attn_ln.bias"] = try raw(sa + "/layer_norm/beta")
                if side == "decoder" {
                    let ca = c + "/attention"
                    t[o + ".cross_attn.query.weight"] = try raw(ca + "/linear_0/weight")
                    t[o + ".cross_attn.query.bias"] = try raw(ca + "/linear_0/bias")
                    let kvW = split(try raw(ca + "/linear_1/weight"), parts: 2)
                    let kvB = split(try raw(ca + "/linear_1/bias"), parts: 2)
                    t[o + ".cross_attn.key.weight"] = kvW[0]
                    t[o + ".cross_attn.value.weight"] = kvW[1]; t[o + ".cross_attn.value.bias"] = kvB[1]
                    t[o + ".cross_attn.out.weight"] = try raw(ca + "/linear_2/weight")
                    t[o + ".cross_attn.out.bias"] = try raw(ca + "/linear_2/bias")
                    t[o + ".cross_attn_ln.weight"] = try raw(ca + "/layer_norm/gamma")
                    t[o + ".cross_attn_ln.bias"] = try raw(ca + "/layer_norm/beta")
                }
                t[o + ".mlp.0.weight"] = try raw(c + "/ffn/linear_0/weight")
                t[o + ".mlp.0.bias"] = try raw(c + "/ffn/linear_0/bias")
                t[o + ".mlp.2.weight"] = try raw(c + "/ffn/linear_1/weight")
                t[o + ".mlp.2.bias"] = try raw(c + "/ffn/linear_1/bias")
                t[o + ".mlp_ln.weight"] = try raw(c + "/ffn/layer_norm/gamma")
                t[o + ".mlp_ln.bias"] = try raw(c + "/ffn/layer_norm/beta")
            }
        }
        return try WhisperWeights(dims: dims, tensors: t, source: directory, format: "CTranslate2")
    }

    /// Parses the variable table; every read is bounds-checked so a truncated file is reported, not a crash.
    static func parse(_ data: Data, path: String) throws -> [String: Variable] {
        var o = 0
        func corrupt(_ what: String) -> ModelLoadError {
            ModelLoadError(
                .corruptModel,
                "\(path): corrupt CTranslate2 model (\(what) at byte \(o) of \(data.count)); re-download or re-convert "
                    + "it"
            )
        }
        func need(_ n: Int) throws { if n < 0 || o + n > data.count { throw corrupt("truncated") } }
        func u8() throws -> UInt8 { try need(1); defer { o += 1 }; return data[data.startIndex + o] }
        func u16() throws -> Int {
            try need(2); defer { o += 2 }
            return LittleEndian.uint(data, at: o, bytes: 2)!
        }
        func u32() throws -> Int {
            try need(4); defer { o += 4 }
            return LittleEndian.uint(data, at: o, bytes: 4)!
        }
        func str() throws -> String {
            let n = try u16(); try need(n)
            guard n > 0,
                let s = String(
                    data: data.subdata(in: (data.startIndex + o)..<(data.startIndex + o + n - 1)), encoding: .utf8)
            else {
                throw corrupt("bad string")
            }
            o += n
            return s
        }
        let version = try u32()
        guard version >= 5 && version <= 6 else { throw corrupt("unsupported binary version \(version)") }
        let spec = try str()
        guard spec.hasPrefix("Whisper") else {
            throw ModelLoadError(.unknownFormat, "\(path): a CTranslate2 '\(spec)' model, not Whisper")
        }
        _ = try u32()
        let n = try u32()
        var vars = [String: Variable]()
        for _ in 0..<n {
            let name = try str()
            let rank = Int(try u8())
            var shape = [Int]()
            for _ in 0..<rank { shape.append(try u32()) }
            let dtype = try u8()
            let bytes = try u32()
            try need(bytes)
            vars[name] = Variable(shape: shape, dtype: dtype, offset: o, bytes: bytes)
            o += bytes
        }
        if o < data.count {
            let na = try u32()
            for _ in 0..<na {
                let alias = try str(), target = try str()
                if let v = vars[target] { vars[alias] = v }
            }
        }
        return vars
    }

    static func decode(_ v: Variable, data: Data, name: String, path: String) throws -> Tensor {
        guard v.shape.allSatisfy({ $0 > 0 }), let count = Tensor.elementCount(v.shape) else {
            throw ModelLoadError(
                .corruptModel,
                "\(path): variable '\(name)' has shape \(v.shape): every size must be positive and "
                    + "their product must fit the file")
        }
        // CTranslate2's DataType order: float32, int8, int16, int32, float16, bfloat16.
        let elements: [StoredElement] = [.f32, .i8, .i16, .i32, .f16, .bf16]
        guard Int(v.dtype) < elements.count else {
            throw ModelLoadError(.corruptModel, "\(path): variable '\(name)' has unknown dtype \(v.dtype)")
        }
        let element = elements[Int(v.dtype)], width = element.byteWidth
        guard count.multipliedReportingOverflow(by: width) == (v.bytes, false) else {
            throw ModelLoadError(
                .corruptModel,
                "\(path): variable '\(name)' holds \(v.bytes) bytes, its shape \(v.shape) needs \(count) values of "
                    + "\(width) bytes")
        }
        return Tensor(decoding: data, byteOffset: v.offset, as: element, shape: v.shape.isEmpty ? [1] : v.shape)
    }
}
