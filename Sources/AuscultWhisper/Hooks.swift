// The road hook points drive on: every forward step passes its activation through a named point
// (docs/hook-points.md). With no handler attached a run pays one nil check per point.
import AuscultTensor

/// Where in a run an activation was produced.
public struct HookContext: Sendable {
    /// Decoding step (0 for the encoder and for the prompt pass).
    public var step: Int
    /// Absolute position of the first row along T (decoder) or F (encoder, always 0).
    public var positionOffset: Int
    /// For each row of the batch axis, the index of the clip it belongs to (beams and finished
    /// sequences make decoder rows differ from clips).
    public var clips: [Int]
    /// For each row, the index of the sequence it continues among the rows the run started with
    /// (rows leave the batch as sequences finish; experiments that batch several conditions
    /// tell them apart by it). Encoder rows: the clip index.
    public var sequences: [Int]
    public init(step: Int = 0, positionOffset: Int = 0, clips: [Int] = [], sequences: [Int]? = nil) {
        self.step = step; self.positionOffset = positionOffset; self.clips = clips
        self.sequences = sequences ?? clips
    }
}

/// Observes, and may replace in place, the activations of one run.
///
/// Activations arrive batched: `[B, F, d]` for encoder points, `[S, n, d]` for decoder points
/// (S sequences, n positions computed in this step, starting at `context.positionOffset`).
public protocol HookHandler: AnyObject {
    /// Whether anything listens at `name`; optional work (attention patterns) is done only then.
    func isActive(_ name: String) -> Bool
    /// Sees the activation at `name`; may modify it, keeping its shape.
    func visit(_ name: String, _ x: inout Tensor, _ context: HookContext) throws
}

/// A hook that replaced an activation with one of another shape.
public struct HookShapeError: AuscultError, Sendable {
    public enum Code: String, Sendable { case shapeChanged }
    public var hook: String
    public var expected: [Int]
    public var got: [Int]
    public var code: Code { .shapeChanged }
    public var message: String { "hook '\(hook)' returned shape \(got), expected \(expected)" }
    public var underlying: (any Error)? { nil }
}

extension Optional where Wrapped == HookHandler {
    /// Passes `x` through the handler at `name` (if any) and checks the shape it leaves.
    @inline(__always)
    func run(_ name: @autoclosure () -> String, _ x: inout Tensor, _ ctx: HookContext) throws {
        guard let h = self else { return }
        let n = name()
        let shape = x.shape
        try h.visit(n, &x, ctx)
        if x.shape != shape { throw HookShapeError(hook: n, expected: shape, got: x.shape) }
    }

    /// Passes a read-only activation (attention patterns and scores, LayerNorm scales: values the
    /// forward pass does not read back) through the handler; a hook that changes it stops the run
    /// instead of silently having no effect.
    func runReadOnly(_ name: String, _ x: inout Tensor, _ ctx: HookContext) throws {
        guard self != nil else { return }
        let seen = x
        try run(name, &x, ctx)
        if x != seen {
            throw HookError(
                .readOnly,
                "hook '\(name)' changed a read-only activation (attention patterns and scores and LayerNorm scales are "
                    + "observed, not read back); intervene on attn.hook_z, attn.hook_result, ln*.hook_normalized or "
                    + "the block outputs instead"
            )
        }
    }

    @inline(__always)
    func isActive(_ name: @autoclosure () -> String) -> Bool {
        guard let h = self else { return false }
        return h.isActive(name())
    }
}

/// Records the activations whose names pass `filter`.
///
/// Decoder steps of one generation are joined along T as they arrive (`positionOffset > 0`):
/// `[S, T, …]` tensors along axis 1, attention patterns `[S, h, T, K]` along axis 2 with the key
/// axis zero-padded to the longest step (zeros are exactly the causal mask's probabilities).
/// The batch must keep its rows across steps (one clip, greedy), as `runWithCache` does.
public final class ActivationRecorder: HookHandler {
    public let filter: (String) -> Bool
    /// Recorded activations: encoder ones `[B, F, …]`, decoder ones `[S, T, …]`.
    public private(set) var store: [String: Tensor] = [:]
    public init(_ filter: @escaping (String) -> Bool) { self.filter = filter }
    public func isActive(_ name: String) -> Bool { filter(name) }
    public func visit(_ name: String, _ x: inout Tensor, _ context: HookContext) throws {
        guard filter(name) else { return }
        if let old = store[name], context.positionOffset > 0, old.rank == x.rank, old.rank >= 2,
            old.shape[0] == x.shape[0]
        {
            store[name] = Tensor.joined(old, x, axis: old.rank == 4 ? 2 : 1)
        } else {
            store[name] = x
        }
    }
}
