// Backward of each operation of the forward pass: the gradient of a scalar with respect to an
// operation's input, given the gradient with respect to its output. Weights are not trained
// through these (interpretability asks for gradients at activations), so no weight gradient.
import CAuscultKernels
import Dispatch
import Foundation

/// The backward operations a backend provides beside its forward ones (`Backend`).
///
/// Each takes the gradient `dy` of a scalar with respect to the operation's output, and what the
/// forward pass saw (its input, or for attention its operands and pattern), and returns the
/// gradient with respect to the input. Shapes follow the forward operation's.
public protocol BackwardBackend: Backend {
    /// Of `linear`: `dy` `[…, n]` → `dy · W` `[…, k]` (the bias takes no part).
    func linearBackward(_ dy: Tensor, _ layer: LinearWeights) -> Tensor

    /// Of `layerNorm` at its input `x` `[…, d]`: with x̂ = (x − μ)/σ and g = dy ⊙ γ,
    /// `dx = (g − mean(g) − x̂ · mean(g ⊙ x̂)) / σ` per row.
    func layerNormBackward(_ dy: Tensor, input x: Tensor, _ norm: NormWeights) -> Tensor

    /// Of exact-erf GELU at its input `x`: `dy ⊙ (Φ(x) + x·φ(x))`.
    func geluBackward(_ dy: Tensor, input x: Tensor) -> Tensor

    /// Of `conv1d` for an input of shape `inputShape` (`[C_in, T]`, or `[T, C_in]` with
    /// `framesFirst`): `dy` `[T_out, C_out]` → the input's shape.
    func conv1dBackward(
        _ dy: Tensor, inputShape: [Int], weight: Tensor, stride: Int, padding: Int, framesFirst: Bool
    ) -> Tensor

    /// Of softmax attention of one sequence, heads side by side: queries `q` `[nq, d]`, keys and
    /// values `k`, `v` `[nk, d]`, the forward pattern `[h, nq, nk]` (masked entries 0, which is
    /// all a mask needs here) and `dz` `[nq, d]`. Per head, with α = 1/√dh and P its pattern:
    /// dV = Pᵀ dZ, dP = dZ Vᵀ, dS = P ⊙ (dP − rowsum(dP ⊙ P)), dQ = α dS K, dK = α dSᵀ Q.
    func attentionBackward(
        _ dz: Tensor, q: Tensor, k: Tensor, v: Tensor, pattern: Tensor, heads: Int
    ) -> (dq: Tensor, dk: Tensor, dv: Tensor)
}

/// Backward operations computed row by row, every sum in Double, that both shipped backends share
/// (they are not where a backward pass spends its time; the products are), and the CPU
/// backend's GELU backward (the reference backend computes its own in Double).
enum RowBackward {
    /// Rows split across workers, each row's sums in Double.
    static func layerNorm(_ dy: Tensor, input x: Tensor, _ norm: NormWeights) -> Tensor {
        let d = x.shape.last!, rows = x.count / d
        precondition(dy.shape == x.shape && norm.gamma.count == d, "layerNormBackward: \(dy.shape), \(x.shape)")
        let workers = rows * d >= 1 << 16 ? Threading.workers : 1
        return Tensor(shape: x.shape) { out in
            x.storage.withUnsafeBufferPointer { xp in
                dy.storage.withUnsafeBufferPointer { gp in
                    norm.gamma.storage.withUnsafeBufferPointer { gammaP in
                        let p = SendablePointers(
                            q: xp.baseAddress!, k: gp.baseAddress!, v: gammaP.baseAddress!, out: out.baseAddress!,
                            pattern: nil, scores: nil)
                        DispatchQueue.concurrentPerformIfNeeded(workers) { w in
                            var xhat = [Double](repeating: 0, count: d), g = [Double](repeating: 0, count: d)
                            for r in (rows * w / workers)..<(rows * (w + 1) / workers) {
                                let x = p.q + r * d, dy = p.k + r * d, dx = p.out + r * d
                                var mean = 0.0
                                for i in 0..<d { mean += Double(x[i]) }
                                mean /= Double(d)
                                var variance = 0.0
                                for i in 0..<d { let c = Double(x[i]) - mean; variance += c * c }
                                let inv = 1 / (variance / Double(d) + 1e-5).squareRoot()
                                var meanG = 0.0, meanGX = 0.0
                                for i in 0..<d {
                                    xhat[i] = (Double(x[i]) - mean) * inv
                                    g[i] = Double(dy[i]) * Double(p.v[i])
                                    meanG += g[i]; meanGX += g[i] * xhat[i]
                                }
                                meanG /= Double(d); meanGX /= Double(d)
                                for i in 0..<d { dx[i] = Float((g[i] - meanG - xhat[i] * meanGX) * inv) }
                            }
                        }
                    }
                }
            }
        }
    }

    /// The C kernel (AVX2 or portable, same bits), elements split across workers: tiny.en's
    /// encoder MLPs hold 9.2 M of them, and Double erf and exp took a tenth of a backward pass.
    static func gelu(_ dy: Tensor, input x: Tensor) -> Tensor {
        precondition(dy.count == x.count, "geluBackward: \(dy.shape), \(x.shape)")
        let n = x.count, workers = n >= 1 << 16 ? Threading.workers : 1
        return Tensor(shape: dy.shape) { out in
            x.storage.withUnsafeBufferPointer { xp in
                dy.storage.withUnsafeBufferPointer { gp in
                    let p = SendablePointers(
                        q: xp.baseAddress!, k: gp.baseAddress!, v: gp.baseAddress!, out: out.baseAddress!, pattern: nil,
                        scores: nil)
                    DispatchQueue.concurrentPerformIfNeeded(workers) { w in
                        let lo = n * w / workers, hi = n * (w + 1) / workers
                        auscult_gelu_backward(p.q + lo, p.k + lo, p.out + lo, hi - lo)
                    }
                }
            }
        }
    }

