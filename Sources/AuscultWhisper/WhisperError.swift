// Errors of the Whisper layer: a code, a message that names the file or thing, and the cause.

/// Why a model could not be loaded or run.
public struct WhisperError: Error, CustomStringConvertible, Sendable {
    public enum Code: String, Sendable {
        case modelNotFound, unknownFormat, corruptModel, missingTensor, unexpectedTensor, shapeMismatch
        case tokenizerMissing, invalidArgument
    }
    public var code: Code
    public var message: String
    /// A lower-level error's own description, when there was one.
    public var cause: String?
    public init(_ code: Code, _ message: String, cause: String? = nil) {
        self.code = code; self.message = message; self.cause = cause
    }
    public var description: String { message + (cause.map { " (\($0))" } ?? "") }
}
