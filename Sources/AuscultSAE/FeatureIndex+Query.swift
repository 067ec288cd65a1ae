// Reading a feature index: one feature's page (summary, examples, quantile groups, sample for
// the activation histogram, co-active features), rankings, word search, clips and their words.
// `auscult features` and the Studio's JSON API both return these types, so they agree.
import Foundation

/// Another feature active in the same frame as an example, and its value there.
public struct Coactive: Codable, Sendable, Equatable {
    public var feature: Int
    public var value: Float
    public init(feature: Int, value: Float) { self.feature = feature; self.value = value }

    /// `12:3.41 55:2.1`, as stored in the index's `coactive` column.
    static func format(_ list: [Coactive]) -> String {
        list.map { "\($0.feature):\(String(format: "%.4g", $0.value))" }.joined(separator: " ")
    }
    static func parse(_ text: String) -> [Coactive] {
        text.split(separator: " ").compactMap { part in
            let kv = part.split(separator: ":")
            guard kv.count == 2, let f = Int(kv[0]), let v = Float(kv[1]) else { return nil }
            return Coactive(feature: f, value: v)
        }
    }
}

/// One feature's summary and examples, as `auscult features` prints it.
public struct FeatureRecord: Codable, Sendable {
    public var feature: Int
    /// Frames in which it is positive, and that count over all frames.
    public var fired: Int
    public var density: Double
    public var meanActive: Double?
    public var top: [FeatureExample]
    public var negative: [FeatureExample]
    enum CodingKeys: String, CodingKey { case feature, fired, density, top, negative; case meanActive = "mean_active" }
}

/// A group of sampled examples whose values lie between two quantiles of the feature's
/// activations where it fires (SAEDashboard's quantile groups).
public struct QuantileGroup: Codable, Sendable, Equatable {
    /// The quantiles bounding the group, in 0…1, and the smallest and largest value in it.
    public var fromQuantile: Double
    public var toQuantile: Double
    public var low: Float
    public var high: Float
    public var examples: [FeatureExample]
    enum CodingKeys: String, CodingKey {
        case low, high, examples
        case fromQuantile = "from_quantile", toQuantile = "to_quantile"
    }
}

/// A feature that is often among the most active features where another one peaks.
public struct CoactiveFeature: Codable, Sendable, Equatable {
    public var feature: Int
    /// Top examples of the page's feature in whose frame this one is among the most active.
    public var examples: Int
    /// Its mean value in those frames.
    public var meanValue: Float
    enum CodingKeys: String, CodingKey { case feature, examples; case meanValue = "mean_value" }
}

/// Everything a feature's page shows: the Studio's `GET …/features/{id}` and
/// `auscult features --feature N --format json` return it.
public struct FeaturePage: Codable, Sendable, Equatable {
    public var feature: Int
    /// `sae` or `neurons`, the hook point and the SAE or hook the index describes.
    public var kind: String
    public var hook: String
    public var fired: Int
    public var density: Double
    public var meanActive: Double?
    public var maxValue: Double?
    public var minValue: Double?
    /// Top examples (one per clip, best first) and most negative ones (SAE: pre-activations).
    public var top: [FeatureExample]
    public var negative: [FeatureExample]
    /// Values of a uniform sample of the frames where it fires, ascending (for the histogram).
    public var sample: [Float]
    public var quantiles: [QuantileGroup]
    public var coactive: [CoactiveFeature]
    enum CodingKeys: String, CodingKey {
        case feature, kind, hook, fired, density, top, negative, sample, quantiles, coactive
        case meanActive = "mean_active", maxValue = "max_value", minValue = "min_value"
    }
}

/// An indexed clip: its id in the index, frames holding audio, transcript and word timing.
public struct IndexedClip: Codable, Sendable {
    public var name: String
    public var frames: Int
    public var transcript: String
    public var reference: String?
    public var words: [WordSpan]
}

/// A word and its time span in seconds.
public struct WordSpan: Codable, Sendable, Equatable {
    public var word: String
    public var start: Double
    public var end: Double
    public init(word: String, start: Double, end: Double) { self.word = word; self.start = start; self.end = end }
}

/// Reads a feature index.
public struct FeatureIndex {
    public let db: SQLiteDatabase
    public let meta: [String: String]
    public let path: String

