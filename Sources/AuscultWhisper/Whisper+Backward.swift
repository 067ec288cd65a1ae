// Reverse-mode differentiation through the whole model, as PyTorch autograd differentiates
// openai-whisper model.py: from the logits back through the decoder, its cross-attention into
// the audio features, the encoder and its convolutions down to the log-mel.
import AuscultTensor

extension Whisper {
    /// The activations a backward pass reads, for one clip and its decoder tokens (canonical hook
    /// names): each LayerNorm's input, the attention operands and patterns, the MLP's input to
    /// GELU, and the log-mel (the convolutions are recomputed from it).
    public var backwardInputs: [String] { backwardInputs(decoder: true) }

    /// `backwardInputs`, or only the encoder's when no gradient starts in the decoder.
    public func backwardInputs(decoder: Bool) -> [String] {
        var names = ["audio.hook_mel"] + (decoder ? [HookName.embed.name] : [])
        func block(_ b: BlockHooks, cross: Bool) {
            names += [b.residPre.name, b.residMid.name, b.mlp.pre.name, b.residPost.name]
            for a in cross ? [b.attn, b.crossAttn] : [b.attn] {
                names += [a.q.name, a.k.name, a.v.name, a.pattern.name]
            }
            if cross { names.append(b.residMidCross.name) }
        }
        for l in 0..<dims.n_audio_layer { block(HookName.encoder(l), cross: false) }
        if decoder { for l in 0..<dims.n_text_layer { block(HookName.decoder(l), cross: true) } }
        return names
    }

    /// The gradient with respect to decoder residual streams `[N, d]` of a scalar whose gradient
    /// with respect to their logits `unembed(residual)` is `dLogits` `[N, V]`: back through the
    /// unembedding and the final LayerNorm (a lens reading any stream as the last one).
    public func unembedBackward(_ dLogits: Tensor, residual: Tensor) throws -> Tensor {
        guard let backend = backend as? any BackwardBackend else {
            throw GradientError(.unsupportedBackend, "the \(backend.name) backend has no backward operations")
        }
        return backend.layerNormBackward(backend.linearBackward(dLogits, unembedding), input: residual, lnFinal)
    }

    /// Gradients of a scalar at every hook point on its path, from its gradient with respect to
    /// the logits `dLogits` `[T, V]` of one clip's teacher-forced run (`backward(seeds:…)`).
    public func backward(
        _ dLogits: Tensor, saved: [String: Tensor], hook: ((String, inout Tensor) throws -> Void)? = nil
    ) throws -> [String: Tensor] {
        try backward(seeds: [HookName.logits.name: dLogits], saved: saved, hook: hook)
    }

