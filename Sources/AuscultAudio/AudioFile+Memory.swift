// Decoding audio held in memory (an upload), through libsndfile's virtual I/O: the bytes are
// never written to disk.
import AuscultTensor
import CSndfile
import Foundation

extension AudioClip {
    /// Decodes `data` as `init(contentsOf:)` decodes a file (wav, flac, ogg, opus, mp3), naming it
    /// `name` in errors.
    public init(data: Data, name: String) throws {
        guard !data.isEmpty else { throw AudioError(.empty, path: name, "the upload holds no bytes") }
        let source = MemorySource(data)
        var io = SF_VIRTUAL_IO(
            get_filelen: { user in MemorySource.from(user).length },
            seek: { offset, whence, user in MemorySource.from(user).seek(offset, whence) },
            read: { ptr, count, user in MemorySource.from(user).read(ptr, count) },
            write: { _, _, _ in 0 },
            tell: { user in MemorySource.from(user).position })
        var info = SF_INFO()
        let user = Unmanaged.passUnretained(source).toOpaque()
        guard let handle = sf_open_virtual(&io, Int32(SFM_READ), &info, user) else {
            throw AudioError(
                .unreadable, path: name, "not a readable audio file (wav, flac, ogg, opus or mp3)",
                cause: LibraryMessage(String(cString: sf_strerror(nil))))
        }
        defer {
            sf_close(handle)
            withExtendedLifetime(source) {}
        }
        try self.init(handle: handle, info: info, path: name)
    }
}

/// The bytes and read position libsndfile's callbacks see.
private final class MemorySource {
    let bytes: [UInt8]
    var at: Int = 0
    init(_ data: Data) { bytes = [UInt8](data) }

    static func from(_ user: UnsafeMutableRawPointer?) -> MemorySource {
        Unmanaged<MemorySource>.fromOpaque(user!).takeUnretainedValue()
    }
    var length: sf_count_t { sf_count_t(bytes.count) }
    var position: sf_count_t { sf_count_t(at) }

    func seek(_ offset: sf_count_t, _ whence: Int32) -> sf_count_t {
        let base: Int
        switch whence {
        case SEEK_SET: base = 0
        case SEEK_CUR: base = at
        case SEEK_END: base = bytes.count
        default: return -1
        }
        let (target, overflow) = base.addingReportingOverflow(Int(offset))
        guard !overflow, target >= 0, target <= bytes.count else { return -1 }
        at = target
        return sf_count_t(at)
    }

    func read(_ ptr: UnsafeMutableRawPointer?, _ count: sf_count_t) -> sf_count_t {
        guard let ptr, count > 0 else { return 0 }
        let n = min(Int(count), bytes.count - at)
        guard n > 0 else { return 0 }
        bytes.withUnsafeBytes { ptr.copyMemory(from: $0.baseAddress! + at, byteCount: n) }
        at += n
        return sf_count_t(n)
    }
}
