// A hook handler that applies a different ablation to each row of a batch, so the variants of a
// sweep (conditions × clips) run together instead of one forward pass each.
import AuscultTensor
import AuscultWhisper

/// What replaces an ablated value.
public enum Replacement: Sendable {
    case zero
    /// Values by absolute position `[P, width]` (a row of width is used for every position when P == 1).
    case table(Tensor)
    /// The same value in another row of the batch, named by its sequence id (a shadow run of
    /// the same tokens on the donor clip's audio).
    case row(Int)
}

/// One row's ablation.
public enum RowOp: Sendable {
    /// The blocks return their input.
    case skip(side: Side, blocks: Set<Int>)
    /// What `block` writes to the residual stream (resid_post − resid_pre) is replaced.
    case blockWrite(side: Side, block: Int, Replacement)
    /// The activation at `hook` is replaced in the columns `columns` (nil: all), at the absolute
    /// positions (decoder) or frames (encoder) `positions` (nil: all).
    case hook(String, columns: [Int]?, Replacement, positions: Set<Int>? = nil)
}

/// Applies `ops[sequence id]` to the rows of every batch it sees; rows without an op run clean.
public final class RowInterventions: HookHandler, @unchecked Sendable {
    private var byName: [String: [(seq: Int, op: RowOp)]] = [:]
    private var saved: [String: [Int: [Float]]] = [:]
    /// A handler that sees activations after the ablations (a recorder).
    public var next: HookHandler?

    public init(_ ops: [Int: RowOp], next: HookHandler? = nil) {
        self.next = next
        for (seq, op) in ops.sorted(by: { $0.key < $1.key }) {
            switch op {
            case .skip(let side, let blocks):
                for b in blocks { add("\(side.rawValue).blocks.\(b)", seq, op) }
            case .blockWrite(let side, let b, _):
                add("\(side.rawValue).blocks.\(b)", seq, op)
            case .hook(let name, _, _, _):
                byName[name, default: []].append((seq, op))
            }
        }
    }

    private func add(_ block: String, _ seq: Int, _ op: RowOp) {
        byName[block + ".hook_resid_pre", default: []].append((seq, op))
        byName[block + ".hook_resid_post", default: []].append((seq, op))
    }

    public func isActive(_ name: String) -> Bool { byName[name] != nil || (next?.isActive(name) ?? false) }

    public func visit(_ name: String, _ x: inout Tensor, _ context: HookContext) throws {
        if let ops = byName[name] { try apply(ops, name, &x, context) }
        try next?.visit(name, &x, context)
    }

    private func apply(_ ops: [(seq: Int, op: RowOp)], _ name: String, _ x: inout Tensor, _ ctx: HookContext) throws {
        let rows = x.shape[0], seqLen = x.rank >= 3 ? x.shape[1] : 1
        let rowSize = x.count / rows, inner = rowSize / seqLen
        var rowOf = [Int: Int]()
        for (r, s) in ctx.sequences.enumerated() { rowOf[s] = r }
        let isPre = name.hasSuffix(".hook_resid_pre"), isPost = name.hasSuffix(".hook_resid_post")
        let block = isPre || isPost ? String(name[..<name.range(of: ".hook_resid_")!.lowerBound]) : ""
        // Block-level ops remember every row's input (shadow rows' too: their writes are donors).
        var ops = ops
        if isPre {
            let blockOps = ops.contains { if case .hook = $0.op { return false } else { return true } }
            if blockOps {
                var keep = saved[block] ?? [:]
                for r in 0..<rows { keep[ctx.sequences[r]] = Array(x.storage[(r * rowSize)..<((r + 1) * rowSize)]) }
                saved[block] = keep
            }
            // Only hook ops replace the block input itself.
            ops = ops.filter { if case .hook = $0.op { return true } else { return false } }
            if ops.isEmpty { return }
        }
        let original = isPost ? x.storage : []
        try x.storage.withUnsafeMutableBufferPointer { buf in
            for (seq, op) in ops {
                guard let r = rowOf[seq] else { continue }  // finished sequences have left the batch
                let base = r * rowSize
                func fill(_ rep: Replacement, columns: [Int]?, delta: Bool, positions: Set<Int>? = nil) throws {
                    let cols = columns ?? Array(0..<inner)
                    let pre = delta ? saved[block]?[seq] : nil
                    if delta && pre == nil {
                        throw LensError(.invalidArgument, "\(block): block input of row \(seq) not seen")
                    }
                    for s in 0..<seqLen where positions?.contains(ctx.positionOffset + s) ?? true {
                        let o = base + s * inner, pos = ctx.positionOffset + s
                        switch rep {
                        case .zero:
                            for j in cols { buf[o + j] = delta ? pre![s * inner + j] : 0 }
                        case .table(let t):
                            let w = t.shape.last!, p = t.count / w
                            let at = (p == 1 ? 0 : min(pos, p - 1)) * w
                            for j in cols { buf[o + j] = (delta ? pre![s * inner + j] : 0) + t.storage[at + j] }
                        case .row(let donor):
                            guard let dr = rowOf[donor] else {
                                throw LensError(
                                    .invalidArgument, "shadow row \(donor) of row \(seq) is not in the batch")
                            }
                            let d0 = dr * rowSize + s * inner
                            if delta {
                                guard let dpre = saved[block]?[donor] else {
                                    throw LensError(.invalidArgument, "\(block): shadow input not seen")
                                }
                                for j in cols {
                                    buf[o + j] = pre![s * inner + j] + (original[d0 + j] - dpre[s * inner + j])
                                }
                            } else {
                                for j in cols { buf[o + j] = buf[d0 + j] }
                            }
                        }
                    }
                }
                switch op {
                case .skip: try fill(.zero, columns: nil, delta: true)
                case .blockWrite(_, _, let rep): try fill(rep, columns: nil, delta: true)
                case .hook(_, let columns, let rep, let positions):
                    try fill(rep, columns: columns, delta: false, positions: positions)
                }
            }
        }
    }
}
