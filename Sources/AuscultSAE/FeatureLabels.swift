// Labels for the features of an index: the word and the phoneme each one's top (and most negative)
// examples fall on, and how consistent that is against a null of random frames of the same clips.
// Phonemes come from a pronouncing dictionary (CMUdict) spread evenly over the word's time span
// from the index's word timing: approximate, as the word timing itself is (about 20–100 ms).
import AuscultWhisper
import Foundation

/// Pronunciations by word, as CMUdict writes them (`word  P1 P2 …`; `word(2)` alternatives and
/// `#` comments are skipped): ARPAbet phonemes with the stress digits removed.
public struct PronouncingDictionary: Sendable {
    public let entries: [String: [String]]

    public init(entries: [String: [String]]) { self.entries = entries }

    /// Reads a CMUdict file (scripts/setup.sh installs CMUdict 0.7b as `models/cmudict.dict`).
    public init(contentsOf path: String) throws {
        guard let text = try? String(contentsOfFile: path, encoding: .utf8) else {
            throw StoreError(.missing, "\(path): no pronouncing dictionary there (scripts/setup.sh installs CMUdict)")
        }
        var e = [String: [String]]()
        for line in text.split(separator: "\n") {
            let body = line.split(separator: "#", maxSplits: 1, omittingEmptySubsequences: false)[0]
            let parts = body.split(separator: " ")
            guard parts.count >= 2, !parts[0].contains("(") else { continue }
            let word = String(parts[0]).lowercased()
            if e[word] == nil { e[word] = parts.dropFirst().map { $0.filter { !$0.isNumber } } }
        }
        guard e.count > 1000 else {
            throw StoreError(.corrupt, "\(path): \(e.count) entries; not a CMUdict-style pronouncing dictionary")
        }
        entries = e
    }

    /// `models/cmudict.dict` beside the installed models, if there.
    public static var installedPath: String? {
        guard let dir = ModelStore.modelsDirectory() else { return nil }
        let p = (dir as NSString).appendingPathComponent("cmudict.dict")
        return FileManager.default.fileExists(atPath: p) ? p : nil
    }

    /// The phonemes of `word` (case, surrounding spaces and punctuation ignored), nil if unknown.
    public func phonemes(_ word: String) -> [String]? {
        let w = word.lowercased().trimmingCharacters(in: CharacterSet.alphanumerics.union(["'"]).inverted)
        return w.isEmpty ? nil : entries[w]
    }
}

/// How consistently a feature's examples fall on one label.
public struct LabelScore: Codable, Sendable, Equatable {
    /// The most common label (a phoneme such as `N`, or a word).
    public var label: String
    /// Share of the labelled examples that carry it, and how many those are.
    public var share: Double
    public var examples: Int
    /// Chance of a share at least this large when each example is replaced by a random frame of
    /// its own clip (Monte Carlo, `(1 + hits) / (1 + draws)`).
    public var p: Double
}

/// A feature's labels, for its top and its most negative examples separately.
public struct FeatureLabels: Codable, Sendable, Equatable {
    public var feature: Int
    public var topPhoneme: LabelScore?
    public var topWord: LabelScore?
    public var negativePhoneme: LabelScore?
    public var negativeWord: LabelScore?
    enum CodingKeys: String, CodingKey {
        case feature, topPhoneme = "top_phoneme", topWord = "top_word", negativePhoneme = "negative_phoneme"
        case negativeWord = "negative_word"
    }
}

/// Labels the features of an index (see `FeatureLabels`).
///
///     let labeler = try FeatureLabeler(index: FeatureIndex(path: "out/neurons.sqlite"),
///                                      dictionary: PronouncingDictionary(contentsOf: "models/cmudict.dict"))
///     print(try labeler.labels(25).topPhoneme as Any)
public struct FeatureLabeler {
    public let index: FeatureIndex
    public let dictionary: PronouncingDictionary
    /// Examples of each kind read per feature.
    public var examples = 20
    /// Monte Carlo draws of the null.
    public var draws = 1000
    public var seed: UInt64 = 0
    /// Per clip, the word and phoneme at every frame that lies in a word (nil elsewhere).
    private let frames: [String: [(word: String, phoneme: String?)?]]

