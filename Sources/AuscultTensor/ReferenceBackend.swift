// A plain backend to check others against: the textbook definition of each operation, summed in
// Double (openai-whisper model.py's arithmetic, without the float32 rounding of its sums).
import Dispatch
import Foundation

/// Straightforward loops with Double accumulation: every sum (products, LayerNorm's moments,
/// softmax's normaliser, attention's weighted values) is taken in Double and rounded once to
/// Float. Slow (tiny.en's encoder on one 30 s window takes seconds, not milliseconds) and meant
/// for tests: the whole model runs on it, and each operation of another backend is compared with
/// it on its own. Rows are split across `Threading.workers`; no result depends on that split.
public struct ReferenceBackend: Backend {
    public var name: String { "reference" }
    public init() {}

    public func prepare(weight: Tensor, bias: Tensor?) -> LinearWeights {
        LinearWeights(weight: weight, bias: bias)
    }

    public func linear(_ x: Tensor, _ layer: LinearWeights) -> Tensor {
        let k = x.shape.last!, n = layer.outputs, rows = x.count / k
        precondition(layer.inputs == k, "linear: input \(x.shape), weight \(layer.weight.shape)")
        let w = layer.weight.storage, b = layer.bias?.storage
        return Self.rows(rows, width: n, shape: Array(x.shape.dropLast()) + [n]) { r, out in
            for j in 0..<n {
                var acc = Double(b?[j] ?? 0)
                for i in 0..<k { acc += Double(x.storage[r * k + i]) * Double(w[j * k + i]) }
                out[j] = Float(acc)
            }
        }
    }

    public func headResults(_ z: Tensor, _ layer: LinearWeights, heads: Int) -> Tensor {
        let d = z.shape.last!, dh = d / heads, n = layer.outputs, rows = z.count / d
        let w = layer.weight.storage
        return Self.rows(rows, width: heads * n, shape: Array(z.shape.dropLast()) + [heads, n]) { r, out in
            for h in 0..<heads {
                for j in 0..<n {
                    var acc = 0.0
                    for i in (h * dh)..<((h + 1) * dh) { acc += Double(z.storage[r * d + i]) * Double(w[j * d + i]) }
                    out[h * n + j] = Float(acc)
                }
            }
        }
    }

    public func layerNorm(_ x: Tensor, _ norm: NormWeights, withScale: Bool) -> (y: Tensor, inverseScale: [Float]?) {
        let d = x.shape.last!, rows = x.count / d
        var inverse = [Float](repeating: 0, count: rows)
        var y = Tensor(zeros: x.shape)
        for r in 0..<rows {
            var mean = 0.0
            for i in 0..<d { mean += Double(x.storage[r * d + i]) }
            mean /= Double(d)
            var variance = 0.0
            for i in 0..<d { let c = Double(x.storage[r * d + i]) - mean; variance += c * c }
            let inv = 1 / (variance / Double(d) + 1e-5).squareRoot()
            inverse[r] = Float(inv)
            for i in 0..<d {
                let c = (Double(x.storage[r * d + i]) - mean) * inv
                y.storage[r * d + i] = Float(c * Double(norm.gamma.storage[i]) + Double(norm.beta.storage[i]))
            }
        }
        return (y, withScale ? inverse : nil)
    }

    public func gelu(_ x: inout Tensor) {
        for i in 0..<x.count {
            let v = Double(x.storage[i])
            x.storage[i] = Float(0.5 * v * (1 + erf(v / 2.0.squareRoot())))
        }
    }

    public func add(_ x: inout Tensor, _ y: Tensor) {
        precondition(x.count == y.count, "add: \(x.shape) and \(y.shape)")
        for i in 0..<x.count { x.storage[i] += y.storage[i] }
    }

    public func conv1d(
        _ x: Tensor, weight: Tensor, bias: Tensor, stride: Int, padding: Int, framesFirst: Bool
    ) -> Tensor {
        let cIn = framesFirst ? x.shape[1] : x.shape[0], t = framesFirst ? x.shape[0] : x.shape[1]
        let cOut = weight.shape[0], k = weight.shape[2], tOut = (t + 2 * padding - k) / stride + 1
        precondition(weight.shape[1] == cIn, "conv1d: input \(x.shape), weight \(weight.shape)")
        @Sendable func input(_ c: Int, _ ti: Int) -> Double {
            guard ti >= 0 && ti < t else { return 0 }
            return Double(framesFirst ? x.storage[ti * cIn + c] : x.storage[c * t + ti])
        }
        return Self.rows(tOut, width: cOut, shape: [tOut, cOut]) { o, out in
            for co in 0..<cOut {
                var acc = Double(bias.storage[co])
                for c in 0..<cIn {
                    for j in 0..<k {
                        acc += Double(weight.storage[(co * cIn + c) * k + j]) * input(c, o * stride - padding + j)
                    }
                }
                out[co] = Float(acc)
            }
        }
    }

