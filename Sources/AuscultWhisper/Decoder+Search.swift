// The token-by-token loops: GreedyDecoder and BeamSearchDecoder of openai-whisper `decoding.py`.
import AuscultTensor
import Dispatch
import Foundation

/// The decoding loops of one `decode` call: greedy/sampled and beam search.
struct TokenSearch {
    let decoder: WhisperDecoder
    let options: DecodingOptions
    let filters: LogitFilters
    let sampleBegin: Int
    let sotIndex: Int

    struct Outcome { var best: [([Int], Double)]; var noSpeech: [Double] }

    var model: Whisper { decoder.model }
    var eot: Int { decoder.tokenizer.eot }
    var sampleLen: Int { options.sampleLen ?? model.dims.n_text_ctx / 2 }

    /// Runs the prompt through the decoder: returns last-position logits `[S, V]` and
    /// the no-speech probability read at the `<|sot|>` position of each sequence.
    func prompt(
        _ tokens: [[Int]], cache: DecoderCache, logitRows: [Int]? = nil, hooks: HookHandler?
    ) throws -> (Tensor, [Double]) {
        let v = model.dims.n_vocab, n = tokens[0].count, s = tokens.count
        let logits = try model.decode(tokens, cache: cache, logitRows: logitRows, hooks: hooks)
        let rows = logits.reshaped([s * n, v])
        var noSpeech = [Double](repeating: 0, count: s)
        rows.forEachRow { r, row in
            guard r % n == sotIndex else { return }
            noSpeech[r / n] = exp(Double(row[decoder.tokenizer.noSpeech]) - row.logSumExp())
        }
        let last = rows.gather(rows: (0..<s).map { $0 * n + n - 1 })
        return (last, noSpeech)
    }

    /// Greedy (temperature 0) or sampled decoding; finished sequences leave the batch, which
    /// does not change the others' results.
    func greedy(
        audio: Tensor, prompts: [[Int]], rows: [Int]? = nil, tokensFrom: [Int]? = nil, kv: CrossAttentionKV? = nil,
        hooks: HookHandler?
    ) throws -> Outcome {
        let a = prompts.count, v = model.dims.n_vocab, nCtx = model.dims.n_text_ctx
        let cache = try model.makeCache(
            audio: audio, audioIndex: rows ?? Array(0..<a), kv: kv,
            capacity: (prompts.map(\.count).max() ?? 0) + sampleLen, hooks: hooks)
        // Sequences that feed another's token never have their logits read.
        func picking(_ rows: [Int]) -> [Int]? {
            guard let tokensFrom else { return nil }
            return rows.indices.filter { tokensFrom[rows[$0]] == rows[$0] }
        }
        var (logits, noSpeech) = try prompt(prompts, cache: cache, logitRows: picking(Array(0..<a)), hooks: hooks)
        var tokens = prompts
        var sums = [Double](repeating: 0, count: a)
        var active = Array(0..<a)  // clip of each row in the batch
        var rng = SplitMix64(seed: options.seed)
        for step in 0..<sampleLen {
            var next = [Int](repeating: 0, count: active.count)
            var picked = [Int: Int]()
            if options.temperature > 0 {
                logits.updateRows(Array(active.indices)) { r, row in
                    let clip = active[r]
                    filters.apply(row, tokens: tokens[clip])
                    let lse = row.read.logSumExp()
                    let pick = row.read.sample(temperature: options.temperature, uniform: rng.nextDouble())
                    sums[clip] += Double(row[pick]) - lse
                    picked[clip] = pick
                    next[r] = pick
                }
            } else {
                // Rows are independent: filter, normalise and take the argmax across workers.
                let n = active.count
                let workers = n >= 8 ? min(Threading.workers, n) : 1
                let tokenLists = active.map { tokens[$0] }
                let follows = active.map { seq in tokensFrom.map { $0[seq] != seq } ?? false }
                let filters = self.filters
                let picks = logits.mapRowsConcurrently(workers: workers, include: { !follows[$0] }) { r, row in
                    filters.apply(row, tokens: tokenLists[r])
                    let (pick, lse) = row.read.argmaxLogSumExp()
                    return (pick, Double(row[pick]) - lse)
                }
                for (r, clip) in active.enumerated() {
                    if let (pick, delta) = picks[r] {
                        next[r] = pick
                        sums[clip] += delta
                    }
                    picked[clip] = next[r]
                }
            }
            if let tokensFrom {
                // Sequences feed the token their source picked (sources are in the same batch, so active too).
                for (r, seq) in active.enumerated() where tokensFrom[seq] != seq { next[r] = picked[tokensFrom[seq]]! }
            }
            for (r, seq) in active.enumerated() { tokens[seq].append(next[r]) }
            let keep = active.indices.filter { next[$0] != eot }
            if keep.isEmpty || tokens[active[0]].count > nCtx || step == sampleLen - 1 { break }
            if keep.count != active.count { cache.reorder(keep) }
            active = keep.map { active[$0] }
            logits = try model.decode(
                keep.map { [next[$0]] }, cache: cache, step: step + 1, logitRows: picking(active), hooks: hooks
            )
            .reshaped([keep.count, v])
        }
        let best = tokens.enumerated().map { (i, t) -> ([Int], Double) in
            let sampled = Array(t[sampleBegin...])
            return (Array(sampled.prefix(while: { $0 != eot })), sums[i])
        }
        return Outcome(best: best, noSpeech: noSpeech)
    }

