// Running a sweep's encoder and decoder conditions in batches, reusing the clean run.
import AuscultTensor
import AuscultWhisper
import Foundation

extension Sweep {
    /// Checks a component's heads with the intervention engine's rule (attention hook points only,
    /// each below the block's head count).
    func checkHeads(_ comp: Component) throws {
        guard let heads = comp.heads, let hook = comp.hook else { return }
        _ = try Interventions([Intervention(hook: hook, kind: .zero, heads: heads)], model: model)
    }

    /// The hook points a component ablates: its hook, or every point of its pattern when together.
    func points(_ comp: Component) throws -> [String] {
        guard let hook = comp.hook else { return [] }
        return comp.together ? try HookRegistry(dims: model.dims).resolve(hook) : [hook]
    }

    func mean(_ tensors: [Tensor]) -> Tensor {
        var m = tensors[0]
        for t in tensors.dropFirst() { m += t }
        return m * (1 / Float(tensors.count))
    }

    // MARK: encoder

    /// Encoder conditions: rows (condition × clip) grouped by the block they restart from.
    func runEncoderConditions(
        _ conds: [Condition], done: Set<String>, progress: ProgressReporter?,
        emit: ([SweepEntry]) throws -> Void
    ) throws {
        struct Row { var cond: Condition; var clip: Int; var start: Int; var donor: Int? }
        var rows = [Row]()
        for c in conds {
            let comp = c.component!
            for clip in items.indices where !done.contains(SweepEntry.key(items[clip].id, c.description, c.draw)) {
                let start = comp.hook == nil ? comp.firstBlock + 1 : comp.firstBlock
                rows.append(
                    Row(cond: c, clip: clip, start: start, donor: c.mode == .resample ? donor(clip, c.draw) : nil))
            }
            let skipped = items.count - rows.filter { $0.cond == c }.count
            if skipped > 0 { progress?.advance(by: skipped) }
        }
        var blockMeans = [Int: Tensor]()
        var hookMeans = [String: Tensor]()
        rows.sort { $0.start < $1.start }
        // Waves of `decodeRows` rows: encoded in batches of `encoderBatch` rows sharing a start
        // block, then generated together so sequences that run to the length limit share each
        // step's pass over the vocabulary matrix instead of paying it alone.
        var waveStart = 0
        while waveStart < rows.count {
            let wave = Array(rows[waveStart..<min(rows.count, waveStart + options.decodeRows)])
            waveStart += wave.count
            var features = [Tensor]()
            var at = 0
            while at < wave.count {
                var end = at
                while end < wave.count && end - at < options.encoderBatch && wave[end].start == wave[at].start {
                    end += 1
                }
                let batch = Array(wave[at..<end])
                at = end
                var inputs = [Tensor]()
                var ops = [Intervention]()
                for (r, row) in batch.enumerated() {
                    let comp = row.cond.component!
                    let l = comp.firstBlock
                    let x = residuals[row.clip][l]
                    if comp.hook == nil {
                        // A block's write replaced without running the block: x_{L+1} = x_L + write.
                        var y = x
                        switch row.cond.mode {
                        case .zero: break
                        case .mean:
                            if blockMeans[l] == nil {
                                blockMeans[l] = mean(items.indices.map { residuals[$0][l + 1] - residuals[$0][l] })
                            }
                            y += blockMeans[l]!
                        case .resample:
                            y += residuals[row.donor!][l + 1] - residuals[row.donor!][l]
                        }
                        inputs.append(y)
                        for b in comp.blocks.dropFirst() {
                            ops.append(Intervention(hook: "encoder.blocks.\(b)", kind: .skip, sequences: [r]))
                        }
                    } else {
                        inputs.append(x)
                        try checkHeads(comp)
                        for name in try points(comp) {
                            let kind: InterventionKind
                            switch row.cond.mode {
                            case .zero: kind = .zero
                            case .mean:
                                if hookMeans[name] == nil { hookMeans[name] = mean(encoderHooks[name]!) }
                                kind = .replace(flat(hookMeans[name]!))
                            case .resample: kind = .replace(flat(encoderHooks[name]![row.donor!]))
                            }
                            ops.append(Intervention(hook: name, kind: kind, heads: comp.heads, sequences: [r]))
                        }
                    }
                }
                let handler = ops.isEmpty ? nil : try Interventions(ops, model: model)
                let out = try model.encodeBlocks(Tensor.stack(inputs), from: batch[0].start, hooks: handler)
                features += batch.indices.map { out.row($0) }
            }
            trace("encode \(wave.count) rows")
            let audio = Tensor.stack(features)
            // One sequence per clip: attention reads the features, not keys and values.
            let kv = try model.crossAttentionKV(audio, form: .features)
            let results = try decodeChunks(audio: audio, rows: Array(wave.indices), tokensFrom: nil, kv: kv, hooks: nil)
            trace("generate")
            let lp = try loaded.decoder.scoreTokens(
                audio: audio, rows: Array(wave.indices),
                sequences: wave.map { targetSequence($0.clip) }, from: prompt.count, chunk: 8, kv: kv)
            trace("score")
            try emit(
                wave.indices.map { i in
                    entry(
                        clip: wave[i].clip, condition: wave[i].cond, donor: wave[i].donor, tokens: results[i].tokens,
                        text: results[i].text, hitLimit: results[i].tokens.count >= sampleLen, logprob: lp[i])
                })
            progress?.advance(by: wave.count)
        }
    }

