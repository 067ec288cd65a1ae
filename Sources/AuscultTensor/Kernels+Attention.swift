// Scaled dot-product attention over strided head views, one head at a time.
import CAuscultKernels
import Dispatch
import Foundation

/// Multi-head attention on row-major activations whose heads are column blocks of width `dh`.
public enum Attention {
    /// Attention for one sequence: `out[nq, h·dh] = softmax(q kᵀ / √dh + mask) v`, head by head.
    ///
    /// - q: `[nq, ·]` rows with stride `ldq`; k, v: `[nk, ·]` with strides `ldk`, `ldv`.
    /// - causalOffset: when given, query row r sits at absolute position `causalOffset + r` and sees
    ///   keys `0…causalOffset + r` only (decoder self-attention with a KV cache).
    /// - scores: scratch of at least `nq · nk` floats.
    /// - patternOut: if given, receives the softmax pattern `[h, nq, nk]`.
    /// - scoresOut: if given, receives the pre-softmax scores `[h, nq, nk]` (masked entries −∞).
    ///
    /// Queries are scaled once by 1/√dh instead of queries and keys by dh^−¼ each as openai-whisper
    /// does: identical in exact arithmetic, within float32 rounding otherwise. On x86-64 each head's
    /// keys and values are packed (`PackedHead`) so a query row's result does not depend on the
    /// rows beside it.
    public static func forward(
        q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int,
        v: UnsafePointer<Float>, ldv: Int, nq: Int, nk: Int, heads: Int, dh: Int,
        causalOffset: Int?, out: UnsafeMutablePointer<Float>, ldo: Int,
        scores: UnsafeMutablePointer<Float>,
        patternOut: UnsafeMutablePointer<Float>? = nil,
        scoresOut: UnsafeMutablePointer<Float>? = nil,
        parallelSoftmax: Bool = true
    ) {
        #if arch(x86_64)
        let packed = PackedHead(nk: nk, dh: dh)
        defer { packed.deallocate() }
        for h in 0..<heads {
            packed.pack(k: k + h * dh, ldk: ldk, v: v + h * dh, ldv: ldv)
            packed.attend(
                q: q + h * dh, ldq: ldq, nq: nq, causalOffset: causalOffset, out: out + h * dh, ldo: ldo,
                scores: scores, patternOut: patternOut.map { $0 + h * nq * nk },
                scoresOut: scoresOut.map { $0 + h * nq * nk }, parallelSoftmax: parallelSoftmax)
        }
        #else
        forwardBLAS(
            q: q, ldq: ldq, k: k, ldk: ldk, v: v, ldv: ldv, nq: nq, nk: nk, heads: heads, dh: dh,
            causalOffset: causalOffset, out: out, ldo: ldo, scores: scores, patternOut: patternOut,
            scoresOut: scoresOut, parallelSoftmax: parallelSoftmax)
        #endif
    }

    /// `forward` through CBLAS (off x86-64): its rows' rounding depends on the rows beside them.
    static func forwardBLAS(
        q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int,
        v: UnsafePointer<Float>, ldv: Int, nq: Int, nk: Int, heads: Int, dh: Int,
        causalOffset: Int?, out: UnsafeMutablePointer<Float>, ldo: Int,
        scores: UnsafeMutablePointer<Float>,
        patternOut: UnsafeMutablePointer<Float>?, scoresOut: UnsafeMutablePointer<Float>?,
        parallelSoftmax: Bool
    ) {
        let alpha = 1 / Float(dh).squareRoot()
        let inv = UnsafeMutablePointer<Float>.allocate(capacity: nq)
        defer { inv.deallocate() }
        for h in 0..<heads {
            let qh = q + h * dh, kh = k + h * dh, vh = v + h * dh, oh = out + h * dh
            if nq == 1 {
                BLAS.gemv(n: nk, k: dh, alpha: alpha, w: kh, ldw: ldk, x: qh, y: scores)
            } else {
                BLAS.gemmNT(m: nq, n: nk, k: dh, alpha: alpha, a: qh, lda: ldq, b: kh, ldb: ldk, c: scores, ldc: nk)
            }
            if let off = causalOffset {
                for r in 0..<nq {
                    let first = off + r + 1
                    if first < nk { for j in first..<nk { scores[r * nk + j] = -.infinity } }
                }
            }
            if let s = scoresOut { (s + h * nq * nk).update(from: scores, count: nq * nk) }
            // Unnormalised exp, PV, then the dh-wide output rows scaled by 1/Σ: one pass fewer
            // over the nq×nk block than normalising first. The same arithmetic runs whether or
            // not a pattern is requested, so observing a run never changes its output.
            if parallelSoftmax {
                expRowsParallel(scores, rows: nq, cols: nk, inverseSums: inv)
            } else {
                Kernels.expRows(scores, rows: nq, cols: nk, stride: nk, inverseSums: inv)
            }
            if let p = patternOut {
                let dst = p + h * nq * nk
                for r in 0..<nq { for j in 0..<nk { dst[r * nk + j] = scores[r * nk + j] * inv[r] } }
            }
            if nq == 1 {
                // out_h[dh] = Vᵀ p: one gemv with V rows of stride ldv.
                BLAS.gemvT(n: nk, k: dh, w: vh, ldw: ldv, x: scores, y: oh)
            } else {
                BLAS.gemmNN(m: nq, n: dh, k: nk, a: scores, lda: nk, b: vh, ldb: ldv, c: oh, ldc: ldo)
            }
            for r in 0..<nq { Kernels.scale(oh + r * ldo, count: dh, by: inv[r]) }
        }
    }

