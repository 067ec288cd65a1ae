// The backend seam: the operations Whisper's forward pass is made of, behind one protocol.
//
// Two implementations ship: `CPUBackend` (the packed, row-invariant kernels every command runs)
// and `ReferenceBackend` (plain loops accumulating in Double, for checking any other backend
// operation by operation, as ggml's test-backend-ops checks each backend against its CPU one).
import Foundation

/// The operations of an encoder–decoder transformer's forward pass.
///
/// Shapes are row-major, outermost first; `d` is a model width, `h` a head count and `dh = d/h`.
/// Every method is pure except where it says otherwise (`gelu`, `add` and the key/value cache
/// work in place). A backend may keep prepared forms of weights (`prepare`) and of cross-attention
/// keys and values (`keysValues`); the model holds them as opaque values and hands them back.
public protocol Backend: Sendable {
    /// A short name for messages ("cpu", "reference").
    var name: String { get }

    /// A linear layer's weight `[n, k]` (PyTorch's `[out, in]`) and bias `[n]` (nil: none),
    /// prepared for repeated products.
    func prepare(weight: Tensor, bias: Tensor?) -> LinearWeights

    /// `x · Wᵀ + b`: `[…, k]` → `[…, n]`.
    func linear(_ x: Tensor, _ layer: LinearWeights) -> Tensor

    /// An output projection split per head, without its bias: `z` `[…, h·dh]` → `[…, h, n]`,
    /// `out[…, i, :] = z[…, i·dh ..< (i+1)·dh] · W[:, i·dh ..< (i+1)·dh]ᵀ` (summed over i and
    /// plus the bias, the projection itself).
    func headResults(_ z: Tensor, _ layer: LinearWeights, heads: Int) -> Tensor

    /// LayerNorm over the last axis (ε = 1e-5) and, when `withScale`, each row's 1/σ `[rows]`.
    func layerNorm(_ x: Tensor, _ norm: NormWeights, withScale: Bool) -> (y: Tensor, inverseScale: [Float]?)

    /// Exact-erf GELU, in place.
    func gelu(_ x: inout Tensor)

    /// `x += y`, elementwise (same element count).
    func add(_ x: inout Tensor, _ y: Tensor)

    /// 1-d convolution of one input with PyTorch weight `[C_out, C_in, k]` and bias `[C_out]`,
    /// zero padding `padding`, step `stride`: channels-first `[C_in, T]` (or frames-first
    /// `[T, C_in]` with `framesFirst`) → frames-first `[T_out, C_out]`.
    func conv1d(
        _ x: Tensor, weight: Tensor, bias: Tensor, stride: Int, padding: Int, framesFirst: Bool
    ) -> Tensor

    /// Unmasked self-attention of each sequence of a fused projection `qkv` `[B, T, 3d]`
    /// (queries, keys, values as column blocks): `z` `[B, T, d]`, and on request the pattern
    /// and the pre-softmax scores `[B, h, T, T]`.
    func selfAttention(_ qkv: Tensor, heads: Int, record: AttentionRecord) -> AttentionOutput

    /// An empty key/value cache for causal self-attention of `sequences` sequences of up to
    /// `capacity` positions, `width` = d.
    func makeKeyValueCache(sequences: Int, capacity: Int, width: Int) -> any KeyValueCache

    /// Causal self-attention with a cache: appends the keys and values of `qkv` `[S, n, 3d]` at
    /// positions `length ..< length + n` of `cache` (in place), then attends each new query to the
    /// positions up to its own: `z` `[S, n, d]`, and on request the pattern `[S, h, n, length + n]`.
    func cachedSelfAttention(
        _ qkv: Tensor, cache: any KeyValueCache, length: Int, heads: Int, record: AttentionRecord
    ) -> AttentionOutput

    /// Cross-attention keys and values of clips, `kv` `[A, F, 2d]` (keys then values), prepared
    /// to be read by `crossAttention`.
    func keysValues(projected kv: Tensor, heads: Int) -> PreparedKeysValues

    /// The same from the clips' features `[A, F, d]` through the fused key|value layer: by
    /// default `keysValues(projected: linear(features, layer))`.
    func keysValues(features: Tensor, _ layer: LinearWeights, heads: Int) -> PreparedKeysValues

    /// Cross-attention of queries `q` `[S, n, d]`, sequence s reading clip `clipOf[s]` of `kv`:
    /// `z` `[S, n, d]`, and on request the pattern `[S, h, n, F]`.
    func crossAttention(
        _ q: Tensor, _ kv: PreparedKeysValues, clipOf: [Int], heads: Int, record: AttentionRecord
    ) -> AttentionOutput

    /// Whether `crossAttention(_:features:…)` reads the features directly for this width and
    /// head count (no key/value projection); false by default.
    func readsFeatures(width d: Int, heads: Int) -> Bool

