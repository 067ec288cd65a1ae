import Foundation
import Testing

@Suite("Code above the tensor layer uses tensor operations, not storage or pointers")
struct TensorSeamTests {
    /// The package's `Sources` folder, found from this file's path.
    static let sources = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent().appendingPathComponent("Sources")

    /// Lines of `module`'s Swift files that read a tensor's storage or hold a raw pointer.
    static func violations(in module: String) throws -> [String] {
        let root = sources.appendingPathComponent(module)
        let pattern = try NSRegularExpression(
            pattern: #"\.storage\s*(\[|\.|,|\))|withUnsafe|Unsafe(Mutable)?(Raw)?(Buffer)?Pointer"#)
        var out = [String]()
        let files = FileManager.default.enumerator(at: root, includingPropertiesForKeys: nil)!
        for case let url as URL in files where url.pathExtension == "swift" {
            let lines = try String(contentsOf: url, encoding: .utf8).components(separatedBy: "\n")
            for (i, line) in lines.enumerated() where !line.trimmingCharacters(in: .whitespaces).hasPrefix("//") {
                let range = NSRange(line.startIndex..., in: line)
                if pattern.firstMatch(in: line, range: range) != nil {
                    out.append("\(url.lastPathComponent):\(i + 1): \(line.trimmingCharacters(in: .whitespaces))")
                }
            }
        }
        return out
    }

    @Test(
        "the model, lens, SAE, report and Studio modules never index Tensor.storage or take a pointer",
        arguments: ["AuscultWhisper", "AuscultLens", "AuscultSAE", "AuscultReport", "AuscultStudio"])
    func noStorageAbove(module: String) throws {
        let found = try Self.violations(in: module)
        #expect(found.isEmpty, "\(module):\n\(found.joined(separator: "\n"))")
    }

    @Test("the scan finds what it looks for (the tensor layer itself reads its storage)")
    func scanFindsStorage() throws {
        #expect(try Self.violations(in: "AuscultTensor").count > 20)
    }
}
