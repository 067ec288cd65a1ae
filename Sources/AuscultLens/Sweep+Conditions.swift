// Running a sweep's encoder and decoder conditions in batches, reusing the clean run.
import AuscultTensor
import AuscultWhisper
import Foundation

extension Sweep {
    /// Columns of a hook's per-row width `width` that belong to `heads` (nil: all).
    func columns(_ comp: Component, width: Int) throws -> [Int]? {
        guard let heads = comp.heads, let hook = comp.hook else { return nil }
        let nh = comp.side == .encoder ? model.dims.n_audio_head : model.dims.n_text_head
        if hook.contains("mlp.") {
            throw ConditionError(
                .invalidSelector, "\(hook) has no heads: heads select parts of attention hook points, not of MLP ones")
        }
        guard heads.allSatisfy({ $0 >= 0 && $0 < nh }) else {
            throw ConditionError(.invalidSelector, "\(comp.name): heads outside 0..<\(nh)")
        }
        let w = width / nh
        return heads.flatMap { h in (h * w)..<((h + 1) * w) }
    }

    func hookWidth(_ name: String) -> Int {
        let point = HookRegistry(dims: model.dims).point(name)!
        return point.shape.dropFirst().compactMap { Int($0) }.reduce(1, *)
    }

    func mean(_ tensors: [Tensor]) -> Tensor {
        var m = tensors[0]
        for t in tensors.dropFirst() { m += t }
        let inv = 1 / Float(tensors.count)
        for i in m.storage.indices { m.storage[i] *= inv }
        return m
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
                var ops = [Int: RowOp]()
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
                        let rest = Set(comp.blocks.dropFirst())
                        if !rest.isEmpty { ops[r] = .skip(side: .encoder, blocks: rest) }
                    } else {
                        inputs.append(x)
                        let name = comp.hook!
                        let cols = try columns(comp, width: hookWidth(name))
                        switch row.cond.mode {
                        case .zero: ops[r] = .hook(name, columns: cols, .zero)
                        case .mean:
                            if hookMeans[name] == nil { hookMeans[name] = mean(encoderHooks[name]!) }
                            ops[r] = .hook(name, columns: cols, .table(flat(hookMeans[name]!)))
                        case .resample:
                            ops[r] = .hook(name, columns: cols, .table(flat(encoderHooks[name]![row.donor!])))
                        }
                    }
                }
                let handler = ops.isEmpty ? nil : RowInterventions(ops)
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
            var ops = [Int: RowOp]()
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
                    if let name = comp.hook {
                        let cols = try columns(comp, width: hookWidth(name))
                        switch c.mode {
                        case .zero: ops[id] = .hook(name, columns: cols, .zero)
                        case .mean: ops[id] = .hook(name, columns: cols, .table(decoderMeans[name]!))
                        case .resample: ops[id] = .hook(name, columns: cols, .row(shadow!))
                        }
                    } else {
                        switch c.mode {
                        case .zero: ops[id] = .skip(side: .decoder, blocks: Set(comp.blocks))
                        case .mean:
                            let pre = decoderMeans["decoder.blocks.\(l).hook_resid_pre"]!
                            ops[id] = .blockWrite(
                                side: .decoder, block: l,
                                .table(decoderMeans["decoder.blocks.\(l).hook_resid_post"]! - pre))
                        case .resample: ops[id] = .blockWrite(side: .decoder, block: l, .row(shadow!))
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
                audio: audio, rows: rows, tokensFrom: leaders, kv: kv, hooks: RowInterventions(ops))
            trace("generate \(rows.count) rows")
            let lp = try loaded.decoder.scoreTokens(
                audio: audio, rows: rows, sequences: targets, from: prompt.count, chunk: 12,
                groups: groups, wanted: leaders.indices.map { leaders[$0] == $0 }, kv: kv,
                hooks: RowInterventions(ops))
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
