// On-disk activations for SAE training (docs/formats.md): a directory with a manifest (model, hook,
// dtype, width, and per clip its shard, row offset and valid-frame count) and raw row-major shards
// read memory-mapped. Only the frames that hold audio are stored, not the 30 s padding.
import AuscultTensor
import Foundation

/// Element type of a store's shards.
public enum StoreDType: String, Codable, Sendable {
    case f16, f32
    var bytes: Int { self == .f16 ? 2 : 4 }
}

/// Where one clip's rows live.
public struct StoredClip: Codable, Sendable, Equatable {
    public var id: String
    public var shard: String
    /// First row of the clip in its shard.
    public var offset: Int
    /// Rows (valid frames) stored for the clip.
    public var frames: Int
}

/// The manifest of an activation store.
public struct StoreManifest: Codable, Sendable, Equatable {
    public var model: String
    public var hook: String
    public var dtype: StoreDType
    public var width: Int
    public var clips: [StoredClip]

    public init(model: String, hook: String, dtype: StoreDType, width: Int, clips: [StoredClip] = []) {
        self.model = model; self.hook = hook; self.dtype = dtype; self.width = width; self.clips = clips
    }

    /// Rows in the store.
    public var rows: Int { clips.reduce(0) { $0 + $1.frames } }
}

/// An activation store on disk, written clip by clip and read memory-mapped.
public final class ActivationStore {
    public let directory: String
    public private(set) var manifest: StoreManifest
    private var mapped: [String: Data] = [:]

    static func manifestPath(_ dir: String) -> String { (dir as NSString).appendingPathComponent("manifest.json") }

    /// Opens the store in `directory`, or creates it for `model`/`hook`/`dtype`/`width`. An
    /// existing store with other settings is refused (a resumed collection must match).
    public init(directory: String, creating fresh: StoreManifest? = nil) throws {
        self.directory = directory
        let path = Self.manifestPath(directory)
        if let data = FileManager.default.contents(atPath: path) {
            do { manifest = try JSONDecoder().decode(StoreManifest.self, from: data) } catch {
                throw StoreError(.corrupt, "\(path): not an activation store manifest", cause: error)
            }
            if let fresh,
                (fresh.model, fresh.hook, fresh.dtype, fresh.width) != (
                    manifest.model, manifest.hook, manifest.dtype, manifest.width
                )
            {
                throw StoreError(
                    .occupied,
                    "\(directory) holds \(manifest.hook) (\(manifest.dtype.rawValue), width \(manifest.width)) of "
                        + "\(manifest.model), not \(fresh.hook) (\(fresh.dtype.rawValue), width \(fresh.width)) of "
                        + "\(fresh.model); write this store to another directory"
                )
            }
        } else if let fresh {
            try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
            manifest = fresh
            manifest.clips = []
            try saveManifest()
        } else {
            throw StoreError(
                .missing, "\(directory): no manifest.json; collect activations into it first (auscult collect)")
        }
    }

    /// Clip ids already stored.
    public var storedIDs: Set<String> { Set(manifest.clips.map(\.id)) }

