// The Studio's HTTP routes. Each parses and checks its parameters, calls the API functions
// (Studio+API.swift) and answers JSON; every error becomes `{"error": {"code", "message"}}` with
// its status (StudioMiddleware), and model work runs on the model queue.
import AuscultAudio
import AuscultSAE
import AuscultTensor
import AuscultWhisper
import Foundation
import Hummingbird
import Logging
import NIOCore

extension Studio {
    /// The router of every page and endpoint.
    func router() -> Router<BasicRequestContext> {
        let router = Router()
        router.add(middleware: StudioMiddleware(token: configuration.token))
        for (path, file) in [
            ("/", "index.html"), ("/studio.js", "studio.js"), ("/recorder-worklet.js", "recorder-worklet.js"),
            ("/studio.css", "studio.css"), ("/api/openapi.json", "openapi.json"),
        ] {
            let (data, type) = web.files[file]!
            router.get(RouterPath(path)) { _, _ in
                Response(status: .ok, headers: [.contentType: type], body: .init(byteBuffer: ByteBuffer(bytes: data)))
            }
        }
        router.get("/api/indexes") { [self] _, _ in try json(indexList()) }
        router.get("/api/indexes/:index/features") { [self] req, ctx in
            let index = try index(ctx.path("index"))
            let q = Query(req)
            let sort = q.get("sort") ?? "max_value"
            guard ["density", "max_value", "mean_active", "fired"].contains(sort) else {
                throw StudioError(.badRequest, "sort '\(sort)': use density, max_value, mean_active or fired")
            }
            let limit = try q.int("limit", default: 50, in: 1...10_000)
            let word = q.get("word")
            if let word, word.count > 64 { throw StudioError(.badRequest, "word: at most 64 characters") }
            return try json(featureList(index, sort: sort, limit: limit, word: word))
        }
        router.get("/api/indexes/:index/densities") { [self] _, ctx in
            let index = try index(ctx.path("index"))
            return try json(index.pool.read { try $0.densities() })
        }
        router.get("/api/indexes/:index/features/:feature") { [self] req, ctx in
            let index = try index(ctx.path("index"))
            let feature = try ctx.int("feature")
            let examples = try Query(req).int("examples", default: 20, in: 1...100)
            return try json(featurePage(index, feature, examples: examples))
        }
        router.get("/api/indexes/:index/features/:feature/labels") { [self] _, ctx in
            let index = try index(ctx.path("index"))
            return try json(featureLabels(index, try ctx.int("feature")))
        }
        router.get("/api/indexes/:index/clips") { [self] _, ctx in
            let index = try index(ctx.path("index"))
            return try json(index.pool.read { try $0.clipNames() })
        }
        router.get("/api/indexes/:index/clips/:clip") { [self] _, ctx in
            let index = try index(ctx.path("index")), name = try ctx.path("clip")
            guard let clip = try index.pool.read({ try $0.clip(name) }) else {
                throw StudioError(.notFound, "index '\(index.id)' has no clip '\(name)'")
            }
            return try json(clip)
        }
        router.get("/api/indexes/:index/clips/:clip/audio") { [self] req, ctx in
            let index = try index(ctx.path("index")), name = try ctx.path("clip")
            let samples = try await files.run { try self.indexedSamples(index, name) }
            return try wav(samples, Query(req))
        }
        router.get("/api/indexes/:index/clips/:clip/trace") { [self] req, ctx in
            let index = try index(ctx.path("index")), name = try ctx.path("clip")
            let q = Query(req)
            let feature = try q.int("feature", default: nil, in: 0...(index.width - 1))
            let (start, end) = try q.span()
            guard let clip = try index.pool.read({ try $0.clip(name) }) else {
                throw StudioError(.notFound, "index '\(index.id)' has no clip '\(name)'")
            }
            let a = try await analysis(index, key: "clip:" + name) { try self.indexedSamples(index, name) }
            return try json(trace(a, clip: name, feature: feature, start: start, end: end, words: clip.words))
        }
        router.get("/api/indexes/:index/clips/:clip/inspect") { [self] req, ctx in
            let index = try index(ctx.path("index")), name = try ctx.path("clip")
            let count = try Query(req).int("features", default: 12, in: 1...64)
            let context = try decodingContext(Query(req))
            let (inspection, a) = try await model.run {
                try self.inspection(
                    self.indexedSamples(index, name), index: index, clip: name, upload: false, count: count,
                    options: context)
            }
            clips.put(index.id + "|clip:" + name, a)
            return try json(inspection)
        }
        router.post("/api/indexes/:index/inspect") { [self] req, ctx in
            let index = try index(ctx.path("index"))
            let count = try Query(req).int("features", default: 12, in: 1...64)
            let name = (Query(req).get("name") ?? "upload").prefix(128)
            let context = try decodingContext(Query(req))
            let samples = try await uploadedSamples(req, name: String(name))
            let id = uploads.add(UploadStore.Upload(name: String(name), samples: samples, words: []))
            let (inspection, a) = try await model.run {
                try self.inspection(samples, index: index, clip: id, upload: true, count: count, options: context)
            }
            uploads.setWords(id, inspection.words)
            clips.put(index.id + "|upload:" + id, a)
            return try json(inspection)
        }
        router.get("/api/uploads/:upload/audio") { [self] req, ctx in
            try wav(uploads.get(ctx.path("upload")).samples, Query(req))
        }
        router.get("/api/indexes/:index/uploads/:upload/trace") { [self] req, ctx in
            let index = try index(ctx.path("index")), id = try ctx.path("upload")
            let q = Query(req)
            let feature = try q.int("feature", default: nil, in: 0...(index.width - 1))
            let (start, end) = try q.span()
            let upload = try uploads.get(id)
            let a = try await analysis(index, key: "upload:" + id) { upload.samples }
            return try json(trace(a, clip: id, feature: feature, start: start, end: end, words: upload.words))
        }
        router.get("/api/indexes/:index/clips/:clip/attention") { [self] req, ctx in
            let index = try index(ctx.path("index")), name = try ctx.path("clip")
            let (kind, layer, head) = try Query(req).attention()
            return try json(
                try await model.run {
                    try self.attention(self.indexedSamples(index, name), kind: kind, layer: layer, head: head)
                })
        }
        router.get("/api/uploads/:upload/attention") { [self] req, ctx in
            let samples = try uploads.get(ctx.path("upload")).samples
            let (kind, layer, head) = try Query(req).attention()
            return try json(try await model.run { try self.attention(samples, kind: kind, layer: layer, head: head) })
        }
        router.post("/api/steer") { [self] req, ctx in
            var r = req
            let body = try await r.collectBody(upTo: 64 << 10)
            let request: SteerRequest
            do { request = try JSONDecoder().decode(SteerRequest.self, from: Data(buffer: body)) } catch {
                throw StudioError(
                    .badRequest,
                    "the body must be JSON {index, clip or upload, feature, mode: scale|clamp, value, keep_error}",
                    cause: error)
            }
            let index = try index(request.index)
            let samples: [Float]
            switch (request.clip, request.upload) {
            case (let clip?, nil): samples = try await files.run { try self.indexedSamples(index, clip) }
            case (nil, let upload?): samples = try uploads.get(upload).samples
            default:
                throw StudioError(.badRequest, "give either clip (an indexed clip's name) or upload (an upload id)")
            }
            return try json(try await model.run { try self.steer(samples, index: index, request: request) })
        }
        return router
    }

