// Interventions as values a user writes in one list:
// `[.zero(.decoder(1).attn.z, heads: [3]), .scale(.encoder(2).mlp.post, by: 2), .skip(.decoder(3))]`.
import AuscultTensor

extension Intervention {
    /// Sets the activation at `hook` to 0 (restricted to `heads`, encoder `frames` or decoder `positions`).
    public static func zero(
        _ hook: HookName, heads: [Int]? = nil, frames: Range<Int>? = nil,
        positions: Set<Int>? = nil
    ) -> Intervention {
        Intervention(hook: hook.name, kind: .zero, heads: heads, frames: frames, positions: positions)
    }

    /// Multiplies the activation at `hook` by `factor`.
    public static func scale(
        _ hook: HookName, by factor: Float, heads: [Int]? = nil, frames: Range<Int>? = nil,
        positions: Set<Int>? = nil
    ) -> Intervention {
        Intervention(hook: hook.name, kind: .scale(factor), heads: heads, frames: frames, positions: positions)
    }

    /// Adds `vector` (`[width]` of the hook's last axes) to every selected row: steering.
    public static func add(
        _ hook: HookName, _ vector: Tensor, heads: [Int]? = nil, frames: Range<Int>? = nil,
        positions: Set<Int>? = nil
    ) -> Intervention {
        Intervention(hook: hook.name, kind: .add(vector), heads: heads, frames: frames, positions: positions)
    }

    /// Replaces the activation at `hook` by `value`: `[seq, …]` (per frame or position) or one row
    /// `[…]` for every frame or position (a mean, a donor's activation).
    public static func replace(
        _ hook: HookName, with value: Tensor, heads: [Int]? = nil, frames: Range<Int>? = nil,
        positions: Set<Int>? = nil
    ) -> Intervention {
        Intervention(hook: hook.name, kind: .replace(value), heads: heads, frames: frames, positions: positions)
    }

    /// Restores the activation at `hook` from `cache` (activation patching: a clean run's cache
    /// into a corrupted run). Encoder hooks patch by frame, decoder hooks by absolute position.
    public static func patch(
        _ hook: HookName, from cache: ActivationCache, heads: [Int]? = nil,
        frames: Range<Int>? = nil, positions: Set<Int>? = nil
    ) throws -> Intervention {
        let name = try cache.registry.resolve(hook.name)
        guard name.count == 1 else {
            throw HookError(.ambiguousHook, "patch names one hook point; '\(hook.name)' matches \(name.count)")
        }
        let t = try cache.tensor(HookName(name[0]))
        return Intervention(
            hook: name[0], kind: .patch(t.reshaped([1] + t.shape)), heads: heads, frames: frames,
            positions: positions)
    }

    /// Skips block `block`: it returns its input, writing nothing to the residual stream.
    public static func skip(_ block: BlockHooks) -> Intervention {
        Intervention(hook: block.block.name, kind: .skip)
    }

    /// Replaces the activation at `hook` by its value on `donor` (resample ablation with one donor).
    /// Encoder hooks take the donor's activation frame by frame; decoder hooks need `tokens`, the
    /// teacher-forced input both runs share, so that only the audio differs.
    public static func resample(
        _ hook: HookName, from donor: AudioInput, model: LoadedModel, tokens: [Int]? = nil,
        heads: [Int]? = nil, frames: Range<Int>? = nil,
        positions: Set<Int>? = nil
    ) throws -> Intervention {
        try .replace(
            hook, with: model.activation(hook, on: donor, tokens: tokens), heads: heads, frames: frames,
            positions: positions)
    }

    /// Replaces the activation at `hook` by its mean over `clips` (per frame, or per position of
    /// the teacher-forced `tokens` that decoder hooks need).
    public static func mean(
        _ hook: HookName, over clips: [AudioInput], model: LoadedModel, tokens: [Int]? = nil,
        heads: [Int]? = nil, frames: Range<Int>? = nil,
        positions: Set<Int>? = nil
    ) throws -> Intervention {
        guard !clips.isEmpty else { throw ConditionError(.unsupported, "mean of '\(hook.name)' over no clips") }
        let activations = try clips.map { try model.activation(hook, on: $0, tokens: tokens) }
        if let other = activations.first(where: { $0.shape != activations[0].shape }) {
            throw HookError(
                .shapeMismatch,
                "mean of '\(hook.name)': activations of shapes \(activations[0].shape) and \(other.shape)")
        }
        let mean = Tensor.mean(activations)
        return Intervention(hook: hook.name, kind: .mean(mean), heads: heads, frames: frames, positions: positions)
    }
}

