// AudioEncoder.forward of openai-whisper model.py, batched over clips, with hook points.
import AuscultTensor

extension Whisper {
    /// Encodes log-mel windows `[B, n_mels, 2·n_audio_ctx]` into audio features `[B, F, d]`
    /// (the output of `ln_post`, F = n_audio_ctx = 1500).
    public func encode(_ mel: Tensor, hooks: HookHandler? = nil) throws -> Tensor {
        let x = try encoderInput(mel, hooks: hooks)
        return try encodeBlocks(x, from: 0, hooks: hooks)
    }

    /// Encodes as `encode` does, also keeping the residual stream between blocks:
    /// `streams[L]` `[B, F, d]` enters block L, `streams[n_audio_layer]` leaves the last block.
    /// Sweeps restart ablations from them, lenses read them, patching swaps them.
    public func encodeKeepingStreams(
        _ mel: Tensor, hooks: HookHandler? = nil
    ) throws -> (streams: [Tensor], features: Tensor) {
        var x = try encoderInput(mel, hooks: hooks)
        var streams = [x]
        for l in 0..<dims.n_audio_layer {
            x = try encoderBlock(l, x, hooks: hooks)
            streams.append(x)
        }
        return (streams, try encoderOutput(x, hooks: hooks))
    }

    /// The encoder's stem: log-mel `[B, n_mels, 2F]` through both convolutions, GELU and the
    /// positional embedding, giving the residual stream entering block 0, `[B, F, d]`.
    public func encoderInput(_ mel: Tensor, hooks: HookHandler? = nil) throws -> Tensor {
        let f = dims.n_audio_ctx
        guard mel.rank == 3, mel.shape[1] == dims.n_mels, mel.shape[2] == 2 * f else {
            throw WhisperError(
                .invalidArgument, "encoder input has shape \(mel.shape), expected [B, \(dims.n_mels), \(2 * f)]")
        }
        let b = mel.shape[0]
        let ctx = HookContext(clips: Array(0..<b))
        var mel = mel
        try hooks.run("audio.hook_mel", &mel, ctx)
        var convs = [Tensor]()
        for i in 0..<b {
            var h1 = backend.conv1d(
                mel.row(i), weight: conv1.weight, bias: conv1.bias!, stride: 1, padding: 1, framesFirst: false)
            backend.gelu(&h1)
            var h2 = backend.conv1d(
                h1, weight: conv2.weight, bias: conv2.bias!, stride: 2, padding: 1, framesFirst: true)
            backend.gelu(&h2)
            convs.append(h2)
        }
        var x = Tensor.stack(convs)  // [B, F, d]
        try hooks.run("encoder.hook_conv_out", &x, ctx)
        var pos = Tensor.stack([Tensor](repeating: encoderPositions, count: b))
        try hooks.run("encoder.hook_pos_embed", &pos, ctx)
        backend.add(&x, pos)
        return x
    }

    /// Runs encoder blocks `from…` on the residual stream entering block `from`, `[B, F, d]`,
    /// then `ln_post`: the audio features `[B, F, d]`. With `from == n_audio_layer` only
    /// `ln_post` runs (the encoder lens: decode from an intermediate block).
    ///
    /// Experiments reuse work through this entry point: an intervention at block L leaves the
    /// stream entering block L unchanged, so sweeps start there instead of at the log-mel.
    public func encodeBlocks(_ input: Tensor, from start: Int, hooks: HookHandler? = nil) throws -> Tensor {
        guard start >= 0, start <= dims.n_audio_layer else {
            throw WhisperError(.invalidArgument, "encoder block \(start) outside 0…\(dims.n_audio_layer)")
        }
        var x = input
        for i in start..<dims.n_audio_layer { x = try encoderBlock(i, x, hooks: hooks) }
        return try encoderOutput(x, hooks: hooks)
    }

