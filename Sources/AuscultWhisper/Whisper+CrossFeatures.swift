// Cross-attention read straight from the audio features: openai-whisper model.py
// `MultiHeadAttention` over xa with k = xa W_kᵀ and v = xa W_vᵀ + b_v, multiplied out in the other
// order (q W_k per head before the scores, W_v after the weighted sum); see
// CAuscultKernels/cross_features_avx512.c for the kernel and the reason.
import AuscultTensor
import CAuscultKernels
import Dispatch

extension Whisper {
    /// Cross-attention of `q` `[s, n, d]` against the features of each sequence's clip:
    /// `z[s, n, d]` and, when asked, the pattern `[s, heads, n, F]`.
    ///
    /// A query row's arithmetic does not depend on the rows computed with it, so a row's result
    /// does not depend on the rows beside it.
    func crossAttentionFromFeatures(
        _ block: Block, layer: Int, q: Tensor, features: Tensor, cache: DecoderCache,
        wantPattern: Bool, pattern: inout Tensor, z: inout Tensor
    ) {
        let s = q.shape[0], n = q.shape[1], d = dims.n_text_state, heads = dims.n_text_head, dh = d / heads
        let f = features.shape[1], rows = s * n
        let kv = block.crossKV!  // weight [2d, d]: keys in rows 0..<d, values in d..<2d
        let w = crossFeatureWeights(block, layer: layer)
        // u[r, h] = q[r, h·dh ..< (h+1)·dh] · W_k[h·dh ..< (h+1)·dh, :]: the query in feature space.
        // Both are written whole before they are read (u by the products below, y by the kernel,
        // which zeroes it itself), so neither is zero-filled first. The products are the packed
        // row-invariant ones, so a row's result never depends on the rows beside it.
        var u = [Float](unsafeUninitializedCapacity: rows * heads * d) { _, count in count = rows * heads * d }
        var y = [Float](unsafeUninitializedCapacity: rows * heads * d) { _, count in count = rows * heads * d }
        q.storage.withUnsafeBufferPointer { qp in
            u.withUnsafeMutableBufferPointer { up in
                for h in 0..<heads {
                    w.keys[h].withUnsafeBufferPointer { kp in
                        auscult_gemm_packed_avx2(
                            qp.baseAddress! + h * dh, rows, d, kp.baseAddress!, d, dh, 0, (d + 15) / 16, nil,
                            up.baseAddress! + h * d, heads * d)
                    }
                }
            }
        }
        // y[r, h] = Σ_j p[r, h, j] x_j, one call per sequence: its positions share one pass over
        // its clip's features. Sequences are split across workers.
        let audioIndex = cache.audioIndex
        let workers = min(Threading.workers, s)
        features.storage.withUnsafeBufferPointer { xp in
            u.withUnsafeBufferPointer { up in
                y.withUnsafeMutableBufferPointer { yp in
                    pattern.storage.withUnsafeMutableBufferPointer { pp in
                        let ptr = RowPointers(
                            q: up.baseAddress!, k: xp.baseAddress!, v: xp.baseAddress!, out: yp.baseAddress!,
                            pattern: wantPattern ? pp.baseAddress! : nil)
                        DispatchQueue.concurrentPerformIfNeeded(workers) { w in
                            let scratch = UnsafeMutablePointer<Float>.allocate(
                                capacity: Attention.fromFeaturesScratch(rows: n, heads: heads, nf: f))
                            defer { scratch.deallocate() }
                            for i in stride(from: w, to: s, by: workers) {
                                Attention.fromFeatures(
                                    u: ptr.q + i * n * heads * d, rows: n, heads: heads,
                                    x: ptr.k + audioIndex[i] * f * d,
                                    ldx: d, nf: f, d: d, alpha: 1 / Float(dh).squareRoot(),
                                    y: ptr.out + i * n * heads * d,
                                    scratch: scratch, patternOut: ptr.pattern.map { $0 + i * heads * n * f },
                                    headStride: n * f, rowStride: f)
                            }
                        }
                    }
                }
            }
        }
        // z[r, h·dh ..< (h+1)·dh] = y[r, h] · W_v,hᵀ + b_v,h
        y.withUnsafeBufferPointer { yp in
            kv.bias.storage.withUnsafeBufferPointer { b in
                z.storage.withUnsafeMutableBufferPointer { zp in
                    for h in 0..<heads {
                        w.values[h].withUnsafeBufferPointer { vp in
                            auscult_gemm_packed_avx2(
                                yp.baseAddress! + h * d, rows, heads * d, vp.baseAddress!, dh, d, 0, (dh + 15) / 16,
                                b.baseAddress! + d + h * dh, zp.baseAddress! + h * dh, d)
                        }
                    }
                }
            }
        }
    }
}

/// One decoder layer's cross-attention key and value weights packed per head for the features
/// form: for head h, `keys[h]` is W_k,hᵀ `[d, dh]` and `values[h]` is W_v,h `[dh, d]`, both as
/// `auscult_pack_panels` lays out a weight (2·d² floats per layer, made on first use).
struct CrossFeatureWeights: Sendable {
    let keys: [[Float]], values: [[Float]]
}

extension Whisper {
    /// The packed per-head weights of decoder layer `layer` (`CrossFeatureWeights`), made once.
    func crossFeatureWeights(_ block: Block, layer: Int) -> CrossFeatureWeights {
        crossFeatureLock.lock(); defer { crossFeatureLock.unlock() }
        if let made = crossFeatureCache[layer] { return made }
        let d = dims.n_text_state, dh = d / dims.n_text_head
        let made = block.crossKV!.weight.storage.withUnsafeBufferPointer { wp in
            CrossFeatureWeights(
                keys: (0..<dims.n_text_head).map { h in
                    [Float](unsafeUninitializedCapacity: auscult_packed_floats(d, dh)) { buf, count in
                        auscult_pack_columns(wp.baseAddress! + h * dh * d, d, dh, d, buf.baseAddress!)
                        count = auscult_packed_floats(d, dh)
                    }
                },
                values: (0..<dims.n_text_head).map { h in
                    [Float](unsafeUninitializedCapacity: auscult_packed_floats(dh, d)) { buf, count in
                        auscult_pack_panels(wp.baseAddress! + (d + h * dh) * d, d, dh, d, buf.baseAddress!)
                        count = auscult_packed_floats(dh, d)
                    }
                })
        }
        crossFeatureCache[layer] = made
        return made
    }
}
