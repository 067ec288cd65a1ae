// A feature index opened once per concurrent reader: SQLite connections are not shared between
// threads, so each request borrows one, and the pool grows to the number of requests in flight.
import AuscultSAE
import Foundation

/// The readers of one feature index file.
final class IndexPool: @unchecked Sendable {
    let path: String
    /// The metadata read when the Studio started (kind, hook, source, width, rows).
    let meta: [String: String]
    private var idle: [FeatureIndex]
    private let lock = NSLock()

    init(path: String) throws {
        let first = try FeatureIndex(path: path)
        self.path = path
        meta = first.meta
        idle = [first]
    }

    /// Runs `body` with a reader no other request is using.
    func read<T>(_ body: (FeatureIndex) throws -> T) throws -> T {
        lock.lock()
        let borrowed = idle.popLast()
        lock.unlock()
        let index = try borrowed ?? FeatureIndex(path: path)
        defer {
            lock.lock()
            idle.append(index)
            lock.unlock()
        }
        return try body(index)
    }
}
