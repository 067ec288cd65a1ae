// Adam (Kingma & Ba 2015) over a flat parameter array, for the small trainers above the model
// (tuned-lens translators, sparse autoencoders).
import Foundation

/// First and second moment estimates of one parameter tensor.
public struct Adam: Sendable {
    public var m: [Float], v: [Float]
    public let beta1: Float, beta2: Float, epsilon: Float

    public init(count: Int, beta1: Float = 0.9, beta2: Float = 0.999, epsilon: Float = 1e-8) {
        m = [Float](repeating: 0, count: count); v = m
        self.beta1 = beta1; self.beta2 = beta2; self.epsilon = epsilon
    }

    /// One bias-corrected step of `p` along gradient `g` at learning rate `lr`; `t` counts from 1.
    public mutating func step(_ p: inout [Float], _ g: [Float], lr: Float, t: Int) {
        precondition(p.count == g.count && g.count == m.count)
        let c1 = 1 - pow(beta1, Float(t)), c2 = 1 - pow(beta2, Float(t))
        for i in p.indices {
            m[i] = beta1 * m[i] + (1 - beta1) * g[i]
            v[i] = beta2 * v[i] + (1 - beta2) * g[i] * g[i]
            p[i] -= lr * (m[i] / c1) / ((v[i] / c2).squareRoot() + epsilon)
        }
    }
}
