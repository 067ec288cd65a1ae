// A Studio served on a free local port over small indexes of bundled clips (raw neurons of
// encoder.blocks.2.mlp.hook_post, and an identity SAE's latents on encoder.blocks.2.hook_resid_post),
// built once per test process, and HTTP through curl (which sends paths exactly as given).
import AuscultSAE
import AuscultStudio
import AuscultTensor
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

/// The indexes and servers the Studio tests share.
actor StudioFixture {
    static let shared = StudioFixture()
    static let clips = ["jfk", "ps_cards_003", "ls_1089-134691-0000"]
    static let neuronHook = "encoder.blocks.2.mlp.hook_post"
    static let saeHook = "encoder.blocks.2.hook_resid_post"

    struct Built: Sendable { let neurons: String; let sae: String; let saeDirectory: String }
    private var built: Built?
    private var servers = [String: String]()

    /// Builds the two indexes (once).
    func indexes() throws -> Built {
        if let built { return built }
        let loaded = try Fixtures.loaded("tiny.en")
        let dir = try Fixtures.temporaryDirectory()
        let all = try Dataset.load(Fixtures.clips).items
        let items = Self.clips.map { id in all.first { $0.id == id }! }
        var neurons = try FeatureIndexBuilder(loaded: loaded, source: .neurons(hook: Self.neuronHook))
        neurons.top = 5
        try neurons.build(items, path: dir + "/neurons.sqlite")
        try SAECheckpoint.save(identitySAE(384), to: dir + "/sae", hook: Self.saeHook, model: "tiny.en")
        var sae = try FeatureIndexBuilder(
            loaded: loaded, source: .sae(try SAECheckpoint.load(dir + "/sae"), hook: Self.saeHook, path: dir + "/sae"))
        sae.top = 5
        try sae.build(items, path: dir + "/latents.sqlite")
        built = Built(neurons: dir + "/neurons.sqlite", sae: dir + "/latents.sqlite", saeDirectory: dir + "/sae")
        return built!
    }

    /// The address of a Studio over both indexes (uploads capped at 2 MB), one per `token`.
    func server(token: String? = nil) async throws -> String {
        let key = token ?? ""
        if let address = servers[key] { return address }
        let b = try indexes()
        var config = StudioConfiguration(indexes: [b.neurons, b.sae])
        config.port = 0
        config.token = token
        config.maxUploadBytes = 2 << 20
        let studio = try Studio(configuration: config, loaded: try Fixtures.loaded("tiny.en"))
        let address: String = try await withCheckedThrowingContinuation { continuation in
            let once = Once()
            Task.detached {
                do {
                    try await studio.run { address in if once.claim() { continuation.resume(returning: address) } }
                } catch {
                    if once.claim() { continuation.resume(throwing: error) }
                }
            }
        }
        servers[key] = address
        return address
    }
}

/// True the first time only.
final class Once: @unchecked Sendable {
    private var done = false
    private let lock = NSLock()
    func claim() -> Bool {
        lock.lock(); defer { lock.unlock() }
        if done { return false }
        done = true
        return true
    }
}

/// One HTTP exchange.
struct HTTPAnswer {
    var status: Int
    var body: Data
    var type: String
    var text: String { String(decoding: body, as: UTF8.self) }
    func json() throws -> Any { try JSONSerialization.jsonObject(with: body) }
    /// The `error.code` and `error.message` of an error answer.
    var error: (code: String, message: String)? {
        guard let o = try? json() as? [String: Any], let e = o["error"] as? [String: String] else { return nil }
        return (e["code"] ?? "", e["message"] ?? "")
    }
}

/// HTTP through curl: the path goes out exactly as written (`--path-as-is`, no normalising).
/// Waits off Swift's cooperative pool: the server in this process answers on that pool, and two
/// tests blocking both of its threads (2 cores) would starve it.
func http(
    _ url: String, method: String = "GET", body: String? = nil, bodyFile: String? = nil, headers: [String] = []
) async throws -> HTTPAnswer {
    try await withCheckedThrowingContinuation { continuation in
        DispatchQueue.global().async {
            continuation.resume(
                with: Result { try blockingHTTP(url, method: method, body: body, bodyFile: bodyFile, headers: headers) }
            )
        }
    }
}

func blockingHTTP(
    _ url: String, method: String, body: String?, bodyFile: String?, headers: [String]
) throws -> HTTPAnswer {
    let dir = try Fixtures.temporaryDirectory()
    var args = [
        "-s", "--path-as-is", "-X", method, "-o", dir + "/body", "-w", "%{http_code} %{content_type}",
        "--max-time", "120",
    ]
    for h in headers { args += ["-H", h] }
    if let body { args += ["--data-binary", body] }
    if let bodyFile { args += ["--data-binary", "@" + bodyFile] }
    let r = try runProcess("/usr/bin/curl", args + [url])
    let parts = r.out.split(separator: " ", maxSplits: 1).map(String.init)
    return HTTPAnswer(
        status: Int(parts.first ?? "") ?? -1,
        body: FileManager.default.contents(atPath: dir + "/body") ?? Data(), type: parts.count > 1 ? parts[1] : "")
}