    /// The decoded samples of an upload's body: at most the configured bytes and seconds, decoded
    /// in memory, finite.
    func uploadedSamples(_ req: Request, name: String) async throws -> [Float] {
        let limit = configuration.maxUploadBytes
        if let length = req.headers[.contentLength].flatMap({ Int($0) }), length > limit {
            throw StudioError(.tooLarge, "the upload is \(length) bytes; the Studio takes at most \(limit)")
        }
        var r = req
        let body: ByteBuffer
        do { body = try await r.collectBody(upTo: limit) } catch {
            throw StudioError(.tooLarge, "the upload is over \(limit) bytes, the most the Studio takes", cause: error)
        }
        let data = Data(buffer: body)
        let clip: AudioClip
        do { clip = try AudioClip(data: data, name: name) } catch {
            throw StudioError(
                .unsupportedMedia, "\(name) is not audio the Studio reads (wav, flac, ogg, opus, mp3)", cause: error)
        }
        guard clip.duration <= configuration.maxUploadSeconds else {
            throw StudioError(
                .tooLarge,
                String(
                    format: "%@ is %.1f s long; the Studio takes at most %.0f s (Whisper hears 30 s)",
                    name, clip.duration, configuration.maxUploadSeconds))
        }
        guard clip.samples.count >= AudioClip.sampleRate / 10 else {
            throw StudioError(.badRequest, "\(name) holds \(clip.samples.count) samples; give at least 0.1 s of audio")
        }
        if let bad = clip.samples.firstIndex(where: { !$0.isFinite }) {
            throw StudioError(.badRequest, "\(name): sample \(bad) is \(clip.samples[bad]); audio must be finite")
        }
        return clip.samples
    }

    /// `start…end` seconds of `samples` (the whole clip by default) as a 16-bit WAV file.
    func wav(_ samples: [Float], _ q: Query) throws -> Response {
        let duration = Double(samples.count) / Double(AudioClip.sampleRate)
        let start = try q.double("start") ?? 0, end = try q.double("end") ?? duration
        guard start >= 0, end > start else {
            throw StudioError(.badRequest, "start \(start), end \(end): give 0 ≤ start < end (seconds)")
        }
        // Clamped to the clip before any conversion to a sample index (start=1e300 must not trap).
        let rate = Double(AudioClip.sampleRate)
        let a = Int(min(start, duration) * rate), b = max(a, min(samples.count, Int(min(end, duration) * rate)))
        let data = WAV.pcm16(Array(samples[a..<b]), rate: AudioClip.sampleRate)
        return Response(
            status: .ok, headers: [.contentType: "audio/wav"], body: .init(byteBuffer: ByteBuffer(bytes: data)))
    }
}

