// Model work off Swift's cooperative thread pool: a forward pass of tiny.en takes ~0.1-1 s of
// both cores, and running it on one of the pool's two threads would stall every feature-page
// request behind it. One serial queue also means one forward pass at a time, which is what the
// CPU backend (already splitting each product across the cores) wants.
import Dispatch

/// Runs model work one job at a time on its own thread.
final class ModelQueue: Sendable {
    private let queue = DispatchQueue(label: "auscult.studio.model", qos: .userInitiated)

    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body() }) }
        }
    }
}