    /// Encoder block `index` on the residual stream entering it, `[B, F, d]` → `[B, F, d]`.
    public func encoderBlock(_ index: Int, _ x: Tensor, hooks: HookHandler? = nil) throws -> Tensor {
        let f = dims.n_audio_ctx
        guard index >= 0, index < dims.n_audio_layer else {
            throw WhisperError(.invalidArgument, "encoder block \(index) outside 0..<\(dims.n_audio_layer)")
        }
        guard x.rank == 3, x.shape[1] == f, x.shape[2] == dims.n_audio_state else {
            throw WhisperError(
                .invalidArgument, "encoder block input has shape \(x.shape), expected [B, \(f), \(dims.n_audio_state)]")
        }
        let b = x.shape[0], block = encoderBlocks[index]
        let ctx = HookContext(clips: Array(0..<b))
        return try residualBlock(block, x, prefix: "encoder.blocks.\(index)", hooks: hooks, ctx: ctx) { h, prefix in
            try self.encoderSelfAttention(block, h, batch: b, frames: f, prefix: prefix, hooks: hooks, ctx: ctx)
        }
    }

    /// `ln_post` on the final residual stream `[B, F, d]`: the audio features the decoder reads.
    public func encoderOutput(_ x: Tensor, hooks: HookHandler? = nil) throws -> Tensor {
        try normed(x, lnPost, name: "encoder.ln_post", hooks: hooks, ctx: HookContext(clips: Array(0..<x.shape[0])))
    }

    /// Self-attention of one encoder block over `h` `[B, F, d]` (already layer-normed): `[B, F, d]`.
    func encoderSelfAttention(
        _ block: Block, _ h: Tensor, batch: Int, frames f: Int, prefix: String,
        hooks: HookHandler?, ctx: HookContext
    ) throws -> Tensor {
        let d = dims.n_audio_state, heads = dims.n_audio_head
        var qkv = backend.linear(h, block.qkv)  // [B, F, 3d]
        try hookColumns(
            &qkv, width: 3 * d, parts: ["q", "k", "v"], prefix: prefix + ".attn", heads: heads, hooks: hooks, ctx: ctx)
        var record = AttentionRecord()
        if hooks.isActive(prefix + ".attn.hook_pattern") { record.insert(.pattern) }
        if hooks.isActive(prefix + ".attn.hook_attn_scores") { record.insert(.scores) }
        let attention = backend.selfAttention(qkv, heads: heads, record: record)
        var z = attention.z
        if var scores = attention.scores { try hooks.runReadOnly(prefix + ".attn.hook_attn_scores", &scores, ctx) }
        if var pattern = attention.pattern { try hooks.runReadOnly(prefix + ".attn.hook_pattern", &pattern, ctx) }
        try hookHeads(&z, name: prefix + ".attn.hook_z", heads: heads, hooks: hooks, ctx: ctx)
        return try projectHeads(
            z, block.attnOut, name: prefix + ".attn.hook_result", heads: heads, hooks: hooks, ctx: ctx)
    }

    /// The attention output projection, split per head at `<attn>.hook_result` `[…, h, d]` when
    /// something listens there. If the hook changed the per-head results the output is
    /// Σ_h result + bias; if it only looked, the usual single GEMM gives the output, so observing
    /// never changes a bit.
    func projectHeads(
        _ z: Tensor, _ out: Linear, name: String, heads: Int, hooks: HookHandler?, ctx: HookContext
    ) throws -> Tensor {
        guard hooks.isActive(name) else { return backend.linear(z, out) }
        var result = backend.headResults(z, out, heads: heads)
        let seen = result
        try hooks.run(name, &result, ctx)
        if result == seen { return backend.linear(z, out) }
        // Σ_h result_h + bias, added in the order the bias-first loop of the products adds them.
        let rows = z.count / z.shape.last!, n = out.outputs
        var summed = Tensor.stack([Tensor](repeating: out.bias ?? Tensor(zeros: [n]), count: rows))
            .reshaped(Array(z.shape.dropLast()) + [n])
        for h in 0..<heads { backend.add(&summed, result.select(h, axis: result.rank - 2)) }
        return summed
    }

