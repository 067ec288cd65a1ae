import AuscultTensor
import CAuscultKernels
import Foundation
import Testing

/// Each kernel entry point chosen at run time against its portable body, as ggml's
/// test-backend-ops checks each backend against the CPU: the AVX2 + FMA bodies must give the bits
/// of the portable C they replace, so a CPU without AVX2 computes what this one does.
@Suite("Run-time dispatch: AVX2 bodies equal their portable bodies", .serialized)
struct DispatchTests {
    /// `body` run with the AVX2 bodies, then with the portable ones.
    func both<T>(_ body: () -> T) -> (avx2: T, portable: T) {
        let fast = body()
        auscult_use_avx2(0)
        defer { auscult_use_avx2(1) }
        return (fast, body())
    }

    func random(_ n: Int, _ range: ClosedRange<Float>, seed: UInt64) -> [Float] {
        var rng = SeededGenerator(seed)
        return (0..<n).map { _ in Float.random(in: range, using: &rng) }
    }

    @Test("softmax's exponentials, LayerNorm, GELU and its backward give the same bits on both bodies")
    func rowKernels() {
        #expect(Kernels.avx2 == (auscult_cpu_has_avx2() != 0))
        for cols in [1, 7, 8, 13, 64, 1500, 1501] {
            let x = random(5 * cols, -30...30, seed: UInt64(cols))
            let (a, p) = both { () -> ([Float], [Float]) in
                var y = x, inv = [Float](repeating: 0, count: 5)
                y.withUnsafeMutableBufferPointer { yp in
                    inv.withUnsafeMutableBufferPointer {
                        auscult_exp_rows(yp.baseAddress!, 5, cols, cols, $0.baseAddress!)
                    }
                }
                return (y, inv)
            }
            #expect(a.0 == p.0 && a.1 == p.1, "exp rows of \(cols)")
            #expect(p.1.allSatisfy { $0.isFinite && $0 > 0 })
        }
        for d in [20, 384, 512, 1280] {
            let x = random(7 * d, -3...5, seed: UInt64(d)), g = random(d, 0.5...1.5, seed: 1),
                b = random(d, -1...1, seed: 2)
            let (a, p) = both { () -> ([Float], [Float]) in
                var y = [Float](repeating: 0, count: 7 * d), s = [Float](repeating: 0, count: 7)
                y.withUnsafeMutableBufferPointer { yp in
                    s.withUnsafeMutableBufferPointer {
                        auscult_layer_norm(x, 7, d, g, b, 1e-5, yp.baseAddress!, $0.baseAddress!)
                    }
                }
                return (y, s)
            }
            #expect(a.0 == p.0 && a.1 == p.1, "LayerNorm of width \(d)")
        }
        let x = random(100_003, -8...8, seed: 3)
        let (a, p) = both { () -> [Float] in
            var y = x; y.withUnsafeMutableBufferPointer { auscult_gelu($0.baseAddress!, $0.count) }; return y
        }
        #expect(a == p)
        #expect(abs(a[0] - 0.5 * x[0] * (1 + Float(erf(Double(x[0]) / 2.0.squareRoot())))) < 1e-5)
        let dy = random(100_003, -1...1, seed: 4)
        let (ga, gp) = both { () -> [Float] in
            var dx = [Float](repeating: 0, count: x.count)
            dx.withUnsafeMutableBufferPointer { auscult_gelu_backward(x, dy, $0.baseAddress!, x.count) }
            return dx
        }
        #expect(ga == gp, "GELU's backward")
        let v = Double(x[1]), want = (0.5 * (1 + erf(v / 2.0.squareRoot())) + v * exp(-v * v / 2) / (2 * Double.pi).squareRoot())
        #expect(abs(Double(ga[1]) - Double(dy[1]) * want) < 1e-5)
    }