    /// Cross-attention straight from the audio features `[A, F, d]` through the fused key|value
    /// layer: the same values as `crossAttention` over `keysValues(features:…)`, which is
    /// what it does by default.
    func crossAttention(
        _ q: Tensor, features: Tensor, _ layer: LinearWeights, clipOf: [Int], heads: Int, record: AttentionRecord
    ) -> AttentionOutput

    /// Logits `[…, V]` of a final-LayerNormed stream `[…, d]` against the tied token embedding
    /// (prepared without bias).
    func logits(_ x: Tensor, _ embedding: LinearWeights) -> Tensor
}

extension Backend {
    public func keysValues(features: Tensor, _ layer: LinearWeights, heads: Int) -> PreparedKeysValues {
        keysValues(projected: linear(features, layer), heads: heads)
    }

    public func readsFeatures(width d: Int, heads: Int) -> Bool { false }

    public func crossAttention(
        _ q: Tensor, features: Tensor, _ layer: LinearWeights, clipOf: [Int], heads: Int, record: AttentionRecord
    ) -> AttentionOutput {
        crossAttention(
            q, keysValues(features: features, layer, heads: heads), clipOf: clipOf, heads: heads, record: record)
    }

    public func logits(_ x: Tensor, _ embedding: LinearWeights) -> Tensor { linear(x, embedding) }
}

/// A linear layer as a backend prepared it: the original weight `[n, k]` and bias `[n]`, plus
/// whatever the backend keeps to multiply by them fast (packed panels, a device buffer).
public final class LinearWeights: @unchecked Sendable {
    /// `[n, k]`, PyTorch's `[out, in]`.
    public let weight: Tensor
    /// `[n]`, or nil when the layer has none.
    public let bias: Tensor?
    /// The backend's prepared form of `weight`, if it made one.
    public let prepared: (any Sendable)?
    private let lock = NSLock()
    private var derived = [String: any Sendable]()

    public init(weight: Tensor, bias: Tensor?, prepared: (any Sendable)? = nil) {
        precondition(weight.rank >= 2, "LinearWeights: weight of shape \(weight.shape)")
        precondition(bias == nil || bias!.count == weight.shape[0], "LinearWeights: bias for \(weight.shape)")
        self.weight = weight; self.bias = bias; self.prepared = prepared
    }

    /// Outputs (n).
    public var outputs: Int { weight.shape[0] }
    /// Inputs (k).
    public var inputs: Int { weight.count / weight.shape[0] }

    /// A further prepared form a backend makes on first use and keeps with the weight (the CPU
    /// backend's per-head panels for reading cross-attention from features).
    public func derived<T: Sendable>(_ key: String, make: () -> T) -> T {
        lock.lock(); defer { lock.unlock() }
        if let made = derived[key] as? T { return made }
        let made = make()
        derived[key] = made
        return made
    }
}

/// LayerNorm's weight and bias `[d]`.
public struct NormWeights: Sendable {
    public var gamma: Tensor
    public var beta: Tensor
    public init(gamma: Tensor, beta: Tensor) {
        precondition(gamma.count == beta.count, "NormWeights: gamma \(gamma.shape), beta \(beta.shape)")
        self.gamma = gamma; self.beta = beta
    }
}

/// What an attention call records beside its output.
public struct AttentionRecord: OptionSet, Sendable {
    public let rawValue: Int
    public init(rawValue: Int) { self.rawValue = rawValue }
    /// The softmax pattern.
    public static let pattern = AttentionRecord(rawValue: 1)
    /// The scaled scores before the softmax (masked entries −∞).
    public static let scores = AttentionRecord(rawValue: 2)
}

/// An attention call's output `z` and what it recorded.
public struct AttentionOutput: Sendable {
    /// The weighted values, heads side by side: `[…, n, d]`.
    public var z: Tensor
    /// `[…, h, n, keys]` when `.pattern` was asked for.
    public var pattern: Tensor?
    /// `[…, h, n, keys]` when `.scores` was asked for.
    public var scores: Tensor?
    public init(z: Tensor, pattern: Tensor? = nil, scores: Tensor? = nil) {
        self.z = z; self.pattern = pattern; self.scores = scores
    }
}

/// Keys and values of causal self-attention that grow by the positions each decoding step adds,
/// in the layout of the backend that made it (`Backend.makeKeyValueCache`).
public protocol KeyValueCache: AnyObject, Sendable {
    /// Number of sequences.
    var sequences: Int { get }
    /// Positions it can hold.
    var capacity: Int { get }
    /// Keeps sequence `source[i]`'s first `length` positions as new sequence `i` (beam search
    /// reordering and pruning).
    func reorder(_ source: [Int], length: Int)
}

/// Cross-attention keys and values of a set of clips as a backend prepared them.
public struct PreparedKeysValues: Sendable {
    /// Clips (A) and frames per clip (F).
    public let clips: Int, frames: Int
    /// The backend's form (the CPU backend: per clip packed heads, or the `[A, F, 2d]` tensor).
    public let payload: any Sendable
    public init(clips: Int, frames: Int, payload: any Sendable) {
        self.clips = clips; self.frames = frames; self.payload = payload
    }
}