    /// Appends one clip's rows `[frames, width]` to `shard` and records it in the manifest.
    ///
    /// The shard is first cut back to the rows the manifest knows (a write interrupted before
    /// its manifest update leaves bytes no clip owns), the rows are written and flushed, then
    /// the manifest is replaced atomically: a kill at any point loses at most this clip.
    public func append(id: String, rows x: Tensor, shard: String) throws {
        guard x.rank == 2, x.shape[1] == manifest.width else {
            throw StoreError(.mismatch, "clip \(id): rows of shape \(x.shape), the store holds width \(manifest.width)")
        }
        let path = (directory as NSString).appendingPathComponent(shard)
        let known = manifest.clips.filter { $0.shard == shard }.reduce(0) { $0 + $1.frames }
        if !FileManager.default.fileExists(atPath: path) { FileManager.default.createFile(atPath: path, contents: nil) }
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: path))
        defer { try? h.close() }
        try h.truncate(atOffset: UInt64(known * manifest.width * manifest.dtype.bytes))
        try h.seekToEnd()
        try h.write(contentsOf: x.encoded(as: manifest.dtype == .f16 ? .f16 : .f32))
        try h.synchronize()
        manifest.clips.append(StoredClip(id: id, shard: shard, offset: known, frames: x.shape[0]))
        mapped[shard] = nil
        try saveManifest()
    }

    func saveManifest() throws {
        let enc = JSONEncoder()
        enc.outputFormatting = [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes]
        try enc.encode(manifest).write(to: URL(fileURLWithPath: Self.manifestPath(directory)), options: .atomic)
    }

    /// The rows `[frames, width]` of clip `id`, read through a memory map of its shard.
    public func rows(of id: String) throws -> Tensor {
        guard let c = manifest.clips.first(where: { $0.id == id }) else {
            throw StoreError(.missing, "clip '\(id)' is not in \(directory)")
        }
        return try rows(shard: c.shard, offset: c.offset, count: c.frames)
    }

    /// `count` rows from `offset` of `shard` as Float32.
    public func rows(shard: String, offset: Int, count: Int) throws -> Tensor {
        if mapped[shard] == nil {
            let path = (directory as NSString).appendingPathComponent(shard)
            do { mapped[shard] = try Data(contentsOf: URL(fileURLWithPath: path), options: .alwaysMapped) } catch {
                throw StoreError(.missing, "\(path): cannot map the shard", cause: error)
            }
        }
        let data = mapped[shard]!, w = manifest.width, b = manifest.dtype.bytes
        let start = offset * w * b, end = (offset + count) * w * b
        guard end <= data.count else {
            throw StoreError(
                .corrupt,
                "\(shard): \(data.count) bytes, rows up to \(offset + count) need \(end); the shard is truncated")
        }
        return Tensor(decoding: data, byteOffset: start, as: manifest.dtype == .f16 ? .f16 : .f32, shape: [count, w])
    }

    /// Merges stores written by separate shards (`--shard k/N` on many machines) into `directory`:
    /// the manifests are joined (shard files are referenced by relative path, so they are copied
    /// beside the merged manifest); a clip present twice or a store with other settings is refused.
    public static func merge(_ inputs: [String], into directory: String) throws -> ActivationStore {
        let stores = try inputs.map { try ActivationStore(directory: $0) }
        guard let first = stores.first else { throw StoreError(.missing, "nothing to merge") }
        var merged = first.manifest
        merged.clips = []
        let out = try ActivationStore(directory: directory, creating: merged)
        guard out.manifest.clips.isEmpty else {
            throw StoreError(.mismatch, "\(directory) already holds a store; merge into an empty directory")
        }
        var seen = Set<String>()
        for (k, s) in stores.enumerated() {
            guard
                (s.manifest.model, s.manifest.hook, s.manifest.dtype, s.manifest.width) == (
                    merged.model, merged.hook, merged.dtype, merged.width
                )
            else {
                throw StoreError(
                    .mismatch,
                    "\(s.directory) holds \(s.manifest.hook) of \(s.manifest.model) (\(s.manifest.dtype.rawValue)), "
                        + "unlike \(inputs[0])"
                )
            }
            for c in s.manifest.clips {
                guard seen.insert(c.id).inserted else {
                    throw StoreError(.mismatch, "clip '\(c.id)' is in more than one store")
                }
                let name = "part\(k)-" + c.shard
                let dst = (directory as NSString).appendingPathComponent(name)
                if !FileManager.default.fileExists(atPath: dst) {
                    try FileManager.default.copyItem(
                        atPath: (s.directory as NSString).appendingPathComponent(c.shard), toPath: dst)
                }
                out.manifest.clips.append(StoredClip(id: c.id, shard: name, offset: c.offset, frames: c.frames))
            }
        }
        try out.saveManifest()
        return out
    }
}

/// Why an activation store could not be read or written.
public struct StoreError: AuscultError, Sendable {
    public enum Code: String, Sendable {
        case missing, corrupt, mismatch
        /// The output already holds another run's data (another hook, model, SAE or settings).
        case occupied
    }
    public var code: Code
    public var message: String
    public var underlying: (any Error)?
    public init(_ code: Code, _ message: String, cause: (any Error)? = nil) {
        self.code = code; self.message = message; self.underlying = cause
    }
}
