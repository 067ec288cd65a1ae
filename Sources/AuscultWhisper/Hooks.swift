// The road hook points drive on: every forward step passes its activation through a named point
// (DESIGN.md §3). With no handler attached a run pays one nil check per point.
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
    public init(step: Int = 0, positionOffset: Int = 0, clips: [Int] = []) {
        self.step = step; self.positionOffset = positionOffset; self.clips = clips
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
public struct HookShapeError: Error, CustomStringConvertible, Sendable {
    public var hook: String
    public var expected: [Int]
    public var got: [Int]
    public var description: String { "hook '\(hook)' returned shape \(got), expected \(expected)" }
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

    @inline(__always)
    func isActive(_ name: @autoclosure () -> String) -> Bool {
        guard let h = self else { return false }
        return h.isActive(name())
    }
}

/// Records the activations whose names pass `filter`; decoder steps concatenate along T.
public final class ActivationRecorder: HookHandler {
    public let filter: (String) -> Bool
    /// Recorded activations: encoder ones `[B, F, …]`, decoder ones `[S, T, …]`.
    public private(set) var store: [String: Tensor] = [:]
    public init(_ filter: @escaping (String) -> Bool) { self.filter = filter }
    public func isActive(_ name: String) -> Bool { filter(name) }
    public func visit(_ name: String, _ x: inout Tensor, _ context: HookContext) throws {
        guard filter(name) else { return }
        if let old = store[name], context.positionOffset > 0, old.rank >= 2, x.rank == old.rank {
            store[name] = Self.concatAxis1(old, x)
        } else {
            store[name] = x
        }
    }

    /// Concatenates `[S, a, …]` and `[S, b, …]` into `[S, a+b, …]`.
    static func concatAxis1(_ a: Tensor, _ b: Tensor) -> Tensor {
        let s = a.shape[0]
        let ia = a.count / s, ib = b.count / s
        var out = [Float]()
        out.reserveCapacity(a.count + b.count)
        for i in 0..<s {
            out.append(contentsOf: a.storage[(i * ia)..<((i + 1) * ia)])
            out.append(contentsOf: b.storage[(i * ib)..<((i + 1) * ib)])
        }
        var shape = a.shape
        shape[1] += b.shape[1]
        return Tensor(shape: shape, storage: out)
    }
}
