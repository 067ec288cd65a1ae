// Head scores on one attention pattern, for the three kinds of attention Whisper has.
//
// Decoder self-attention follows TransformerLens's `head_detector.py` (`detect_head`): detection
// patterns for previous-token, duplicate-token and induction heads built from the input tokens,
// and the "mul" and "abs" similarity measures with the same `exclude_bos` and
// `exclude_current_token` switches (without the rounding to three decimals TL applies to "abs").
// Olsson et al. 2022 ("In-context learning and induction heads") add the prefix-matching score on
// random tokens repeated twice and the copying score of the OV circuit's eigenvalues.
// Encoder self-attention and cross-attention have no published detector; the definitions here
// are stated on each function and in docs/heads.md.
import AuscultTensor
import Foundation

/// Scores of one head's attention pattern. Patterns are row-major `[queries, keys]` with each row
/// summing to 1 (softmax over keys).
public enum HeadDetector {
    /// How a pattern is compared with a detection pattern (TransformerLens's `error_measure`).
    public enum Measure: String, Codable, Sendable, CaseIterable {
        /// Σ(P ⊙ D) / ΣP: the share of attention on the detection pattern's positions.
        case mul
        /// 1 − Σ|P − D| / n: one minus the mean L1 distance of a row from the detection row.
        case abs
    }

    /// TransformerLens's switches: `excludeBOS` drops key 0 (Whisper's start-of-transcript) and
    /// `excludeCurrentToken` the diagonal, from both the attention and the comparison.
    public struct Options: Codable, Sendable, Equatable {
        public var measure: Measure
        public var excludeBOS: Bool
        public var excludeCurrentToken: Bool
        public init(measure: Measure = .mul, excludeBOS: Bool = false, excludeCurrentToken: Bool = false) {
            self.measure = measure; self.excludeBOS = excludeBOS; self.excludeCurrentToken = excludeCurrentToken
        }
        enum CodingKeys: String, CodingKey {
            case measure, excludeBOS = "exclude_bos", excludeCurrentToken = "exclude_current_token"
        }
    }

    /// 1 on the diagonal below the main one: each position attends to the one before (`[n, n]`).
    public static func previousTokenPattern(count n: Int) -> [Float] {
        var d = [Float](repeating: 0, count: n * n)
        for i in 1..<max(1, n) { d[i * n + i - 1] = 1 }
        return d
    }

    /// 1 where an earlier position holds the same token (`[n, n]`, the diagonal excluded).
    public static func duplicateTokenPattern(_ tokens: [Int]) -> [Float] {
        let n = tokens.count
        var d = [Float](repeating: 0, count: n * n)
        for i in 0..<n { for j in 0..<i where tokens[j] == tokens[i] { d[i * n + j] = 1 } }
        return d
    }

    /// The duplicate-token pattern shifted one key to the right: position i attends to the token
    /// after an earlier occurrence of its own token (kept lower-triangular, key 0 never marked).
    public static func inductionPattern(_ tokens: [Int]) -> [Float] {
        let n = tokens.count
        var d = [Float](repeating: 0, count: n * n)
        for i in 1..<max(1, n) { for j in 1...i where tokens[j - 1] == tokens[i] { d[i * n + j] = 1 } }
        return d
    }

    /// How closely `pattern` `[n, n]` follows `detection` `[n, n]` under `options` (TransformerLens's
    /// `compute_head_attention_similarity_score`). "mul" is nil when the exclusions leave no
    /// attention at all. "abs" needs a lower-triangular detection pattern (a causal head cannot
    /// attend ahead).
    public static func score(
        pattern: [Float], detection: [Float], n: Int, options: Options = Options()
    ) throws
        -> Double?
    {
        guard n >= 1, pattern.count == n * n, detection.count == n * n else {
            throw LensError(
                .invalidArgument,
                "head score: pattern (\(pattern.count) values) and detection pattern (\(detection.count)) must both be "
                    + "\(n) × \(n)")
        }
        if let bad = detection.firstIndex(where: { !$0.isFinite }) {
            throw LensError(.invalidArgument, "detection pattern: value \(detection[bad]) at \(bad / n), \(bad % n)")
        }
        func kept(_ i: Int, _ j: Int) -> Bool {
            !(options.excludeBOS && j == 0) && !(options.excludeCurrentToken && i == j)
        }
        switch options.measure {
        case .mul:
            var hit = 0.0, total = 0.0
            for i in 0..<n {
                for j in 0..<n where kept(i, j) {
                    let p = Double(pattern[i * n + j])
                    hit += p * Double(detection[i * n + j]); total += p
                }
            }
            return total > 0 ? hit / total : nil
        case .abs:
            for i in 0..<n {
                for j in (i + 1)..<max(i + 1, n) where detection[i * n + j] != 0 || pattern[i * n + j] > 1e-6 {
                    throw LensError(
                        .invalidArgument,
                        "the abs measure compares lower-triangular patterns; position \(i) has weight at later key \(j)"
                    )
                }
            }
            var l1 = 0.0
            for i in 0..<n {
                for j in 0...i where kept(i, j) { l1 += Swift.abs(Double(pattern[i * n + j] - detection[i * n + j])) }
            }
            return 1 - l1 / Double(n)
        }
    }

