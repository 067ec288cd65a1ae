import AuscultLens
import AuscultTensor
import Foundation
import Testing
import _TestSupport

#if canImport(Glibc)
import Glibc
#endif

@Suite("An output written by one run is refused to a second")
struct OutputLockTests {
    /// Takes flock(2)'s exclusive lock on `path` through a descriptor of its own, as another run
    /// would (flock locks belong to an open file, so this conflicts even within one process).
    func otherRun(_ path: String) throws -> Int32 {
        var isDirectory: ObjCBool = false
        let directory = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) && isDirectory.boolValue
        let fd = directory ? open(path, O_RDONLY) : open(path, O_RDWR | O_CREAT, 0o644)
        #expect(fd >= 0)
        #expect(flock(fd, LOCK_EX | LOCK_NB) == 0, "the other run took the lock")
        return fd
    }

    @Test("a sweep directory another run has locked is refused by name, and taken once that run ends")
    func sweepDirectory() throws {
        let dir = try Fixtures.temporaryDirectory() + "/sweep"
        try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
        let other = try otherRun(dir)
        #expect {
            _ = try SweepStore(directory: dir, settings: ["command": "ablate"], fresh: false)
        } throws: { ($0 as? OutputLockError)?.code == .inUse && "\($0)".contains(dir) }
        #expect(!FileManager.default.fileExists(atPath: dir + "/run.json"), "nothing was written")
        close(other)  // the other run ends (the kernel drops its lock however it ends)
        _ = try SweepStore(directory: dir, settings: ["command": "ablate"], fresh: false)
        #expect(FileManager.default.fileExists(atPath: dir + "/run.json"))
        // Held now: claiming it again in this run is allowed, and a third run is refused.
        _ = try SweepStore(directory: dir, settings: ["command": "ablate"], fresh: false)
        let third = open(dir, O_RDONLY)
        #expect(flock(third, LOCK_EX | LOCK_NB) != 0, "the lock is held")
        close(third)
    }

    @Test("a file output (an index) is locked through a .lock file beside it")
    func fileOutput() throws {
        let path = try Fixtures.temporaryDirectory() + "/features.sqlite"
        let other = try otherRun(path + ".lock")
        #expect { try OutputLock.hold(path) } throws: { ($0 as? OutputLockError)?.code == .inUse }
        close(other)
        try OutputLock.hold(path)
    }
}