    /// Beam search with patience, as BeamSearchDecoder + MaximumLikelihoodRanker.
    func beam(audio: Tensor, prompts: [[Int]], width: Int, hooks: HookHandler?) throws -> Outcome {
        let a = prompts.count, v = model.dims.n_vocab, nCtx = model.dims.n_text_ctx
        let maxCandidates = Int((Double(width) * (options.patience ?? 1)).rounded())
        let rows = (0..<a).flatMap { [Int](repeating: $0, count: width) }
        let cache = try model.makeCache(audio: audio, audioIndex: Array(0..<a), hooks: hooks)
        cache.reorder(rows)
        var (logits, noSpeechRows) = try prompt(rows.map { prompts[$0] }, cache: cache, hooks: hooks)
        let noSpeech = (0..<a).map { noSpeechRows[$0 * width] }
        noSpeechRows = []
        var seqs = rows.map { prompts[$0] }  // live beams, `width` per unfinished clip
        var sums = [Double](repeating: 0, count: rows.count)
        var clips = Array(0..<a)  // unfinished clips, in batch order
        var finished = [[([Int], Double)]](repeating: [], count: a)
        for step in 0..<sampleLen {
            var nextSeqs = [[Int]](), nextSums = [Double](), sources = [Int]()
            var newlyFinished = [[([Int], Double)]](repeating: [], count: clips.count)
            for ci in clips.indices {
                var cands = [([Int], Double, Int)]()  // sequence, score, source row
                var seen = [[Int]: Int]()
                logits.updateRows((0..<width).map { ci * width + $0 }) { idx, row in
                    filters.apply(row, tokens: seqs[idx])
                    let lse = row.read.logSumExp()
                    for t in row.read.topK(width + 1) {
                        let seq = seqs[idx] + [t]
                        let score = sums[idx] + Double(row[t]) - lse
                        if let at = seen[seq] {
                            cands[at] = (seq, score, idx)
                        } else {
                            seen[seq] = cands.count; cands.append((seq, score, idx))
                        }
                    }
                }
                // Stable sort by descending score (Python's sorted(..., reverse=True) keeps ties in order).
                let order = cands.indices.sorted {
                    cands[$0].1 > cands[$1].1 || (cands[$0].1 == cands[$1].1 && $0 < $1)
                }
                var saved = 0
                for k in order {
                    let (seq, score, src) = cands[k]
                    if seq.last == eot {
                        newlyFinished[ci].append((seq, score))
                    } else {
                        nextSeqs.append(seq); nextSums.append(score); sources.append(src)
                        saved += 1
                        if saved == width { break }
                    }
                }
            }
            for (ci, clip) in clips.enumerated() {
                for f in newlyFinished[ci] {  // already in descending score order
                    if finished[clip].count >= maxCandidates { break }
                    if let at = finished[clip].firstIndex(where: { $0.0 == f.0 }) {
                        finished[clip][at] = f
                    } else {
                        finished[clip].append(f)
                    }
                }
            }
            // Clips with enough finished candidates leave the batch; their results are final.
            let keepClips = clips.indices.filter { finished[clips[$0]].count < maxCandidates }
            if keepClips.isEmpty || nextSeqs[0].count > nCtx || step == sampleLen - 1 {
                seqs = nextSeqs; sums = nextSums  // rows stay `width` per clip of `clips`, for finalize
                break
            }
            let keepRows = keepClips.flatMap { c in (0..<width).map { c * width + $0 } }
            seqs = keepRows.map { nextSeqs[$0] }
            sums = keepRows.map { nextSums[$0] }
            cache.reorder(keepRows.map { sources[$0] })
            clips = keepClips.map { clips[$0] }
            logits = try model.decode(seqs.map { [$0.last!] }, cache: cache, step: step + 1, hooks: hooks)
                .reshaped([seqs.count, v])
        }
        // finalize: top up clips with too few finished sequences from their live beams.
        for (ci, clip) in clips.enumerated() where finished[clip].count < width {
            let live = (0..<width).map { ci * width + $0 }.filter { $0 < seqs.count }
            for r in live.sorted(by: { sums[$0] > sums[$1] }) {
                let seq = seqs[r] + [eot]
                if let at = finished[clip].firstIndex(where: { $0.0 == seq }) {
                    finished[clip][at] = (seq, sums[r])
                } else {
                    finished[clip].append((seq, sums[r]))
                }
                if finished[clip].count >= width { break }
            }
        }
        let best = (0..<a).map { clip -> ([Int], Double) in
            let cands = finished[clip].map { (Array(Array($0.0[sampleBegin...]).prefix(while: { $0 != eot })), $0.1) }
            var bestIdx = 0, bestScore = -Double.infinity
            for (k, c) in cands.enumerated() {
                let len = Double(c.0.count)
                let penalty = options.lengthPenalty.map { pow((5 + len) / 6, $0) } ?? len
                let s = c.1 / penalty
                if s > bestScore { bestScore = s; bestIdx = k }
            }
            return cands.isEmpty ? ([], 0) : cands[bestIdx]
        }
        return Outcome(best: best, noSpeech: noSpeech)
    }
}

/// A small seeded generator (SplitMix64) so sampled runs are reproducible.
public struct SplitMix64: RandomNumberGenerator, Sendable {
    var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    mutating func nextDouble() -> Double { Double(next() >> 11) / Double(1 << 53) }
}
