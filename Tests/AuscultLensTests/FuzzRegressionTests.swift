import Foundation
import Testing
import _TestSupport

@Suite("Readers of untrusted input replay the fuzzing seeds and every crash found")
struct FuzzRegressionTests {
    /// Files in `Fuzz/<kind>/<target>/`, sorted (none if the folder is absent).
    func inputs(_ kind: String, _ target: FuzzTarget) -> [String] {
        let dir = Fixtures.path("Fuzz/\(kind)/\(target.rawValue)")
        let names = (try? FileManager.default.contentsOfDirectory(atPath: dir)) ?? []
        return names.filter { !$0.hasPrefix(".") }.sorted().map { dir + "/" + $0 }
    }

    @Test("each seed is read as it should be: the valid ones accepted, the incomplete ones refused with an error")
    func seeds() throws {
        let scratch = try Fixtures.temporaryDirectory()
        let expected: [FuzzTarget: Bool] = [
            .safetensors: true, .ctranslate2: false,  // a CTranslate2 header without Whisper's variables
            .pytorch: true, .hfConfig: false,  // a config without weights
            .saeConfig: true, .saeWeights: true, .manifest: true, .condition: true,
        ]
        for target in FuzzTarget.allCases {
            let files = inputs("seeds", target)
            #expect(!files.isEmpty, "\(target.rawValue) has seeds")
            for path in files where !path.hasSuffix("jumprelu-old.json") {
                let bytes = try #require(FileManager.default.contents(atPath: path))
                let error = target.run(Array(bytes), scratch: scratch)
                #expect((error == nil) == expected[target], "\(path): \(error.map { "\($0)" } ?? "accepted")")
            }
        }
        // A JumpReLU config read against weights with no threshold is refused, not run as ReLU.
        let jump = try #require(
            FileManager.default.contents(atPath: Fixtures.path("Fuzz/seeds/sae-config/jumprelu-old.json")))
        #expect("\(FuzzTarget.saeConfig.run(Array(jump), scratch: scratch) as Any)".contains("threshold"))
    }

    @Test("every input a fuzzing run found crashing is now refused with an error")
    func regressions() throws {
        let scratch = try Fixtures.temporaryDirectory()
        for target in FuzzTarget.allCases {
            for path in inputs("regressions", target) {
                let bytes = try #require(FileManager.default.contents(atPath: path))
                #expect(target.run(Array(bytes), scratch: scratch) != nil, "\(path)")
            }
        }
    }
}