    @Test("the packed and strided products give the same bits on both bodies, for any row count")
    func products() {
        for (m, n, k) in [(1, 5, 3), (7, 33, 64), (13, 48, 384)] {
            let x = random(m * k, -1...1, seed: 4), w = random(n * k, -1...1, seed: 5),
                bias = random(n, -1...1, seed: 6)
            var packed = [Float](repeating: 0, count: auscult_packed_floats(n, k))
            packed.withUnsafeMutableBufferPointer { auscult_pack_panels(w, k, n, k, $0.baseAddress!) }
            let panels = (n + 15) / 16
            let (a, p) = both { () -> [Float] in
                var c = [Float](repeating: .nan, count: m * n)
                c.withUnsafeMutableBufferPointer {
                    auscult_gemm_packed_avx2(x, m, k, packed, n, k, 0, panels, bias, $0.baseAddress!, n)
                }
                return c
            }
            #expect(a == p, "packed \(m)×\(n)×\(k)")
            // w as [k, ldw] read in place: the packed product against the transpose, the same bits.
            let ldw = (n + 15) / 16 * 16
            var wt = [Float](repeating: 0, count: k * ldw)
            for j in 0..<n { for kk in 0..<k { wt[kk * ldw + j] = w[j * k + kk] } }
            let (sa, sp) = both { () -> [Float] in
                var c = [Float](repeating: .nan, count: m * n)
                c.withUnsafeMutableBufferPointer {
                    auscult_gemm_strided_avx2(x, m, k, wt, ldw, n, k, $0.baseAddress!, n)
                }
                return c
            }
            #expect(sa == sp, "strided \(m)×\(n)×\(k)")
        }
    }

    @Test("the read-out's argmax agrees on both bodies and its log-sum-exp within 1e-6; halves convert exactly")
    func readoutAndHalves() {
        let x = random(51_864, -20...20, seed: 7)
        let (a, p) = both { () -> (Int, Double) in
            var lse = 0.0; let i = auscult_argmax_logsumexp_avx2(x, x.count, &lse, 1); return (i, lse)
        }
        #expect(a.0 == p.0 && a.0 == x.indices.max { x[$0] < x[$1] }!)
        #expect(abs(a.1 - p.1) < 1e-6 * abs(p.1))
        let halves: [UInt16] =
            [0x0000, 0x8000, 0x3c00, 0xc000, 0x7bff, 0x0001, 0x03ff, 0x7c00, 0xfc00, 0x3555]
            + (0..<37).map { UInt16($0 * 1771 % 0x7c00) }
        let (ha, hp) = both { () -> [Float] in
            var out = [Float](repeating: 0, count: halves.count)
            out.withUnsafeMutableBufferPointer { auscult_half_to_float(halves, halves.count, $0.baseAddress!) }
            return out
        }
        #expect(ha == hp)
        #expect(ha == halves.map { Float(Float16(bitPattern: $0)) })
    }
}

/// SplitMix64, for test data that does not change between runs.
struct SeededGenerator: RandomNumberGenerator {
    var state: UInt64
    init(_ seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}

@Suite("Process setup")
struct ProcessSetupTests {
    /// The mapped-bytes count is the whole process's, and other tests running beside this one can
    /// change it (one did by 80 MB): a block mapped for this tensor would show in every attempt,
    /// another test's in some. 40 MB: above glibc's largest mmap threshold (32 MB), so mapped
    /// without the policy (checked), and below the 64 MB a worker thread's arena holds, beyond
    /// which glibc maps a block whatever the policy (the command line works on the main thread).
    @Test("after Memory.retainFreedMemory a 40 MB tensor comes from the heap, not a mapping of its own")
    func retainFreedMemory() {
        Memory.retainFreedMemory()
        var growth = [Int]()
        for _ in 0..<5 {
            let before = auscult_mapped_allocation_bytes()
            #expect(before >= 0)
            let big = Tensor(zeros: [10 << 20])
            growth.append(auscult_mapped_allocation_bytes() - before)
            #expect(big.count == 10 << 20)
            if growth.last == 0 { break }
        }
        #expect(growth.contains(0), "a 40 MB block was mapped on its own in every attempt: \(growth) bytes")
    }
}