    /// Gradients of a scalar at every hook point on its path, given its direct gradient at some
    /// points (`seeds`: hook name → `[…]` shaped as the activation, e.g. the logits' `[T, V]` or
    /// one neuron's column of an encoder MLP), for one clip's teacher-forced run whose activations
    /// (batch axis dropped) `saved` holds at least `backwardInputs`. With no seed in the decoder,
    /// only the encoder runs backwards.
    ///
    /// `hook`, when given, sees each gradient as it is formed, in reverse order, and may replace
    /// it: what it returns is what flows on. Returns hook name → gradient, shaped as the
    /// activation. Patterns, scores and LayerNorm scales get none (they are read, not written).
    public func backward(
        seeds: [String: Tensor], saved: [String: Tensor], hook: ((String, inout Tensor) throws -> Void)? = nil
    ) throws -> [String: Tensor] {
        guard let backend = backend as? any BackwardBackend else {
            throw GradientError(.unsupportedBackend, "the \(backend.name) backend has no backward operations")
        }
        let fromDecoder = seeds.keys.contains { $0.hasPrefix("decoder.") }
        for name in backwardInputs(decoder: fromDecoder) where saved[name] == nil {
            throw GradientError(.missingActivation, "a backward pass needs '\(name)' from the forward pass")
        }
        for (name, seed) in seeds {
            let shape =
                name == HookName.logits.name
                ? [saved[HookName.embed.name]?.shape.first ?? -1, dims.n_vocab] : saved[name]?.shape
            guard seed.shape == shape else {
                throw GradientError(
                    .shapeMismatch,
                    "the gradient given at \(name) has shape \(seed.shape), the activation \(shape ?? [])")
            }
        }
        let d = dims.n_text_state
        var grads = [String: Tensor]()
        /// Records the gradient at `name` (plus any seed there, letting the hook replace it) and
        /// returns what flows on.
        func at(_ name: String, _ g: Tensor) throws -> Tensor {
            var g = g
            if let seed = seeds[name] { backend.add(&g, seed) }
            if let hook {
                let shape = g.shape
                try hook(name, &g)
                guard g.shape == shape else {
                    throw GradientError(
                        .shapeMismatch,
                        "a backward hook at \(name) returned shape \(g.shape) for a gradient of \(shape)")
                }
            }
            grads[name] = g
            return g
        }
        func heads(_ x: Tensor, _ h: Int) -> Tensor { x.reshaped([x.shape[0], h, x.shape[1] / h]) }
        func flat(_ name: String) -> Tensor {
            let x = saved[name]!
            return x.reshaped([x.shape[0], x.count / x.shape[0]])
        }

        var dFeatures: Tensor? = Tensor(zeros: [dims.n_audio_ctx, d])
        var g: Tensor
        if fromDecoder {
            // Decoder: logits = LN_final(x_L) · Eᵀ.
            let t = saved[HookName.embed.name]!.shape[0]
            g = try at(HookName.logits.name, Tensor(zeros: [t, dims.n_vocab]))
            g = try at(HookName.lnFinal.normalized.name, backend.linearBackward(g, unembedding))
            let top = HookName.decoder(dims.n_text_layer - 1).residPost.name
            g = backend.layerNormBackward(g, input: saved[top]!, lnFinal)
            for l in (0..<dims.n_text_layer).reversed() {
                g = try blockBackward(
                    decoderBlocks[l], HookName.decoder(l), g, saved: saved, backend: backend, at: at, heads: heads,
                    flat: flat, dFeatures: &dFeatures)
            }
            _ = try at(HookName.embed.name, g)
            _ = try at(HookName.posEmbed.name, g)
        }

        // Encoder: the features are ln_post of its last residual stream.
        g = try at(HookName.lnPost.normalized.name, dFeatures!)
        let last = HookName.encoder(dims.n_audio_layer - 1).residPost.name
        g = backend.layerNormBackward(g, input: saved[last]!, lnPost)
        var none: Tensor? = nil
        for l in (0..<dims.n_audio_layer).reversed() {
            g = try blockBackward(
                encoderBlocks[l], HookName.encoder(l), g, saved: saved, backend: backend, at: at, heads: heads,
                flat: flat, dFeatures: &none)
        }
        _ = try at(HookName.encoderPosEmbed.name, g)
        g = try at(HookName.convOut.name, g)

        // The stem, recomputed from the log-mel: x = GELU(conv2(GELU(conv1(mel)))) + positions.
        let mel = saved[HookName.mel.name]!
        let c1 = backend.conv1d(mel, weight: conv1.weight, bias: conv1.bias!, stride: 1, padding: 1, framesFirst: false)
        var h1 = c1
        backend.gelu(&h1)
        let c2 = backend.conv1d(h1, weight: conv2.weight, bias: conv2.bias!, stride: 2, padding: 1, framesFirst: true)
        g = backend.geluBackward(g, input: c2)
        g = backend.conv1dBackward(
            g, inputShape: h1.shape, weight: conv2.weight, stride: 2, padding: 1, framesFirst: true)
        g = backend.geluBackward(g, input: c1)
        g = backend.conv1dBackward(
            g, inputShape: mel.shape, weight: conv1.weight, stride: 1, padding: 1, framesFirst: false)
        _ = try at(HookName.mel.name, g)
        for name in seeds.keys where grads[name] == nil {
            throw GradientError(
                .unsupported, "no gradient flows through \(name) (it is read, not written, by the model)")
        }
        return grads
    }

