// The feature index: for every SAE latent (or raw neuron of an encoder hook point, such as
// encoder.blocks.2.mlp.hook_post), the clips it fires most on, with frame, time, value and the
// word being spoken there (from the alignment heads), the most negative ones, and its firing
// density; kept in SQLite so the Studio and `auscult features` can query it. Built batch by
// batch with each batch committed, so an interrupted build resumes.
import AuscultAudio
import AuscultTensor
import AuscultWhisper
import Foundation

/// What the index describes.
public enum FeatureSource {
    /// An SAE's latents: top examples by activation, negative ones by pre-activation.
    case sae(SparseAutoencoder, hook: String, path: String)
    /// The raw values of an encoder hook point, one feature per value (neuron).
    case neurons(hook: String)
}

/// One example of a feature: where in which clip it took `value`.
public struct FeatureExample: Codable, Sendable, Equatable {
    public var clip: String
    public var frame: Int
    /// Seconds from the clip's start (frame centre, 20 ms frames).
    public var time: Double
    public var value: Float
    /// The word spoken at that time, if any.
    public var word: String?
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

/// Builds a feature index over clips into an SQLite file.
public struct FeatureIndexBuilder {
    public let loaded: LoadedModel
    public let source: FeatureSource
    public let hook: String
    public let width: Int
    /// Examples kept per feature and direction.
    public var top = 20
    public var batchSize = 8

    public init(loaded: LoadedModel, source: FeatureSource) throws {
        let hookName: String
        switch source {
        case .sae(_, let h, _): hookName = h
        case .neurons(let h): hookName = h
        }
        let collector = try ActivationCollector(loaded: loaded, hook: hookName)
        if case .sae(let sae, _, _) = source, sae.config.dIn != collector.width {
            throw StoreError(
                .mismatch, "the SAE reads \(sae.config.dIn) values per row but \(collector.hook) has \(collector.width)"
            )
        }
        self.loaded = loaded; self.source = source; hook = collector.hook
        if case .sae(let sae, _, _) = source { width = sae.config.dSAE } else { width = collector.width }
    }

    var kind: String { if case .sae = source { return "sae" } else { return "neurons" } }
    var sourcePath: String { if case .sae(_, _, let p) = source { return p } else { return hook } }

    /// Running state: counts per feature and the best examples so far.
    struct State {
        var rows = 0
        var fired: [Int]
        var sumActive: [Double]
        /// Per feature, (value, clip, frame) best first: top by largest, negative by smallest.
        var top: [[(Float, Int, Int)]]
        var negative: [[(Float, Int, Int)]]
        init(width: Int) {
            fired = [Int](repeating: 0, count: width); sumActive = [Double](repeating: 0, count: width)
            top = [[(Float, Int, Int)]](repeating: [], count: width); negative = top
        }
    }

