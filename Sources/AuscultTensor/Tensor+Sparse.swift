// Sparse rows: the few entries of a `[rows, columns]` matrix that are not zero (a sparse
// autoencoder's active latents), selected from a dense matrix and multiplied with dense ones.
//
// With k = 32 of 3072 latents active, an SAE step's decoder product, its backward pass and the
// encoder's weight gradient touch 1 % of what dense products would: at B = 512, d_in = 384 the
// dense step is six 604 M-MAC products, the sparse one a single such product plus ~6 M-MAC
// gathers and scatters per term.
import Dispatch
import Foundation

/// The entries of a `[rows, columns]` matrix that are kept, as (row, column, value) triples in
/// row order (within a row, in the order they were appended).
public struct SparseEntries: Sendable {
    public private(set) var row: [Int32] = []
    public private(set) var column: [Int32] = []
    public private(set) var value: [Float] = []

    public init() {}

    /// Number of entries.
    public var count: Int { row.count }

    public mutating func reserve(_ n: Int) {
        row.reserveCapacity(n)
        column.reserveCapacity(n)
        value.reserveCapacity(n)
    }

    /// Appends entry (`r`, `c`) with value `v`; rows must not decrease.
    public mutating func append(_ r: Int, _ c: Int, _ v: Float) {
        row.append(Int32(r))
        column.append(Int32(c))
        value.append(v)
    }

    /// The first entry of each row, and `count` at the end (`rows + 1` bounds).
    public func rowStarts(_ rows: Int) -> [Int] {
        var s = [Int](repeating: 0, count: rows + 1)
        for r in row { s[Int(r) + 1] += 1 }
        for r in 0..<rows { s[r + 1] += s[r] }
        return s
    }

    /// The dense `[rows, columns]` matrix (zero elsewhere).
    public func dense(rows: Int, columns: Int) -> Tensor {
        var out = [Float](repeating: 0, count: rows * columns)
        for e in 0..<count { out[Int(row[e]) * columns + Int(column[e])] = value[e] }
        return Tensor(shape: [rows, columns], storage: out)
    }

    /// `base + S · w` for this sparse `S` `[B, m]` and `w` `[m, d]`: row r of `base` `[B, d]`
    /// plus, entry by entry in order, value · row `column` of `w`.
    public func product(_ w: Tensor, adding base: consuming Tensor) -> Tensor {
        let d = w.shape.last ?? 0
        precondition(w.rank == 2 && base.rank == 2 && base.shape[1] == d, "sparse product: \(w.shape), \(base.shape)")
        let rows = base.shape[0]
        var out = consume base
        let starts = rowStarts(rows)
        w.storage.withUnsafeBufferPointer { wp in
            out.storage.withUnsafeMutableBufferPointer { op in
                for r in 0..<rows {
                    for e in starts[r]..<starts[r + 1] {
                        RowMath.axpy(d, value[e], wp.baseAddress! + Int(column[e]) * d, op.baseAddress! + r * d)
                    }
                }
            }
        }
        return out
    }

