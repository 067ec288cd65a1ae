// Exclusive locks on output directories and files, so that two runs never write one output at
// once (the second would interleave its results with the first's, or resume from half a file).
// flock(2) locks are released by the kernel when the process ends, however it ends: a run killed
// with SIGKILL leaves no stale lock behind.
import Foundation

#if canImport(Glibc)
import Glibc
#endif

/// Why an output could not be locked: another process holds it, or it cannot be opened.
public struct OutputLockError: AuscultError, Sendable {
    public enum Code: String, Sendable { case inUse, unavailable }
    public var code: Code
    public var message: String
    public var underlying: (any Error)?
    public init(_ code: Code, _ message: String) { self.code = code; self.message = message }
}

/// Process-wide exclusive locks on outputs, held until the process ends.
public enum OutputLock {
    nonisolated(unsafe) private static var held = [String: Int32]()
    private static let mutex = NSLock()

    /// Locks `path` (an existing directory, or a file: then `path.lock` beside it is what is
    /// locked) for the rest of this process; taking a lock this process already holds is a no-op.
    /// Throws `OutputLockError.inUse` when another process holds it.
    public static func hold(_ path: String) throws {
        var isDirectory: ObjCBool = false
        let exists = FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory)
        let target = exists && isDirectory.boolValue ? path : path + ".lock"
        let key = URL(fileURLWithPath: target).resolvingSymlinksInPath().path
        mutex.lock()
        defer { mutex.unlock() }
        if held[key] != nil { return }
        let fd =
            isDirectory.boolValue
            ? open(target, O_RDONLY | O_CLOEXEC) : open(target, O_RDWR | O_CREAT | O_CLOEXEC, 0o644)
        guard fd >= 0 else {
            throw OutputLockError(
                .unavailable, "\(target): cannot open it to lock it (\(String(cString: strerror(errno))))")
        }
        guard flock(fd, LOCK_EX | LOCK_NB) == 0 else {
            close(fd)
            throw OutputLockError(
                .inUse,
                "\(path) is being written by another run (it holds the lock on \(target)); wait for that run to end, "
                    + "or write this one elsewhere")
        }
        held[key] = fd
    }
}
