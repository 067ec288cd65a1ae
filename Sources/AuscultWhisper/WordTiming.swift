// Word timing from cross-attention, following openai-whisper's `timing.py` (`find_alignment`):
// the alignment heads' cross-attention over the clip's frames, standardised per frame across
// tokens, median-filtered along time (width 7), averaged over heads, then aligned to tokens by
// dynamic time warping; a word starts where the path first reaches its first token.
import AuscultTensor
import Foundation

/// A word and when it is spoken.
public struct WordTiming: Codable, Sendable, Equatable {
    /// The word as decoded, with its leading space (" Americans"); punctuation is its own word.
    public var word: String
    public var tokens: [Int]
    /// Seconds from the start of the clip (20 ms resolution).
    public var start: Double
    public var end: Double
    /// The mean probability of the word's tokens under the teacher-forced pass (softmax over the
    /// text vocabulary, as find_alignment's `text_token_probs`); nil when timed from patterns alone.
    public var probability: Double?

    public init(word: String, tokens: [Int], start: Double, end: Double, probability: Double? = nil) {
        self.word = word; self.tokens = tokens; self.start = start; self.end = end; self.probability = probability
    }
}

/// The cross-attention heads whose patterns follow the speech in time, per model (openai-whisper's
/// `_ALIGNMENT_HEADS`, decoded to (layer, head)).
public enum AlignmentHeads {
    /// Flattened indices `layer · n_text_head + head` for models recognised by their dimensions.
    static let table: [String: [Int]] = [
        "tiny.en": [6, 12, 17, 18, 19, 20, 21, 22], "tiny": [14, 18, 20, 21, 22, 23],
        "base.en": [27, 39, 41, 45, 47], "base": [25, 34, 35, 39, 41, 42, 44, 46],
        "small.en": [78, 84, 87, 92, 98, 101, 103, 108, 112, 116, 118, 120, 121, 122, 123, 126, 131, 134, 136],
        "small": [63, 69, 96, 100, 103, 104, 108, 115, 117, 125],
        "medium.en": [180, 225, 236, 238, 244, 256, 260, 265, 284, 286, 295, 298, 303, 320, 323, 329, 334, 348],
        "medium": [223, 244, 255, 257, 320, 372],
        "large-v3": [140, 217, 258, 272, 321, 354, 391, 424, 481, 506],
        "large-v3-turbo": [44, 51, 63, 66, 71, 74],
    ]

    /// The model's name in `table` from its dimensions (nil for large-v1/v2, which share theirs).
    static func name(_ d: ModelDimensions) -> String? {
        let en = d.isMultilingual ? "" : ".en"
        switch (d.n_text_layer, d.n_text_state, d.n_mels) {
        case (4, 384, 80): return "tiny" + en
        case (6, 512, 80): return "base" + en
        case (12, 768, 80): return "small" + en
        case (24, 1024, 80): return "medium" + en
        case (32, 1280, 128): return "large-v3"
        case (4, 1280, 128): return "large-v3-turbo"
        default: return nil
        }
    }

    /// Whether openai-whisper lists alignment heads for a model of these dimensions.
    public static func isListed(_ d: ModelDimensions) -> Bool { name(d).flatMap { table[$0] } != nil }

    /// (layer, head) pairs; models not in the table use every head of the upper half of the
    /// decoder's layers, as openai-whisper does.
    public static func heads(for d: ModelDimensions) -> [(layer: Int, head: Int)] {
        if let n = name(d), let flat = table[n] { return flat.map { ($0 / d.n_text_head, $0 % d.n_text_head) } }
        return (d.n_text_layer / 2..<d.n_text_layer).flatMap { l in (0..<d.n_text_head).map { (l, $0) } }
    }
}