    /// Self-attention of one long sequence (the encoder's 1500 frames) across cores.
    ///
    /// With dh = 64 on an AVX-512 CPU each worker runs the fused C kernel on its share of the
    /// query rows of every head: K and V packed once per head, six query rows' scores kept in L1
    /// through QKᵀ, exp and PV (14 ms per tiny.en layer on two cores against 23.5 ms for the
    /// OpenBLAS path, which re-packs K, V and the probabilities for every block of rows).
    /// Otherwise (head width, CPU, or `AUSCULT_PORTABLE=1`) work items are (head, block of 128
    /// query rows) through `forward`: a block's 128×1500 scores (0.8 MB) stay in L2, where whole
    /// 1500×1500 heads (9 MB each) made the encoder memory-bound (~300 ms vs ~200 ms).
    public static func forwardHeadsParallel(
        q: UnsafePointer<Float>, ldq: Int, k: UnsafePointer<Float>, ldk: Int,
        v: UnsafePointer<Float>, ldv: Int, n: Int, heads: Int, dh: Int,
        out: UnsafeMutablePointer<Float>, ldo: Int,
        patternOut: UnsafeMutablePointer<Float>? = nil,
        scoresOut: UnsafeMutablePointer<Float>? = nil,
        blockRows: Int = 128
    ) {
        _ = BLAS.configured
        let ptrs = SendablePointers(q: q, k: k, v: v, out: out, pattern: patternOut, scores: scoresOut)
        if dh == 64 && Kernels.avx512 {
            let workers = max(1, min(Threading.workers, n / 6))
            let alpha = 1 / Float(dh).squareRoot()
            DispatchQueue.concurrentPerform(iterations: workers) { w in
                let scratch = UnsafeMutablePointer<Float>.allocate(capacity: auscult_attention_scratch(n))
                defer { scratch.deallocate() }
                let r0 = n * w / workers, r1 = n * (w + 1) / workers
                for h in 0..<heads {
                    let at = h * n * n
                    auscult_attention_rows_avx512(
                        ptrs.q + h * dh, ldq, ptrs.k + h * dh, ldk, ptrs.v + h * dh, ldv,
                        r0, r1, n, alpha, ptrs.out + h * dh, ldo, scratch,
                        ptrs.scores.map { $0 + at }, ptrs.pattern.map { $0 + at })
                }
            }
            return
        }
        let blocks = (n + blockRows - 1) / blockRows
        let items = heads * blocks
        let workers = min(Threading.workers, items)
        #if arch(x86_64)
        // Each head's keys and values packed once for all its blocks of query rows.
        let packs = (0..<heads).map { _ in PackedHead(nk: n, dh: dh) }
        defer { packs.forEach { $0.deallocate() } }
        DispatchQueue.concurrentPerformIfNeeded(min(workers, heads)) { w in
            for h in stride(from: w, to: heads, by: min(workers, heads)) {
                packs[h].pack(k: ptrs.k + h * dh, ldk: ldk, v: ptrs.v + h * dh, ldv: ldv)
            }
        }
        #endif
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: blockRows * n)
            defer { scratch.deallocate() }
            var item = w
            while item < items {
                let h = item / blocks, r0 = (item % blocks) * blockRows
                let rows = min(blockRows, n - r0)
                let at = h * n * n + r0 * n
                #if arch(x86_64)
                packs[h].attend(
                    q: ptrs.q + r0 * ldq + h * dh, ldq: ldq, nq: rows, causalOffset: nil,
                    out: ptrs.out + r0 * ldo + h * dh, ldo: ldo, scores: scratch,
                    patternOut: ptrs.pattern.map { $0 + at }, scoresOut: ptrs.scores.map { $0 + at },
                    parallelSoftmax: false)
                #else
                forward(
                    q: ptrs.q + r0 * ldq + h * dh, ldq: ldq, k: ptrs.k + h * dh, ldk: ldk, v: ptrs.v + h * dh, ldv: ldv,
                    nq: rows, nk: n, heads: 1, dh: dh, causalOffset: nil, out: ptrs.out + r0 * ldo + h * dh, ldo: ldo,
                    scores: scratch, patternOut: ptrs.pattern.map { $0 + at }, scoresOut: ptrs.scores.map { $0 + at },
                    parallelSoftmax: false)
                #endif
                item += workers
            }
        }
    }

    /// Whether `packHeads` packs heads of width `dh` here (every x86-64 CPU; elsewhere only
    /// where the fused kernel runs), so callers can keep keys and values packed.
    public static func packsHeads(dh: Int) -> Bool {
        #if arch(x86_64)
        return true
        #else
        return dh == 64 && Kernels.avx512
        #endif
    }

    /// Keys and values `[nk, heads·dh]` (row strides ldk, ldv) packed head by head for
    /// `forwardPacked`: for the fused AVX-512 kernel when dh = 64 and it runs, else for the AVX2
    /// products (`PackedHead`); nil off x86-64 unless the fused kernel runs.
    ///
    /// Cross-attention reads the same clip's keys and values at every decoding step: packed once
    /// per generation, a group of g sequences reading one clip costs one pass over them per step
    /// (OpenBLAS re-packed both for every group, head and step: 30 % of a sweep's decoder phase).
    public static func packHeads(
        k: UnsafePointer<Float>, ldk: Int, v: UnsafePointer<Float>, ldv: Int,
        nk: Int, heads: Int, dh: Int
    ) -> [Float]? {
        #if arch(x86_64)
        if !(dh == 64 && Kernels.avx512) {
            // The row-invariant AVX2 products (`PackedHead`), any head width.
            let per = PackedHead.floats(nk: nk, dh: dh)
            return [Float](unsafeUninitializedCapacity: per * heads) { buf, count in
                let ptrs = SendablePointers(q: k, k: k, v: v, out: buf.baseAddress!, pattern: nil, scores: nil)
                let parts = nk * heads * dh >= 1 << 16 ? min(Threading.workers, heads) : 1
                DispatchQueue.concurrentPerformIfNeeded(parts) { w in
                    for h in stride(from: w, to: heads, by: parts) {
                        PackedHead(nk: nk, dh: dh, at: ptrs.out + h * per).pack(
                            k: ptrs.k + h * dh, ldk: ldk, v: ptrs.v + h * dh, ldv: ldv)
                    }
                }
                count = per * heads
            }
        }
        #endif
        guard dh == 64, Kernels.avx512 else { return nil }
        let per = auscult_attention_packed_floats(nk)
        return [Float](unsafeUninitializedCapacity: per * heads) { buf, count in
            // Heads across cores: one clip's 4.6 MB (tiny.en) is a copy bound by memory, and
            // a sweep packs 300 clips × 4 layers of them.
            let ptrs = SendablePointers(q: k, k: k, v: v, out: buf.baseAddress!, pattern: nil, scores: nil)
            let parts = nk * heads * dh >= 1 << 16 ? min(Threading.workers, heads) : 1
            DispatchQueue.concurrentPerformIfNeeded(parts) { w in
                for h in stride(from: w, to: heads, by: parts) {
                    auscult_attention_pack(ptrs.k + h * dh, ldk, ptrs.v + h * dh, ldv, nk, ptrs.out + h * per)
                }
            }
            count = per * heads
        }
    }

    /// `forward` without mask against keys and values from `packHeads`: `out[nq, heads·64]`,
    /// and the softmax pattern `[heads, nq, nk]` into `patternOut` when given. A query row's
    /// result does not depend on the other rows of the call.
    public static func forwardPacked(
        q: UnsafePointer<Float>, ldq: Int, packed: UnsafePointer<Float>, nq: Int, nk: Int,
        heads: Int, dh: Int = 64, out: UnsafeMutablePointer<Float>, ldo: Int,
        patternOut: UnsafeMutablePointer<Float>? = nil
    ) {
        #if arch(x86_64)
        if !(dh == 64 && Kernels.avx512) {
            let per = PackedHead.floats(nk: nk, dh: dh)
            let scores = UnsafeMutablePointer<Float>.allocate(capacity: nq * nk)
            defer { scores.deallocate() }
            for h in 0..<heads {
                PackedHead(nk: nk, dh: dh, at: UnsafeMutablePointer(mutating: packed) + h * per)
                    .attend(
                        q: q + h * dh, ldq: ldq, nq: nq, causalOffset: nil, out: out + h * dh, ldo: ldo, scores: scores,
                        patternOut: patternOut.map { $0 + h * nq * nk }, scoresOut: nil, parallelSoftmax: false)
            }
            return
        }
        #endif
        let per = auscult_attention_packed_floats(nk), dh = 64
        let scratch = UnsafeMutablePointer<Float>.allocate(capacity: auscult_attention_tile_floats(nk))
        defer { scratch.deallocate() }
        for h in 0..<heads {
            auscult_attention_packed_avx512(
                q + h * dh, ldq, packed + h * per, nq, nk, 1 / Float(dh).squareRoot(),
                out + h * dh, ldo, scratch, patternOut.map { $0 + h * nq * nk })
        }
    }

    /// Attention straight from features `x[nf, ldx]` (row width d, a multiple of 16) for `rows`
    /// query rows of `heads` heads: `y[r, h, d] = Σ_j softmax_j(alpha · u[r, h]·x[j]) x[j]`, with
    /// `u[rows, heads, d]` each query head pulled back through the key weight (see
    /// `cross_features_avx512.c`). `scratch` holds `fromFeaturesScratch(rows:heads:nf:)` floats. The softmax of
    /// row r, head h goes to `patternOut + h·headStride + r·rowStride` when given. The features
    /// are read once per call for all rows. Where `readsFeatures(d:)` (AVX-512, or AVX2 on any
    /// x86-64); a row's result does not depend on the other rows of the call.
    public static func fromFeatures(
        u: UnsafePointer<Float>, rows: Int, heads: Int, x: UnsafePointer<Float>, ldx: Int, nf: Int, d: Int,
        alpha: Float, y: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>,
        patternOut: UnsafeMutablePointer<Float>? = nil, headStride: Int = 0, rowStride: Int = 0
    ) {
        precondition(readsFeatures(d: d), "fromFeatures needs x86-64 and d % 8 == 0 (AVX-512: d % 16 == 0)")
        if Kernels.avx512 && d % 16 == 0 {
            auscult_cross_features_avx512(
                u, rows * heads, x, ldx, nf, d, alpha, y, scratch, patternOut, heads, headStride, rowStride)
        } else {
            auscult_cross_features_avx2(
                u, rows * heads, x, ldx, nf, d, alpha, y, scratch, patternOut, heads, headStride, rowStride)
        }
    }

    /// Whether `fromFeatures` runs for width `d` here.
    public static func readsFeatures(d: Int) -> Bool {
        #if arch(x86_64)
        return d % 8 == 0 && (Kernels.avx512 && d % 16 == 0 || Kernels.avx2)
        #else
        return false
        #endif
    }

    /// Floats of scratch `fromFeatures` needs.
    public static func fromFeaturesScratch(rows: Int, heads: Int, nf: Int) -> Int { rows * heads * (nf + 130) }

    /// `Kernels.expRows`, split across cores when the block is large.
    public static func expRowsParallel(
        _ x: UnsafeMutablePointer<Float>, rows: Int, cols: Int,
        inverseSums: UnsafeMutablePointer<Float>
    ) {
        let workers = rows * cols >= 1 << 18 ? Threading.workers : 1
        if workers <= 1 {
            Kernels.expRows(x, rows: rows, cols: cols, stride: cols, inverseSums: inverseSums)
            return
        }
        let p = UnsafeMutableSendablePointer(x), s = UnsafeMutableSendablePointer(inverseSums)
        DispatchQueue.concurrentPerform(iterations: workers) { w in
            let r0 = rows * w / workers, r1 = rows * (w + 1) / workers
            Kernels.expRows(p.pointer + r0 * cols, rows: r1 - r0, cols: cols, stride: cols, inverseSums: s.pointer + r0)
        }
    }
}

/// How many threads the Swift kernels split work across (the BLAS has its own pool).
public enum Threading {
    /// Defaults to the number of active processors; `AUSCULT_THREADS` overrides it.
    public static let workers: Int = {
        if let s = ProcessInfo.processInfo.environment["AUSCULT_THREADS"], let n = Int(s), n > 0 { return n }
        return ProcessInfo.processInfo.activeProcessorCount
    }()
}

/// Raw pointers handed to `concurrentPerform` workers that write disjoint head columns.
struct SendablePointers: @unchecked Sendable {
    let q: UnsafePointer<Float>, k: UnsafePointer<Float>, v: UnsafePointer<Float>
    let out: UnsafeMutablePointer<Float>
    let pattern: UnsafeMutablePointer<Float>?, scores: UnsafeMutablePointer<Float>?
}

/// A raw pointer that may cross into `concurrentPerform` workers writing disjoint ranges.
public struct UnsafeMutableSendablePointer: @unchecked Sendable {
    public let pointer: UnsafeMutablePointer<Float>
    public init(_ p: UnsafeMutablePointer<Float>) { pointer = p }
}