    public init(index: FeatureIndex, dictionary: PronouncingDictionary) throws {
        self.index = index; self.dictionary = dictionary
        var frames = [String: [(word: String, phoneme: String?)?]]()
        for name in try index.clipNames() {
            guard let clip = try index.clip(name) else { continue }
            frames[name] = (0..<clip.frames).map { f in
                Self.label(at: (Double(f) + 0.5) * 0.02, words: clip.words, dictionary: dictionary)
            }
        }
        self.frames = frames
    }

    /// The word spoken at `time` (seconds) and the phoneme its dictionary pronunciation places
    /// there, spread evenly over the word's span (nil phoneme for a word not in the dictionary).
    static func label(
        at time: Double, words: [WordSpan], dictionary: PronouncingDictionary
    )
        -> (word: String, phoneme: String?)?
    {
        guard let w = words.first(where: { time >= $0.start && time < $0.end }) else { return nil }
        let word = w.word.lowercased().trimmingCharacters(in: CharacterSet.alphanumerics.union(["'"]).inverted)
        guard !word.isEmpty else { return nil }
        guard let ph = dictionary.phonemes(word), !ph.isEmpty else { return (word, nil) }
        let k = min(ph.count - 1, max(0, Int((time - w.start) / (w.end - w.start) * Double(ph.count))))
        return (word, ph[k])
    }

    /// Labels of feature `feature` (nil when the index has no such feature).
    public func labels(_ feature: Int) throws -> FeatureLabels? {
        guard feature >= 0, feature < index.width else { return nil }
        var out = FeatureLabels(feature: feature)
        for kind in ["top", "negative"] {
            let list = try index.examples(feature, kind, limit: examples).map(\.0)
            let at = list.compactMap { e -> (clip: String, label: (word: String, phoneme: String?))? in
                guard let f = frames[e.clip], e.frame >= 0, e.frame < f.count, let l = f[e.frame] else { return nil }
                return (e.clip, l)
            }
            let word = score(at.map { ($0.clip, $0.label.word) }, feature: feature, kind: kind) { $0.word }
            let phoneme = score(
                at.compactMap { a in a.label.phoneme.map { (a.clip, $0) } }, feature: feature, kind: kind
            ) { $0.phoneme }
            if kind == "top" {
                out.topWord = word; out.topPhoneme = phoneme
            } else {
                out.negativeWord = word; out.negativePhoneme = phoneme
            }
        }
        return out
    }

    /// The most common label of `labelled` (clip, label) and its null: each example replaced by a
    /// random labelled frame of its own clip, `draws` times.
    private func score(
        _ labelled: [(clip: String, label: String)], feature: Int, kind: String,
        _ pick: ((word: String, phoneme: String?)) -> String?
    ) -> LabelScore? {
        var pools = [String: [String]]()
        for (clip, _) in labelled where pools[clip] == nil {
            pools[clip] = (frames[clip] ?? []).compactMap { $0.flatMap(pick) }
        }
        var g = SplitMix64(seed: seed &+ UInt64(feature) &* 2 &+ (kind == "top" ? 0 : 1))
        return Self.score(labelled, pools: pools, draws: draws, using: &g)
    }

    /// The most common label of `labelled` and its share, with the Monte Carlo p-value of a share
    /// at least as large when each example is replaced by a label drawn uniformly from its clip's
    /// `pools` (nil for fewer than two examples).
    static func score(
        _ labelled: [(clip: String, label: String)], pools: [String: [String]], draws: Int,
        using g: inout SplitMix64
    ) -> LabelScore? {
        guard labelled.count >= 2 else { return nil }
        func mode(_ labels: [String]) -> (String, Int) {
            var counts = [String: Int]()
            for l in labels { counts[l, default: 0] += 1 }
            return counts.max { ($0.value, $1.key) < ($1.value, $0.key) }.map { ($0.key, $0.value) } ?? ("", 0)
        }
        let (label, count) = mode(labelled.map(\.label))
        var hits = 0
        for _ in 0..<draws {
            let drawn = labelled.compactMap { e -> String? in
                guard let pool = pools[e.clip], !pool.isEmpty else { return nil }
                return pool[Int(g.next() % UInt64(pool.count))]
            }
            if mode(drawn).1 >= count { hits += 1 }
        }
        return LabelScore(
            label: label, share: Double(count) / Double(labelled.count), examples: labelled.count,
            p: Double(1 + hits) / Double(1 + draws))
    }
}
