// Products against a large weight packed once (the decoder's logits against the token embedding).
import CAuscultKernels
import Dispatch

/// A weight `[n, k]` packed into panels of 16 rows for the AVX-512 product kernel.
///
/// OpenBLAS re-packs its B operand on every call: 80 MB for tiny.en's token embedding at every
/// decoding step, 15 % of a sweep's time. Packed once, the logits of 1…64 rows take 2.4–3.9×
/// less time than `sgemm` on one core (5.7 vs 13.7 ms for one row, 25 vs 96 ms for 64).
public struct PackedWeight: @unchecked Sendable {
    /// `[⌈n/16⌉, k, 16]`, rows past n zero.
    let panels: [Float]
    /// Rows (outputs) and columns (inputs) of the original weight.
    public let n: Int, k: Int

    /// Packs `weight` `[n, k]`; nil where the kernel cannot run (no AVX-512F, or `AUSCULT_PORTABLE=1`),
    /// and callers keep the BLAS product.
    public init?(_ weight: Tensor) {
        guard Kernels.avx512, weight.rank == 2 else { return nil }
        n = weight.shape[0]; k = weight.shape[1]
        let (n, k) = (n, k)
        panels = [Float](unsafeUninitializedCapacity: auscult_packed_floats(n, k)) { buf, count in
            weight.storage.withUnsafeBufferPointer { w in auscult_pack_panels(w.baseAddress!, k, n, k, buf.baseAddress!) }
            count = auscult_packed_floats(n, k)
        }
    }
}

extension Tensor {
    /// `x · Wᵀ` for `x` `[…, k]` against a packed `[n, k]` weight: `[…, n]`, no bias.
    ///
    /// Columns are split across workers in blocks of 48 (three panels), so each worker streams its
    /// part of the weight once while every row of `x` passes over it.
    public func linear(_ packed: PackedWeight) -> Tensor {
        let k = shape[shape.count - 1]
        precondition(k == packed.k, "linear: input \(shape) does not match packed weight [\(packed.n), \(packed.k)]")
        let m = count / k, n = packed.n
        var outShape = shape
        outShape[outShape.count - 1] = n
        guard m > 0 else { return Tensor(zeros: outShape) }
        let blocks = (n + 47) / 48, panelCount = (n + 15) / 16
        let workers = m * n * k >= 1 << 21 ? min(Threading.workers, blocks) : 1
        // The kernel writes every element (masked stores for the last panel), so the output
        // needs no zero fill first.
        return Tensor(shape: outShape) { cb in
            storage.withUnsafeBufferPointer { ab in packed.panels.withUnsafeBufferPointer { wb in
                let p = GemmPointers(a: ab.baseAddress!, w: wb.baseAddress!, c: cb.baseAddress!)
                DispatchQueue.concurrentPerformIfNeeded(workers) { i in
                    let p0 = blocks * i / workers * 3, p1 = min(panelCount, blocks * (i + 1) / workers * 3)
                    auscult_gemm_packed_avx512(p.a, m, k, p.w, n, k, p0, p1, p.c, n)
                }
            } }
        }
    }
}