    /// Where one operand's rows are: row r of it starts at `storage[base + r·stride]`.
    struct Rows {
        let storage: [Float], base: Int, stride: Int
        func callAsFunction(_ r: Int, _ c: Int) -> Double { Double(storage[base + r * stride + c]) }
    }

    /// Attention of query rows to keys `0..<visible(r)`, heads side by side: z `[nq, d]` and, per
    /// head, pattern and scores `[h, nq, nk]` (masked entries 0 and −∞).
    static func attend(
        nq: Int, nk: Int, d: Int, heads: Int, visible: (Int) -> Int, q: Rows, k: Rows, v: Rows
    ) -> (z: [Float], pattern: [Float], scores: [Float]) {
        let dh = d / heads, scale = 1 / Double(dh).squareRoot()
        var z = [Float](repeating: 0, count: nq * d)
        var pattern = [Float](repeating: 0, count: heads * nq * nk)
        var scores = [Float](repeating: -.infinity, count: heads * nq * nk)
        var s = [Double](repeating: 0, count: nk)
        for h in 0..<heads {
            for r in 0..<nq {
                let seen = visible(r)
                var top = -Double.infinity
                for j in 0..<seen {
                    var acc = 0.0
                    for c in (h * dh)..<((h + 1) * dh) { acc += q(r, c) * k(j, c) }
                    s[j] = acc * scale
                    top = max(top, s[j])
                    scores[(h * nq + r) * nk + j] = Float(s[j])
                }
                var total = 0.0
                for j in 0..<seen { s[j] = Foundation.exp(s[j] - top); total += s[j] }
                for j in 0..<seen { pattern[(h * nq + r) * nk + j] = Float(s[j] / total) }
                for c in (h * dh)..<((h + 1) * dh) {
                    var acc = 0.0
                    for j in 0..<seen { acc += s[j] * v(j, c) }
                    z[r * d + c] = Float(acc / total)
                }
            }
        }
        return (z, pattern, scores)
    }

    public func selfAttention(_ qkv: Tensor, heads: Int, record: AttentionRecord) -> AttentionOutput {
        let b = qkv.shape[0], t = qkv.shape[1], d = qkv.shape[2] / 3
        let parts = Self.concurrent(b) { bi in
            let base = bi * t * 3 * d
            return Self.attend(
                nq: t, nk: t, d: d, heads: heads, visible: { _ in t },
                q: Rows(storage: qkv.storage, base: base, stride: 3 * d),
                k: Rows(storage: qkv.storage, base: base + d, stride: 3 * d),
                v: Rows(storage: qkv.storage, base: base + 2 * d, stride: 3 * d))
        }
        return Self.output(parts, lead: b, n: t, d: d, heads: heads, keys: t, record: record)
    }

    public func makeKeyValueCache(sequences: Int, capacity: Int, width: Int) -> any KeyValueCache {
        ReferenceKeyValueCache(sequences: sequences, capacity: capacity, d: width)
    }

    public func cachedSelfAttention(
        _ qkv: Tensor, cache: any KeyValueCache, length: Int, heads: Int, record: AttentionRecord
    ) -> AttentionOutput {
        guard let cache = cache as? ReferenceKeyValueCache else {
            preconditionFailure("cachedSelfAttention: a cache made by another backend (\(type(of: cache)))")
        }
        let s = qkv.shape[0], n = qkv.shape[1], d = cache.d, total = length + n
        precondition(s == cache.sequences && total <= cache.capacity, "cachedSelfAttention: \(qkv.shape) at \(length)")
        for i in 0..<s {
            for j in 0..<n {
                let row = (i * n + j) * 3 * d
                for c in 0..<d {
                    cache.keys[i][(length + j) * d + c] = qkv.storage[row + d + c]
                    cache.values[i][(length + j) * d + c] = qkv.storage[row + 2 * d + c]
                }
            }
        }
        let keys = cache.keys, values = cache.values
        let parts = Self.concurrent(s) { i in
            Self.attend(
                nq: n, nk: total, d: d, heads: heads, visible: { length + $0 + 1 },
                q: Rows(storage: qkv.storage, base: i * n * 3 * d, stride: 3 * d),
                k: Rows(storage: keys[i], base: 0, stride: d), v: Rows(storage: values[i], base: 0, stride: d))
        }
        return Self.output(parts, lead: s, n: n, d: d, heads: heads, keys: total, record: record)
    }

