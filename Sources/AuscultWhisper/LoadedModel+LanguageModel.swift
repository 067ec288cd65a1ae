// The decoder as a language model: text <-> token ids, the next-token distribution after any
// prefix on any audio (30 s of silence by default: what the decoder predicts from language alone),
// and the token embedding's nearest neighbours by mean-centred cosine.
import AuscultTensor
import Foundation

/// One candidate next token.
public struct TokenPrediction: Codable, Sendable, Equatable {
    public var token: Int
    /// The token as text (special tokens by name, e.g. `<|endoftext|>`).
    public var text: String
    /// Natural-log probability under the model, and the probability.
    public var logprob: Double
    public var probability: Double
}

/// A token and its similarity to another one.
public struct TokenNeighbour: Codable, Sendable, Equatable {
    public var token: Int
    public var text: String
    public var cosine: Double
}

extension LoadedModel {
    /// 30 s of silence: the audio the decoder reads when it is asked to predict from language alone.
    public static var silence: AudioInput { .samples([Float](repeating: 0, count: 480_000)) }

    /// The `k` most likely tokens after the decoder prompt (`prompt(options)`: with a previous-context
    /// prompt and a prefix when `options` has them) and `prefix` (text token ids) on `audio`, most
    /// likely first.
    public func nextTokens(
        after prefix: [Int], audio: AudioInput = LoadedModel.silence, k: Int = 10,
        options: DecodingOptions = DecodingOptions()
    ) throws
        -> [TokenPrediction]
    {
        guard k >= 1 else { throw WhisperError(.invalidArgument, "k \(k): ask for at least one token") }
        let r = try run(audio, tokens: prompt(options) + prefix, logits: true)
        guard let logits = r.logits else { throw WhisperError(.invalidArgument, "the run returned no logits") }
        let n = model.dims.n_vocab, last = logits.rows(logits.shape[0] - 1..<logits.shape[0]).scalars
        let top = last.max() ?? 0
        var sum = 0.0
        for v in last { sum += exp(Double(v - top)) }
        let logZ = Double(top) + log(sum)
        let order = (0..<n).sorted { last[$0] > last[$1] || (last[$0] == last[$1] && $0 < $1) }.prefix(min(k, n))
        return order.map { t in
            let lp = Double(last[t]) - logZ
            return TokenPrediction(
                token: t, text: tokenizer.decodeWithSpecials([t]), logprob: lp, probability: exp(lp))
        }
    }

    /// The `k` tokens whose embeddings are nearest `token`'s by cosine after subtracting the mean
    /// embedding: Whisper's raw token embeddings share a large common direction (every pair's
    /// cosine sits near 0.9), which centring removes. Special tokens are left out.
    public func embeddingNeighbours(of token: Int, k: Int = 10) throws -> [TokenNeighbour] {
        let e = model.weights["decoder.token_embedding.weight"], n = e.shape[0], d = e.shape[1]
        guard (0..<n).contains(token) else {
            throw DecodingError(.invalidToken, "token \(token) is outside the vocabulary 0..<\(n)")
        }
        guard k >= 1 else { throw WhisperError(.invalidArgument, "k \(k): ask for at least one neighbour") }
        let v = e.scalars
        var mean = [Double](repeating: 0, count: d)
        for i in 0..<n { for j in 0..<d { mean[j] += Double(v[i * d + j]) } }
        for j in 0..<d { mean[j] /= Double(n) }
        func centred(_ i: Int) -> [Double] { (0..<d).map { Double(v[i * d + $0]) - mean[$0] } }
        let q = centred(token), qn = sqrt(q.reduce(0) { $0 + $1 * $1 })
        var scored = [(Int, Double)]()
        for i in 0..<min(n, tokenizer.eot) where i != token {
            let c = centred(i)
            var dot = 0.0, norm = 0.0
            for j in 0..<d { dot += q[j] * c[j]; norm += c[j] * c[j] }
            scored.append((i, dot / max(1e-12, qn * sqrt(norm))))
        }
        scored.sort { $0.1 > $1.1 || ($0.1 == $1.1 && $0.0 < $1.0) }
        return scored.prefix(k).map {
            TokenNeighbour(token: $0.0, text: tokenizer.decodeWithSpecials([$0.0]), cosine: $0.1)
        }
    }
}

extension LoadedModel {
    /// A prompt or prefix given as text, tokenised as openai-whisper's decoding does:
    /// `encode(" " + text.strip())`.
    public func promptTokens(_ text: String) -> [Int] {
        tokenizer.encode(" " + text.trimmingCharacters(in: .whitespacesAndNewlines))
    }

    /// Checks ids given as a prompt or prefix (`what` names it in the message): text tokens only
    /// (below end-of-text), at most half the decoder's context.
    public func checkTextTokens(_ ids: [Int], what: String) throws {
        if let bad = ids.first(where: { !(0..<tokenizer.eot).contains($0) }) {
            throw DecodingError(
                .invalidToken, "\(what): token \(bad) is not a text token (0..<\(tokenizer.eot))")
        }
        let limit = model.dims.n_text_ctx / 2
        guard ids.count <= limit else {
            throw DecodingError(
                .invalidOptions, "\(what): \(ids.count) tokens; at most \(limit) (half the decoder's context)")
        }
    }
}
