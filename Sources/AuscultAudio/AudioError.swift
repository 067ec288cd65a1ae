// Errors the audio layer reports: a code, a message naming the file, and the library's cause.
import AuscultTensor

/// Why a clip could not be turned into 16 kHz mono samples.
public struct AudioError: AuscultError, Sendable {
    public enum Code: String, Sendable { case fileNotFound, unreadable, empty, resampleFailed, nonFinite }
    public var code: Code
    public var path: String
    public var message: String
    /// The underlying library's own words (a `LibraryMessage`), when it gave any.
    public var underlying: (any Error)?
    public init(_ code: Code, path: String, _ message: String, cause: (any Error)? = nil) {
        self.code = code; self.path = path; self.message = message; self.underlying = cause
    }
    public var description: String {
        "\(path): \(message)" + (underlying.map { " (\($0))" } ?? "")
    }
}
