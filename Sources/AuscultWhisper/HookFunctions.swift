// Hooks as Swift closures: the ergonomic front of HookHandler for one run.
import AuscultTensor

/// What a closure hook is told besides the activation.
public struct HookCall: Sendable {
    /// Canonical hook name.
    public var name: String
    /// Step, absolute position of the first row, and the clip index of each batch row.
    public var context: HookContext
}

/// Closures attached to hook points by name, alias, glob or predicate. A closure sees the
/// activation and may return a replacement of the same shape (nil leaves it as it is).
/// Scoped to the runs it is passed to: nothing is registered globally, so nothing leaks.
///
///     let hooks = try HookFunctions(model: model)
///         .add("encoder.blocks.2.mlp.1") { x, call in Tensor(zeros: x.shape) }
///         .add(where: { $0.hasSuffix("hook_resid_post") }) { x, call in print(call.name, x.shape); return nil }
public final class HookFunctions: HookHandler, @unchecked Sendable {
    public typealias Body = (Tensor, HookCall) throws -> Tensor?
    private var entries: [(matches: (String) -> Bool, body: Body)] = []
    private let registry: HookRegistry

    public init(model: Whisper) { registry = HookRegistry(dims: model.dims) }

    /// Attaches `body` to the hook points `pattern` names (name, alias, glob, or comma-separated list);
    /// an unknown name throws with the closest valid ones.
    @discardableResult
    public func add(_ pattern: String, _ body: @escaping Body) throws -> HookFunctions {
        let names = Set(try registry.resolveList(pattern))
        entries.append(({ names.contains($0) }, body))
        return self
    }

    /// Attaches `body` to every hook point whose name satisfies `predicate`.
    @discardableResult
    public func add(where predicate: @escaping (String) -> Bool, _ body: @escaping Body) -> HookFunctions {
        entries.append((predicate, body))
        return self
    }

    public func isActive(_ name: String) -> Bool { entries.contains { $0.matches(name) } }

    public func visit(_ name: String, _ x: inout Tensor, _ context: HookContext) throws {
        for e in entries where e.matches(name) {
            if let r = try e.body(x, HookCall(name: name, context: context)) { x = r }
        }
    }
}

/// Several handlers in one run, each seeing the activation in turn (the first one's edit is what
/// the second sees).
public final class HookChain: HookHandler, @unchecked Sendable {
    public let handlers: [HookHandler]
    public init(_ handlers: [HookHandler]) { self.handlers = handlers }
    public func isActive(_ name: String) -> Bool { handlers.contains { $0.isActive(name) } }
    public func visit(_ name: String, _ x: inout Tensor, _ context: HookContext) throws {
        for h in handlers where h.isActive(name) { try h.visit(name, &x, context) }
    }
}
