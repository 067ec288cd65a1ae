// The feature index: for every SAE latent (or raw neuron of an encoder hook point, such as
// encoder.blocks.2.mlp.hook_post), the clips it fires most on, with frame, time, value, the
// word being spoken there (from the alignment heads) and the features most active in the same
// frame, the most negative ones, a uniform sample of the frames where it fires (for activation
// histograms and SAEDashboard-style quantile groups), and its firing density; kept in SQLite so
// the Studio and `auscult features` can query it. Built batch by batch with each batch
// committed, so an interrupted build resumes.
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
    public init(clip: String, frame: Int, time: Double, value: Float, word: String? = nil) {
        self.clip = clip; self.frame = frame; self.time = time; self.value = value; self.word = word
    }
}

/// Builds a feature index over clips into an SQLite file.
public struct FeatureIndexBuilder {
    public let loaded: LoadedModel
    public let source: FeatureSource
    public let hook: String
    public let width: Int
    /// Examples kept per feature and direction: the frames where it is largest (or most
    /// negative) across the whole dataset, several per clip when they earn it.
    public var top = 20
    /// Two examples from one clip are more than this many frames apart (5: 100 ms), so that one
    /// firing event gives one example.
    public var separation = 5
    /// Active frames sampled per feature (reservoir sampling, uniform over every frame where it
    /// fires): 50 make SAEDashboard's 10 quantile groups of 5.
    public var samples = 50
    /// Features kept per top example as those most active in the same frame (co-activation).
    public var coactive = 8
    public var batchSize = 8
    /// How the clips' transcripts (the words examples are labelled with) are decoded: prompt and prefix.
    public var decoding = DecodingOptions()

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

    /// One kept frame of a feature: its value there, and (top examples) the features most active
    /// in that frame with their values.
    struct Entry: Equatable {
        var value: Float
        var clip: Int
        var frame: Int
        var coactive: [Coactive] = []
    }

    /// Running state: counts per feature, the best examples and the sample so far.
    struct State {
        var rows = 0
        var fired: [Int]
        var sumActive: [Double]
        /// Per feature, best first: top by largest value, negative by smallest.
        var top: [[Entry]]
        var negative: [[Entry]]
        /// Per feature, a reservoir of the frames where it fired.
        var samples: [[Entry]]
        /// The reservoir's random stream (SplitMix64), saved with the index so a resumed build
        /// draws what an uninterrupted one would.
        var random: UInt64 = 0x9E37_79B9_7F4A_7C15
        init(width: Int) {
            fired = [Int](repeating: 0, count: width); sumActive = [Double](repeating: 0, count: width)
            top = [[Entry]](repeating: [], count: width); negative = top; samples = top
        }

        /// A uniform integer in 0..<n.
        mutating func draw(below n: Int) -> Int {
            random &+= 0x9E37_79B9_7F4A_7C15
            var z = random
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            z ^= z >> 31
            return Int(z % UInt64(n))
        }
    }

    /// Indexes every clip of `items` not yet in the index at `path` (resuming a build of the same
    /// source there; `fresh` starts over). Unreadable clips are reported through `failed`.
    public func build(
        _ items: [DatasetItem], path: String, fresh: Bool = false, progress: ProgressReporter? = nil,
        failed: (DatasetItem, Error) -> Void = { _, _ in }
    ) throws {
        try OutputLock.hold(path)
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
            let results = try loaded.decoder.decode(audio: audio, options: decoding, hooks: nil)
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
        let v = values.scalars, nv = negatives.scalars
        state.rows += frames
        for f in 0..<frames {
            for i in 0..<w {
                let a = v[f * w + i]
                if a > 0 {
                    state.fired[i] += 1; state.sumActive[i] += Double(a)
                    let e = Entry(value: a, clip: clip, frame: f)
                    if state.samples[i].count < samples {
                        state.samples[i].append(e)
                    } else {
                        let j = state.draw(below: state.fired[i])
                        if j < samples { state.samples[i][j] = e }
                    }
                }
            }
        }
        var frameTop = [Int: [Coactive]]()
        var candidates = [(value: Float, frame: Int)]()
        for i in 0..<w {
            // Top: the clip's frames that would enter the list, largest first, none within
            // `separation` frames of one already taken from this clip (one firing event, one example).
            candidates.removeAll(keepingCapacity: true)
            for f in 0..<frames {
                let a = v[f * w + i]
                if a > 0 && Self.admits(state.top[i], a, limit: top, before: >) { candidates.append((a, f)) }
            }
            for (a, f) in Self.separated(candidates, by: separation, limit: top, largestFirst: true) {
                guard Self.admits(state.top[i], a, limit: top, before: >) else { break }
                if frameTop[f] == nil { frameTop[f] = Self.largest(v[(f * w)..<((f + 1) * w)], count: coactive + 1) }
                var e = Entry(value: a, clip: clip, frame: f)
                e.coactive = frameTop[f]!.filter { $0.feature != i }.prefix(coactive).map { $0 }
                Self.insert(&state.top[i], e, limit: top, before: >)
            }
            // Most negative (SAE: pre-activations), the same way.
            candidates.removeAll(keepingCapacity: true)
            for f in 0..<frames {
                let n = nv[f * w + i]
                if n < 0 && Self.admits(state.negative[i], n, limit: top, before: <) { candidates.append((n, f)) }
            }
            for (n, f) in Self.separated(candidates, by: separation, limit: top, largestFirst: false) {
                guard Self.admits(state.negative[i], n, limit: top, before: <) else { break }
                Self.insert(&state.negative[i], Entry(value: n, clip: clip, frame: f), limit: top, before: <)
            }
        }
    }

