// Adam (Kingma & Ba 2015) over a flat parameter array, for the small trainers above the model
// (tuned-lens translators, sparse autoencoders).
import Dispatch
import Foundation

/// First and second moment estimates of one parameter tensor.
public struct Adam: Sendable {
    public var m: [Float], v: [Float]
    public let beta1: Float, beta2: Float, epsilon: Float

    public init(count: Int, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8) {
        m = [Float](repeating: 0, count: count); v = m
        self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon
    }

    /// One bias-corrected step of the tensor `p` along the gradient `g` of its shape.
    public mutating func step(_ p: inout Tensor, _ g: Tensor, lr: Float, t: Int) {
        precondition(p.shape == g.shape, "Adam step: parameter \(p.shape), gradient \(g.shape)")
        step(&p.storage, g.storage, lr: lr, t: t)
    }

    /// One bias-corrected step of `p` along gradient `g` at learning rate `lr`; `t` counts from 1.
    ///
    /// Large tensors are split across `Threading.workers` (an SAE's two 1.2 M-element matrices
    /// took 8 % of a training step on one core).
    public mutating func step(_ p: inout [Float], _ g: [Float], lr: Float, t: Int) {
        precondition(p.count == g.count && g.count == m.count)
        let c1 = 1 - pow(beta1, Float(t)), c2 = 1 - pow(beta2, Float(t))
        let b1 = beta1, b2 = beta2, eps = epsilon, n = p.count
        let workers = n >= 1 << 18 ? Threading.workers : 1
        p.withUnsafeMutableBufferPointer { pb in
            g.withUnsafeBufferPointer { gb in
                m.withUnsafeMutableBufferPointer { mb in
                    v.withUnsafeMutableBufferPointer { vb in
                        let ptrs = AdamPointers(
                            p: pb.baseAddress!, g: gb.baseAddress!, m: mb.baseAddress!, v: vb.baseAddress!)
                        DispatchQueue.concurrentPerformIfNeeded(workers) { w in
                            let step = lr / c1, rc2 = 1 / c2.squareRoot()
                            for i in (n * w / workers)..<(n * (w + 1) / workers) {
                                let gi = ptrs.g[i]
                                let mi = b1 * ptrs.m[i] + (1 - b1) * gi
                                let vi = b2 * ptrs.v[i] + (1 - b2) * gi * gi
                                ptrs.m[i] = mi; ptrs.v[i] = vi
                                ptrs.p[i] -= step * mi / (vi.squareRoot() * rc2 + eps)
                            }
                        }
                    }
                }
            }
        }
    }
}

/// The buffers of one Adam step, handed to workers that update disjoint ranges.
struct AdamPointers: @unchecked Sendable {
    let p: UnsafeMutablePointer<Float>, g: UnsafePointer<Float>, m: UnsafeMutablePointer<Float>,
        v: UnsafeMutablePointer<Float>
}
