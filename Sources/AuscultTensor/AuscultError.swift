// What every error Auscult throws has in common. Each module throws its own domain's type
// (loading a model, hooks, decoding, conditions, SAE files, audio, tensor files, stores), all
// conforming to `AuscultError`, so a caller catches by type, by code, or by what caused it.

/// An error of one Auscult domain: a stable code, a message that names the file, option or
/// value and what is allowed, and the lower-level error that caused it.
///
///     do { _ = try LoadedModel("my-model") }
///     catch let e as ModelLoadError where e.code == .corruptModel {
///         if let file = e.cause(TensorFileError.self) { print("bad tensor file:", file.path) }
///     }
///
/// Library messages never name command-line flags; the command line adds the flag that resolves one.
public protocol AuscultError: Error, CustomStringConvertible {
    associatedtype Code: RawRepresentable where Code.RawValue == String
    var code: Code { get }
    /// What went wrong, naming the thing and what is allowed.
    var message: String { get }
    /// The error this one wraps, if any (a tensor file's error inside a model's, an OS error).
    var underlying: (any Error)? { get }
}

extension AuscultError {
    public var description: String { message + (underlying.map { " (\($0))" } ?? "") }

    /// The first error of type `T` along the chain of underlying errors, this one included.
    public func cause<T: Error>(_ type: T.Type) -> T? {
        var next: (any Error)? = self
        while let e = next {
            if let hit = e as? T { return hit }
            next = (e as? any AuscultError)?.underlying
        }
        return nil
    }
}

/// A C library's or the operating system's own words, kept as an underlying error.
public struct LibraryMessage: Error, CustomStringConvertible, Sendable {
    public let text: String
    public init(_ text: String) { self.text = text }
    public var description: String { text }
}