    /// Indexes every clip of `items` not yet in the index at `path` (resuming a build of the same
    /// source there; `fresh` starts over). Unreadable clips are reported through `failed`.
    public func build(
        _ items: [DatasetItem], path: String, fresh: Bool = false, progress: ProgressReporter? = nil,
        failed: (DatasetItem, Error) -> Void = { _, _ in }
    ) throws {
        if fresh { try? FileManager.default.removeItem(atPath: path) }
        let db = try SQLiteDatabase(path: path)
        try createSchema(db)
        var state = try resume(db)
        var clipIDs = [String: Int]()
        for row in try db.rows("SELECT id, name FROM clips") { clipIDs[row[1].text!] = row[0].int! }
        let todo = items.filter { clipIDs[$0.id] == nil }
        progress?.advance(by: items.count - todo.count)
        let mel = LogMel(nMels: loaded.model.dims.n_mels)
        let dims = loaded.model.dims
        var at = 0
        while at < todo.count {
            let batch = Array(todo[at..<min(todo.count, at + batchSize)])
            at += batch.count
            let good = mel.load(batch, failed: failed)
            guard !good.isEmpty else { progress?.advance(by: batch.count); continue }
            let rec = ActivationRecorder { $0 == hook }
            let audio = try loaded.model.encode(Tensor.stack(good.map(\.mel)), hooks: rec)
            guard let acts = rec.store[hook] else { throw StoreError(.missing, "the encoder did not reach \(hook)") }
            let results = try loaded.decoder.decode(audio: audio, options: DecodingOptions(), hooks: nil)
            let inWidth = acts.count / (acts.shape[0] * dims.n_audio_ctx)
            var newClips = [(id: Int, item: DatasetItem, frames: Int, text: String, words: [WordTiming])]()
            for (b, g) in good.enumerated() {
                let id = (clipIDs.values.max() ?? -1) + 1
                clipIDs[g.item.id] = id
                let frames = g.validFrames(maxFrames: dims.n_audio_ctx)
                let words = try loaded.alignWords(
                    audio: audio.row(b).reshaped([1] + Array(audio.shape.dropFirst())),
                    textTokens: results[b].tokens, samples: g.samples)
                let x = acts.row(b).reshaped([dims.n_audio_ctx, inWidth]).rows(0..<frames)
                update(&state, x, clip: id)
                newClips.append((id, g.item, frames, results[b].text, words))
            }
            try save(db, state, newClips)
            progress?.advance(by: batch.count)
        }
        progress?.finish()
    }

    /// Folds one clip's activations `[frames, d]` into the state.
    func update(_ state: inout State, _ x: Tensor, clip: Int) {
        let frames = x.shape[0]
        let values: Tensor, negatives: Tensor
        switch source {
        case .sae(let sae, _, _):
            let z = sae.preActivations(x)
            values = sae.activate(z); negatives = z
        case .neurons:
            values = x; negatives = x
        }
        let w = width
        state.rows += frames
        var best = [Float](repeating: -.infinity, count: w), bestAt = [Int](repeating: 0, count: w)
        var worst = [Float](repeating: .infinity, count: w), worstAt = [Int](repeating: 0, count: w)
        for f in 0..<frames {
            for i in 0..<w {
                let v = values.storage[f * w + i]
                if v > 0 { state.fired[i] += 1; state.sumActive[i] += Double(v) }
                if v > best[i] { best[i] = v; bestAt[i] = f }
                let n = negatives.storage[f * w + i]
                if n < worst[i] { worst[i] = n; worstAt[i] = f }
            }
        }
        for i in 0..<w {
            if best[i] > 0 { Self.insert(&state.top[i], (best[i], clip, bestAt[i]), limit: top, before: >) }
            if worst[i] < 0 { Self.insert(&state.negative[i], (worst[i], clip, worstAt[i]), limit: top, before: <) }
        }
    }

    /// Inserts into a list kept sorted by `before` (earlier clips win ties), at most `limit` long.
    static func insert(
        _ list: inout [(Float, Int, Int)], _ e: (Float, Int, Int), limit: Int, before: (Float, Float) -> Bool
    ) {
        if list.count == limit, let last = list.last, !before(e.0, last.0) { return }
        var i = list.count
        while i > 0 && before(e.0, list[i - 1].0) { i -= 1 }
        list.insert(e, at: i)
        if list.count > limit { list.removeLast() }
    }

    func createSchema(_ db: SQLiteDatabase) throws {
        try db.execute(
            """
            PRAGMA journal_mode=WAL;
            CREATE TABLE IF NOT EXISTS meta(key TEXT PRIMARY KEY, value TEXT NOT NULL);
            CREATE TABLE IF NOT EXISTS clips(id INTEGER PRIMARY KEY, name TEXT UNIQUE NOT NULL, path TEXT NOT NULL,
                frames INTEGER NOT NULL, transcript TEXT NOT NULL, reference TEXT);
            CREATE TABLE IF NOT EXISTS words(clip INTEGER NOT NULL, idx INTEGER NOT NULL, word TEXT NOT NULL,
                start_s REAL NOT NULL, end_s REAL NOT NULL, PRIMARY KEY(clip, idx));
            CREATE TABLE IF NOT EXISTS features(id INTEGER PRIMARY KEY, fired INTEGER NOT NULL, density REAL NOT NULL,
                mean_active REAL, max_value REAL, min_value REAL, sum_active REAL NOT NULL);
            CREATE TABLE IF NOT EXISTS examples(feature INTEGER NOT NULL, kind TEXT NOT NULL, rank INTEGER NOT NULL,
                clip INTEGER NOT NULL, frame INTEGER NOT NULL, time REAL NOT NULL, value REAL NOT NULL, word TEXT,
                PRIMARY KEY(feature, kind, rank));
            """)
    }

