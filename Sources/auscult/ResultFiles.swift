// Where a one-shot experiment command writes: results.json and report.html in its --out folder;
// and the JSON every `--format json` prints.
import AuscultReport
import AuscultTensor
import Foundation

enum ResultFiles {
    /// Writes `result` as `results.json` (atomically) and `page` as `report.html` into `out`,
    /// creating it; returns both paths.
    static func write<R: Encodable>(
        _ result: R, page: HTMLDocument, to out: String
    ) throws
        -> (results: String, report: String)
    {
        try FileManager.default.createDirectory(atPath: out, withIntermediateDirectories: true)
        let enc = JSONEncoder.results(pretty: true)
        let results = (out as NSString).appendingPathComponent("results.json"),
            report = (out as NSString).appendingPathComponent("report.html")
        try enc.encode(result).write(to: URL(fileURLWithPath: results), options: .atomic)
        try page.write(to: report)
        return (results, report)
    }
}

/// Prints `value` as pretty, key-sorted JSON on stdout (what `--format json` prints).
func printJSON(_ value: some Encodable) throws {
    print(String(decoding: try JSONEncoder.results(pretty: true).encode(value), as: UTF8.self))
}

/// Prints a JSON object or array made of dictionaries, arrays, strings and numbers.
func printJSON(_ value: Any) throws {
    print(String(decoding: try JSONNumbers.data(value, pretty: true), as: UTF8.self))
}
