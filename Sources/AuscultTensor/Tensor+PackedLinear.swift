// Products against a weight packed once: every linear layer of the model and its logits.
import CAuscultKernels
import Dispatch

/// A weight `[n, k]` packed into panels of 16 rows for the product kernels of `CAuscultKernels`.
///
/// Two reasons. Exactness: every output of `linear(_:bias:)` against it is one fused
/// multiply-add per term in order of k, whatever the row count, tile or split across workers,
/// so a row's result depends on that row alone (OpenBLAS's Haswell/Zen sgemm rounds a row
/// differently by where it falls in its tiles: a clip's activations changed with the clips
/// batched beside it). Speed: OpenBLAS re-packs its B operand on every call, 80 MB for tiny.en's
/// token embedding at every decoding step; packed once, the logits of one row take 0.21× the
/// time of `sgemm` and 0.14× for a decoder MLP row (AVX2, one core), and 1500-row encoder
/// products run at 0.9–1.15× `sgemm`'s time.
public struct PackedWeight: @unchecked Sendable {
    /// `[⌈n/16⌉, k, 16]`, rows past n zero.
    let panels: [Float]
    /// Rows (outputs) and columns (inputs) of the original weight.
    public let n: Int, k: Int

    /// Packs `weight` `[n, k]`; nil off x86-64, where callers keep the BLAS product.
    public init?(_ weight: Tensor) {
        #if arch(x86_64)
        guard weight.rank == 2 else { return nil }
        n = weight.shape[0]; k = weight.shape[1]
        let (n, k) = (n, k)
        panels = [Float](unsafeUninitializedCapacity: auscult_packed_floats(n, k)) { buf, count in
            weight.storage.withUnsafeBufferPointer { w in auscult_pack_panels(w.baseAddress!, k, n, k, buf.baseAddress!)
            }
            count = auscult_packed_floats(n, k)
        }
        #else
        return nil
        #endif
    }
}

/// Operands of a packed product, handed to workers that write disjoint parts of `c`.
private struct PackedPointers: @unchecked Sendable {
    let a: UnsafePointer<Float>, w: UnsafePointer<Float>, bias: UnsafePointer<Float>?, c: UnsafeMutablePointer<Float>
}

extension Tensor {
    /// `x · Wᵀ + bias` for `x` `[…, k]` against a packed `[n, k]` weight: `[…, n]`.
    ///
    /// Without a bias on an AVX-512 CPU the AVX-512 kernel runs (the same arithmetic), its
    /// columns split across workers in blocks of 48 (three panels), so each worker streams its part
    /// of the weight once while every row passes over it. The AVX2 kernel splits columns that way
    /// for fewer than 24 rows, and rows past that, each worker streaming the weight past its rows
    /// in L2-sized blocks.
    public func linear(_ packed: PackedWeight, bias: Tensor? = nil) -> Tensor {
        let k = shape[shape.count - 1]
        precondition(k == packed.k, "linear: input \(shape) does not match packed weight [\(packed.n), \(packed.k)]")
        precondition(bias == nil || bias!.count == packed.n, "linear: bias of \(bias!.count) for \(packed.n) outputs")
        let m = count / k, n = packed.n
        var outShape = shape
        outShape[outShape.count - 1] = n
        guard m > 0 else { return Tensor(zeros: outShape) }
        let blocks = (n + 47) / 48, panelCount = (n + 15) / 16
        let wide = Kernels.avx512 && bias == nil
        let workers = m * n * k >= 1 << 21 ? Threading.workers : 1
        let byRows = m >= 24 && workers > 1 && !wide
        // The kernels write every element, so the output needs no zero fill first.
        return Tensor(shape: outShape) { cb in
            storage.withUnsafeBufferPointer { ab in
                packed.panels.withUnsafeBufferPointer { wb in
                    let run = { (biasPointer: UnsafePointer<Float>?) in
                        let p = PackedPointers(
                            a: ab.baseAddress!, w: wb.baseAddress!, bias: biasPointer, c: cb.baseAddress!)
                        if byRows {
                            DispatchQueue.concurrentPerformIfNeeded(workers) { i in
                                let m0 = m * i / workers, m1 = m * (i + 1) / workers
                                if wide {
                                    auscult_gemm_packed_avx512(
                                        p.a + m0 * k, m1 - m0, k, p.w, n, k, 0, panelCount, p.c + m0 * n, n)
                                } else {
                                    auscult_gemm_packed_avx2(
                                        p.a + m0 * k, m1 - m0, k, p.w, n, k, 0, panelCount, p.bias, p.c + m0 * n, n)
                                }
                            }
                        } else {
                            let parts = min(workers, blocks)
                            DispatchQueue.concurrentPerformIfNeeded(parts) { i in
                                let p0 = blocks * i / parts * 3, p1 = min(panelCount, blocks * (i + 1) / parts * 3)
                                if wide {
                                    auscult_gemm_packed_avx512(p.a, m, k, p.w, n, k, p0, p1, p.c, n)
                                } else {
                                    auscult_gemm_packed_avx2(p.a, m, k, p.w, n, k, p0, p1, p.bias, p.c, n)
                                }
                            }
                        }
                    }
                    if let bias { bias.storage.withUnsafeBufferPointer { run($0.baseAddress!) } } else { run(nil) }
                }
            }
        }
    }
}