/// JSON with the API's key names (snake case, from each type's coding keys).
func json(_ value: some Encodable) throws -> Response {
    let enc = JSONEncoder()
    enc.outputFormatting = [.sortedKeys, .withoutEscapingSlashes]
    enc.nonConformingFloatEncodingStrategy = .convertToString(
        positiveInfinity: "inf", negativeInfinity: "-inf", nan: "nan")
    let data = try enc.encode(value)
    return Response(
        status: .ok, headers: [.contentType: "application/json; charset=utf-8"],
        body: .init(byteBuffer: ByteBuffer(bytes: data)))
}

extension BasicRequestContext {
    /// A path parameter, percent-decoded.
    func path(_ name: String) throws -> String {
        guard let raw = parameters.get(name), let value = raw.removingPercentEncoding, !value.isEmpty else {
            throw StudioError(.badRequest, "the path names no \(name)")
        }
        return value
    }

    func int(_ name: String) throws -> Int {
        let raw = try path(name)
        guard let v = Int(raw) else { throw StudioError(.badRequest, "\(name) '\(raw)' is not an integer") }
        return v
    }
}

/// A request's query parameters (percent-decoded; the first of repeated names wins).
struct Query {
    let values: [String: String]
    init(_ request: Request) {
        var v = [String: String]()
        for (k, x) in request.uri.queryParameters where v[String(k)] == nil { v[String(k)] = String(x) }
        values = v
    }
    func get(_ name: String) -> String? { values[name] }

    /// An integer query parameter within `range`; `default` when absent (required when nil).
    func int(_ name: String, default value: Int?, in range: ClosedRange<Int>) throws -> Int {
        guard let raw = get(name) else {
            guard let value else { throw StudioError(.badRequest, "give the query parameter \(name)") }
            return value
        }
        guard let v = Int(raw), range.contains(v) else {
            throw StudioError(
                .badRequest, "\(name) '\(raw)': give an integer in \(range.lowerBound)…\(range.upperBound)")
        }
        return v
    }

    /// A finite number query parameter, nil when absent.
    func double(_ name: String) throws -> Double? {
        guard let raw = get(name) else { return nil }
        guard let v = Double(raw), v.isFinite else {
            throw StudioError(.badRequest, "\(name) '\(raw)' is not a finite number")
        }
        return v
    }

    /// `kind` (encoder or cross, default cross), `layer` and `head` (default 0) of an attention view.
    func attention() throws -> (String, Int, Int) {
        (get("kind") ?? "cross", try int("layer", default: 0, in: 0...63), try int("head", default: 0, in: 0...63))
    }

    /// `start` and `end` in seconds, both required.
    func span() throws -> (Double, Double) {
        guard let s = try double("start"), let e = try double("end") else {
            throw StudioError(.badRequest, "give start and end (seconds)")
        }
        return (s, e)
    }
}

/// Checks the token (when one is set), answers every error as JSON with its status, and adds
/// headers that keep the page to its own origin.
struct StudioMiddleware: RouterMiddleware {
    typealias Context = BasicRequestContext
    let token: String?

    func handle(
        _ request: Request, context: Context, next: (Request, Context) async throws -> Response
    ) async throws -> Response {
        var response: Response
        do {
            if let token, !authorized(request, token) {
                throw StudioError(
                    .unauthorized, "this Studio needs its token: an Authorization: Bearer header or ?token=")
            }
            response = try await next(request, context)
        } catch let e as StudioError {
            response = Self.error(e.status, e.code.rawValue, e.description)
        } catch let e as HTTPError {
            let status = Int(e.status.code)
            let message = status == 404 ? "no such page or endpoint: \(request.uri.path)" : (e.body ?? "\(e.status)")
            response = Self.error(status, status == 404 ? "not_found" : "http", message)
        } catch {
            context.logger.error("\(request.method) \(request.uri.path): \(error)")
            response = Self.error(500, "internal", "\(error)")
        }
        response.headers[.init("X-Content-Type-Options")!] = "nosniff"
        response.headers[.init("Content-Security-Policy")!] =
            "default-src 'self'; img-src 'self' data: blob:; media-src 'self' blob:; style-src 'self'"
        response.headers[.cacheControl] = "no-store"
        return response
    }

    func authorized(_ request: Request, _ token: String) -> Bool {
        if request.headers[.authorization] == "Bearer \(token)" { return true }
        return Query(request).get("token") == token
    }

    static func error(_ status: Int, _ code: String, _ message: String) -> Response {
        let body =
            (try? JSONSerialization.data(
                withJSONObject: ["error": ["code": code, "message": message]],
                options: [.sortedKeys, .withoutEscapingSlashes])) ?? Data()
        return Response(
            status: .init(code: status), headers: [.contentType: "application/json; charset=utf-8"],
            body: .init(byteBuffer: ByteBuffer(bytes: body)))
    }
}