    /// Up to `limit` of `candidates` in order of value (largest or smallest first; earlier frames
    /// first among equals), skipping any within `gap` frames of one already taken.
    static func separated(
        _ candidates: [(value: Float, frame: Int)], by gap: Int, limit: Int, largestFirst: Bool
    ) -> [(value: Float, frame: Int)] {
        let order = candidates.sorted {
            $0.value != $1.value ? (largestFirst ? $0.value > $1.value : $0.value < $1.value) : $0.frame < $1.frame
        }
        var taken = [(value: Float, frame: Int)]()
        for c in order where !taken.contains(where: { abs($0.frame - c.frame) <= gap }) {
            taken.append(c)
            if taken.count == limit { break }
        }
        return taken
    }

    /// The `count` largest positive values of a row with their indices, largest first.
    static func largest(_ row: ArraySlice<Float>, count: Int) -> [Coactive] {
        var kept = [Coactive]()
        let base = row.startIndex
        for (j, a) in zip(row.indices, row) where a > 0 {
            if kept.count == count, a <= kept[count - 1].value { continue }
            var k = kept.count
            while k > 0 && a > kept[k - 1].value { k -= 1 }
            kept.insert(Coactive(feature: j - base, value: a), at: k)
            if kept.count > count { kept.removeLast() }
        }
        return kept
    }

    /// Whether `value` would enter a list kept sorted by `before` with at most `limit` entries.
    static func admits(_ list: [Entry], _ value: Float, limit: Int, before: (Float, Float) -> Bool) -> Bool {
        list.count < limit || list.last.map { before(value, $0.value) } ?? true
    }

    /// Inserts into a list kept sorted by `before` (earlier clips win ties), at most `limit` long.
    static func insert(_ list: inout [Entry], _ e: Entry, limit: Int, before: (Float, Float) -> Bool) {
        guard admits(list, e.value, limit: limit, before: before) else { return }
        var i = list.count
        while i > 0 && before(e.value, list[i - 1].value) { i -= 1 }
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
                coactive TEXT, PRIMARY KEY(feature, kind, rank));
            """)
    }

    /// The settings that must agree for a build to resume.
    var settings: [String: String] {
        [
            "kind": kind, "hook": hook, "source": sourcePath, "model": loaded.path, "width": "\(width)",
            "top": "\(top)", "samples": "\(samples)", "coactive": "\(coactive)", "separation": "\(separation)",
            "version": FeatureIndex.currentVersion, "prompt": decoding.contextSettings["prompt"] ?? "",
            "prefix": decoding.contextSettings["prefix"] ?? "",
            // What the features are made of, by content: a model or SAE replaced at the same path
            // (retrained in place) is another index, not this one resumed.
            "model_sha256": loaded.contentHash, "sae_sha256": saeHash,
        ]
    }

    /// The SAE's content hash, or "none" for an index of neurons.
    var saeHash: String { if case .sae(let sae, _, _) = source { return sae.contentHash } else { return "none" } }

    /// Settings an index made before they existed lacks; there they read as empty.
    static let settingsAddedLater: Set<String> = ["prompt", "prefix"]

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
        for (k, v) in settings where (meta[k] ?? (Self.settingsAddedLater.contains(k) ? "" : nil)) != v {
            throw StoreError(
                .occupied,
                "\(db.path) holds an index with \(k) = \(meta[k] ?? "nothing"), not \(v); rebuild it from scratch or "
                    + "write another index"
            )
        }
        state.rows = Int(meta["rows"] ?? "0") ?? 0
        state.random = UInt64(meta["random"] ?? "") ?? state.random
        for row in try db.rows("SELECT id, fired, sum_active FROM features") {
            let i = row[0].int!
            state.fired[i] = row[1].int!
            state.sumActive[i] = row[2].double!
        }
        for row in try db.rows(
            "SELECT feature, kind, value, clip, frame, coactive FROM examples ORDER BY feature, kind, rank")
        {
            let e = Entry(
                value: Float(row[2].double!), clip: row[3].int!, frame: row[4].int!,
                coactive: Coactive.parse(row[5].text ?? ""))
            switch row[1].text {
            case "top": state.top[row[0].int!].append(e)
            case "negative": state.negative[row[0].int!].append(e)
            default: state.samples[row[0].int!].append(e)
            }
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
                    + "'\(state.rows)'), ('random', '\(state.random)')"
            )
            let feat = try db.prepare(
                "INSERT INTO features(id, fired, density, mean_active, max_value, min_value, sum_active) VALUES (?, ?, "
                    + "?, ?, ?, ?, ?)"
            )
            let ex = try db.prepare(
                "INSERT INTO examples(feature, kind, rank, clip, frame, time, value, word, coactive) VALUES (?, ?, ?, "
                    + "?, ?, ?, ?, ?, ?)"
            )
            for i in 0..<width {
                try feat.run([
                    .int(i), .int(state.fired[i]), .double(Double(state.fired[i]) / Double(max(1, state.rows))),
                    state.fired[i] > 0 ? .double(state.sumActive[i] / Double(state.fired[i])) : .null,
                    state.top[i].first.map { .double(Double($0.value)) } ?? .null,
                    state.negative[i].first.map { .double(Double($0.value)) } ?? .null, .double(state.sumActive[i]),
                ])
                for (kind, list) in [
                    ("top", state.top[i]), ("negative", state.negative[i]), ("sample", state.samples[i]),
                ] {
                    for (rank, e) in list.enumerated() {
                        let t = (Double(e.frame) + 0.5) * 0.02
                        try ex.run([
                            .int(i), .text(kind), .int(rank), .int(e.clip), .int(e.frame), .double(t),
                            .double(Double(e.value)), word(e.clip, t),
                            e.coactive.isEmpty ? .null : .text(Coactive.format(e.coactive)),
                        ])
                    }
                }
            }
        }
    }
}