    /// One pre-LN block backwards: `g` is the gradient at its `hook_resid_post`; returns the one
    /// at its `hook_resid_pre`. A decoder block adds its cross-attention's gradient with respect to
    /// the audio features into `dFeatures` `[F, d]`.
    private func blockBackward(
        _ block: Block, _ b: BlockHooks, _ gPost: Tensor, saved: [String: Tensor], backend: any BackwardBackend,
        at: (String, Tensor) throws -> Tensor, heads: (Tensor, Int) -> Tensor, flat: (String) -> Tensor,
        dFeatures: inout Tensor?
    ) throws -> Tensor {
        let h = b.isDecoder ? dims.n_text_head : dims.n_audio_head
        /// One attention backwards from the gradient at its output `[n, d]`: through the output
        /// projection to z, then to the queries, keys and values, each offered at its hook point
        /// (`[n, h, dh]` there); returns what flows on from q, k and v, `[n, d]` each.
        func attention(_ a: AttentionHooks, _ out: Linear, _ gOut: Tensor) throws -> (Tensor, Tensor, Tensor) {
            let dz = try at(a.z.name, heads(backend.linearBackward(gOut, out), h)).reshaped(gOut.shape)
            let (dq, dk, dv) = backend.attentionBackward(
                dz, q: flat(a.q.name), k: flat(a.k.name), v: flat(a.v.name), pattern: saved[a.pattern.name]!, heads: h)
            return (
                try at(a.q.name, heads(dq, h)).reshaped(dq.shape), try at(a.k.name, heads(dk, h)).reshaped(dk.shape),
                try at(a.v.name, heads(dv, h)).reshaped(dv.shape)
            )
        }
        var g = try at(b.residPost.name, gPost)
        // MLP: out = fc2(GELU(fc1(LN(x)))).
        let gm = try at(b.mlpOut.name, g)
        let dPost = try at(b.mlp.post.name, backend.linearBackward(gm, block.fc2))
        let dPre = try at(b.mlp.pre.name, backend.geluBackward(dPost, input: saved[b.mlp.pre.name]!))
        let mlpIn = b.isDecoder ? b.residMidCross : b.residMid
        let dn = try at(b.mlpLN.normalized.name, backend.linearBackward(dPre, block.fc1))
        backend.add(&g, backend.layerNormBackward(dn, input: saved[mlpIn.name]!, block.mlpLN))
        if b.isDecoder, dFeatures != nil {
            g = try at(b.residMidCross.name, g)
            let (dq, dk, dv) = try attention(b.crossAttn, block.crossOut!, try at(b.crossAttnOut.name, g))
            let dn2 = try at(b.ln2.normalized.name, backend.linearBackward(dq, block.crossQ!))
            backend.add(&dFeatures!, backend.linearBackward(Self.columns([dk, dv]), block.crossKV!))
            backend.add(&g, backend.layerNormBackward(dn2, input: saved[b.residMid.name]!, block.crossLN!))
        }
        g = try at(b.residMid.name, g)
        // Self-attention: out = W_o · attention(q, k, v of LN(x)).
        let (dq, dk, dv) = try attention(b.attn, block.attnOut, try at(b.attnOut.name, g))
        let dn1 = try at(b.ln1.normalized.name, backend.linearBackward(Self.columns([dq, dk, dv]), block.qkv))
        backend.add(&g, backend.layerNormBackward(dn1, input: saved[b.residPre.name]!, block.attnLN))
        return try at(b.residPre.name, g)
    }

    /// `[n, w₁] … [n, wₖ]` side by side: `[n, Σ w]`.
    static func columns(_ parts: [Tensor]) -> Tensor {
        let n = parts[0].shape[0], width = parts.reduce(0) { $0 + $1.shape[1] }
        var out = Tensor(zeros: [n, width])
        var at = 0
        for p in parts {
            out.replaceSlice(at..<(at + p.shape[1]), axis: 1, with: p)
            at += p.shape[1]
        }
        return out
    }
}
