// Blocking work off Swift's cooperative thread pool. A forward pass of tiny.en takes ~0.1-1 s of
// both cores; on one of the pool's two threads it would stall every feature-page request behind
// it. The model's queue runs one forward pass at a time, which is what the CPU backend (already
// splitting each product across the cores) wants; reading audio files has its own queue so that
// playback never waits behind a steering run.
import Dispatch

/// Runs blocking jobs one at a time on a thread of their own.
final class WorkQueue: Sendable {
    private let queue: DispatchQueue

    init(label: String) { queue = DispatchQueue(label: label, qos: .userInitiated) }

    func run<T: Sendable>(_ body: @escaping @Sendable () throws -> T) async throws -> T {
        try await withCheckedThrowingContinuation { continuation in
            queue.async { continuation.resume(with: Result { try body() }) }
        }
    }
}
