// Views of one row of a `[rows, n]` tensor lent to a closure: what decoding rules and scoring do to
// a row of logits (read a token's logit, mask ranges and lists, log Σ exp, argmax, top-k,
// sampling), bounds-checked, so the decoder never holds a pointer into a tensor.
//
// A view is valid only inside the closure it is handed to; it must not be stored or returned.
// A backend that keeps logits elsewhere brings the rows to the host here (one row is 51 864
// floats; the decoding rules are sequential per row, as openai-whisper applies them).
import Dispatch
import Foundation

extension Tensor {
    /// A read-only view of one row.
    public struct Row {
        @usableFromInline let base: UnsafePointer<Float>
        /// Elements in the row.
        public let count: Int

        @inlinable init(_ base: UnsafePointer<Float>, count: Int) {
            self.base = base
            self.count = count
        }

        /// Element `i` of the row.
        @inlinable public subscript(_ i: Int) -> Float {
            precondition(i >= 0 && i < count, "row index \(i) outside 0..<\(count)")
            return base[i]
        }

        /// Stops the process unless `range` lies within the row.
        @inlinable func check(_ range: Range<Int>) {
            precondition(range.lowerBound >= 0 && range.upperBound <= count, "row range \(range) outside 0..<\(count)")
        }

        /// log Σ exp over `range` (max-shifted, vectorised, summed in Double; -∞ when empty).
        @inlinable public func logSumExp(_ range: Range<Int>? = nil) -> Double {
            let r = range ?? 0..<count
            check(r)
            return Kernels.logSumExp(base + r.lowerBound, count: r.count)
        }

        /// The largest element over `range` (-∞ when empty).
        public func max(_ range: Range<Int>) -> Float {
            check(range)
            var m = -Float.infinity
            for i in range { m = Swift.max(m, base[i]) }
            return m
        }

        /// The index of the largest element (first among ties) and log Σ exp of the row, in one
        /// vectorised pass.
        @inlinable public func argmaxLogSumExp() -> (index: Int, logSumExp: Double) {
            Kernels.argmaxLogSumExp(base, count: count)
        }

        /// Indices of the `k` largest elements, largest first (ties: lower index first; a NaN
        /// enters only while fewer than `k` are kept, as openai-whisper's beam search never meets).
        public func topK(_ k: Int) -> [Int] {
            Tensor.largestFirst(count: count, k: k, skippingNaN: false) { base[$0] }
        }

        /// An index drawn from softmax(row / `temperature`) with the uniform number `u` in [0, 1):
        /// the first index whose cumulative weight reaches `u` times the total (weights in Double).
        public func sample(temperature: Double, uniform u: Double) -> Int {
            let m = max(0..<count)
            var w = [Double](repeating: 0, count: count)
            var z = 0.0
            for t in 0..<count {
                let e = exp(Double(base[t] - m) / temperature)
                w[t] = e
                z += e
            }
            var left = u * z
            for t in 0..<count {
                left -= w[t]
                if left <= 0 && w[t] > 0 { return t }
            }
            return (0..<count).last { w[$0] > 0 } ?? 0
        }
    }

    /// A writable view of one row: a `Row` for reading, and masking.
    public struct MutableRow {
        @usableFromInline let base: UnsafeMutablePointer<Float>
        /// Elements in the row.
        public let count: Int

        @inlinable init(_ base: UnsafeMutablePointer<Float>, count: Int) {
            self.base = base
            self.count = count
        }

        /// The row, read-only.
        @inlinable public var read: Row { Row(UnsafePointer(base), count: count) }

        /// Element `i` of the row.
        @inlinable public subscript(_ i: Int) -> Float {
            get { read[i] }
            nonmutating set {
                precondition(i >= 0 && i < count, "row index \(i) outside 0..<\(count)")
                base[i] = newValue
            }
        }

        /// Sets the elements in `range` to `value`.
        @inlinable public func fill(_ range: Range<Int>, with value: Float) {
            read.check(range)
            (base + range.lowerBound).update(repeating: value, count: range.count)
        }

        /// Sets the elements at `indices` to `value`.
        @inlinable public func fill(_ indices: [Int], with value: Float) {
            for i in indices { self[i] = value }
        }

        /// Copies `source`'s elements `sourceStart ..< sourceStart + range.count` onto `range`.
        @inlinable public func assign(_ range: Range<Int>, from source: Row, at sourceStart: Int? = nil) {
            let start = sourceStart ?? range.lowerBound
            read.check(range)
            source.check(start..<(start + range.count))
            (base + range.lowerBound).update(from: source.base + start, count: range.count)
        }

        /// Multiplies the elements in `range` by `factor`.
        @inlinable public func scale(_ range: Range<Int>, by factor: Float) {
            read.check(range)
            for i in range { base[i] *= factor }
        }

        /// Adds `source[i]` (i counted from `sourceStart`) to each element in `range`.
        @inlinable public func add(_ range: Range<Int>, from source: Row, at sourceStart: Int? = nil) {
            let start = sourceStart ?? range.lowerBound
            read.check(range)
            source.check(start..<(start + range.count))
            for (k, i) in range.enumerated() { base[i] += source.base[start + k] }
        }
    }

    /// Calls `body` with each row in turn, read-only: `body(r, row)`. Rows are `width`
    /// consecutive elements (default: the last axis).
    public func forEachRow(width: Int? = nil, _ body: (Int, Row) throws -> Void) rethrows {
        let n = rowWidth(width), rows = n == 0 ? 0 : count / n
        try storage.withUnsafeBufferPointer { buf in
            for r in 0..<rows { try body(r, Row(buf.baseAddress! + r * n, count: n)) }
        }
    }

