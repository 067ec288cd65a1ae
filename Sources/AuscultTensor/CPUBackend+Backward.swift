// The CPU backend's backward operations: the products through OpenBLAS, the rest row by row.
import Dispatch

extension CPUBackend: BackwardBackend {
    public func linearBackward(_ dy: Tensor, _ layer: LinearWeights) -> Tensor {
        let n = layer.outputs, k = layer.inputs, m = dy.count / n
        precondition(dy.shape.last == n, "linearBackward: dy \(dy.shape), weight \(layer.weight.shape)")
        let workers = m >= 2 * Threading.workers && m * n * k >= 1 << 21 ? Threading.workers : 1
        return Tensor(shape: Array(dy.shape.dropLast()) + [k]) { out in
            dy.storage.withUnsafeBufferPointer { a in
                layer.weight.storage.withUnsafeBufferPointer { w in
                    let p = GemmPointers(a: a.baseAddress!, w: w.baseAddress!, c: out.baseAddress!)
                    DispatchQueue.concurrentPerformIfNeeded(workers) { i in
                        let m0 = m * i / workers, m1 = m * (i + 1) / workers
                        BLAS.gemmNN(
                            m: m1 - m0, n: k, k: n, a: p.a + m0 * n, lda: n, b: p.w, ldb: k, c: p.c + m0 * k, ldc: k)
                    }
                }
            }
        }
    }

    public func layerNormBackward(_ dy: Tensor, input x: Tensor, _ norm: NormWeights) -> Tensor {
        RowBackward.layerNorm(dy, input: x, norm)
    }

    public func geluBackward(_ dy: Tensor, input x: Tensor) -> Tensor { RowBackward.gelu(dy, input: x) }

    public func conv1dBackward(
        _ dy: Tensor, inputShape: [Int], weight: Tensor, stride: Int, padding: Int, framesFirst: Bool
    ) -> Tensor {
        let cOut = weight.shape[0], cIn = weight.shape[1], k = weight.shape[2], tOut = dy.shape[0]
        precondition(dy.shape == [tOut, cOut], "conv1dBackward: dy \(dy.shape), weight \(weight.shape)")
        // The gradient of the im2col matrix, dy · W `[T_out, C_in·k]`, then scattered back.
        var dcols = [Float](repeating: 0, count: tOut * cIn * k)
        dy.storage.withUnsafeBufferPointer { a in
            weight.storage.withUnsafeBufferPointer { w in
                dcols.withUnsafeMutableBufferPointer { c in
                    BLAS.gemmNN(
                        m: tOut, n: cIn * k, k: cOut, a: a.baseAddress!, lda: cOut, b: w.baseAddress!, ldb: cIn * k,
                        c: c.baseAddress!, ldc: cIn * k)
                }
            }
        }
        return RowBackward.conv1dInput(
            dcols.map(Double.init), inputShape: inputShape, cIn: cIn, k: k, tOut: tOut, stride: stride,
            padding: padding, framesFirst: framesFirst)
    }

