// Errors the audio layer reports: a code, a message naming the file, and the library's cause.

/// Why a clip could not be turned into 16 kHz mono samples.
public struct AudioError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable { case fileNotFound, unreadable, empty, resampleFailed }
    public var code: Code
    public var path: String
    public var message: String
    /// The underlying library's own words, when it gave any.
    public var cause: String?
    public init(_ code: Code, path: String, _ message: String, cause: String? = nil) {
        self.code = code; self.path = path; self.message = message; self.cause = cause
    }
    public var description: String {
        "\(path): \(message)" + (cause.map { " (\($0))" } ?? "")
    }
}