    /// The settings that must agree for a build to resume.
    var settings: [String: String] {
        [
            "kind": kind, "hook": hook, "source": sourcePath, "model": loaded.path, "width": "\(width)",
            "top": "\(top)", "version": "1",
        ]
    }

    /// Loads the state of an earlier build of the same settings, or records the settings.
    func resume(_ db: SQLiteDatabase) throws -> State {
        var meta = [String: String]()
        for row in try db.rows("SELECT key, value FROM meta") { meta[row[0].text!] = row[1].text! }
        var state = State(width: width)
        if meta.isEmpty {
            let st = try db.prepare("INSERT INTO meta(key, value) VALUES (?, ?)")
            try db.transaction {
                for (k, v) in settings.sorted(by: { $0.key < $1.key }) { try st.run([.text(k), .text(v)]) }
            }
            return state
        }
        for (k, v) in settings where k != "rows" && meta[k] != v {
            throw StoreError(
                .occupied,
                "\(db.path) holds an index with \(k) = \(meta[k] ?? "nothing"), not \(v); rebuild it from scratch or "
                    + "write another index"
            )
        }
        state.rows = Int(meta["rows"] ?? "0") ?? 0
        for row in try db.rows("SELECT id, fired, sum_active FROM features") {
            let i = row[0].int!
            state.fired[i] = row[1].int!
            state.sumActive[i] = row[2].double!
        }
        for row in try db.rows("SELECT feature, kind, value, clip, frame FROM examples ORDER BY feature, kind, rank") {
            let e = (Float(row[2].double!), row[3].int!, row[4].int!)
            if row[1].text == "top" { state.top[row[0].int!].append(e) } else { state.negative[row[0].int!].append(e) }
        }
        return state
    }

    /// Commits a batch: its clips and words, and the whole feature state.
    func save(
        _ db: SQLiteDatabase, _ state: State,
        _ clips: [(id: Int, item: DatasetItem, frames: Int, text: String, words: [WordTiming])]
    ) throws {
        // Words of every indexed clip, to name the word under each example.
        var words = [Int: [(String, Double, Double)]]()
        for row in try db.rows("SELECT clip, word, start_s, end_s FROM words ORDER BY clip, idx") {
            words[row[0].int!, default: []].append((row[1].text!, row[2].double!, row[3].double!))
        }
        for c in clips { words[c.id] = c.words.map { ($0.word, $0.start, $0.end) } }
        func word(_ clip: Int, _ time: Double) -> SQLiteValue {
            guard let w = words[clip]?.first(where: { $0.1 <= time && time < $0.2 }) else { return .null }
            return .text(w.0.trimmingCharacters(in: .whitespaces))
        }
        try db.transaction {
            let ins = try db.prepare(
                "INSERT INTO clips(id, name, path, frames, transcript, reference) VALUES (?, ?, ?, ?, ?, ?)")
            let insWord = try db.prepare("INSERT INTO words(clip, idx, word, start_s, end_s) VALUES (?, ?, ?, ?, ?)")
            for c in clips {
                try ins.run([
                    .int(c.id), .text(c.item.id), .text(c.item.path), .int(c.frames), .text(c.text),
                    c.item.reference.map { .text($0) } ?? .null,
                ])
                for (i, w) in c.words.enumerated() {
                    try insWord.run([.int(c.id), .int(i), .text(w.word), .double(w.start), .double(w.end)])
                }
            }
            try db.execute(
                "DELETE FROM features; DELETE FROM examples; INSERT OR REPLACE INTO meta(key, value) VALUES ('rows', "
                    + "'\(state.rows)')"
            )
            let feat = try db.prepare(
                "INSERT INTO features(id, fired, density, mean_active, max_value, min_value, sum_active) VALUES (?, ?, "
                    + "?, ?, ?, ?, ?)"
            )
            let ex = try db.prepare(
                "INSERT INTO examples(feature, kind, rank, clip, frame, time, value, word) VALUES (?, ?, ?, ?, ?, ?, "
                    + "?, ?)"
            )
            for i in 0..<width {
                try feat.run([
                    .int(i), .int(state.fired[i]), .double(Double(state.fired[i]) / Double(max(1, state.rows))),
                    state.fired[i] > 0 ? .double(state.sumActive[i] / Double(state.fired[i])) : .null,
                    state.top[i].first.map { .double(Double($0.0)) } ?? .null,
                    state.negative[i].first.map { .double(Double($0.0)) } ?? .null, .double(state.sumActive[i]),
                ])
                for (kind, list) in [("top", state.top[i]), ("negative", state.negative[i])] {
                    for (rank, e) in list.enumerated() {
                        let t = (Double(e.2) + 0.5) * 0.02
                        try ex.run([
                            .int(i), .text(kind), .int(rank), .int(e.1), .int(e.2), .double(t), .double(Double(e.0)),
                            word(e.1, t),
                        ])
                    }
                }
            }
        }
    }
}

/// Reads a feature index.
public struct FeatureIndex {
    public let db: SQLiteDatabase
    public let meta: [String: String]