extension LoadedModel {
    /// Times the words of `textTokens` (no special tokens) spoken in one clip whose encoded audio
    /// is `audio` `[1, F, d]`; `samples` is the clip's length at 16 kHz (the frames after it are
    /// padding and are not aligned to).
    public func alignWords(
        audio: Tensor, textTokens: [Int], samples: Int, language: String = "en"
    ) throws -> [WordTiming] {
        guard !textTokens.isEmpty else { return [] }
        let tok = tokenizer, dims = model.dims
        let prompt = tok.sotSequence(language: dims.isMultilingual ? language : "en", task: "transcribe")
        let tokens = prompt + [tok.noTimestamps] + textTokens + [tok.eot]
        let heads = AlignmentHeads.heads(for: dims)
        let layers = Set(heads.map(\.layer))
        let rec = ActivationRecorder { name in
            layers.contains { name == "decoder.blocks.\($0).cross_attn.hook_pattern" }
        }
        let logits = try model.decode(
            [tokens], cache: try model.makeCache(audio: audio, audioIndex: [0], hooks: rec), hooks: rec)
        var words = try timeWords(
            crossAttention: { rec.store["decoder.blocks.\($0).cross_attn.hook_pattern"] }, inputTokens: tokens,
            promptCount: prompt.count + 1, samples: samples, heads: heads)
        // Each text token's probability where it is predicted (from the position before it),
        // over the text vocabulary only: find_alignment's `logits[len(sot_sequence):, :eot]`.
        let predicting = prompt.count..<(prompt.count + textTokens.count)
        let logProbs = logits.select(0, axis: 0).slice(predicting, axis: 0).slice(0..<tok.eot, axis: 1)
            .logSoftmaxRows()
        let probs = textTokens.indices.map { exp(logProbs[$0][textTokens[$0]]) }
        var first = 0
        for w in words.indices {
            let n = words[w].tokens.count
            words[w].probability = probs[first..<(first + n)].reduce(0, +) / Double(n)
            first += n
        }
        return words
    }

    /// Times the words of a teacher-forced input from cross-attention patterns already computed:
    /// `crossAttention(layer)` is decoder block `layer`'s `cross_attn.hook_pattern` `[h, T, F]`
    /// (a leading batch axis of 1 is allowed), `inputTokens` the decoder input (prompt of
    /// `promptCount` tokens ending in `<|notimestamps|>`, the text, end-of-text), `heads` the
    /// (layer, head) pairs averaged (the alignment heads, or any others: `auscult heads` times
    /// words with each head alone).
    public func timeWords(
        crossAttention: (Int) -> Tensor?, inputTokens tokens: [Int], promptCount: Int, samples: Int,
        heads: [(layer: Int, head: Int)]
    ) throws -> [WordTiming] {
        let evidence = try heads.map {
            try alignmentEvidence(
                crossAttention: crossAttention, inputTokens: tokens, promptCount: promptCount, samples: samples,
                layer: $0.layer, head: $0.head)
        }
        return try timeWords(evidence: evidence, inputTokens: tokens, promptCount: promptCount)
    }