    /// `body(row)` for row `i` (rows of `width` elements, default the last axis), read-only.
    public func withRow<R>(_ i: Int, width: Int? = nil, _ body: (Row) throws -> R) rethrows -> R {
        let n = rowWidth(width), rows = n == 0 ? 0 : count / n
        precondition(i >= 0 && i < rows, "row \(i) outside 0..<\(rows)")
        return try storage.withUnsafeBufferPointer { try body(Row($0.baseAddress! + i * n, count: n)) }
    }

    /// Calls `body` with the rows `rows` in order, writable: `body(r, row)`. Rows are `width`
    /// consecutive elements (default: the last axis).
    public mutating func updateRows(
        _ rows: [Int], width: Int? = nil, _ body: (Int, MutableRow) throws -> Void
    ) rethrows {
        let n = rowWidth(width), total = n == 0 ? 0 : count / n
        try storage.withUnsafeMutableBufferPointer { buf in
            for r in rows {
                precondition(r >= 0 && r < total, "row \(r) outside 0..<\(total)")
                try body(r, MutableRow(buf.baseAddress! + r * n, count: n))
            }
        }
    }

    /// Copies the elements at `ranges` of row `source` onto the same elements of row `target`
    /// (rows of `width` elements).
    public mutating func copyElements(ofRow source: Int, toRow target: Int, width: Int, _ ranges: [Range<Int>]) {
        let rows = width == 0 ? 0 : count / width
        precondition(
            source >= 0 && source < rows && target >= 0 && target < rows,
            "rows \(source), \(target) outside 0..<\(rows)")
        storage.withUnsafeMutableBufferPointer { buf in
            let from = buf.baseAddress! + source * width, to = buf.baseAddress! + target * width
            for r in ranges {
                precondition(r.lowerBound >= 0 && r.upperBound <= width, "row range \(r) outside 0..<\(width)")
                (to + r.lowerBound).update(from: from + r.lowerBound, count: r.count)
            }
        }
    }

    /// Row k of `values` (rows of `width` elements) becomes row `indices[k]` of this tensor, in
    /// place: the inverse of `reshaped([-, width]).gather(rows: indices)` on the rows it names.
    public mutating func replaceRows(_ indices: [Int], width: Int, with values: Tensor) {
        precondition(values.count == indices.count * width, "replaceRows: \(values.shape) for \(indices.count) rows")
        let rows = width == 0 ? 0 : count / width
        storage.withUnsafeMutableBufferPointer { dst in
            values.storage.withUnsafeBufferPointer { src in
                for (k, r) in indices.enumerated() {
                    precondition(r >= 0 && r < rows, "replaceRows: row \(r) outside 0..<\(rows)")
                    (dst.baseAddress! + r * width).update(from: src.baseAddress! + k * width, count: width)
                }
            }
        }
    }

    /// `width`, or the last axis's extent; `count` must be a multiple of it.
    func rowWidth(_ width: Int?) -> Int {
        let n = width ?? shape.last ?? 0
        precondition(n >= 0 && (n == 0 ? count == 0 : count % n == 0), "rows of \(n) in a tensor of shape \(shape)")
        return n
    }

    /// `body(r, row)` for every row r (along the last axis) with `include(r)`, the rows split
    /// across `workers` threads, each row writable by its call only; the results in row order
    /// (nil for rows left out).
    ///
    /// Greedy decoding filters, normalises and picks every row of a step's logits this way (three
    /// passes over 51 864 logits per row; a 240-row batch step spent 10 % of its time here on one
    /// core).
    public mutating func mapRowsConcurrently<T: Sendable>(
        workers: Int, include: (Int) -> Bool = { _ in true }, _ body: @Sendable (Int, MutableRow) -> T
    ) -> [T?] {
        let n = rowWidth(nil), rows = n == 0 ? 0 : count / n
        let wanted = (0..<rows).map(include)
        let results = RowResults<T>(count: rows)
        let workers = Swift.max(1, Swift.min(workers, rows))
        storage.withUnsafeMutableBufferPointer { buf in
            let base = SendablePointer(buf.baseAddress!)
            DispatchQueue.concurrentPerformIfNeeded(workers) { w in
                for r in (rows * w / workers)..<(rows * (w + 1) / workers) where wanted[r] {
                    results.set(r, body(r, MutableRow(base.pointer + r * n, count: n)))
                }
            }
        }
        return results.values
    }
}

/// A buffer's start handed to workers that read it or write disjoint parts of it.
struct SendablePointer<Element>: @unchecked Sendable {
    let pointer: UnsafeMutablePointer<Element>
    init(_ p: UnsafeMutablePointer<Element>) { pointer = p }
    init(_ p: UnsafePointer<Element>) { pointer = UnsafeMutablePointer(mutating: p) }
}

/// Per-row results written by workers at disjoint indices.
final class RowResults<T>: @unchecked Sendable {
    private var slots: UnsafeMutableBufferPointer<T?>

    init(count: Int) {
        slots = .allocate(capacity: count)
        slots.initialize(repeating: nil)
    }

    deinit {
        slots.deinitialize()
        slots.deallocate()
    }

    /// Sets slot `i`; each slot is written by one worker only.
    func set(_ i: Int, _ value: T) { slots[i] = value }

    var values: [T?] { Array(slots) }
}
