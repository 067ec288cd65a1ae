// Applying an SAE to activations stored in a safetensors file (an `auscult cache` export, or any
// tensor whose last axis is the SAE's input), for the latents outside a model run.
import AuscultTensor
import Foundation

extension SparseAutoencoder {
    /// The latents `[N, d_sae]` and reconstructions `[N, d_in]` of every row of tensor `name` in
    /// the safetensors file at `path` (shape `[..., d_in]`, flattened to N rows). Without `name`,
    /// the file's only tensor, or the one named `hook`. Rows are encoded 4096 at a time.
    public func encode(
        file path: String, tensor name: String? = nil, hook: String? = nil
    ) throws -> (tensor: String, latents: Tensor, reconstruction: Tensor) {
        let file = try SafeTensorsFile(path: path)
        let names = file.names.filter { file.entries[$0]!.dtype != "I64" && file.entries[$0]!.dtype != "I32" }
        let chosen: String
        if let name {
            guard file.entries[name] != nil else {
                throw SAEFileError(
                    .missingTensor, "\(path): no tensor '\(name)' (it holds \(names.joined(separator: ", ")))")
            }
            chosen = name
        } else if names.count == 1 {
            chosen = names[0]
        } else if let hook, names.contains(hook) {
            chosen = hook
        } else {
            throw SAEFileError(
                .missingTensor,
                "\(path): holds \(names.count) tensors (\(names.joined(separator: ", "))); name the one to encode")
        }
        let x = try file.tensor(chosen)
        let d = config.dIn, m = config.dSAE
        guard x.rank >= 1, x.shape.last == d, x.count > 0 else {
            throw SAEFileError(
                .shapeMismatch, "\(path): '\(chosen)' is \(x.shape); the SAE reads rows of \(d) values ([..., \(d)])")
        }
        if let bad = x.scalars.firstIndex(where: { !$0.isFinite }) {
            throw SAEFileError(.notFinite, "\(path): '\(chosen)' holds \(x.scalars[bad]) in row \(bad / d)")
        }
        let n = x.count / d
        var latents = [Float](), reconstruction = [Float]()
        latents.reserveCapacity(n * m); reconstruction.reserveCapacity(n * d)
        var at = 0
        while at < n {
            let rows = min(4096, n - at)
            let chunk = Tensor(shape: [rows, d], storage: Array(x.scalars[(at * d)..<((at + rows) * d)]))
            let (a, y) = self(chunk)
            latents += a.scalars; reconstruction += y.scalars
            at += rows
        }
        return (chosen, Tensor(shape: [n, m], storage: latents), Tensor(shape: [n, d], storage: reconstruction))
    }
}

extension SparseAutoencoder {
    /// SHA-256 of what determines the SAE's output — architecture, k, whether b_dec is subtracted
    /// first, and every parameter's shape and float32 values (the threshold included) — so a
    /// result made with it can tell a retrained SAE at the same path from the one it was made with.
    public var contentHash: String {
        var h = SHA256Hasher()
        h.update("\(config.architecture.rawValue) k=\(config.k) apply_b_dec_to_input=\(applyBDecToInput)")
        let parts: [(String, Tensor?)] = [
            ("W_enc", wEnc), ("b_enc", bEnc), ("W_dec", wDec), ("b_dec", bDec), ("threshold", threshold),
        ]
        for case (let name, let t?) in parts { h.update(t, named: name) }
        return h.hexDigest()
    }
}