    /// `out[column[e]] += coefficients[e] · source[row[e]]` over the entries (rows of `d` elements):
    /// `Sᵀ · source` with the entries' values replaced by `coefficients`. The work is split across
    /// workers by output row, so no two write the same row of `out` `[columns, d]`.
    public func scatterRows(coefficients: [Float], of source: Tensor, into out: inout Tensor) {
        let d = source.shape.last ?? 0, m = out.shape[0]
        precondition(
            coefficients.count == count && out.shape.last == d, "scatterRows: \(source.shape) into \(out.shape)")
        let workers = count >= 4096 ? Threading.workers : 1
        let n = count
        row.withUnsafeBufferPointer { rows in
            column.withUnsafeBufferPointer { cols in
                coefficients.withUnsafeBufferPointer { cs in
                    source.storage.withUnsafeBufferPointer { src in
                        out.storage.withUnsafeMutableBufferPointer { o in
                            let p = SharedPointers(
                                rows.baseAddress!, cols.baseAddress!, cs.baseAddress!, src.baseAddress!, o.baseAddress!)
                            DispatchQueue.concurrentPerformIfNeeded(workers) { w in
                                let lo = Int32(m * w / workers), hi = Int32(m * (w + 1) / workers)
                                for k in 0..<n where p.cols[k] >= lo && p.cols[k] < hi {
                                    RowMath.axpy(d, p.a[k], p.b + Int(p.rows[k]) * d, p.out + Int(p.cols[k]) * d)
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// `dy[row[e]] · w[column[e]]` per entry, rows of `d` elements: the entries of `dy · wᵀ` this
    /// sparse matrix keeps.
    public func rowDots(_ dy: Tensor, _ w: Tensor) -> [Float] {
        let d = dy.shape.last ?? 0
        precondition(w.shape.last == d, "rowDots: \(dy.shape) with \(w.shape)")
        let n = count
        let workers = n >= 4096 ? Threading.workers : 1
        return [Float](unsafeUninitializedCapacity: n) { out, initialized in
            row.withUnsafeBufferPointer { rows in
                column.withUnsafeBufferPointer { cols in
                    dy.storage.withUnsafeBufferPointer { y in
                        w.storage.withUnsafeBufferPointer { wp in
                            let p = SharedPointers(
                                rows.baseAddress!, cols.baseAddress!, y.baseAddress!, wp.baseAddress!, out.baseAddress!)
                            DispatchQueue.concurrentPerformIfNeeded(workers) { k in
                                for i in (n * k / workers)..<(n * (k + 1) / workers) {
                                    p.out[i] = RowMath.dot(d, p.a + Int(p.rows[i]) * d, p.b + Int(p.cols[i]) * d)
                                }
                            }
                        }
                    }
                }
            }
            initialized = n
        }
    }
}

/// The buffers of one sparse kernel (entry rows and columns, two operands, the output), handed
/// to workers that read them or write disjoint parts.
struct SharedPointers: @unchecked Sendable {
    let rows: UnsafePointer<Int32>, cols: UnsafePointer<Int32>, a: UnsafePointer<Float>
    let b: UnsafePointer<Float>, out: UnsafeMutablePointer<Float>
    init(
        _ rows: UnsafePointer<Int32>, _ cols: UnsafePointer<Int32>, _ a: UnsafePointer<Float>,
        _ b: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>
    ) {
        self.rows = rows
        self.cols = cols
        self.a = a
        self.b = b
        self.out = out
    }
}

extension Tensor {
    /// The entries of `[B, m]` above their column's threshold and above zero (`thresholds`
    /// `[m]`; nil: above zero): ReLU, or JumpReLU with θ.
    public func positiveEntries(above thresholds: [Float]? = nil) -> SparseEntries {
        precondition(rank == 2, "positiveEntries of \(shape)")
        let b = shape[0], m = shape[1]
        precondition(thresholds.map { $0.count == m } ?? true, "positiveEntries: thresholds for \(m) columns")
        var out = SparseEntries()
        for r in 0..<b {
            for i in 0..<m {
                let v = storage[r * m + i]
                if v > Swift.max(0, thresholds?[i] ?? 0) { out.append(r, i, v) }
            }
        }
        return out
    }

    /// The `k` largest entries of each row of `[B, m]` (ties to the lower column), those above
    /// zero kept, in column order within a row; rows split across workers when B ≥ 64.
    public func largestPositiveEntriesPerRow(_ k: Int) -> SparseEntries {
        precondition(rank == 2, "largestPositiveEntriesPerRow of \(shape)")
        let b = shape[0], m = shape[1], k = Swift.min(k, m)
        var picked = [Int32](repeating: -1, count: b * k)
        let workers = b >= 64 ? Threading.workers : 1
        storage.withUnsafeBufferPointer { zp in
            picked.withUnsafeMutableBufferPointer { pb in
                let z = SendablePointer(zp.baseAddress!)
                let out = SendablePointer(pb.baseAddress!)
                DispatchQueue.concurrentPerformIfNeeded(workers) { w in
                    for r in (b * w / workers)..<(b * (w + 1) / workers) {
                        let top = Selection.largest(z.pointer + r * m, count: m, k: k).sorted()
                        for (j, i) in top.enumerated() { out.pointer[r * k + j] = Int32(i) }
                    }
                }
            }
        }
        var out = SparseEntries()
        out.reserve(b * k)
        for r in 0..<b {
            for j in 0..<k where picked[r * k + j] >= 0 {
                let i = Int(picked[r * k + j])
                if storage[r * m + i] > 0 { out.append(r, i, storage[r * m + i]) }
            }
        }
        return out
    }

    /// The `k` largest entries of the whole `[B, m]` matrix (ties to the lower flat index), those
    /// above zero kept, in row-major order.
    public func largestPositiveEntries(_ k: Int) -> SparseEntries {
        precondition(rank == 2, "largestPositiveEntries of \(shape)")
        let m = shape[1]
        let flat = Selection.largest(storage, from: 0, count: count, k: Swift.min(count, k)).sorted()
        var out = SparseEntries()
        out.reserve(flat.count)
        for f in flat where storage[f] > 0 { out.append(f / m, f % m, storage[f]) }
        return out
    }
}

/// Dot products and scaled sums of rows.
enum RowMath {
    /// `y[0..<n] += a · x[0..<n]`.
    @inline(__always)
    static func axpy(_ n: Int, _ a: Float, _ x: UnsafePointer<Float>, _ y: UnsafeMutablePointer<Float>) {
        for j in 0..<n { y[j] += a * x[j] }
    }

    /// `Σ x[j] · y[j]` over `n` values, in 8 partial sums (vectorised).
    @inline(__always)
    static func dot(_ n: Int, _ x: UnsafePointer<Float>, _ y: UnsafePointer<Float>) -> Float {
        var acc = SIMD8<Float>()
        var j = 0
        while j + 8 <= n {
            acc +=
                UnsafeRawPointer(x + j).loadUnaligned(as: SIMD8<Float>.self)
                * UnsafeRawPointer(y + j).loadUnaligned(as: SIMD8<Float>.self)
            j += 8
        }
        var s = acc.sum()
        while j < n {
            s += x[j] * y[j]
            j += 1
        }
        return s
    }
}

/// The `k` largest of a run of values.
public enum Selection {
    /// Indices of the `k` largest of `v[from ..< from + count]` (relative to `from`; ties go to
    /// the lower index), in no particular order.
    ///
    /// Small k (k ≤ count/8, TopK's 32 of 3072) keeps a min-heap of the best k seen while
    /// scanning: most values lose one comparison against the heap's root, and the scan needs no
    /// copy (it was a quarter of a training step as quickselect). Larger k uses quickselect.
    public static func largest(_ v: [Float], from: Int, count: Int, k: Int) -> [Int] {
        precondition(from >= 0 && count >= 0 && from + count <= v.count, "largest: \(from)+\(count) of \(v.count)")
        return v.withUnsafeBufferPointer { largest($0.baseAddress! + from, count: count, k: k) }
    }

    static func largest(_ p: UnsafePointer<Float>, count: Int, k: Int) -> [Int] {
        guard k < count else { return Array(0..<count) }
        guard k > 0 else { return [] }
        if k * 8 <= count { return byHeap(p, count: count, k: k) }
        var vals = Array(UnsafeBufferPointer(start: p, count: count))
        let kth = select(&vals, k - 1)
        var out = [Int]()
        out.reserveCapacity(k)
        for i in 0..<count where p[i] > kth { out.append(i) }
        if out.count < k {
            for i in 0..<count where p[i] == kth {
                out.append(i)
                if out.count == k { break }
            }
        }
        return out
    }

    /// The k best of `p[0..<count]` by (value descending, index ascending), by a size-k min-heap
    /// ordered worst first: a later value enters only if strictly greater than the worst kept.
    static func byHeap(_ p: UnsafePointer<Float>, count: Int, k: Int) -> [Int] {
        var heapV = [Float](repeating: 0, count: k), heapI = [Int](repeating: 0, count: k)
        // "a is worse than b": smaller value, or equal value and larger index.
        @inline(__always) func worse(_ av: Float, _ ai: Int, _ bv: Float, _ bi: Int) -> Bool {
            av < bv || (av == bv && ai > bi)
        }
        heapV.withUnsafeMutableBufferPointer { hv in
            heapI.withUnsafeMutableBufferPointer { hi in
                func siftDown(_ start: Int) {
                    var i = start
                    while true {
                        let l = 2 * i + 1, r = l + 1
                        var w = i
                        if l < k && worse(hv[l], hi[l], hv[w], hi[w]) { w = l }
                        if r < k && worse(hv[r], hi[r], hv[w], hi[w]) { w = r }
                        if w == i { return }
                        hv.swapAt(i, w)
                        hi.swapAt(i, w)
                        i = w
                    }
                }
                for i in 0..<k {
                    hv[i] = p[i]
                    hi[i] = i
                }
                for i in stride(from: k / 2 - 1, through: 0, by: -1) { siftDown(i) }
                for i in k..<count where p[i] > hv[0] {
                    hv[0] = p[i]
                    hi[0] = i
                    siftDown(0)
                }
            }
        }
        return heapI
    }

    /// The value that would sit at `index` if `a` were sorted in descending order (Hoare
    /// quickselect with a median-of-three pivot; `a` is reordered).
    static func select(_ a: inout [Float], _ index: Int) -> Float {
        var lo = 0, hi = a.count - 1
        while lo < hi {
            let mid = lo + (hi - lo) / 2
            let x = a[lo], y = a[mid], z = a[hi]
            let pivot = max(min(x, y), min(max(x, y), z))
            var i = lo, j = hi
            while i <= j {
                while a[i] > pivot { i += 1 }
                while a[j] < pivot { j -= 1 }
                if i <= j {
                    a.swapAt(i, j)
                    i += 1
                    j -= 1
                }
            }
            if index <= j { hi = j } else if index >= i { lo = i } else { return a[index] }
        }
        return a[lo]
    }
}