    /// One head's cross-attention as find_alignment prepares it, `[T][frames]` (frames: those
    /// holding audio): the pattern over the clip's frames renormalised (softmax over the
    /// truncated scores), standardised across tokens, median-filtered along time (width 7).
    /// Empty when the clip has no whole frame.
    public func alignmentEvidence(
        crossAttention: (Int) -> Tensor?, inputTokens tokens: [Int], promptCount: Int, samples: Int, layer: Int,
        head: Int
    ) throws -> [[Float]] {
        let dims = model.dims, tok = tokenizer
        guard tokens.count >= promptCount + 2, promptCount >= 1, tokens.last == tok.eot else {
            throw WhisperError(
                .invalidArgument,
                "word timing wants the prompt (\(promptCount) tokens), text and end-of-text; got \(tokens.count) tokens"
            )
        }
        let nFrames = min(dims.n_audio_ctx, min(2 * dims.n_audio_ctx, samples / 160) / 2)
        let t = tokens.count, f = dims.n_audio_ctx, h = dims.n_text_head
        guard nFrames > 0 else { return [] }
        guard (0..<dims.n_text_layer).contains(layer), (0..<h).contains(head) else {
            throw WhisperError(
                .invalidArgument,
                "word timing: head \(layer).\(head) is outside \(dims.n_text_layer) layers × \(h) heads")
        }
        guard let p = crossAttention(layer), p.shape.suffix(3) == [h, t, f], p.count == h * t * f else {
            throw WhisperError(
                .invalidArgument,
                "word timing: no cross-attention pattern [\(h), \(t), \(f)] from decoder block \(layer)")
        }
        var w = [[Float]](repeating: [], count: t)
        let pattern = p.reshaped([h, t, f]).select(head, axis: 0).slice(0..<nFrames, axis: 1)  // [t, nFrames]
        for i in 0..<t {
            var row = pattern.row(i).scalars
            let s = row.reduce(0, +)
            for j in row.indices { row[j] /= s }
            w[i] = row
        }
        for j in 0..<nFrames {
            var mean: Float = 0
            for i in 0..<t { mean += w[i][j] }
            mean /= Float(t)
            var variance: Float = 0
            for i in 0..<t { variance += (w[i][j] - mean) * (w[i][j] - mean) }
            let std = (variance / Float(t)).squareRoot()
            for i in 0..<t { w[i][j] = (w[i][j] - mean) / std }
        }
        return w.map { Self.medianFilter($0, width: 7) }
    }

    /// Times the words from heads' `alignmentEvidence` (averaged, then aligned to the tokens by
    /// dynamic time warping; a word starts where the path first reaches its first token).
    public func timeWords(evidence: [[[Float]]], inputTokens tokens: [Int], promptCount: Int) throws -> [WordTiming] {
        let tok = tokenizer, t = tokens.count
        guard let nFrames = evidence.first?.first?.count, nFrames > 0 else { return [] }
        guard evidence.allSatisfy({ $0.count == t && $0.allSatisfy { $0.count == nFrames } }), promptCount >= 1,
            t >= promptCount + 2
        else {
            throw WhisperError(.invalidArgument, "word timing: evidence of unequal shapes for \(t) tokens")
        }
        let textTokens = Array(tokens[promptCount..<(t - 1)])
        var matrix = [[Double]](repeating: [Double](repeating: 0, count: nFrames), count: t)
        for e in evidence {
            for i in 0..<t { for j in 0..<nFrames { matrix[i][j] += Double(e[i][j]) / Double(evidence.count) } }
        }
        // Rows from the no-timestamps position to the last text token.
        let rows = Array(matrix[(promptCount - 1)..<(t - 1)]).map { $0.map { -$0 } }
        let (textIndex, timeIndex) = Self.dtw(rows)
        let (words, wordTokens) = splitToWordTokens(textTokens + [tok.eot])
        guard wordTokens.count > 1 else { return [] }
        var jumpTimes = [Double]()
        for k in textIndex.indices where k == 0 || textIndex[k] != textIndex[k - 1] {
            jumpTimes.append(Double(timeIndex[k]) / 50)
        }
        var boundaries = [0]
        for wt in wordTokens.dropLast() { boundaries.append(boundaries.last! + wt.count) }
        return (0..<(boundaries.count - 1)).map { i in
            WordTiming(
                word: words[i], tokens: wordTokens[i], start: jumpTimes[boundaries[i]],
                end: jumpTimes[boundaries[i + 1]])
        }
    }

