// The CPU backend's attention forms: the encoder's, the decoder's cached self-attention and the
// decoder's cross-attention over packed keys and values, projected ones, or the features.
import CAuscultKernels
import Dispatch

extension CPUBackend {
    public func selfAttention(_ qkv: Tensor, heads: Int, record: AttentionRecord) -> AttentionOutput {
        precondition(qkv.rank == 3 && qkv.shape[2] % (3 * heads) == 0, "selfAttention: qkv \(qkv.shape)")
        let batch = qkv.shape[0], f = qkv.shape[1], d = qkv.shape[2] / 3, dh = d / heads
        let wantPattern = record.contains(.pattern), wantScores = record.contains(.scores)
        var pattern = wantPattern ? Tensor(zeros: [batch, heads, f, f]) : Tensor(zeros: [0])
        var scores = wantScores ? Tensor(zeros: [batch, heads, f, f]) : Tensor(zeros: [0])
        var z = Tensor(zeros: [batch, f, d])
        qkv.storage.withUnsafeBufferPointer { a in
            z.storage.withUnsafeMutableBufferPointer { o in
                pattern.storage.withUnsafeMutableBufferPointer { p in
                    scores.storage.withUnsafeMutableBufferPointer { sc in
                        for bi in 0..<batch {
                            let base = a.baseAddress! + bi * f * 3 * d
                            Attention.forwardHeadsParallel(
                                q: base, ldq: 3 * d, k: base + d, ldk: 3 * d, v: base + 2 * d, ldv: 3 * d,
                                n: f, heads: heads, dh: dh, out: o.baseAddress! + bi * f * d, ldo: d,
                                patternOut: wantPattern ? p.baseAddress! + bi * heads * f * f : nil,
                                scoresOut: wantScores ? sc.baseAddress! + bi * heads * f * f : nil)
                        }
                    }
                }
            }
        }
        return AttentionOutput(z: z, pattern: wantPattern ? pattern : nil, scores: wantScores ? scores : nil)
    }

    public func makeKeyValueCache(sequences: Int, capacity: Int, width: Int) -> any KeyValueCache {
        CPUKeyValueCache(sequences: sequences, capacity: capacity, d: width)
    }

