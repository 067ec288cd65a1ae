import AuscultTensor
import Testing
import _TestSupport

@testable import AuscultWhisper

@Suite("Cross-attention: one entry point over its three forms")
struct CrossAttentionFormsTests {
    @Test(
        "keys and values projected, packed, or read from the features decode jfk to the same tokens, alone or with a second sequence on the clip"
    )
    func formsAgree() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let model = loaded.model
        let audio = try model.encode(try Fixtures.mel("jfk").reshaped([1, 80, 3000]))
        let packed = try model.crossAttentionKV(audio)
        let features = try model.crossAttentionKV(audio, form: .features)
        // The projected form is what runs off x86-64; a CPU backend that does not pack makes it here.
        let projected = try model.running(on: CPUBackend(packsKeysValues: false)).crossAttentionKV(audio)
        func payloads(_ kv: CrossAttentionKV) -> [any Sendable] {
            if case .keysValues(let layers) = kv.storage { return layers.map(\.payload) }
            return []
        }
        #expect(payloads(packed).count == 4 && payloads(packed).allSatisfy { $0 is [[Float]] }, "x86-64 packs them")
        #expect(payloads(projected).count == 4 && payloads(projected).allSatisfy { $0 is Tensor })
        #expect(features.features != nil)
        var options = DecodingOptions()
        options.language = "en"
        func tokens(_ kv: CrossAttentionKV, rows: [Int]) throws -> [[Int]] {
            try loaded.decoder.decode(audio: audio, rows: rows, tokensFrom: nil, options: options, kv: kv).map(\.tokens)
        }
        let reference = try tokens(packed, rows: [0])[0]
        #expect(reference.count > 10)
        for kv in [features, projected] { #expect(try tokens(kv, rows: [0]) == [reference]) }
        // Two sequences reading one clip attend as one group.
        for kv in [packed, projected] { #expect(try tokens(kv, rows: [0, 0]) == [reference, reference]) }
    }
}