    /// Splits tokens into words as openai-whisper does for space-delimited languages: tokens are
    /// first grouped until they decode to whole characters, then a group that starts with a
    /// space, is punctuation or is a special token starts a new word.
    func splitToWordTokens(_ tokens: [Int]) -> (words: [String], tokens: [[Int]]) {
        var subwords = [String](), subTokens = [[Int]](), current = [Int]()
        for token in tokens {
            current.append(token)
            let text = token >= tokenizer.eot ? tokenizer.decodeWithSpecials(current) : tokenizer.decode(current)
            if !text.contains("\u{FFFD}") {
                subwords.append(text); subTokens.append(current); current = []
            }
        }
        if !current.isEmpty { subwords.append(tokenizer.decode(current)); subTokens.append(current) }
        // Python's `subword.strip() in string.punctuation`: a substring test (so "" counts too).
        let punctuation = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
        var words = [String](), wordTokens = [[Int]]()
        for (s, ts) in zip(subwords, subTokens) {
            let trimmed = s.trimmingCharacters(in: .whitespaces)
            let special = ts[0] >= tokenizer.eot
            let isPunctuation = Self.isPunctuation(trimmed, in: punctuation)
            if special || s.hasPrefix(" ") || isPunctuation || words.isEmpty {
                words.append(s); wordTokens.append(ts)
            } else {
                words[words.count - 1] += s; wordTokens[wordTokens.count - 1] += ts
            }
        }
        return (words, wordTokens)
    }

    /// Python's `word in marks`: a substring test, so the empty word counts too.
    static func isPunctuation(_ word: String, in marks: String) -> Bool {
        word.isEmpty || marks.range(of: word, options: .literal) != nil
    }

    /// Median over a sliding window of odd `width` with reflected edges (scipy's / whisper's
    /// `median_filter`); rows no longer than width/2 are returned as they are.
    static func medianFilter(_ x: [Float], width: Int) -> [Float] {
        let pad = width / 2, n = x.count
        guard n > pad else { return x }
        var padded = [Float]()
        padded.reserveCapacity(n + 2 * pad)
        for i in stride(from: pad, to: 0, by: -1) { padded.append(x[i]) }
        padded += x
        for i in 0..<pad { padded.append(x[n - 2 - i]) }
        var window = [Float](repeating: 0, count: width)
        return (0..<n).map { j in
            for k in 0..<width { window[k] = padded[j + k] }
            window.sort()
            return window[pad]
        }
    }

    /// Dynamic time warping of a cost matrix `[N, M]`: the monotone path from (0, 0) to
    /// (N − 1, M − 1) of least total cost, as (row, column) index sequences (openai-whisper's
    /// `dtw_cpu`, including its tie-breaking: diagonal, then up, then left).
    static func dtw(_ x: [[Double]]) -> (rows: [Int], cols: [Int]) {
        let n = x.count, m = x.first?.count ?? 0
        var cost = [[Double]](repeating: [Double](repeating: .infinity, count: m + 1), count: n + 1)
        var trace = [[Int8]](repeating: [Int8](repeating: -1, count: m + 1), count: n + 1)
        cost[0][0] = 0
        for j in 1...max(1, m) where m > 0 {
            for i in 1...max(1, n) where n > 0 {
                let c0 = cost[i - 1][j - 1], c1 = cost[i - 1][j], c2 = cost[i][j - 1]
                let (c, t): (Double, Int8)
                if c0 < c1 && c0 < c2 {
                    (c, t) = (c0, 0)
                } else if c1 < c0 && c1 < c2 {
                    (c, t) = (c1, 1)
                } else {
                    (c, t) = (c2, 2)
                }
                cost[i][j] = x[i - 1][j - 1] + c
                trace[i][j] = t
            }
        }
        for j in 0...m { trace[0][j] = 2 }
        for i in 0...n { trace[i][0] = 1 }
        var i = n, j = m
        var rows = [Int](), cols = [Int]()
        while i > 0 || j > 0 {
            rows.append(i - 1); cols.append(j - 1)
            switch trace[i][j] {
            case 0: i -= 1; j -= 1
            case 1: i -= 1
            default: j -= 1
            }
        }
        return (rows.reversed(), cols.reversed())
    }
}