    public init(path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw StoreError(.missing, "\(path): no feature index there (build one with `auscult index`)")
        }
        db = try SQLiteDatabase(path: path, create: false)
        self.path = path
        var m = [String: String]()
        do {
            for row in try db.rows("SELECT key, value FROM meta") { m[row[0].text!] = row[1].text! }
        } catch {
            throw StoreError(.corrupt, "\(path) is not a feature index", cause: error)
        }
        guard Int(m["width"] ?? "").map({ $0 > 0 }) == true, m["hook"] != nil else {
            throw StoreError(.corrupt, "\(path): the index names no hook or width; rebuild it with `auscult index`")
        }
        meta = m
    }

    public var width: Int { Int(meta["width"] ?? "") ?? 0 }
    public var kind: String { meta["kind"] ?? "?" }
    public var hook: String { meta["hook"] ?? "?" }
    /// The version `FeatureIndexBuilder` writes: 3 keeps top frames across the dataset (several per
    /// clip, `separation` apart); 2 kept one per clip; 1 had no samples or co-activation.
    public static let currentVersion = "3"

    /// Indexes written before samples and co-activation were kept (version 1) have neither.
    var hasSamples: Bool { (Int(meta["version"] ?? "1") ?? 1) >= 2 }

    /// One feature with its examples (nil if the index has no such feature).
    public func feature(_ i: Int, examples: Int = 10) throws -> FeatureRecord? {
        guard let f = try db.rows("SELECT fired, density, mean_active FROM features WHERE id = ?", [.int(i)]).first
        else { return nil }
        return FeatureRecord(
            feature: i, fired: f[0].int!, density: f[1].double!, meanActive: f[2].double,
            top: try self.examples(i, "top", limit: examples).map(\.0),
            negative: try self.examples(i, "negative", limit: examples).map(\.0))
    }

    /// The kept examples of one kind (`top`, `negative`, `sample`) in rank order, with the
    /// co-active features stored with each (top examples only).
    public func examples(_ i: Int, _ kind: String, limit: Int) throws -> [(FeatureExample, [Coactive])] {
        try db.rows(
            """
            SELECT c.name, e.frame, e.time, e.value, e.word, \(hasSamples ? "e.coactive" : "NULL") FROM examples e
            JOIN clips c ON c.id = e.clip WHERE e.feature = ? AND e.kind = ? ORDER BY e.rank LIMIT ?
            """, [.int(i), .text(kind), .int(limit)]
        ).map {
            (
                FeatureExample(
                    clip: $0[0].text!, frame: $0[1].int!, time: $0[2].double!, value: Float($0[3].double!),
                    word: $0[4].text),
                Coactive.parse($0[5].text ?? "")
            )
        }
    }

    /// A feature's page: `examples` top and negative examples, the sample split into `groups`
    /// quantile groups of at most `perGroup`, and the `coactiveLimit` features most often among
    /// the most active ones where its top examples are. Nil if the index has no such feature.
    public func page(
        _ i: Int, examples: Int = 20, groups: Int = 10, perGroup: Int = 5, coactiveLimit: Int = 10
    ) throws -> FeaturePage? {
        guard
            let f = try db.rows(
                "SELECT fired, density, mean_active, max_value, min_value FROM features WHERE id = ?", [.int(i)]
            ).first
        else { return nil }
        let top = try self.examples(i, "top", limit: examples)
        let sample = try self.examples(i, "sample", limit: Int.max).map(\.0).sorted {
            $0.value < $1.value || ($0.value == $1.value && ($0.clip, $0.frame) < ($1.clip, $1.frame))
        }
        return FeaturePage(
            feature: i, kind: kind, hook: hook, fired: f[0].int!, density: f[1].double!, meanActive: f[2].double,
            maxValue: f[3].double, minValue: f[4].double, top: top.map(\.0),
            negative: try self.examples(i, "negative", limit: examples).map(\.0),
            sample: sample.map(\.value), quantiles: Self.quantileGroups(sample, groups: groups, perGroup: perGroup),
            coactive: Self.coactive(top.map(\.1), limit: coactiveLimit))
    }

    /// Splits examples sorted by value into `groups` runs of (nearly) equal size, highest first,
    /// keeping at most `perGroup` of each, spread evenly through the run.
    static func quantileGroups(_ sorted: [FeatureExample], groups: Int, perGroup: Int) -> [QuantileGroup] {
        let n = sorted.count
        guard n > 0, groups > 0 else { return [] }
        let g = min(groups, n)
        return (0..<g).reversed().map { k in
            let a = k * n / g, b = (k + 1) * n / g
            let run = Array(sorted[a..<b])
            let step = max(1, run.count / max(1, perGroup))
            let picked = stride(from: run.count - 1, through: 0, by: -step).prefix(perGroup).map { run[$0] }
            return QuantileGroup(
                fromQuantile: Double(a) / Double(n), toQuantile: Double(b) / Double(n), low: run.first!.value,
                high: run.last!.value, examples: picked)
        }
    }

    /// The features most often co-active in the frames of the given examples, then by mean value.
    static func coactive(_ lists: [[Coactive]], limit: Int) -> [CoactiveFeature] {
        var count = [Int: Int](), sum = [Int: Float]()
        for list in lists {
            for c in list { count[c.feature, default: 0] += 1; sum[c.feature, default: 0] += c.value }
        }
        return count.map {
            CoactiveFeature(feature: $0.key, examples: $0.value, meanValue: sum[$0.key]! / Float($0.value))
        }
        .sorted { ($0.examples, $0.meanValue, -$0.feature) > ($1.examples, $1.meanValue, -$1.feature) }
        .prefix(limit).map { $0 }
    }

    /// Features ordered by `column` (density, max_value, mean_active), highest first.
    public func ranked(by column: String, limit: Int) throws -> [(feature: Int, density: Double, maxValue: Double?)] {
        guard ["density", "max_value", "mean_active", "fired", "id"].contains(column) else {
            throw StoreError(.mismatch, "cannot sort by '\(column)': use density, max_value, mean_active, fired or id")
        }
        // By id: ascending (the first features); by a statistic: largest first.
        let order = column == "id" ? "id" : "\(column) DESC, id"
        return try db.rows("SELECT id, density, max_value FROM features ORDER BY \(order) LIMIT ?", [.int(limit)])
            .map { ($0[0].int!, $0[1].double!, $0[2].double) }
    }

    /// The path of an indexed clip.
    public func clipPath(_ name: String) throws -> String? {
        try db.rows("SELECT path FROM clips WHERE name = ?", [.text(name)]).first?[0].text
    }

    /// The indexed clips' names, in the order they were indexed.
    public func clipNames() throws -> [String] {
        try db.rows("SELECT name FROM clips ORDER BY id").map { $0[0].text! }
    }

    /// One indexed clip with its transcript and words (nil if there is none of that name).
    public func clip(_ name: String) throws -> IndexedClip? {
        guard
            let c = try db.rows("SELECT id, frames, transcript, reference FROM clips WHERE name = ?", [.text(name)])
                .first
        else { return nil }
        let words = try db.rows(
            "SELECT word, start_s, end_s FROM words WHERE clip = ? ORDER BY idx", [c[0]]
        ).map {
            WordSpan(word: $0[0].text!.trimmingCharacters(in: .whitespaces), start: $0[1].double!, end: $0[2].double!)
        }
        return IndexedClip(name: name, frames: c[1].int!, transcript: c[2].text!, reference: c[3].text, words: words)
    }

    /// Every feature's firing density, by feature id.
    public func densities() throws -> [Double] {
        try db.rows("SELECT density FROM features ORDER BY id").map { $0[0].double ?? 0 }
    }

    /// Features whose top examples fall on `word` (case-insensitive), most examples first.
    public func features(onWord word: String, limit: Int) throws -> [(feature: Int, examples: Int)] {
        try db.rows(
            """
            SELECT feature, COUNT(*) AS n FROM examples WHERE kind = 'top' AND lower(word) = lower(?)
            GROUP BY feature ORDER BY n DESC, feature LIMIT ?
            """, [.text(word), .int(limit)]
        ).map { ($0[0].int!, $0[1].int!) }
    }

    /// Features whose top examples fall on words containing `text` (case-insensitive; "sh"
    /// finds "she", "wish" …), most such examples first, with each one's density and largest value.
    public func features(
        onWordsContaining text: String, limit: Int
    ) throws
        -> [(feature: Int, examples: Int, density: Double, maxValue: Double?)]
    {
        let pattern =
            "%"
            + text.lowercased().replacingOccurrences(of: "\\", with: "\\\\")
            .replacingOccurrences(of: "%", with: "\\%").replacingOccurrences(of: "_", with: "\\_") + "%"
        return try db.rows(
            """
            SELECT e.feature, COUNT(*) AS n, f.density, f.max_value FROM examples e JOIN features f ON f.id = e.feature
            WHERE e.kind = 'top' AND lower(e.word) LIKE ? ESCAPE '\\'
            GROUP BY e.feature ORDER BY n DESC, e.feature LIMIT ?
            """, [.text(pattern), .int(limit)]
        ).map { ($0[0].int!, $0[1].int!, $0[2].double!, $0[3].double) }
    }
}