    /// The pre-LN residual block shared by encoder and decoder: attention (and cross-attention)
    /// then MLP, each added to the residual stream, with every hook point on the way.
    func residualBlock(
        _ block: Block, _ input: Tensor, prefix p: String, hooks: HookHandler?, ctx: HookContext,
        cross: ((Tensor, String) throws -> Tensor)? = nil,
        attention: (Tensor, String) throws -> Tensor
    ) throws -> Tensor {
        var x = input
        try hooks.run(p + ".hook_resid_pre", &x, ctx)
        let h1 = try normed(x, block.attnLN, name: p + ".ln1", hooks: hooks, ctx: ctx)
        var a = try attention(h1, p)
        try hooks.run(p + ".hook_attn_out", &a, ctx)
        backend.add(&x, a)
        try hooks.run(p + ".hook_resid_mid", &x, ctx)
        var lnName = p + ".ln2"
        if let cross, let crossLN = block.crossLN {
            let h2 = try normed(x, crossLN, name: p + ".ln2", hooks: hooks, ctx: ctx)
            var c = try cross(h2, p)
            try hooks.run(p + ".hook_cross_attn_out", &c, ctx)
            backend.add(&x, c)
            try hooks.run(p + ".hook_resid_mid_cross", &x, ctx)
            lnName = p + ".ln3"
        }
        let h3 = try normed(x, block.mlpLN, name: lnName, hooks: hooks, ctx: ctx)
        var pre = backend.linear(h3, block.fc1)
        try hooks.run(p + ".mlp.hook_pre", &pre, ctx)
        backend.gelu(&pre)
        try hooks.run(p + ".mlp.hook_post", &pre, ctx)
        var m = backend.linear(pre, block.fc2)
        try hooks.run(p + ".hook_mlp_out", &m, ctx)
        backend.add(&x, m)
        try hooks.run(p + ".hook_resid_post", &x, ctx)
        return x
    }

    /// LayerNorm with its hook points `<name>.hook_scale` (σ per row, `[…, 1]`) and `<name>.hook_normalized`.
    func normed(_ x: Tensor, _ n: Norm, name: String, hooks: HookHandler?, ctx: HookContext) throws -> Tensor {
        guard hooks != nil else { return backend.layerNorm(x, n, withScale: false).y }
        let wantScale = hooks.isActive(name + ".hook_scale")
        var (y, inverse) = backend.layerNorm(x, n, withScale: wantScale)
        if let inverse {
            var shape = x.shape
            shape[shape.count - 1] = 1
            var s = Tensor(shape: shape, storage: inverse.map { 1 / $0 })
            try hooks.runReadOnly(name + ".hook_scale", &s, ctx)
        }
        try hooks.run(name + ".hook_normalized", &y, ctx)
        return y
    }

    /// Offers column blocks of a fused `[…, parts·d]` projection as `[…, h, dh]` hook points
    /// (`<prefix>.hook_q` …), writing back what the hooks return. Only active points are copied.
    func hookColumns(
        _ fused: inout Tensor, width: Int, parts: [String], prefix: String, heads: Int,
        hooks: HookHandler?, ctx: HookContext
    ) throws {
        guard hooks != nil else { return }
        let d = width / parts.count, axis = fused.rank - 1
        for (pi, part) in parts.enumerated() where hooks.isActive(prefix + ".hook_" + part) {
            let lead = Array(fused.shape.dropLast())
            var t = fused.slice((pi * d)..<((pi + 1) * d), axis: axis).reshaped(lead + [heads, d / heads])
            try hooks.run(prefix + ".hook_" + part, &t, ctx)
            fused.replaceSlice((pi * d)..<((pi + 1) * d), axis: axis, with: t.reshaped(lead + [d]))
        }
    }

    /// Offers `[…, d]` as `[…, h, dh]` at `name` (the per-head view of z).
    func hookHeads(_ x: inout Tensor, name: String, heads: Int, hooks: HookHandler?, ctx: HookContext) throws {
        guard hooks.isActive(name) else { return }
        let shape = x.shape
        var t = x.reshaped(Array(shape.dropLast()) + [heads, shape.last! / heads])
        try hooks.run(name, &t, ctx)
        x = t.reshaped(shape)
    }
}
