// Path patching for `auscult paths`: each decoder component's output replaced by its value when
// the decoder reads silence, once for every later component (the total effect, a batched run) and
// once only along its direct path to the logits (the residual stream's sum with that one term
// swapped, through the final LayerNorm and the unembedding). Definitions: docs/paths.md.
import AuscultTensor
import AuscultWhisper

extension PathAnalysis {
    /// Rows of one batched patching run besides the silence row they read: 6 patched sequences
    /// share one pass (base has 18 components; a batch of 19 long sequences holds 880 MB of logits).
    static let patchRows = 6

    /// Per patched component and scored position, the loss change (nats) when the component's
    /// output is replaced by its value on silence: `total` as a run in which every later block
    /// sees the replacement, `direct` with only the final read-out seeing it.
    ///
    /// `cleanStack` and `silenceStack` are the decompositions `[C, T, d]` labelled `labels`;
    /// `clean` the clean run's losses at `rows`, the positions scoring `targets`.
    func patchEffects(
        input: PathInput, tokens: [Int], targets: [Int], from: Int, clean: [Double], components: [String],
        labels: [String], cleanStack: Tensor, silenceStack: Tensor, rows: [Int]
    ) throws -> (total: [[Double]], direct: [[Double]]) {
        let model = loaded.model
        let handler = input.interventions.isEmpty ? nil : try Interventions(input.interventions, model: model)
        func features(_ audio: AudioInput) throws -> Tensor {
            let (mel, _) = try audio.window(for: model.dims)
            let f = try model.encode(mel.reshaped([1] + mel.shape), hooks: handler)
            return f.reshaped(Array(f.shape.dropFirst()))
        }
        // Sequence k < r reads the clip and takes component k's output from sequence r, which reads silence.
        let audio = Tensor.stack([try features(.samples(input.samples)), try features(LoadedModel.silence)])
        let kv = try model.crossAttentionKV(audio, hooks: handler)
        var total = [[Double]]()
        var start = 0
        while start < components.count {
            let chunk = Array(components[start..<min(components.count, start + Self.patchRows)])
            start += chunk.count
            let r = chunk.count
            var ops = input.interventions
            for (k, name) in chunk.enumerated() {
                ops.append(Intervention(hook: name, kind: .fromSequence(r), sequences: [k]))
            }
            let cache = try model.makeCache(audio: audio, audioIndex: [Int](repeating: 0, count: r) + [1], kv: kv)
            let logits = try model.decode(
                [[Int]](repeating: tokens, count: r + 1), cache: cache, logitRows: Array(0..<r),
                hooks: try Interventions(ops, model: model))
            let t = logits.shape[1], v = logits.shape[2]
            for k in 0..<r {
                let (l, _) = try Self.losses(
                    logits.slice(k..<(k + 1)).reshaped([t, v]), targets: targets, from: from)
                total.append(zip(l, clean).map { $0 - $1 })
            }
        }
        // The direct path: the stream at the scored rows with one term swapped, read out as the model does.
        let t = cleanStack.shape[1], dm = cleanStack.shape[2], c = cleanStack.shape[0]
        let cs = cleanStack.scalars, ss = silenceStack.scalars
        var sum = [Double](repeating: 0, count: rows.count * dm)
        for k in 0..<c {
            for (i, p) in rows.enumerated() {
                for j in 0..<dm { sum[i * dm + j] += Double(cs[(k * t + p) * dm + j]) }
            }
        }
        func readOut(swapping k: Int?) throws -> [Double] {
            var x = sum
            if let k {
                for (i, p) in rows.enumerated() {
                    for j in 0..<dm {
                        x[i * dm + j] += Double(ss[(k * t + p) * dm + j]) - Double(cs[(k * t + p) * dm + j])
                    }
                }
            }
            let logits = model.unembed(Tensor(shape: [rows.count, dm], storage: x.map { Float($0) }))
            return try Self.losses(logits, targets: targets, from: 0).losses
        }
        // Against the read-out of the unswapped sum, so the summation's rounding cancels.
        let base = try readOut(swapping: nil)
        var direct = [[Double]]()
        for name in components {
            guard let k = labels.firstIndex(of: name) else {
                throw LensError(.invalidArgument, "paths: \(name) is not a component of the decomposition")
            }
            direct.append(zip(try readOut(swapping: k), base).map { $0 - $1 })
        }
        return (total, direct)
    }

    /// For each token of `tokens`, whether the pair (previous token, token) occurred earlier in
    /// the sequence: what an induction head would copy. The first token never repeats.
    public static func repeats(_ tokens: [Int]) -> [Bool] {
        var seen = Set<[Int]>()
        var out = [Bool](repeating: false, count: tokens.count)
        for p in tokens.indices.dropFirst() {
            let pair = [tokens[p - 1], tokens[p]]
            out[p] = seen.contains(pair)
            seen.insert(pair)
        }
        return out
    }
}

/// Running sums of one `PathGroup`.
struct PathGroupSums {
    var source: String
    var repeated: Bool
    var tokens = 0
    var loss: [Double], hits: [Int], direct: [Double], patchTotal: [Double], patchDirect: [Double]

    init(source: String, repeated: Bool, conditions: Int, components: Int, patched: Int) {
        self.source = source; self.repeated = repeated
        loss = [Double](repeating: 0, count: conditions); hits = [Int](repeating: 0, count: conditions)
        direct = [Double](repeating: 0, count: components)
        patchTotal = [Double](repeating: 0, count: patched); patchDirect = patchTotal
    }

    /// Adds the tokens at `picked` (indices into the scored positions).
    mutating func add(
        _ picked: [Int], losses: [[Double]], correct: [[Bool]], direct values: [[Double]], total: [[Double]],
        patched: [[Double]]
    ) {
        tokens += picked.count
        for k in loss.indices {
            for p in picked { loss[k] += losses[k][p]; hits[k] += correct[k][p] ? 1 : 0 }
        }
        for c in direct.indices { for p in picked { direct[c] += values[c][p] } }
        for c in patchTotal.indices {
            for p in picked { patchTotal[c] += total[c][p]; patchDirect[c] += patched[c][p] }
        }
    }

    var group: PathGroup {
        let n = Double(max(tokens, 1))
        return PathGroup(
            source: source, repeated: repeated, tokens: tokens, loss: loss.map { $0 / n },
            accuracy: hits.map { Double($0) / n }, direct: direct.map { $0 / n }, patchTotal: patchTotal.map { $0 / n },
            patchDirect: patchDirect.map { $0 / n })
    }
}