extension LoadedModel {
    /// The activation `[seq, …]` at one hook point on `audio` (decoder hooks teacher-forced on `tokens`).
    public func activation(_ hook: HookName, on audio: AudioInput, tokens: [Int]? = nil) throws -> Tensor {
        let names = try HookRegistry(dims: model.dims).resolve(hook.name)
        guard names.count == 1 else {
            throw HookError(.ambiguousHook, "'\(hook.name)' matches \(names.count) hook points; name one")
        }
        let decoderSide = names[0].hasPrefix("decoder.")
        if decoderSide && tokens == nil {
            throw ConditionError(
                .unsupported, "'\(names[0])' is a decoder hook: give the tokens both runs are teacher-forced on")
        }
        if decoderSide {
            return try runWithCache(audio, names: [HookName(names[0])], tokens: tokens).1.tensor(HookName(names[0]))
        }
        // An encoder hook needs the encoder only: no decoder step per swap donor or clip of a mean.
        let (mel, _) = try audio.window(for: model.dims)
        let recorder = ActivationRecorder { $0 == names[0] }
        _ = try model.encode(mel.reshaped([1] + mel.shape), hooks: recorder)
        let t = recorder.store[names[0]]!
        return t.reshaped(Array(t.shape.dropFirst()))
    }
}

extension Intervention {
    /// The interventions a parsed condition makes on `model`.
    ///
    /// `zero` of a block set and `skip` give one skip per block; `swap … from S` reads the donor
    /// `donor(S)` (a file by default): an encoder point's activation on it, or for decoder points
    /// and blocks the donor run beside the clip on the same tokens (`fromAudio`, so it also works
    /// while generating); `mean` averages over `clips`, a decoder `mean` teacher-forced on
    /// `tokens`. A `swap` without a donor is a sweep's (a donor drawn per clip) and is refused here.
    public static func make(
        _ spec: ConditionSpec, model: LoadedModel, clips: [AudioInput] = [], tokens: [Int]? = nil,
        donor: (String) -> AudioInput = { .file($0) }
    ) throws -> [Intervention] {
        let hook = HookName(spec.target)
        let (heads, frames, positions) = (spec.heads, spec.frames, spec.positions)
        if let (side, blocks) = spec.blocks, spec.verb == .skip || spec.verb == .zero {
            return blocks.map { Intervention(hook: "\(side.rawValue).blocks.\($0)", kind: .skip) }
        }
        switch spec.verb {
        case .zero: return [.zero(hook, heads: heads, frames: frames, positions: positions)]
        case .skip: return []  // ConditionSpec only admits block targets for skip
        case .scale:
            return [.scale(hook, by: spec.factor ?? 1, heads: heads, frames: frames, positions: positions)]
        case .mean:
            return [
                try .mean(
                    hook, over: clips, model: model, tokens: tokens, heads: heads, frames: frames,
                    positions: positions)
            ]
        case .swap:
            guard let source = spec.source else {
                throw ConditionError(
                    .unsupported,
                    "\(spec): a swap without 'from SOURCE' draws a donor per clip, which only sweeps do")
            }
            if spec.target.hasPrefix("decoder.") {
                // Run beside the clip on the same tokens, generated or teacher-forced.
                if let (_, blocks) = spec.blocks {
                    guard heads == nil, positions == nil else {
                        throw ConditionError(
                            .invalidSelector, "\(spec): a block's swapped write has no heads or positions")
                    }
                    return blocks.map { Intervention(hook: "decoder.blocks.\($0)", kind: .fromAudio(donor(source))) }
                }
                return [
                    Intervention(hook: spec.target, kind: .fromAudio(donor(source)), heads: heads, positions: positions)
                ]
            }
            return [
                try .resample(
                    hook, from: donor(source), model: model, tokens: tokens, heads: heads, frames: frames,
                    positions: positions)
            ]
        }
    }
}
