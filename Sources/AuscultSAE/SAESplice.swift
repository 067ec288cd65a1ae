// Splicing an SAE into a run: at its hook point the activation is replaced by the SAE's
// reconstruction (or zeroed, the baseline of "fraction of loss recovered"), optionally with latents
// scaled or clamped (steering, as FREUD's feature manipulation), while the statistics of the clean
// activation are accumulated (FVU, L0, firing counts).
import AuscultTensor
import AuscultWhisper
import Foundation

/// A change to one latent before decoding.
public struct LatentEdit: Sendable, Equatable, CustomStringConvertible {
    public enum Kind: Sendable, Equatable {
        /// a_i ← s · a_i (0 turns the latent off).
        case scale(Float)
        /// a_i ← v wherever the row is spliced (forces the latent on).
        case clamp(Float)
    }
    public var latent: Int
    public var kind: Kind
    public init(latent: Int, kind: Kind) { self.latent = latent; self.kind = kind }

    /// Parses `LATENT=xS` (scale, e.g. `17=x0` or `17=x4`) or `LATENT=V` (clamp, e.g. `17=12.5`).
    public init(parsing text: String) throws {
        let parts = text.split(separator: "=", maxSplits: 1).map(String.init)
        guard parts.count == 2, let i = Int(parts[0]), i >= 0 else {
            throw ConditionError(
                .syntax,
                "latent edit '\(text)': expected LATENT=xSCALE (e.g. 17=x0, 17=x4) or LATENT=VALUE (e.g. 17=10)")
        }
        if parts[1].hasPrefix("x"), let s = Float(parts[1].dropFirst()) {
            self.init(latent: i, kind: .scale(s))
        } else if let v = Float(parts[1]) {
            self.init(latent: i, kind: .clamp(v))
        } else {
            throw ConditionError(.syntax, "latent edit '\(text)': '\(parts[1])' is neither xSCALE nor a number")
        }
    }

    public var description: String {
        switch kind {
        case .scale(let s): return "latent \(latent) ×\(s)"
        case .clamp(let v): return "latent \(latent) = \(v)"
        }
    }
}

/// Accumulated statistics of an SAE on the activations it saw (double precision sums, so a whole
/// dataset's FVU is Σ‖x − x̂‖² / Σ‖x − x̄‖² with x̄ the mean over every row seen).
public struct SpliceStats: Sendable {
    public var rows = 0
    public var squaredError = 0.0
    /// Σx and Σx² per input dimension.
    public var sum: [Double]
    public var sumSquares: [Double]
    /// Rows in which each latent fired (a > 0).
    public var fired: [Int]
    public var activeTotal = 0

    public init(dIn: Int, dSAE: Int) {
        sum = [Double](repeating: 0, count: dIn); sumSquares = sum
        fired = [Int](repeating: 0, count: dSAE)
    }

    /// Total variance Σ‖x − x̄‖².
    public var variance: Double {
        guard rows > 0 else { return 0 }
        var v = 0.0
        for j in sum.indices { v += sumSquares[j] - sum[j] * sum[j] / Double(rows) }
        return v
    }
    /// Fraction of variance unexplained.
    public var fvu: Double { variance > 0 ? squaredError / variance : 0 }
    /// Mean active latents per row.
    public var l0: Double { rows > 0 ? Double(activeTotal) / Double(rows) : 0 }
    /// Fraction of rows each latent fired in.
    public var density: [Double] { fired.map { rows > 0 ? Double($0) / Double(rows) : 0 } }
}

/// Replaces the activation at `hook` by an SAE's reconstruction (or zeros), row by row.
///
/// Encoder activations `[B, F, width]` are spliced on the frames that hold audio only (`frames`
/// per clip; the SAE never saw the 30 s padding), decoder ones `[S, n, width]` at every position.
public final class SAESplice: HookHandler, @unchecked Sendable {
    public enum Mode: String, Sendable { case reconstruct, zero, observe }
    public let sae: SparseAutoencoder
    public let hook: String
    public let mode: Mode
    public let edits: [LatentEdit]
    /// Adds back the SAE's error x − x̂ so that only the latent edits change the run.
    public let keepError: Bool
    /// Frames holding audio for each clip of the batch (encoder hooks); nil splices every frame.
    public var frames: [Int]?
    /// The sequence ids (`HookContext.sequences`) this splice touches; nil: every row. Lets
    /// several conditions run as rows of one batch (clean, spliced and zeroed in `SAEEvaluator`).
    public var sequences: Set<Int>?
    /// The SAE on the activations this splice replaced or observed (not accumulated in `.zero` mode).
    public private(set) var stats: SpliceStats

