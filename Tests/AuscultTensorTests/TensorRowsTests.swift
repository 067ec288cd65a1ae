import AuscultTensor
import Foundation
import Testing

@Suite("Row operations give the values of their formulas")
struct TensorRowsTests {
    /// A `[2, 3, 4]` stack with distinct values: element (k, p, j) = k·12 + p·4 + j, less 5, halved.
    let stack = Tensor((0..<24).map { Float($0 - 5) / 2 }, shape: [2, 3, 4])

    @Test("centring rows and dividing by each position's scale equals (x − mean) / σ")
    func centred() {
        let scales = Tensor([2, 0.5, 4], shape: [3, 1])
        let out = stack.centered(dividingRowsBy: scales)
        #expect(out.shape == [2, 3, 4])
        for k in 0..<2 {
            for p in 0..<3 {
                let row = (0..<4).map { stack[k, p, $0] }
                let mean = row.reduce(0, +) / 4
                for j in 0..<4 { #expect(abs(out[k, p, j] - (row[j] - mean) / scales[p, 0]) < 1e-6) }
            }
        }
        // Each row of a centred stack sums to zero.
        #expect(stack.centered(dividingRowsBy: scales).sum(axis: 2).scalars.allSatisfy { abs($0) < 1e-6 })
    }

    @Test("dots along the last axis take each position's own direction")
    func dots() {
        let directions: [[Double]] = [[1, 0, 0, 0], [0, 0, 0, 2], [1, 1, 1, 1]]
        let out = stack.dots(alongLastAxisWith: directions)
        #expect(out.shape == [2, 3])
        for k in 0..<2 {
            #expect(out[k, 0] == stack[k, 0, 0])
            #expect(out[k, 1] == 2 * stack[k, 1, 3])
            #expect(out[k, 2] == (0..<4).map { stack[k, 2, $0] }.reduce(0, +))
        }
    }

    @Test("log-softmax rows exponentiate to probabilities that sum to one, and keep the logits' differences")
    func logSoftmax() {
        let rows = Tensor([1, 2, 3, 1000, 1000, 0], shape: [2, 3]).logSoftmaxRows()
        #expect(rows.count == 2 && rows.allSatisfy { $0.count == 3 })
        for r in rows { #expect(abs(r.map { exp($0) }.reduce(0, +) - 1) < 1e-12) }
        #expect(abs((rows[0][2] - rows[0][0]) - 2) < 1e-12)
        // Large logits do not overflow: two equal ones get log(1/2) each, the third almost nothing.
        #expect(abs(rows[1][0] - log(0.5)) < 1e-12 && rows[1][2] < -999)
    }

    @Test("the mean of tensors is elementwise, and the first non-finite element is found")
    func meanAndFinite() {
        let a = Tensor([1, 2, 3], shape: [3]), b = Tensor([3, 4, 8], shape: [3])
        #expect(Tensor.mean([a, b]).scalars == [2, 3, 5.5])
        #expect(a.firstNonFiniteIndex == nil)
        #expect(Tensor([1, .nan, .infinity], shape: [3]).firstNonFiniteIndex == 1)
    }

    @Test("joining along an axis appends, and zero-pads a later axis that grows")
    func joined() {
        // Equal later axes: [1, 2, 2] + [1, 1, 2] along axis 1.
        let a = Tensor([1, 2, 3, 4], shape: [1, 2, 2]), b = Tensor([5, 6], shape: [1, 1, 2])
        let j = Tensor.joined(a, b, axis: 1)
        #expect(j.shape == [1, 3, 2] && j.scalars == [1, 2, 3, 4, 5, 6])
        // A growing pattern: [1, 1, 1] then [1, 1, 2] (keys grow by one) gives [1, 2, 2], first row padded.
        let p0 = Tensor([1], shape: [1, 1, 1]), p1 = Tensor([0.25, 0.75], shape: [1, 1, 2])
        let g = Tensor.joined(p0, p1, axis: 1)
        #expect(g.shape == [1, 2, 2] && g.scalars == [1, 0, 0.25, 0.75])
    }
}
