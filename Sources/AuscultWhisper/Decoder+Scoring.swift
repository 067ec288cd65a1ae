// Teacher-forced scoring: the log-probability a model gives each token of known sequences, the
// quantity behind per-token cross-entropy in ablation sweeps and the log-prob metric of patching.
import AuscultTensor
import Foundation

extension WhisperDecoder {
    /// Log-probabilities (natural log, unfiltered softmax over the vocabulary) of
    /// `sequences[i][from...]`, each read given the tokens before it, with sequence i attending
    /// to clip `rows[i]` of `audio` `[A, F, d]`.
    ///
    /// Sequences of unequal length are padded at the end with end-of-text; the decoder is
    /// causal, so padding never changes an earlier position. Rows go through in chunks of
    /// `chunk` so the `[S, n, V]` logits stay small (V = 51 864: 40 positions × 16 rows is 130 MB).
    /// `groups` (consecutive row counts) keeps rows that must see each other (a row and its
    /// shadow) in one chunk; a chunk then holds whole groups.
    public func scoreTokens(audio: Tensor, rows: [Int], sequences: [[Int]], from: Int, chunk: Int = 16,
                            groups: [Int]? = nil, hooks: HookHandler? = nil) throws -> [[Double]] {
        guard rows.count == sequences.count, sequences.allSatisfy({ $0.count > from && from >= 1 }) else {
            throw WhisperError(.invalidArgument, "scoring needs one row per sequence and sequences longer than the \(from) prompt tokens")
        }
        let v = model.dims.n_vocab
        let n = sequences.map(\.count).max() ?? 0
        var out = [[Double]](repeating: [], count: sequences.count)
        let cache = try model.makeCache(audio: audio, audioIndex: rows, hooks: hooks)
        // One cache for all rows (cross keys/values computed once); each chunk decodes its rows
        // against a slice of it.
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
            throw WhisperError(.invalidArgument, "scoring groups cover \(start) rows, not \(sequences.count)")
        }
        for range in bounds {
            let idx = Array(range)
            let sub = cache.subset(idx)
            let padded = idx.map { sequences[$0] + [Int](repeating: tokenizer.eot, count: n - sequences[$0].count) }
            let logits = try model.decode(padded, cache: sub, hooks: hooks)
            logits.storage.withUnsafeBufferPointer { buf in
                for (k, i) in idx.enumerated() {
                    let seq = sequences[i]
                    var lp = [Double]()
                    for p in from..<seq.count {
                        let row = buf.baseAddress! + (k * n + p - 1) * v
                        lp.append(Double(row[seq[p]]) - LogSoftmax.logSumExp(row, 0..<v))
                    }
                    out[i] = lp
                }
            }
        }
        return out
    }
}

extension DecoderCache {
    /// A fresh, empty cache for sequences `idx` of this one, sharing its cross-attention keys and
    /// values (the sequence ids of hook contexts stay those of this cache).
    func subset(_ idx: [Int]) -> DecoderCache {
        let c = DecoderCache(crossKV: crossKV, audioIndex: idx.map { audioIndex[$0] }, capacity: capacity, d: d, layers: selfK.count)
        c.relabel(idx.map { sequenceIndex[$0] })
        return c
    }
}
