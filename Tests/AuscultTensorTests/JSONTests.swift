import AuscultTensor
import Foundation
import Testing

@Suite("JSON of results with non-finite numbers")
struct JSONTests {
    struct Row: Codable, Equatable { var name: String; var loss: Double; var ratio: Float }

    @Test("a NaN or infinite number is written as its word and read back as the number")
    func encoderRoundTrip() throws {
        let rows = [Row(name: "a/b", loss: .nan, ratio: .infinity), Row(name: "c", loss: 1.5, ratio: -.infinity)]
        let data = try JSONEncoder.results().encode(rows)
        let text = String(decoding: data, as: UTF8.self)
        #expect(text.contains(#""loss":"NaN""#) && text.contains(#""ratio":"Infinity""#), "\(text)")
        #expect(text.contains(#""ratio":"-Infinity""#) && text.contains(#""name":"a/b""#), "\(text)")
        let back = try JSONDecoder.results().decode([Row].self, from: data)
        #expect(back[0].loss.isNaN && back[0].ratio == .infinity && back[1] == rows[1])
    }

    @Test("dictionaries and arrays for JSONSerialization get the same words instead of an error")
    func serialization() throws {
        let value: [String: Any] = ["a": [1.0, Double.nan], "b": ["c": Float.infinity, "d": "text"], "e": 2]
        #expect(throws: (any Error).self) { try JSONSerialization.data(withJSONObject: value) }
        let parsed = try #require(
            try JSONSerialization.jsonObject(with: JSONNumbers.data(value)) as? [String: Any])
        #expect((parsed["a"] as? [Any])?.last as? String == "NaN")
        #expect((parsed["b"] as? [String: Any])?["c"] as? String == "Infinity")
        #expect((parsed["a"] as? [Any])?.first as? Double == 1 && parsed["e"] as? Int == 2)
    }
}
