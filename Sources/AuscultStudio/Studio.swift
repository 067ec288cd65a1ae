// Auscult Studio: a local web app to look at and listen to what Whisper's neurons and SAE latents
// respond to (FREUD's GUI, with feature pages after SAEDashboard's): feature pages from the
// feature indexes, a clip inspector for bundled clips, uploads and recordings, and steering of a
// latent or neuron with the transcript's word-level diff. Every view is a JSON endpoint (the
// OpenAPI document is served at /api/openapi.json); the page is plain HTML, CSS and JavaScript
// shipped as package resources.
import AuscultAudio
import AuscultSAE
import AuscultTensor
import AuscultWhisper
import Foundation

/// What a Studio serves and how.
public struct StudioConfiguration: Sendable {
    /// Feature index files (`auscult index`), served in this order.
    public var indexes: [String]
    /// The SAE checkpoint directory of SAE indexes whose recorded source path moved.
    public var sae: String?
    /// The address to listen on: 127.0.0.1 unless a `token` is given.
    public var host = "127.0.0.1"
    /// 0 picks a free port (`Studio.run`'s `onListening` reports it).
    public var port = 8321
    /// Required on every request (Bearer header or `token` query) when set; needed for any host
    /// other than the loopback.
    public var token: String?
    /// Uploads: at most this many bytes, and this many seconds once decoded (Whisper hears 30 s).
    public var maxUploadBytes = 20 << 20
    public var maxUploadSeconds = 30.0

    public init(indexes: [String], sae: String? = nil) { self.indexes = indexes; self.sae = sae }

    /// Refuses an address other than the loopback without a token, and bad limits.
    public func validate() throws {
        let loopback = ["127.0.0.1", "localhost", "::1"].contains(host)
        if !loopback && (token ?? "").isEmpty {
            throw StudioError(
                .configuration,
                "--host \(host): serving beyond this machine needs --token (every request must then carry it)")
        }
        if let token, token.count < 8 {
            throw StudioError(.configuration, "--token: \(token.count) characters; use at least 8")
        }
        guard (0...65_535).contains(port) else {
            throw StudioError(.configuration, "--port \(port): use 1…65535 (or 0 for any free port)")
        }
        guard !indexes.isEmpty else { throw StudioError(.configuration, "no feature index given (--index FILE)") }
    }
}

/// One served feature index: its readers, and the SAE whose latents it describes.
struct ServedIndex: Sendable {
    let id: String
    let pool: IndexPool
    /// The SAE of an `sae` index (nil for raw neurons).
    let sae: SparseAutoencoder?
    let hook: String
    let width: Int
    var kind: String { pool.meta["kind"] ?? "?" }
}

/// The Studio: indexes, the model, uploads, and the HTTP API over them.
public final class Studio: Sendable {
    public let configuration: StudioConfiguration
    let loaded: LoadedModel
    let indexes: [ServedIndex]
    /// Forward passes, one at a time; audio file reads.
    let model = WorkQueue(label: "auscult.studio.model")
    let files = WorkQueue(label: "auscult.studio.files")
    let uploads = UploadStore(capacity: 16)
    let clips = ClipCache(capacity: 24)
    let web: WebResources
    /// The pronouncing dictionary feature labels place phonemes with (nil: not installed).
    let dictionary: PronouncingDictionary?

    /// Opens every index (checking it was built on `loaded`'s model) and loads SAE indexes' SAEs.
    public init(configuration: StudioConfiguration, loaded: LoadedModel) throws {
        try configuration.validate()
        self.configuration = configuration
        self.loaded = loaded
        var served = [ServedIndex]()
        for path in configuration.indexes {
            let pool: IndexPool
            do { pool = try IndexPool(path: path) } catch {
                throw StudioError(.configuration, "--index \(path): not a feature index", cause: error)
            }
            let built = pool.meta["model"].map { ($0 as NSString).lastPathComponent } ?? "?"
            if built != loaded.name {
                throw StudioError(
                    .configuration,
                    "--index \(path) was built with the model \(built); the Studio runs \(loaded.name) "
                        + "(pass --model \(built))")
            }
            let hook = pool.meta["hook"] ?? ""
            let width = Int(pool.meta["width"] ?? "") ?? 0
            var sae: SparseAutoencoder?
            if pool.meta["kind"] == "sae" {
                let dir = configuration.sae ?? pool.meta["source"] ?? ""
                do { sae = try SAECheckpoint.load(dir) } catch {
                    throw StudioError(
                        .configuration, "--index \(path): its SAE at \(dir) cannot be loaded (pass --sae DIR)",
                        cause: error)
                }
                guard sae!.config.dSAE == width else {
                    throw StudioError(
                        .configuration,
                        "--index \(path) describes \(width) latents but the SAE at \(dir) has \(sae!.config.dSAE)")
                }
            }
            var id = Self.slug((path as NSString).lastPathComponent)
            if served.contains(where: { $0.id == id }) { id += "-\(served.count + 1)" }
            served.append(ServedIndex(id: id, pool: pool, sae: sae, hook: hook, width: width))
        }
        indexes = served
        web = try WebResources.load()
        dictionary = try PronouncingDictionary.installedPath.map { try PronouncingDictionary(contentsOf: $0) }
    }