    public func keysValues(projected kv: Tensor, heads: Int) -> PreparedKeysValues {
        PreparedKeysValues(clips: kv.shape[0], frames: kv.shape[1], payload: kv)
    }

    public func crossAttention(
        _ q: Tensor, _ kv: PreparedKeysValues, clipOf: [Int], heads: Int, record: AttentionRecord
    ) -> AttentionOutput {
        guard let projected = kv.payload as? Tensor else {
            preconditionFailure("crossAttention: keys and values prepared by another backend (\(type(of: kv.payload)))")
        }
        let s = q.shape[0], n = q.shape[1], d = q.shape[2], f = kv.frames
        let parts = Self.concurrent(s) { i in
            let base = clipOf[i] * f * 2 * d
            return Self.attend(
                nq: n, nk: f, d: d, heads: heads, visible: { _ in f },
                q: Rows(storage: q.storage, base: i * n * d, stride: d),
                k: Rows(storage: projected.storage, base: base, stride: 2 * d),
                v: Rows(storage: projected.storage, base: base + d, stride: 2 * d))
        }
        return Self.output(parts, lead: s, n: n, d: d, heads: heads, keys: f, record: record)
    }

    /// Rows `0..<count` of width `width` made by `body`, split across workers, as `shape`.
    static func rows(
        _ count: Int, width: Int, shape: [Int], _ body: @Sendable (Int, UnsafeMutablePointer<Float>) -> Void
    ) -> Tensor {
        Tensor(shape: shape) { out in
            let p = UnsafeMutableSendablePointer(out.baseAddress!)
            let workers = count >= 8 ? Threading.workers : 1
            DispatchQueue.concurrentPerformIfNeeded(workers) { w in
                for r in (count * w / workers)..<(count * (w + 1) / workers) { body(r, p.pointer + r * width) }
            }
        }
    }

    /// `body(i)` for `i in 0..<count`, across workers, in order.
    static func concurrent<T: Sendable>(_ count: Int, _ body: @Sendable (Int) -> T) -> [T] {
        let results = ResultSlots<T>(count)
        DispatchQueue.concurrentPerformIfNeeded(min(Threading.workers, count)) { w in
            for i in stride(from: w, to: count, by: min(Threading.workers, count)) { results.set(i, body(i)) }
        }
        return results.values
    }

    /// Per-sequence attention results joined into one output `[lead, n, d]`, patterns
    /// `[lead, h, n, keys]`.
    static func output(
        _ parts: [(z: [Float], pattern: [Float], scores: [Float])], lead: Int, n: Int, d: Int, heads: Int, keys: Int,
        record: AttentionRecord
    ) -> AttentionOutput {
        AttentionOutput(
            z: Tensor(shape: [lead, n, d], storage: parts.flatMap(\.z)),
            pattern: record.contains(.pattern)
                ? Tensor(shape: [lead, heads, n, keys], storage: parts.flatMap(\.pattern)) : nil,
            scores: record.contains(.scores)
                ? Tensor(shape: [lead, heads, n, keys], storage: parts.flatMap(\.scores)) : nil)
    }
}

/// Results written by concurrent workers into their own slots.
private final class ResultSlots<T: Sendable>: @unchecked Sendable {
    private var slots: [T?]
    private let lock = NSLock()
    init(_ count: Int) { slots = [T?](repeating: nil, count: count) }
    func set(_ i: Int, _ value: T) { lock.lock(); slots[i] = value; lock.unlock() }
    var values: [T] { slots.map { $0! } }
}

/// The reference backend's self-attention cache: per sequence, keys and values as rows.
final class ReferenceKeyValueCache: KeyValueCache, @unchecked Sendable {
    private(set) var sequences: Int
    let capacity: Int, d: Int
    var keys: [[Float]], values: [[Float]]

    init(sequences: Int, capacity: Int, d: Int) {
        self.sequences = sequences; self.capacity = capacity; self.d = d
        keys = [[Float]](repeating: [Float](repeating: 0, count: capacity * d), count: sequences)
        values = keys
    }

    func reorder(_ source: [Int], length: Int) {
        keys = source.map { keys[$0] }
        values = source.map { values[$0] }
        sequences = source.count
    }
}
