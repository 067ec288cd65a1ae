// Cross-attention read straight from the audio features: openai-whisper model.py
// `MultiHeadAttention` over xa with k = xa W_kᵀ and v = xa W_vᵀ + b_v, multiplied out in the other
// order (q W_k per head before the scores, W_v after the weighted sum); see
// CAuscultKernels/cross_features_avx512.c for the kernel and the reason.
import AuscultTensor
import Dispatch

extension Whisper {
    /// Cross-attention of `q` `[s, n, d]` against the features of each sequence's clip:
    /// `z[s, n, d]` and, when asked, the pattern `[s, heads, n, F]`.
    ///
    /// A query row's arithmetic does not depend on the rows computed with it, so a row's result
    /// does not depend on the rows beside it.
    func crossAttentionFromFeatures(_ block: Block, q: Tensor, features: Tensor, cache: DecoderCache,
                                    wantPattern: Bool, pattern: inout Tensor, z: inout Tensor) {
        let s = q.shape[0], n = q.shape[1], d = dims.n_text_state, heads = dims.n_text_head, dh = d / heads
        let f = features.shape[1], rows = s * n
        let kv = block.crossKV!   // weight [2d, d]: keys in rows 0..<d, values in d..<2d
        // u[r, h] = q[r, h·dh ..< (h+1)·dh] · W_k[h·dh ..< (h+1)·dh, :]: the query in feature space.
        // Both are written whole before they are read (u by the products below, y by the kernel,
        // which zeroes it itself), so neither is zero-filled first.
        var u = [Float](unsafeUninitializedCapacity: rows * heads * d) { _, count in count = rows * heads * d }
        var y = [Float](unsafeUninitializedCapacity: rows * heads * d) { _, count in count = rows * heads * d }
        q.storage.withUnsafeBufferPointer { qp in kv.weight.storage.withUnsafeBufferPointer { wp in
            u.withUnsafeMutableBufferPointer { up in
                for h in 0..<heads {
                    BLAS.gemmNN(m: rows, n: d, k: dh, a: qp.baseAddress! + h * dh, lda: d,
                                b: wp.baseAddress! + h * dh * d, ldb: d, c: up.baseAddress! + h * d, ldc: heads * d)
                }
            }
        } }
        // y[r, h] = Σ_j p[r, h, j] x_j, one call per sequence: its positions share one pass over
        // its clip's features. Sequences are split across workers.
        let audioIndex = cache.audioIndex
        let workers = min(Threading.workers, s)
        features.storage.withUnsafeBufferPointer { xp in u.withUnsafeBufferPointer { up in y.withUnsafeMutableBufferPointer { yp in
            pattern.storage.withUnsafeMutableBufferPointer { pp in
                let ptr = RowPointers(q: up.baseAddress!, k: xp.baseAddress!, v: xp.baseAddress!, out: yp.baseAddress!,
                                      pattern: wantPattern ? pp.baseAddress! : nil)
                DispatchQueue.concurrentPerformIfNeeded(workers) { w in
                    let scratch = UnsafeMutablePointer<Float>.allocate(capacity: Attention.fromFeaturesScratch(rows: n, heads: heads, nf: f))
                    defer { scratch.deallocate() }
                    for i in stride(from: w, to: s, by: workers) {
                        Attention.fromFeatures(u: ptr.q + i * n * heads * d, rows: n, heads: heads, x: ptr.k + audioIndex[i] * f * d,
                                               ldx: d, nf: f, d: d, alpha: 1 / Float(dh).squareRoot(), y: ptr.out + i * n * heads * d,
                                               scratch: scratch, patternOut: ptr.pattern.map { $0 + i * heads * n * f },
                                               headStride: n * f, rowStride: f)
                    }
                }
            }
        } } }
        // z[r, h·dh ..< (h+1)·dh] = y[r, h] · W_v,hᵀ + b_v,h
        y.withUnsafeBufferPointer { yp in kv.weight.storage.withUnsafeBufferPointer { wp in
            z.storage.withUnsafeMutableBufferPointer { zp in
                for h in 0..<heads {
                    BLAS.gemmNT(m: rows, n: dh, k: d, a: yp.baseAddress! + h * d, lda: heads * d,
                                b: wp.baseAddress! + (d + h * dh) * d, ldb: d, c: zp.baseAddress! + h * dh, ldc: d)
                }
                kv.bias.storage.withUnsafeBufferPointer { b in
                    for r in 0..<rows { for c in 0..<d { zp[r * d + c] += b[d + c] } }
                }
            }
        } }
    }
}
