// Teacher-forced scoring: the log-probability a model gives each token of known sequences, the
// quantity behind per-token cross-entropy in ablation sweeps and the log-prob metric of patching.
import AuscultTensor
import Foundation

extension WhisperDecoder {
    /// Log-probabilities (natural log, unfiltered softmax over the vocabulary) of
    /// `sequences[i][from...]`, each read given the tokens before it, with sequence i attending
    /// to clip `rows[i]` of `audio` `[A, F, d]`.
    ///
    /// `groups` (consecutive row counts) keeps rows that must see each other (a row and its
    /// the row that feeds it tokens) in one chunk; a chunk then holds whole groups. Sequences with `wanted[i]` false
    /// only feed the others: theirs are left at 0 and their logits never computed.
    public func scoreTokens(
        audio: Tensor, rows: [Int], sequences: [[Int]], from: Int, chunk: Int = 16,
        groups: [Int]? = nil, wanted: [Bool]? = nil, kv: CrossAttentionKV? = nil,
        hooks: HookHandler? = nil
    ) throws -> [[Double]] {
        guard sequences.allSatisfy({ $0.count > from && from >= 1 }) else {
            throw DecodingError(.invalidSequences, "scoring needs sequences longer than the \(from) prompt tokens")
        }
        var out = sequences.map { [Double](repeating: 0, count: $0.count - from) }
        try teacherForced(
            audio: audio, rows: rows, sequences: sequences, chunk: chunk, groups: groups, wanted: wanted,
            kv: kv, hooks: hooks
        ) { i, p, row in
            let seq = sequences[i]
            guard p + 1 >= from, p + 1 < seq.count else { return }
            out[i][p + 1 - from] = Double(row[seq[p + 1]]) - row.logSumExp()
        }
        return out
    }

    /// Runs the decoder teacher-forced on `sequences` (sequence i attends to clip `rows[i]` of
    /// `audio`) and hands `read` the logits `[V]` at every real position p of every sequence i
    /// (they predict token p + 1), for the sequences `wanted` (default: all).
    ///
    /// Rows go through in chunks of `chunk` so the `[S, n, V]` logits stay small (V = 51 864:
    /// 40 positions × 16 rows is 130 MB). Without `groups`, chunks take sequences in order of
    /// length; each chunk is padded at the end with end-of-text to its own longest sequence
    /// only. The decoder is causal, so padding never changes an earlier position; padding every
    /// chunk to the longest of all spent over half of a 160-row batch's scoring on padding.
    public func teacherForced(
        audio: Tensor, rows: [Int], sequences: [[Int]], chunk: Int = 16, groups: [Int]? = nil,
        wanted: [Bool]? = nil, kv: CrossAttentionKV? = nil, hooks: HookHandler? = nil,
        read: (_ sequence: Int, _ position: Int, _ logits: Tensor.Row) -> Void
    ) throws {
        guard rows.count == sequences.count, sequences.allSatisfy({ !$0.isEmpty }),
            wanted.map({ $0.count == sequences.count }) ?? true
        else {
            throw DecodingError(
                .invalidSequences, "teacher forcing needs one row (and wanted flag) per non-empty sequence")
        }
        let v = model.dims.n_vocab
        let longest = sequences.map(\.count).max() ?? 0
        let cache = try model.makeCache(audio: audio, audioIndex: rows, kv: kv, capacity: longest, hooks: hooks)
        let order =
            groups == nil
            ? sequences.indices.sorted { (sequences[$0].count, $0) < (sequences[$1].count, $1) }
            : Array(sequences.indices)
        var bounds = [Range<Int>]()
        var start = 0
        for g in groups ?? [Int](repeating: 1, count: sequences.count) {
            if let last = bounds.last, last.count + g <= chunk, last.upperBound == start {
                bounds[bounds.count - 1] = last.lowerBound..<(start + g)
            } else {
                bounds.append(start..<(start + g))
            }
            start += g
        }
        guard start == sequences.count else {
            throw DecodingError(.invalidSequences, "scoring groups cover \(start) rows, not \(sequences.count)")
        }
        // One cache for all rows (cross keys/values computed once); each chunk decodes its rows
        // against a slice of it.
        for range in bounds {
            let idx = range.map { order[$0] }
            let want = idx.indices.filter { wanted?[idx[$0]] ?? true }
            guard !want.isEmpty else { continue }
            let n = idx.map { sequences[$0].count }.max()!
            let sub = cache.subset(idx)
            let padded = idx.map { sequences[$0] + [Int](repeating: tokenizer.eot, count: n - sequences[$0].count) }
            let logits = try model.decode(
                padded, cache: sub, logitRows: want.count < idx.count ? want : nil, hooks: hooks)
            var wantedRow = [Bool](repeating: false, count: idx.count)
            for k in want { wantedRow[k] = true }
            logits.reshaped([idx.count * n, v]).forEachRow { r, row in
                let (k, p) = r.quotientAndRemainder(dividingBy: n)
                if wantedRow[k], p < sequences[idx[k]].count { read(idx[k], p, row) }
            }
        }
    }
}

extension DecoderCache {
    /// A fresh, empty cache for sequences `idx` of this one, sharing its cross-attention keys and
    /// values (the sequence ids of hook contexts stay those of this cache).
    func subset(_ idx: [Int]) -> DecoderCache {
        let c = DecoderCache(
            cross: cross, audioIndex: idx.map { audioIndex[$0] }, capacity: capacity, d: d, layers: layers.count,
            backend: backend)
        c.relabel(idx.map { sequenceIndex[$0] })
        return c
    }
}