    /// Five products per head (two for dS, one each for dQ, dK, dV), heads split across workers
    /// (OpenBLAS runs single-threaded here: `BLAS.configured`); on the encoder's 1500 frames each
    /// worker's `[nq, nk]` scratch is 9 MB, reused head after head.
    public func attentionBackward(
        _ dz: Tensor, q: Tensor, k: Tensor, v: Tensor, pattern: Tensor, heads: Int
    ) -> (dq: Tensor, dk: Tensor, dv: Tensor) {
        let nq = q.shape[0], nk = k.shape[0], d = q.shape[1], dh = d / heads
        let alpha = 1 / Float(dh).squareRoot()
        precondition(
            pattern.count == heads * nq * nk && dz.shape == q.shape && k.shape == v.shape && k.shape[1] == d,
            "attentionBackward: dz \(dz.shape), q \(q.shape), k \(k.shape), v \(v.shape), pattern \(pattern.shape)")
        var dq = Tensor(zeros: q.shape), dk = Tensor(zeros: k.shape), dv = Tensor(zeros: v.shape)
        let workers = nq * nk >= 1 << 14 ? min(Threading.workers, heads) : 1
        dz.storage.withUnsafeBufferPointer { dzp in
            q.storage.withUnsafeBufferPointer { qp in
                k.storage.withUnsafeBufferPointer { kp in
                    v.storage.withUnsafeBufferPointer { vp in
                        pattern.storage.withUnsafeBufferPointer { pp in
                            dq.storage.withUnsafeMutableBufferPointer { dqp in
                                dk.storage.withUnsafeMutableBufferPointer { dkp in
                                    dv.storage.withUnsafeMutableBufferPointer { dvp in
                                        let ins = SendablePointers(
                                            q: qp.baseAddress!, k: kp.baseAddress!, v: vp.baseAddress!,
                                            out: dqp.baseAddress!, pattern: nil, scores: nil)
                                        let outs = SendablePointers(
                                            q: dzp.baseAddress!, k: pp.baseAddress!, v: pp.baseAddress!,
                                            out: dkp.baseAddress!, pattern: dvp.baseAddress!, scores: nil)
                                        DispatchQueue.concurrentPerformIfNeeded(workers) { w in
                                            let s = UnsafeMutablePointer<Float>.allocate(capacity: nq * nk)
                                            defer { s.deallocate() }
                                            for h in stride(from: w, to: heads, by: workers) {
                                                Self.attentionBackwardHead(
                                                    h, nq: nq, nk: nk, d: d, dh: dh, alpha: alpha, ins: ins, outs: outs,
                                                    scratch: s)
                                            }
                                        }
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return (dq, dk, dv)
    }

    /// Head `h` of `attentionBackward`: inputs q, k, v in `ins` (dq at `ins.out`), dZ, the pattern,
    /// dk and dv in `outs` (`q`, `k`, `out`, `pattern`).
    private static func attentionBackwardHead(
        _ h: Int, nq: Int, nk: Int, d: Int, dh: Int, alpha: Float, ins: SendablePointers, outs: SendablePointers,
        scratch s: UnsafeMutablePointer<Float>
    ) {
        let p = outs.k + h * nq * nk, o = h * dh, dZ = outs.q
        BLAS.gemmTN(m: nk, n: dh, k: nq, a: p, lda: nk, b: dZ + o, ldb: d, c: outs.pattern! + o, ldc: d)
        BLAS.gemmNT(m: nq, n: nk, k: dh, a: dZ + o, lda: d, b: ins.v + o, ldb: d, c: s, ldc: nk)
        // dS = P ⊙ (dP − rowsum(dP ⊙ P)) · α, eight lanes at a time (the scalar loop took a tenth
        // of tiny.en's backward pass: 54 M elements over the encoder's heads).
        let wide = nk / 8 * 8
        for r in 0..<nq {
            let sr = s + r * nk, pr = p + r * nk
            var acc = SIMD8<Float>()
            for j in stride(from: 0, to: wide, by: 8) {
                acc += UnsafeRawPointer(sr + j).loadUnaligned(as: SIMD8<Float>.self)
                    * UnsafeRawPointer(pr + j).loadUnaligned(as: SIMD8<Float>.self)
            }
            var rowSum = acc.sum()
            for j in wide..<nk { rowSum += sr[j] * pr[j] }
            let shift = SIMD8<Float>(repeating: rowSum), scale = SIMD8<Float>(repeating: alpha)
            for j in stride(from: 0, to: wide, by: 8) {
                let sv = UnsafeRawPointer(sr + j).loadUnaligned(as: SIMD8<Float>.self)
                let pv = UnsafeRawPointer(pr + j).loadUnaligned(as: SIMD8<Float>.self)
                UnsafeMutableRawPointer(sr + j).storeBytes(of: pv * (sv - shift) * scale, as: SIMD8<Float>.self)
            }
            for j in wide..<nk { sr[j] = pr[j] * (sr[j] - rowSum) * alpha }
        }
        BLAS.gemmNN(m: nq, n: dh, k: nk, a: s, lda: nk, b: ins.k + o, ldb: d, c: ins.out + o, ldc: d)
        BLAS.gemmTN(m: nk, n: dh, k: nq, a: s, lda: nk, b: ins.q + o, ldb: d, c: outs.out + o, ldc: d)
    }
}