    public func cachedSelfAttention(
        _ qkv: Tensor, cache: any KeyValueCache, length offset: Int, heads: Int, record: AttentionRecord
    ) -> AttentionOutput {
        guard let cache = cache as? CPUKeyValueCache else {
            preconditionFailure("cachedSelfAttention: a cache made by another backend (\(type(of: cache)))")
        }
        let s = qkv.shape[0], n = qkv.shape[1], d = cache.d, cap = cache.capacity, total = offset + n
        precondition(
            qkv.rank == 3 && qkv.shape[2] == 3 * d && s == cache.sequences && total <= cap,
            "cachedSelfAttention: qkv \(qkv.shape) at \(offset) for a cache of \(cache.sequences)×\(cap)×\(d)")
        cache.append(qkv, at: offset)
        let wantPattern = record.contains(.pattern)
        var pattern = wantPattern ? Tensor(zeros: [s, heads, n, total]) : Tensor(zeros: [0])
        var z = Tensor(zeros: [s, n, d])
        // Sequences are independent: split them across workers, each with its own score scratch
        // (a 240-row step spent most of its attention time on one core otherwise).
        let workers = s >= 4 ? min(Threading.workers, s) : 1
        let ks = cache.keyStride, keys = cache.keys, values = cache.values
        qkv.storage.withUnsafeBufferPointer { q in
            keys.withUnsafeBufferPointer { kc in
                values.withUnsafeBufferPointer { vc in
                    z.storage.withUnsafeMutableBufferPointer { o in
                        pattern.storage.withUnsafeMutableBufferPointer { p in
                            let ptr = SendablePointers(
                                q: q.baseAddress!, k: kc.baseAddress!, v: vc.baseAddress!, out: o.baseAddress!,
                                pattern: p.baseAddress, scores: nil)
                            DispatchQueue.concurrentPerformIfNeeded(workers) { w in
                                var scratch = [Float](repeating: 0, count: n * total)
                                scratch.withUnsafeMutableBufferPointer { sc in
                                    for i in (s * w / workers)..<(s * (w + 1) / workers) {
                                        Attention.forwardCached(
                                            q: ptr.q + i * n * 3 * d, ldq: 3 * d,
                                            keysT: ptr.k + i * d * ks, ldkT: ks,
                                            v: ptr.v + i * cap * d, ldv: d,
                                            nq: n, nk: total, heads: heads, dh: d / heads, causalOffset: offset,
                                            out: ptr.out + i * n * d, ldo: d, scores: sc.baseAddress!,
                                            patternOut: wantPattern ? ptr.pattern! + i * heads * n * total : nil,
                                            parallelSoftmax: workers == 1)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
        return AttentionOutput(z: z, pattern: wantPattern ? pattern : nil)
    }

    /// Whether keys and values of head width `dh` are packed for the packed kernels here.
    func packs(dh: Int) -> Bool { packsKeysValues && Attention.packsHeads(dh: dh) }

    /// Keys and values of the clips of `kv` `[A, F, 2d]` packed per clip as `Attention.packHeads`
    /// lays them out.
    private func packed(_ kv: Tensor, heads: Int) -> [[Float]] {
        let a = kv.shape[0], f = kv.shape[1], d = kv.shape[2] / 2
        return kv.storage.withUnsafeBufferPointer { p in
            (0..<a).map { clip in
                let base = p.baseAddress! + clip * f * 2 * d
                return Attention.packHeads(
                    k: base, ldk: 2 * d, v: base + d, ldv: 2 * d, nk: f, heads: heads, dh: d / heads)!
            }
        }
    }

    public func keysValues(projected kv: Tensor, heads: Int) -> PreparedKeysValues {
        precondition(kv.rank == 3 && kv.shape[2] % (2 * heads) == 0, "keysValues: \(kv.shape)")
        let a = kv.shape[0], f = kv.shape[1], d = kv.shape[2] / 2
        if packs(dh: d / heads) { return PreparedKeysValues(clips: a, frames: f, payload: packed(kv, heads: heads)) }
        return PreparedKeysValues(clips: a, frames: f, payload: kv)
    }

    /// Where keys and values are packed, they are made clip by clip: the unpacked `[F, 2d]`
    /// product is a 4.6 MB scratch, never a wave-sized tensor (a sweep's 160-clip wave then holds
    /// 2.9 GB instead of 5.8 GB; freshly touched memory is slow here).
    public func keysValues(features: Tensor, _ layer: LinearWeights, heads: Int) -> PreparedKeysValues {
        let a = features.shape[0], f = features.shape[1], d = layer.outputs / 2
        guard packs(dh: d / heads) else { return keysValues(projected: linear(features, layer), heads: heads) }
        let clips = (0..<a).map { c in packed(linear(features.rows(c..<(c + 1)), layer), heads: heads)[0] }
        return PreparedKeysValues(clips: a, frames: f, payload: clips)
    }

    public func crossAttention(
        _ q: Tensor, _ kv: PreparedKeysValues, clipOf: [Int], heads: Int, record: AttentionRecord
    ) -> AttentionOutput {
        let d = q.shape[2], f = kv.frames, dh = d / heads
        var out = AttentionOutput(z: Tensor(zeros: [0]))
        if let clips = kv.payload as? [[Float]] {
            out = attendByClip(q, frames: f, clipOf: clipOf, heads: heads, record: record) { job in
                clips[job.clip].withUnsafeBufferPointer { pb in
                    Attention.forwardPacked(
                        q: job.q, ldq: d, packed: pb.baseAddress!, nq: job.rows, nk: f, heads: heads, dh: dh,
                        out: job.out, ldo: d, patternOut: job.pattern)
                }
            }
        } else if let projected = kv.payload as? Tensor {
            projected.storage.withUnsafeBufferPointer { kvp in
                let base = SendablePointers(
                    q: kvp.baseAddress!, k: kvp.baseAddress!, v: kvp.baseAddress!,
                    out: UnsafeMutablePointer(mutating: kvp.baseAddress!), pattern: nil, scores: nil)
                out = attendByClip(q, frames: f, clipOf: clipOf, heads: heads, record: record) { job in
                    var scratch = [Float](repeating: 0, count: job.rows * f)
                    let a = base.k + job.clip * f * 2 * d
                    scratch.withUnsafeMutableBufferPointer { sc in
                        Attention.forward(
                            q: job.q, ldq: d, k: a, ldk: 2 * d, v: a + d, ldv: 2 * d, nq: job.rows, nk: f,
                            heads: heads, dh: dh, causalOffset: nil, out: job.out, ldo: d,
                            scores: sc.baseAddress!, patternOut: job.pattern, parallelSoftmax: job.alone)
                    }
                }
            }
        } else {
            preconditionFailure("crossAttention: keys and values prepared by another backend (\(type(of: kv.payload)))")
        }
        return out
    }

    /// One attention call's operands: `rows` query rows at `q` (row stride d) of sequences reading
    /// clip `clip`, their output at `out`, their pattern rows at `pattern` when one is recorded;
    /// `alone` when no other call runs beside it (it may then use every worker itself).
    struct ClipAttention: @unchecked Sendable {
        let q: UnsafePointer<Float>
        let rows: Int
        let clip: Int
        let out: UnsafeMutablePointer<Float>
        let pattern: UnsafeMutablePointer<Float>?
        let alone: Bool
    }

    /// Runs `attend` once per group of sequences reading the same clip, so each clip's keys and
    /// values are read once per step for all its sequences (a sweep's decoder conditions: 12 per
    /// clip), whatever form holds them: the group's query rows are gathered, attended together
    /// and scattered back into `z` `[s, n, d]`. With a pattern to record, every sequence is its
    /// own group (its pattern rows `[heads, n, F]` are contiguous). The kernels' arithmetic for
    /// a query row does not depend on the rows beside it, so grouping never changes a bit.
    func attendByClip(
        _ q: Tensor, frames f: Int, clipOf: [Int], heads: Int, record: AttentionRecord,
        attend: @Sendable (ClipAttention) -> Void
    ) -> AttentionOutput {
        let s = q.shape[0], n = q.shape[1], d = q.shape[2]
        precondition(clipOf.count == s, "crossAttention: \(s) sequences, \(clipOf.count) clip indices")
        let wantPattern = record.contains(.pattern)
        var pattern = wantPattern ? Tensor(zeros: [s, heads, n, f]) : Tensor(zeros: [0])
        var z = Tensor(zeros: [s, n, d])
        let groups = wantPattern ? (0..<s).map { [$0] } : Self.groupsByClip(clipOf)
        let workers = min(Threading.workers, groups.count)
        q.storage.withUnsafeBufferPointer { qp in
            z.storage.withUnsafeMutableBufferPointer { o in
                pattern.storage.withUnsafeMutableBufferPointer { pp in
                    let ptr = SendablePointers(
                        q: qp.baseAddress!, k: qp.baseAddress!, v: qp.baseAddress!, out: o.baseAddress!,
                        pattern: wantPattern ? pp.baseAddress! : nil, scores: nil)
                    DispatchQueue.concurrentPerformIfNeeded(workers) { w in
                        var gi = w
                        while gi < groups.count {
                            let rows = groups[gi], clip = clipOf[rows[0]]
                            if rows.count == 1 {
                                let r = rows[0]
                                attend(
                                    ClipAttention(
                                        q: ptr.q + r * n * d, rows: n, clip: clip, out: ptr.out + r * n * d,
                                        pattern: ptr.pattern.map { $0 + r * heads * n * f }, alone: workers == 1))
                            } else {
                                let g = rows.count * n
                                var qg = [Float](repeating: 0, count: g * d), og = [Float](repeating: 0, count: g * d)
                                for (k, r) in rows.enumerated() {
                                    for j in 0..<(n * d) { qg[k * n * d + j] = ptr.q[r * n * d + j] }
                                }
                                qg.withUnsafeBufferPointer { qb in
                                    og.withUnsafeMutableBufferPointer { ob in
                                        attend(
                                            ClipAttention(
                                                q: qb.baseAddress!, rows: g, clip: clip, out: ob.baseAddress!,
                                                pattern: nil, alone: workers == 1))
                                    }
                                }
                                for (k, r) in rows.enumerated() {
                                    for j in 0..<(n * d) { ptr.out[r * n * d + j] = og[k * n * d + j] }
                                }
                            }
                            gi += workers
                        }
                    }
                }
            }
        }
        return AttentionOutput(z: z, pattern: wantPattern ? pattern : nil)
    }

    /// Sequences grouped by the clip they read, in order of first appearance.
    static func groupsByClip(_ clipOf: [Int]) -> [[Int]] {
        var groups = [[Int]](), groupOf = [Int: Int]()
        for (i, clip) in clipOf.enumerated() {
            if let g = groupOf[clip] { groups[g].append(i) } else { groupOf[clip] = groups.count; groups.append([i]) }
        }
        return groups
    }
}

/// The CPU backend's self-attention cache: per sequence, keys transposed `[d, keyStride]` (key j
/// in column j) and values as rows `[capacity, d]`, so both products of attention read them in
/// place (`Attention.forwardCached`).
final class CPUKeyValueCache: KeyValueCache, @unchecked Sendable {
    private(set) var sequences: Int
    let capacity: Int
    /// Capacity rounded up to 16, the row stride of the transposed keys.
    let keyStride: Int
    let d: Int
    /// `[S, d, keyStride]`.
    var keys: [Float]
    /// `[S, capacity, d]`.
    var values: [Float]

    init(sequences: Int, capacity: Int, d: Int) {
        self.sequences = sequences
        self.capacity = capacity
        self.keyStride = (capacity + 15) / 16 * 16
        self.d = d
        // Left unwritten: attention reads only the positions steps have filled (and multiplies,
        // without keeping, key columns up to the next multiple of 16). Value pages of positions no
        // sequence reaches (most of the 227 of a 160-row batch) are never touched; every key page
        // is, as each step writes a column into all d rows.
        let nk = sequences * keyStride * d, nv = sequences * capacity * d
        keys = [Float](unsafeUninitializedCapacity: nk) { _, count in count = nk }
        values = [Float](unsafeUninitializedCapacity: nv) { _, count in count = nv }
    }

    /// Writes the keys (as columns) and values (as rows) of `qkv` `[S, n, 3d]` at `offset`.
    func append(_ qkv: Tensor, at offset: Int) {
        let s = qkv.shape[0], n = qkv.shape[1], d = self.d, ks = keyStride, cap = capacity
        qkv.storage.withUnsafeBufferPointer { src in
            keys.withUnsafeMutableBufferPointer { kc in
                values.withUnsafeMutableBufferPointer { vc in
                    for i in 0..<s {
                        for j in 0..<n {
                            let row = src.baseAddress! + (i * n + j) * 3 * d
                            let kcol = kc.baseAddress! + i * d * ks + offset + j
                            for c in 0..<d { kcol[c * ks] = row[d + c] }
                            (vc.baseAddress! + (i * cap + offset + j) * d).update(from: row + 2 * d, count: d)
                        }
                    }
                }
            }
        }
    }

    /// Only the `length` filled positions move (for keys, the first `length` columns of each of
    /// the d rows). Pruning (increasing `source`) compacts in place; a general gather goes
    /// through one scratch copy.
    func reorder(_ source: [Int], length: Int) {
        let increasing =
            zip(source, source.dropFirst()).allSatisfy { $0 < $1 }
            && source.enumerated().allSatisfy { $0.offset <= $0.element }
        // (floats per sequence, runs per sequence, run length, run stride)
        let layouts = [(keyStride * d, d, length, keyStride), (capacity * d, 1, length * d, 0)]
        for which in 0..<2 {
            let (stride, runs, run, runStride) = layouts[which]
            func copy(_ dst: UnsafeMutablePointer<Float>, _ src: UnsafePointer<Float>) {
                for r in 0..<runs { (dst + r * runStride).update(from: src + r * runStride, count: run) }
            }
            func move(_ buf: inout [Float]) {
                if increasing {
                    buf.withUnsafeMutableBufferPointer { b in
                        for (i, s) in source.enumerated() where i != s {
                            copy(b.baseAddress! + i * stride, b.baseAddress! + s * stride)
                        }
                    }
                    buf.removeLast(buf.count - source.count * stride)
                } else {
                    let old = buf
                    buf = [Float](unsafeUninitializedCapacity: source.count * stride) { _, count in
                        count = source.count * stride
                    }
                    buf.withUnsafeMutableBufferPointer { dst in
                        old.withUnsafeBufferPointer { src in
                            for (i, s) in source.enumerated() {
                                copy(dst.baseAddress! + i * stride, src.baseAddress! + s * stride)
                            }
                        }
                    }
                }
            }
            if which == 0 { move(&keys) } else { move(&values) }
        }
        sequences = source.count
    }
}
