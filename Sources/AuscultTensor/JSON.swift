// JSON for result files: a non-finite number (a NaN loss, an infinite ratio) is written as the
// string "NaN", "Infinity" or "-Infinity" and read back as the number, so that a result holding
// one is written whole instead of failing the write and losing everything beside it.
import Foundation

extension JSONEncoder {
    /// An encoder for Auscult's result files: keys sorted, slashes unescaped, non-finite numbers
    /// as the strings `JSONNumbers` names; `pretty` indents.
    public static func results(pretty: Bool = false) -> JSONEncoder {
        let e = JSONEncoder()
        e.outputFormatting =
            pretty ? [.sortedKeys, .prettyPrinted, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes]
        e.nonConformingFloatEncodingStrategy = .convertToString(
            positiveInfinity: JSONNumbers.infinity, negativeInfinity: JSONNumbers.negativeInfinity, nan: JSONNumbers.nan
        )
        return e
    }
}

extension JSONDecoder {
    /// A decoder that reads what `JSONEncoder.results` writes, non-finite numbers included.
    public static func results() -> JSONDecoder {
        let d = JSONDecoder()
        d.nonConformingFloatDecodingStrategy = .convertFromString(
            positiveInfinity: JSONNumbers.infinity, negativeInfinity: JSONNumbers.negativeInfinity, nan: JSONNumbers.nan
        )
        return d
    }
}

/// How non-finite numbers are spelled in Auscult's JSON (the words Python's `json` uses).
public enum JSONNumbers {
    public static let nan = "NaN", infinity = "Infinity", negativeInfinity = "-Infinity"

    /// `value` (dictionaries, arrays, strings, numbers) with every non-finite `Double` or
    /// `Float` replaced by its string, so `JSONSerialization` writes it instead of throwing.
    public static func finite(_ value: Any) -> Any {
        switch value {
        case let d as Double: return d.isFinite ? d : spelled(d)
        case let f as Float: return f.isFinite ? f : spelled(Double(f))
        case let a as [Any]: return a.map(finite)
        case let o as [String: Any]: return o.mapValues(finite)
        default: return value
        }
    }

    static func spelled(_ d: Double) -> String { d.isNaN ? nan : (d > 0 ? infinity : negativeInfinity) }

    /// `value` as JSON data through `JSONSerialization`, non-finite numbers spelled out.
    public static func data(_ value: Any, pretty: Bool = false) throws -> Data {
        try JSONSerialization.data(
            withJSONObject: finite(value),
            options: pretty
                ? [.prettyPrinted, .sortedKeys, .withoutEscapingSlashes] : [.sortedKeys, .withoutEscapingSlashes])
    }
}
