// Placeholder removed below once the full port lands.
public struct EnglishTextNormalizer: Sendable {
    public init() {}
    public func callAsFunction(_ s: String) -> String { s.lowercased() }
}
