import AuscultTensor
import Foundation
import Testing
import _TestSupport

@Suite("Tensor kernels agree with direct double-precision formulas")
struct KernelTests {
    @Test("GELU matches 0.5·x·(1 + erf(x/√2)) computed with libm in double (relative 2e-6, absolute 1e-6)")
    func geluMatchesErf() {
        let xs = stride(from: -9.0, through: 9.0, by: 0.001).map { Float($0) }
        let got = Tensor(shape: [xs.count], storage: xs).gelu()
        let want = Tensor(
            shape: [xs.count], storage: xs.map { x in Float(0.5 * Double(x) * (1 + erf(Double(x) / 2.0.squareRoot()))) }
        )
        expectClose(got, want, rtol: 2e-6, atol: 1e-6, "gelu")
    }

    @Test("exp is within 3e-7 relative of libm over the float range used by softmax")
    func expAccuracy() {
        for x in stride(from: -80.0, through: 80.0, by: 0.0137) {
            let got = Double(FastMath.exp(Float(x))), want = Foundation.exp(Double(Float(x)))
            #expect(abs(got - want) <= 3e-7 * want, "exp(\(x)) = \(got), libm \(want)")
        }
        // The eight-lane form in the row kernel: exp(x − max) of one row.
        let xs: [Float] = [-5, -1, -0.5, 0, 0.25, 1, 3, 10]
        var v = xs, inv: Float = 0
        Kernels.expRows(&v, rows: 1, cols: 8, stride: 8, inverseSums: &inv)
        for (i, x) in xs.enumerated() {
            let want = Foundation.exp(Double(x) - 10)
            #expect(abs(Double(v[i]) - want) <= 3e-7 * want)
        }
    }

    @Test("softmax rows sum to one and match the double-precision formula, masked entries give zero")
    func softmax() {
        let rows = 7, cols = 1503
        var x = (0..<(rows * cols)).map { Float(sin(Double($0) * 0.37) * 12) }
        for j in 1000..<cols { x[2 * cols + j] = -.infinity }
        var want = [Float]()
        for r in 0..<rows {
            let row = x[(r * cols)..<((r + 1) * cols)].map(Double.init)
            let m = row.max()!
            let z = row.reduce(0) { $0 + Foundation.exp($1 - m) }
            want += row.map { Float(Foundation.exp($0 - m) / z) }
        }
        let got = Tensor(shape: [rows, cols], storage: x).softmax()
        expectClose(got, Tensor(shape: [rows, cols], storage: want), rtol: 1e-5, atol: 1e-9, "softmax")
        #expect(got.storage[(2 * cols + 1000)..<(3 * cols)].allSatisfy { $0 == 0 })
    }

    @Test(
        "argmax and log-sum-exp of a logits row match the double-precision formula; ties take the first index, all −∞ gives index 0 and −∞",
        arguments: [51_864, 51_865, 17, 3])
    func argmaxLogSumExp(_ n: Int) {
        var x = (0..<n).map { Float(sin(Double($0) * 0.731) * 9) }
        x[n / 3] = 40; x[2 * n / 3] = 40  // a tie: the first one wins
        if n > 10 { for j in stride(from: 1, to: n, by: 7) where j != n / 3 && j != 2 * n / 3 { x[j] = -.infinity } }
        let m = 40.0
        let want = m + Foundation.log(x.reduce(0.0) { $0 + Foundation.exp(Double($1) - m) })
        let got = x.withUnsafeBufferPointer { Kernels.argmaxLogSumExp($0.baseAddress!, count: n) }
        #expect(got.index == n / 3)
        expectClose(got.logSumExp, want, tolerance: 1e-6 * abs(want), "log-sum-exp")
        let alone = x.withUnsafeBufferPointer { Kernels.logSumExp($0.baseAddress!, count: n) }
        #expect(alone == got.logSumExp)
        let none = [Float](repeating: -.infinity, count: n)
        let empty = none.withUnsafeBufferPointer { Kernels.argmaxLogSumExp($0.baseAddress!, count: n) }
        #expect(empty.index == 0 && empty.logSumExp == -.infinity)
    }