    public init(path: String) throws {
        guard FileManager.default.fileExists(atPath: path) else {
            throw StoreError(.missing, "\(path): no feature index there (build one with `auscult index`)")
        }
        db = try SQLiteDatabase(path: path, create: false)
        var m = [String: String]()
        do {
            for row in try db.rows("SELECT key, value FROM meta") { m[row[0].text!] = row[1].text! }
        } catch {
            throw StoreError(.corrupt, "\(path) is not a feature index", cause: error)
        }
        meta = m
    }

    public var width: Int { Int(meta["width"] ?? "") ?? 0 }

    /// One feature with its examples (nil if the index has no such feature).
    public func feature(_ i: Int, examples: Int = 10) throws -> FeatureRecord? {
        guard let f = try db.rows("SELECT fired, density, mean_active FROM features WHERE id = ?", [.int(i)]).first
        else { return nil }
        func list(_ kind: String) throws -> [FeatureExample] {
            try db.rows(
                """
                SELECT c.name, e.frame, e.time, e.value, e.word FROM examples e JOIN clips c ON c.id = e.clip
                WHERE e.feature = ? AND e.kind = ? ORDER BY e.rank LIMIT ?
                """, [.int(i), .text(kind), .int(examples)]
            ).map {
                FeatureExample(
                    clip: $0[0].text!, frame: $0[1].int!, time: $0[2].double!, value: Float($0[3].double!),
                    word: $0[4].text)
            }
        }
        return FeatureRecord(
            feature: i, fired: f[0].int!, density: f[1].double!, meanActive: f[2].double,
            top: try list("top"), negative: try list("negative"))
    }

    /// Features ordered by `column` (density, max_value, mean_active), highest first.
    public func ranked(by column: String, limit: Int) throws -> [(feature: Int, density: Double, maxValue: Double?)] {
        guard ["density", "max_value", "mean_active", "fired"].contains(column) else {
            throw StoreError(.mismatch, "cannot sort by '\(column)': use density, max_value, mean_active or fired")
        }
        return try db.rows(
            "SELECT id, density, max_value FROM features ORDER BY \(column) DESC, id LIMIT ?", [.int(limit)]
        )
        .map { ($0[0].int!, $0[1].double!, $0[2].double) }
    }

    /// The path of an indexed clip.
    public func clipPath(_ name: String) throws -> String? {
        try db.rows("SELECT path FROM clips WHERE name = ?", [.text(name)]).first?[0].text
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
}
