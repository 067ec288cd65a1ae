// The backend every command runs: the packed, row-invariant kernels of this module (README).
import CAuscultKernels
import Dispatch

/// The CPU backend: products against weights packed once (`PackedWeight`, x86-64) or through
/// OpenBLAS, the C kernels of `CAuscultKernels` chosen at run time, work split across
/// `Threading.workers`. A row's result never depends on the rows computed beside it (README).
public struct CPUBackend: Backend {
    public var name: String { "cpu" }
    /// Whether cross-attention keys and values are packed per head for the packed kernels where
    /// the CPU has them; with false they stay the projected `[A, F, 2d]` tensor (the form off
    /// x86-64) and cross-attention never reads the features directly.
    public let packsKeysValues: Bool

    public init(packsKeysValues: Bool = true) { self.packsKeysValues = packsKeysValues }

    public func prepare(weight: Tensor, bias: Tensor?) -> LinearWeights {
        LinearWeights(weight: weight, bias: bias, prepared: PackedWeight(weight))
    }

    public func linear(_ x: Tensor, _ layer: LinearWeights) -> Tensor {
        if let packed = layer.prepared as? PackedWeight { return x.linear(packed, bias: layer.bias) }
        return x.linear(layer.weight, bias: layer.bias)
    }

    public func headResults(_ z: Tensor, _ layer: LinearWeights, heads: Int) -> Tensor {
        let d = z.shape.last!, dh = d / heads, rows = z.count / d, n = layer.outputs
        precondition(layer.inputs == d && d % heads == 0, "headResults: z \(z.shape), weight \(layer.weight.shape)")
        return Tensor(shape: Array(z.shape.dropLast()) + [heads, n]) { rp in
            z.storage.withUnsafeBufferPointer { zp in
                layer.weight.storage.withUnsafeBufferPointer { wp in
                    for h in 0..<heads {
                        BLAS.gemmNT(
                            m: rows, n: n, k: dh, a: zp.baseAddress! + h * dh, lda: d, b: wp.baseAddress! + h * dh,
                            ldb: d, c: rp.baseAddress! + h * n, ldc: heads * n)
                    }
                }
            }
        }
    }

    public func layerNorm(_ x: Tensor, _ norm: NormWeights, withScale: Bool) -> (y: Tensor, inverseScale: [Float]?) {
        let d = x.shape.last!, rows = x.count / d
        precondition(norm.gamma.count == d, "layerNorm: input \(x.shape), weight \(norm.gamma.shape)")
        var inverse = withScale ? [Float](repeating: 0, count: rows) : nil
        let y = Tensor(shape: x.shape) { out in
            x.storage.withUnsafeBufferPointer { xp in
                norm.gamma.storage.withUnsafeBufferPointer { g in
                    norm.beta.storage.withUnsafeBufferPointer { b in
                        func run(_ scale: UnsafeMutablePointer<Float>?) {
                            Kernels.layerNorm(
                                xp.baseAddress!, rows: rows, d: d, gamma: g.baseAddress!, beta: b.baseAddress!,
                                out: out.baseAddress!, scaleOut: scale)
                        }
                        if inverse != nil {
                            inverse!.withUnsafeMutableBufferPointer { run($0.baseAddress!) }
                        } else {
                            run(nil)
                        }
                    }
                }
            }
        }
        return (y, inverse)
    }

    public func gelu(_ x: inout Tensor) {
        x.storage.withUnsafeMutableBufferPointer { Kernels.gelu($0.baseAddress!, count: $0.count) }
    }

    public func add(_ x: inout Tensor, _ y: Tensor) {
        precondition(x.count == y.count, "add: \(x.shape) and \(y.shape)")
        x.storage.withUnsafeMutableBufferPointer { xp in
            y.storage.withUnsafeBufferPointer { Kernels.add($0.baseAddress!, into: xp.baseAddress!, count: xp.count) }
        }
    }

    public func conv1d(
        _ x: Tensor, weight: Tensor, bias: Tensor, stride: Int, padding: Int, framesFirst: Bool
    ) -> Tensor {
        x.conv1d(weight: weight, bias: bias, stride: stride, padding: padding, framesFirst: framesFirst)
    }
}