    public init(
        sae: SparseAutoencoder, hook: String, mode: Mode = .reconstruct, edits: [LatentEdit] = [],
        keepError: Bool = false, frames: [Int]? = nil
    ) throws {
        for e in edits where e.latent >= sae.config.dSAE {
            throw ConditionError(.invalidSelector, "\(e): the SAE has latents 0…\(sae.config.dSAE - 1)")
        }
        self.sae = sae; self.hook = hook; self.mode = mode; self.edits = edits; self.keepError = keepError;
        self.frames = frames
        stats = SpliceStats(dIn: sae.config.dIn, dSAE: sae.config.dSAE)
    }

    public func isActive(_ name: String) -> Bool { name == hook }

    public func resetStats() { stats = SpliceStats(dIn: sae.config.dIn, dSAE: sae.config.dSAE) }

    public func visit(_ name: String, _ x: inout Tensor, _ context: HookContext) throws {
        guard name == hook, x.rank >= 2 else { return }
        let b = x.shape[0], n = x.shape[1], d = sae.config.dIn
        let width = x.count / max(1, b * n)
        guard width == d else {
            throw HookError(
                .shapeMismatch,
                "the SAE reads \(d) values per row but \(hook) has \(width) (shape \(x.shape)); was it trained on "
                    + "another hook or model?"
            )
        }
        // The spliced positions of every batch row, as rows of d values of x seen as [b·n, d].
        var spliced = [Int]()
        for r in 0..<b {
            let clip = r < context.clips.count ? context.clips[r] : r
            let sequence = r < context.sequences.count ? context.sequences[r] : r
            var valid = name.hasPrefix("encoder.") ? min(n, frames.map { clip < $0.count ? $0[clip] : n } ?? n) : n
            if let sequences, !sequences.contains(sequence) { valid = 0 }
            spliced += (0..<valid).map { r * n + $0 }
        }
        let total = spliced.count
        guard total > 0 else { return }
        if mode == .zero {
            // The baseline needs no SAE: its statistics are those of the other modes' runs.
            x.replaceRows(spliced, width: d, with: Tensor(zeros: [total, d]))
            return
        }
        let xin = x.reshaped([b * n, d]).gather(rows: spliced)
        let z = sae.preActivations(xin)
        var a = sae.activate(z)
        let clean = sae.decode(a)
        stats.add(xin, clean, a)
        let out: Tensor
        switch mode {
        case .observe: return
        case .zero: return
        case .reconstruct:
            if edits.isEmpty {
                out = keepError ? xin : clean
            } else {
                a.updateRows(Array(0..<total)) { _, row in
                    for e in edits {
                        switch e.kind {
                        case .scale(let s): row[e.latent] *= s
                        case .clamp(let v): row[e.latent] = v
                        }
                    }
                }
                let edited = sae.decode(a)
                out = keepError ? edited + (xin - clean) : edited
            }
        }
        x.replaceRows(spliced, width: d, with: out)
    }
}

extension SpliceStats {
    /// Adds rows `x` `[R, d_in]`, their reconstructions and latents `a` `[R, d_sae]`.
    public mutating func add(_ x: Tensor, _ xhat: Tensor, _ a: Tensor) {
        let n = x.shape[0], d = sum.count, m = fired.count
        rows += n
        let xs = x.scalars, xh = xhat.scalars, av = a.scalars
        for r in 0..<n {
            var e = 0.0
            for j in 0..<d {
                let v = Double(xs[r * d + j])
                let diff = Double(xh[r * d + j]) - v
                e += diff * diff
                sum[j] += v; sumSquares[j] += v * v
            }
            squaredError += e
            for i in 0..<m where av[r * m + i] > 0 { fired[i] += 1; activeTotal += 1 }
        }
    }
}