    /// Olsson et al.'s prefix-matching score on a sequence whose tokens `start..<start + length`
    /// repeat at `start + length..<start + 2·length`: the mean attention a token of the second
    /// copy pays to the token after its first occurrence (`pattern` `[n, n]`).
    public static func prefixMatching(pattern: [Float], n: Int, start: Int, length: Int) -> Double {
        precondition(start + 2 * length <= n && length >= 1 && pattern.count == n * n)
        var s = 0.0
        for i in (start + length)..<(start + 2 * length) { s += Double(pattern[i * n + i - length + 1]) }
        return s / Double(length)
    }

    /// Olsson et al.'s copying score of a circuit's eigenvalues λ: Σ Re λ / Σ |λ|, in [−1, 1].
    /// 1 means every eigenvalue is positive (what the head writes raises the logits of the tokens
    /// it attends to: copying); nil for a zero circuit.
    public static func copyingScore(eigenvalues: [Complex]) -> Double? {
        let total = eigenvalues.reduce(0) { $0 + $1.magnitude }
        return total > 0 ? eigenvalues.reduce(0) { $0 + $1.re } / total : nil
    }

    /// What an encoder self-attention head does over one clip.
    public struct EncoderStats: Codable, Sendable, Equatable {
        /// Mean attention of a frame to the frame before it.
        public var previousFrame: Double
        /// Median over frames of the smallest w for which keys within ±w frames hold half of the
        /// frame's attention (20 ms per frame): how local the head is.
        public var bandWidth: Double
        /// Mean share of attention within ±5 frames (±100 ms).
        public var localShare: Double
        /// Mean share of attention on padding beyond the clip's audio (a sink; 0 for a 30 s clip).
        public var paddingShare: Double
        /// Mean share of attention on frame 0 (the other kind of sink).
        public var firstFrameShare: Double
        enum CodingKeys: String, CodingKey {
            case previousFrame = "previous_frame", bandWidth = "band_width", localShare = "local_share"
            case paddingShare = "padding_share", firstFrameShare = "first_frame_share"
        }
    }

    /// Encoder statistics of one head's pattern `[F, F]` (`pattern[offset...]`) over the query
    /// frames that hold audio (`0..<audioFrames`).
    public static func encoderStats(pattern p: ArraySlice<Float>, frames f: Int, audioFrames a: Int) -> EncoderStats {
        precondition(p.count == f * f && a >= 1 && a <= f)
        let base = p.startIndex
        var previous = 0.0, local = 0.0, padding = 0.0, first = 0.0
        var widths = [Int]()
        widths.reserveCapacity(a)
        for i in 0..<a {
            let row = base + i * f
            if i > 0 { previous += Double(p[row + i - 1]) }
            first += Double(p[row])
            var pad = 0.0
            for j in a..<max(a, f) { pad += Double(p[row + j]) }
            padding += pad
            var mass = Double(p[row + i]), w = 0
            while mass < 0.5 && w < f {
                w += 1
                if i - w >= 0 { mass += Double(p[row + i - w]) }
                if i + w < f { mass += Double(p[row + i + w]) }
                if w == 5 { local += mass }
            }
            if w < 5 {
                for k in (w + 1)...5 {
                    if i - k >= 0 { mass += Double(p[row + i - k]) }
                    if i + k < f { mass += Double(p[row + i + k]) }
                }
                local += mass
            }
            widths.append(w)
        }
        widths.sort()
        let median =
            widths.count % 2 == 1
            ? Double(widths[widths.count / 2]) : Double(widths[widths.count / 2 - 1] + widths[widths.count / 2]) / 2
        let n = Double(a)
        return EncoderStats(
            previousFrame: a > 1 ? previous / Double(a - 1) : 0, bandWidth: median, localShare: local / n,
            paddingShare: padding / n, firstFrameShare: first / n)
    }

    /// How monotonic a cross-attention head is over decoding: Spearman's ρ between the position
    /// of each query row in `rows` and the audio frame (of `0..<audioFrames`) it attends to most
    /// (`pattern` `[T, F]`). 1: each token looks later in the audio than the one before. Nil for
    /// fewer than three rows.
    public static func monotonicity(
        pattern p: ArraySlice<Float>, rows: Range<Int>, frames f: Int, audioFrames a: Int
    )
        -> Double?
    {
        guard rows.count >= 3 else { return nil }
        let peaks = rows.map { i -> Double in
            let row = p.startIndex + i * f
            var best = 0
            for j in 1..<max(1, a) where p[row + j] > p[row + best] { best = j }
            return Double(best)
        }
        return spearman(rows.map(Double.init), peaks)
    }

    /// Spearman's rank correlation (average ranks for ties); nil when either side is constant.
    public static func spearman(_ x: [Double], _ y: [Double]) -> Double? {
        guard x.count == y.count else { return nil }
        return Statistics.spearmanIfDefined(x, y)
    }
}