    /// `[F, h, dh]` → `[F, h·dh]` (a table row per position).
    func flat(_ t: Tensor) -> Tensor { t.reshaped([t.shape[0], t.count / t.shape[0]]) }

    // MARK: decoder

    /// Decoder conditions: per chunk of clips one batched generation of every (clip, condition)
    /// sequence, with a shadow sequence per resample condition that reads the donor's audio and
    /// feeds the same tokens.
    func runDecoderConditions(
        _ conds: [Condition], done: Set<String>, progress: ProgressReporter?,
        emit: ([SweepEntry]) throws -> Void
    ) throws {
        guard !conds.isEmpty else { return }
        var clipStart = 0
        while clipStart < items.count {
            let clips = Array(clipStart..<min(items.count, clipStart + options.decoderClips))
            clipStart += clips.count
            var audioRows = [Int: Int]()  // clip → row of the audio tensor
            var audioClips = [Int]()
            func audioRow(_ c: Int) -> Int {
                if cleanKV != nil { return c }
                if let r = audioRows[c] { return r }
                audioRows[c] = audioClips.count
                audioClips.append(c)
                return audioClips.count - 1
            }
            struct Seq { var cond: Condition; var clip: Int; var donor: Int? }
            var mains = [(seq: Int, Seq)]()
            var rows = [Int](), leaders = [Int](), targets = [[Int]](), groups = [Int]()
            var ops = [Intervention]()
            var skipped = 0
            for clip in clips {
                var groupSize = 0
                for c in conds {
                    if done.contains(SweepEntry.key(items[clip].id, c.description, c.draw)) { skipped += 1; continue }
                    let comp = c.component!
                    let id = rows.count
                    rows.append(audioRow(clip)); leaders.append(id); targets.append(targetSequence(clip))
                    groupSize += 1
                    var shadow: Int?
                    let d = c.mode == .resample ? donor(clip, c.draw) : nil
                    if let d {
                        shadow = rows.count
                        rows.append(audioRow(d)); leaders.append(id); targets.append(targetSequence(clip))
                        groupSize += 1
                    }
                    mains.append((id, Seq(cond: c, clip: clip, donor: d)))
                    let l = comp.firstBlock
                    if comp.hook != nil {
                        try checkHeads(comp)
                        for name in try points(comp) {
                            let kind: InterventionKind
                            switch c.mode {
                            case .zero: kind = .zero
                            case .mean: kind = .replace(decoderMeans[name]!)
                            case .resample: kind = .fromSequence(shadow!)
                            }
                            ops.append(Intervention(hook: name, kind: kind, heads: comp.heads, sequences: [id]))
                        }
                    } else {
                        let block = "decoder.blocks.\(l)"
                        switch c.mode {
                        case .zero:
                            for b in comp.blocks {
                                ops.append(Intervention(hook: "decoder.blocks.\(b)", kind: .skip, sequences: [id]))
                            }
                        case .mean:
                            let pre = decoderMeans[block + ".hook_resid_pre"]!
                            let write = decoderMeans[block + ".hook_resid_post"]! - pre
                            ops.append(Intervention(hook: block, kind: .blockWrite(.table(write)), sequences: [id]))
                        case .resample:
                            ops.append(
                                Intervention(hook: block, kind: .blockWrite(.fromSequence(shadow!)), sequences: [id]))
                        }
                    }
                }
                if groupSize > 0 { groups.append(groupSize) }
            }
            if skipped > 0 { progress?.advance(by: skipped) }
            guard !mains.isEmpty else { continue }
            let audio = cleanAudio ?? Tensor.stack(audioClips.map { features[$0] })
            let kv = try cleanKV ?? model.crossAttentionKV(audio)
            trace("prepare")
            let results = try decodeChunks(
                audio: audio, rows: rows, tokensFrom: leaders, kv: kv, hooks: try Interventions(ops, model: model))
            trace("generate \(rows.count) rows")
            let lp = try loaded.decoder.scoreTokens(
                audio: audio, rows: rows, sequences: targets, from: prompt.count, chunk: 12,
                groups: groups, wanted: leaders.indices.map { leaders[$0] == $0 }, kv: kv,
                hooks: try Interventions(ops, model: model))
            trace("score")
            try emit(
                mains.map { (id, s) in
                    entry(
                        clip: s.clip, condition: s.cond, donor: s.donor, tokens: results[id].tokens,
                        text: results[id].text,
                        hitLimit: results[id].tokens.count >= sampleLen, logprob: lp[id])
                })
            progress?.advance(by: mains.count)
        }
    }
}