    /// A URL-safe id from a file name: `features.sqlite` → `features`.
    static func slug(_ file: String) -> String {
        let stem = (file as NSString).deletingPathExtension.lowercased()
        let s = String(stem.map { $0.isLetter || $0.isNumber ? $0 : "-" })
        return s.isEmpty ? "index" : s
    }

    func index(_ id: String) throws -> ServedIndex {
        guard let i = indexes.first(where: { $0.id == id }) else {
            throw StudioError(
                .notFound, "no index '\(id)'; this Studio serves \(indexes.map(\.id).joined(separator: ", "))")
        }
        return i
    }
}

/// Decoded clips (indexed files and their feature values), most recently used kept.
final class ClipCache: @unchecked Sendable {
    private var entries = [(key: String, value: ClipAnalysis)]()
    private let capacity: Int
    private let lock = NSLock()
    init(capacity: Int) { self.capacity = capacity }

    func get(_ key: String) -> ClipAnalysis? {
        lock.lock(); defer { lock.unlock() }
        guard let i = entries.firstIndex(where: { $0.key == key }) else { return nil }
        let e = entries.remove(at: i)
        entries.append(e)
        return e.value
    }
    func put(_ key: String, _ value: ClipAnalysis) {
        lock.lock(); defer { lock.unlock() }
        entries.removeAll { $0.key == key }
        entries.append((key, value))
        if entries.count > capacity { entries.removeFirst() }
    }
}

/// Uploaded and recorded clips, kept in memory only (never written to disk), by random id.
final class UploadStore: @unchecked Sendable {
    struct Upload { let name: String; let samples: [Float]; var words: [WordSpan] }
    private var entries = [(id: String, upload: Upload)]()
    private let capacity: Int
    private let lock = NSLock()
    init(capacity: Int) { self.capacity = capacity }

    func add(_ upload: Upload) -> String {
        let id = UUID().uuidString.lowercased()
        lock.lock(); defer { lock.unlock() }
        entries.append((id, upload))
        if entries.count > capacity { entries.removeFirst() }
        return id
    }
    func setWords(_ id: String, _ words: [WordSpan]) {
        lock.lock(); defer { lock.unlock() }
        if let i = entries.firstIndex(where: { $0.id == id }) { entries[i].upload.words = words }
    }
    func get(_ id: String) throws -> Upload {
        lock.lock(); defer { lock.unlock() }
        guard let e = entries.first(where: { $0.id == id }) else {
            throw StudioError(.notFound, "no upload '\(id)' (uploads are kept in memory, the last \(capacity))")
        }
        return e.upload
    }
}

/// The page's files, read once from the package's resources and served from memory, so that no
/// request path reaches the file system.
struct WebResources: Sendable {
    let files: [String: (data: Data, type: String)]

    static func load() throws -> WebResources {
        var files = [String: (Data, String)]()
        let types = [
            "html": "text/html; charset=utf-8", "js": "text/javascript; charset=utf-8",
            "css": "text/css; charset=utf-8", "json": "application/json; charset=utf-8",
        ]
        for name in ["index.html", "studio.js", "recorder-worklet.js", "studio.css", "openapi.json"] {
            let ext = (name as NSString).pathExtension, stem = (name as NSString).deletingPathExtension
            guard let url = Bundle.module.url(forResource: stem, withExtension: ext, subdirectory: "Web"),
                let data = try? Data(contentsOf: url)
            else {
                throw StudioError(.configuration, "the Studio's page file Web/\(name) is missing from the package")
            }
            files[name] = (data, types[ext] ?? "application/octet-stream")
        }
        return WebResources(files: files)
    }
}