    @Test("LayerNorm matches (x − mean)/sqrt(var + 1e-5)·γ + β")
    func layerNorm() {
        let rows = 5, d = 384
        let x = (0..<(rows * d)).map { Float(cos(Double($0) * 0.11) * 3 + 0.5) }
        let g = (0..<d).map { Float(1 + 0.01 * Double($0 % 7)) }, b = (0..<d).map { Float(0.1 * Double($0 % 3)) }
        var want = [Float]()
        for r in 0..<rows {
            let row = x[(r * d)..<((r + 1) * d)].map(Double.init)
            let mean = row.reduce(0, +) / Double(d)
            let v = row.reduce(0) { $0 + ($1 - mean) * ($1 - mean) } / Double(d)
            want += row.enumerated().map {
                Float(($1 - mean) / (v + 1e-5).squareRoot() * Double(g[$0]) + Double(b[$0]))
            }
        }
        let got = Tensor(shape: [rows, d], storage: x).layerNorm(
            gamma: Tensor(shape: [d], storage: g), beta: Tensor(shape: [d], storage: b))
        expectClose(got, Tensor(shape: [rows, d], storage: want), rtol: 1e-5, atol: 1e-5, "layernorm")
    }

    @Test(
        "linear equals the naive product for M = 1 (gemv), small M and large M (split across workers)",
        arguments: [1, 3, 1500])
    func linear(m: Int) {
        let k = 96, n = 1030
        let x = Tensor(shape: [m, k], storage: (0..<(m * k)).map { Float(($0 * 37) % 101) / 101 - 0.5 })
        let w = Tensor(shape: [n, k], storage: (0..<(n * k)).map { Float(($0 * 53) % 97) / 97 - 0.5 })
        let b = Tensor(shape: [n], storage: (0..<n).map { Float($0 % 5) })
        var want = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s = Double(b.storage[j])
                for t in 0..<k { s += Double(x.storage[i * k + t]) * Double(w.storage[j * k + t]) }
                want[i * n + j] = Float(s)
            }
        }
        expectClose(
            x.linear(w, bias: b), Tensor(shape: [m, n], storage: want), rtol: 1e-5, atol: 1e-4, "linear m=\(m)")
    }

    @Test(
        "a row's product against a packed weight is the same bits for any row count, offset and split across workers",
        arguments: [1, 2, 5, 7, 13, 40, 300])
    func packedRowsIndependent(m: Int) throws {
        let k = 384, n = 1030  // n % 16 ≠ 0: the last panel is partly padding
        let x = Tensor(shape: [m + 3, k], storage: (0..<((m + 3) * k)).map { Float(sin(Double($0) * 0.731)) })
        let w = Tensor(shape: [n, k], storage: (0..<(n * k)).map { Float(cos(Double($0) * 0.113)) * 0.1 })
        let b = Tensor(shape: [n], storage: (0..<n).map { Float($0 % 7) * 0.25 })
        #if arch(x86_64)
        let packed = try #require(PackedWeight(w))
        let all = x.linear(packed, bias: b)
        for i in [0, m / 2, m - 1] {
            let alone = x.rows(i..<(i + 1)).linear(packed, bias: b)
            #expect(Array(all.storage[(i * n)..<((i + 1) * n)]) == alone.storage, "row \(i) of \(m + 3)")
        }
        let shifted = x.rows(3..<(m + 3)).linear(packed, bias: b)
        #expect(Array(all.storage[(3 * n)...]) == shifted.storage, "rows from 3")
        expectClose(all, x.linear(w, bias: b), rtol: 0, atol: 0, "packed once or per call")
        #else
        #expect(PackedWeight(w) == nil)
        #endif
    }

    @Test(
        "few rows against a large weight (the unpacked small-M kernel off x86-64, odd row and column counts) equal the naive product",
        arguments: [1, 2, 5, 16])
    func smallRowsLargeWeight(m: Int) {
        let k = 384, n = 2731  // n % 4 ≠ 0 exercises the tail
        let x = Tensor(shape: [m, k], storage: (0..<(m * k)).map { Float(($0 * 37) % 101) / 101 - 0.5 })
        let w = Tensor(shape: [n, k], storage: (0..<(n * k)).map { Float(($0 * 53) % 97) / 97 - 0.5 })
        var want = [Float](repeating: 0, count: m * n)
        for i in 0..<m {
            for j in 0..<n {
                var s = 0.0
                for t in 0..<k { s += Double(x.storage[i * k + t]) * Double(w.storage[j * k + t]) }
                want[i * n + j] = Float(s)
            }
        }
        var got = [Float](repeating: 0, count: m * n)
        x.storage.withUnsafeBufferPointer { a in
            w.storage.withUnsafeBufferPointer { wb in
                Kernels.gemmNTSmall(
                    m: m, n: n, k: k, a: a.baseAddress!, lda: k, w: wb.baseAddress!, ldw: k, c: &got, ldc: n)
            }
        }
        expectClose(
            Tensor(shape: [m, n], storage: got), Tensor(shape: [m, n], storage: want), rtol: 1e-5, atol: 1e-4, "m=\(m)")
    }

    @Test("conv1d (im2col + GEMM) equals the direct convolution, channels-first and frames-first inputs")
    func conv1d() {
        let cIn = 5, t = 21, cOut = 4, k = 3
        let x = Tensor(shape: [cIn, t], storage: (0..<(cIn * t)).map { Float(sin(Double($0))) })
        let w = Tensor(shape: [cOut, cIn, k], storage: (0..<(cOut * cIn * k)).map { Float(cos(Double($0) * 0.7)) })
        let b = Tensor(shape: [cOut], storage: [0.1, -0.2, 0.3, 0])
        for stride in [1, 2] {
            let tOut = (t + 2 - k) / stride + 1
            var want = [Float](repeating: 0, count: tOut * cOut)
            for o in 0..<tOut {
                for co in 0..<cOut {
                    var s = Double(b.storage[co])
                    for ci in 0..<cIn {
                        for j in 0..<k {
                            let ti = o * stride - 1 + j
                            if ti >= 0 && ti < t {
                                s += Double(x.storage[ci * t + ti]) * Double(w.storage[(co * cIn + ci) * k + j])
                            }
                        }
                    }
                    want[o * cOut + co] = Float(s)
                }
            }
            let expected = Tensor(shape: [tOut, cOut], storage: want)
            expectClose(
                x.conv1d(weight: w, bias: b, stride: stride), expected, rtol: 1e-5, atol: 1e-5, "conv stride \(stride)")
            expectClose(
                x.transposed().conv1d(weight: w, bias: b, stride: stride, framesFirst: true), expected,
                rtol: 1e-5, atol: 1e-5, "frames-first conv stride \(stride)")
        }
    }

    @Test("safetensors round-trips tensors and metadata, and reports a truncated file by name")
    func safetensorsRoundTrip() throws {
        let dir = try Fixtures.temporaryDirectory()
        let p = dir + "/t.safetensors"
        let a = Tensor(shape: [2, 3], storage: [1, 2, 3, 4, 5, 6.5])
        try SafeTensorsFile.write(["a": a, "b": Tensor(shape: [1], storage: [-1])], metadata: ["k": "v"], to: p)
        let f = try SafeTensorsFile(path: p)
        #expect(f.names == ["a", "b"])
        #expect(try f.tensor("a") == a)
        #expect(f.metadata["k"] == "v")
        let data = try Data(contentsOf: URL(fileURLWithPath: p))
        try data.prefix(data.count - 5).write(to: URL(fileURLWithPath: p))
        #expect { try SafeTensorsFile(path: p) } throws: {
            ($0 as? TensorFileError)?.code == .corrupt && "\($0)".contains(p)
        }
    }
}