    /// col2im: scatters the gradient of the im2col matrix `[T_out, C_in·k]` back onto the input.
    static func conv1dInput(
        _ dcols: [Double], inputShape: [Int], cIn: Int, k: Int, tOut: Int, stride: Int, padding: Int, framesFirst: Bool
    ) -> Tensor {
        let t = framesFirst ? inputShape[0] : inputShape[1]
        var dx = [Double](repeating: 0, count: cIn * t)
        for o in 0..<tOut {
            for c in 0..<cIn {
                for j in 0..<k {
                    let ti = o * stride - padding + j
                    guard ti >= 0 && ti < t else { continue }
                    dx[framesFirst ? ti * cIn + c : c * t + ti] += dcols[(o * cIn + c) * k + j]
                }
            }
        }
        return Tensor(shape: inputShape, storage: dx.map { Float($0) })
    }
}

extension ReferenceBackend: BackwardBackend {
    public func linearBackward(_ dy: Tensor, _ layer: LinearWeights) -> Tensor {
        let n = layer.outputs, k = layer.inputs, rows = dy.count / n
        precondition(dy.shape.last == n, "linearBackward: dy \(dy.shape), weight \(layer.weight.shape)")
        let w = layer.weight.storage
        return Self.rows(rows, width: k, shape: Array(dy.shape.dropLast()) + [k]) { r, out in
            for i in 0..<k {
                var acc = 0.0
                for j in 0..<n { acc += Double(dy.storage[r * n + j]) * Double(w[j * k + i]) }
                out[i] = Float(acc)
            }
        }
    }

    public func layerNormBackward(_ dy: Tensor, input x: Tensor, _ norm: NormWeights) -> Tensor {
        RowBackward.layerNorm(dy, input: x, norm)
    }

    public func geluBackward(_ dy: Tensor, input x: Tensor) -> Tensor {
        precondition(dy.count == x.count, "geluBackward: \(dy.shape), \(x.shape)")
        var dx = dy
        for i in 0..<x.count {
            let v = Double(x.storage[i])
            let cdf = 0.5 * (1 + erf(v / 2.0.squareRoot())), pdf = Foundation.exp(-0.5 * v * v) / (2 * Double.pi).squareRoot()
            dx.storage[i] = Float(Double(dy.storage[i]) * (cdf + v * pdf))
        }
        return dx
    }

    public func conv1dBackward(
        _ dy: Tensor, inputShape: [Int], weight: Tensor, stride: Int, padding: Int, framesFirst: Bool
    ) -> Tensor {
        let cOut = weight.shape[0], cIn = weight.shape[1], k = weight.shape[2], tOut = dy.shape[0]
        precondition(dy.shape == [tOut, cOut], "conv1dBackward: dy \(dy.shape), weight \(weight.shape)")
        var dcols = [Double](repeating: 0, count: tOut * cIn * k)
        for o in 0..<tOut {
            for i in 0..<(cIn * k) {
                var acc = 0.0
                for co in 0..<cOut {
                    acc += Double(dy.storage[o * cOut + co]) * Double(weight.storage[co * cIn * k + i])
                }
                dcols[o * cIn * k + i] = acc
            }
        }
        return RowBackward.conv1dInput(
            dcols, inputShape: inputShape, cIn: cIn, k: k, tOut: tOut, stride: stride, padding: padding,
            framesFirst: framesFirst)
    }

    public func attentionBackward(
        _ dz: Tensor, q: Tensor, k: Tensor, v: Tensor, pattern: Tensor, heads: Int
    ) -> (dq: Tensor, dk: Tensor, dv: Tensor) {
        let nq = q.shape[0], nk = k.shape[0], d = q.shape[1], dh = d / heads
        let alpha = 1 / Double(dh).squareRoot()
        precondition(pattern.count == heads * nq * nk && dz.shape == q.shape, "attentionBackward: shapes")
        var dq = [Double](repeating: 0, count: nq * d), dk = [Double](repeating: 0, count: nk * d)
        var dv = [Double](repeating: 0, count: nk * d)
        var ds = [Double](repeating: 0, count: nk)
        for h in 0..<heads {
            let cols = (h * dh)..<((h + 1) * dh)
            for r in 0..<nq {
                let p = (h * nq + r) * nk
                var rowSum = 0.0
                for j in 0..<nk {
                    var dp = 0.0
                    for c in cols { dp += Double(dz.storage[r * d + c]) * Double(v.storage[j * d + c]) }
                    ds[j] = dp
                    rowSum += dp * Double(pattern.storage[p + j])
                }
                for j in 0..<nk {
                    let pj = Double(pattern.storage[p + j])
                    ds[j] = pj * (ds[j] - rowSum) * alpha
                    for c in cols {
                        dv[j * d + c] += pj * Double(dz.storage[r * d + c])
                        dq[r * d + c] += ds[j] * Double(k.storage[j * d + c])
                        dk[j * d + c] += ds[j] * Double(q.storage[r * d + c])
                    }
                }
            }
        }
        func tensor(_ a: [Double], _ shape: [Int]) -> Tensor { Tensor(shape: shape, storage: a.map { Float($0) }) }
        return (tensor(dq, q.shape), tensor(dk, k.shape), tensor(dv, v.shape))
    }
}
