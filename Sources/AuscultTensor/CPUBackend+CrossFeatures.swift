// Cross-attention read straight from the audio features: openai-whisper model.py
// `MultiHeadAttention` over xa with k = xa W_kᵀ and v = xa W_vᵀ + b_v, multiplied out in the other
// order (q W_k per head before the scores, W_v after the weighted sum); see
// CAuscultKernels/cross_features_avx512.c for the kernel and the reason.
import CAuscultKernels
import Dispatch

extension CPUBackend {
    /// Where the packed kernels run: no key/value projection (3.5 GFLOP per tiny.en clip) and no
    /// memory for them; each step reads F·d floats per layer instead of 2·F·d.
    public func readsFeatures(width d: Int, heads: Int) -> Bool {
        packs(dh: d / heads) && Attention.readsFeatures(d: d)
    }

    /// Cross-attention of `q` `[s, n, d]` against the features of each sequence's clip.
    ///
    /// A query row's arithmetic does not depend on the rows computed with it, so a row's result
    /// does not depend on the rows beside it.
    public func crossAttention(
        _ q: Tensor, features: Tensor, _ layer: LinearWeights, clipOf: [Int], heads: Int, record: AttentionRecord
    ) -> AttentionOutput {
        let s = q.shape[0], n = q.shape[1], d = q.shape[2], dh = d / heads
        guard readsFeatures(width: d, heads: heads) else {
            return crossAttention(
                q, keysValues(features: features, layer, heads: heads), clipOf: clipOf, heads: heads, record: record)
        }
        let f = features.shape[1], rows = s * n
        let wantPattern = record.contains(.pattern)
        var pattern = wantPattern ? Tensor(zeros: [s, heads, n, f]) : Tensor(zeros: [0])
        var z = Tensor(zeros: [s, n, d])
        let w = featureWeights(layer, heads: heads)
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
        let workers = min(Threading.workers, s)
        features.storage.withUnsafeBufferPointer { xp in
            u.withUnsafeBufferPointer { up in
                y.withUnsafeMutableBufferPointer { yp in
                    pattern.storage.withUnsafeMutableBufferPointer { pp in
                        let ptr = SendablePointers(
                            q: up.baseAddress!, k: xp.baseAddress!, v: xp.baseAddress!, out: yp.baseAddress!,
                            pattern: wantPattern ? pp.baseAddress! : nil, scores: nil)
                        DispatchQueue.concurrentPerformIfNeeded(workers) { wi in
                            let scratch = UnsafeMutablePointer<Float>.allocate(
                                capacity: Attention.fromFeaturesScratch(rows: n, heads: heads, nf: f))
                            defer { scratch.deallocate() }
                            for i in stride(from: wi, to: s, by: workers) {
                                Attention.fromFeatures(
                                    u: ptr.q + i * n * heads * d, rows: n, heads: heads,
                                    x: ptr.k + clipOf[i] * f * d,
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
        let bias = layer.bias ?? Tensor(zeros: [2 * d])
        y.withUnsafeBufferPointer { yp in
            bias.storage.withUnsafeBufferPointer { b in
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
        return AttentionOutput(z: z, pattern: wantPattern ? pattern : nil)
    }

    /// The fused key|value weight `[2d, d]` packed per head for the features form, made on first
    /// use and kept with the weight: for head h, `keys[h]` is W_k,hᵀ `[d, dh]` and `values[h]` is
    /// W_v,h `[dh, d]`, both as `auscult_pack_panels` lays out a weight (2·d² floats per layer).
    func featureWeights(_ layer: LinearWeights, heads: Int) -> CrossFeatureWeights {
        layer.derived("cpu.crossFeatures.\(heads)") {
            let d = layer.inputs, dh = d / heads
            return layer.weight.storage.withUnsafeBufferPointer { wp in
                CrossFeatureWeights(
                    keys: (0..<heads).map { h in
                        [Float](unsafeUninitializedCapacity: auscult_packed_floats(d, dh)) { buf, count in
                            auscult_pack_columns(wp.baseAddress! + h * dh * d, d, dh, d, buf.baseAddress!)
                            count = auscult_packed_floats(d, dh)
                        }
                    },
                    values: (0..<heads).map { h in
                        [Float](unsafeUninitializedCapacity: auscult_packed_floats(dh, d)) { buf, count in
                            auscult_pack_panels(wp.baseAddress! + (d + h * dh) * d, d, dh, d, buf.baseAddress!)
                            count = auscult_packed_floats(dh, d)
                        }
                    })
            }
        }
    }
}

/// One decoder layer's cross-attention key and value weights packed per head for the features form.
struct CrossFeatureWeights: Sendable {
    let keys: [[Float]], values: [[Float]]
}
