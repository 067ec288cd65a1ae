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

@Suite("SHA-256 content hashes")
struct SHA256Tests {
    @Test("the FIPS 180-4 test vectors, fed whole and in uneven pieces")
    func vectors() {
        func hash(_ s: String, pieces: Int = 1) -> String {
            var h = SHA256Hasher()
            let bytes = Array(s.utf8), step = max(1, bytes.count / pieces)
            var at = 0
            while at < bytes.count {
                let end = min(bytes.count, at + step)
                bytes[at..<end].withUnsafeBytes { h.update($0) }
                at = end
            }
            return h.hexDigest()
        }
        #expect(hash("") == "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855")
        #expect(hash("abc") == "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad")
        let two = "abcdbcdecdefdefgefghfghighijhijkijkljklmklmnlmnomnopnopq"
        for pieces in [1, 3, 7] {
            #expect(hash(two, pieces: pieces) == "248d6a61d20638b8e5c026930c3e6039a33ce45964ff2167f6ecedd419db06c1")
        }
        #expect(
            hash(String(repeating: "a", count: 1_000_000), pieces: 13)
                == "cdc76e5c9914fb9281a1c7e284d73e67f1809a48a497200e046d39ccc7112cd0")
    }
}
