import AuscultTensor
import Testing

@Suite("Top-k selection")
struct TopKSelectionTests {
    @Test("quickselect picks the same set as a full sort, ties going to the lower index, −∞ included")
    func matchesSort() {
        var state: UInt64 = 42
        func next() -> UInt64 { state = state &* 6364136223846793005 &+ 1442695040888963407; return state >> 33 }
        for trial in 0..<200 {
            let n = 1 + Int(next() % 300), k = Int(next() % UInt64(n + 1))
            // Few distinct values, so ties are common; some −∞ as dead-latent masking makes them.
            var v = [Float]()
            for _ in 0..<(n + 3) {
                let dead = next() % 11 == 0
                let value = Float(Int(next() % 7) - 3)
                v.append(dead ? -Float.infinity : value)
            }
            let got = Set(Selection.largest(v, from: 3, count: n, k: k))
            let order: [Int] = (0..<n).sorted { (a: Int, b: Int) -> Bool in
                let x = v[3 + a], y = v[3 + b]
                return x > y || (x == y && a < b)
            }
            let want = Set(order.prefix(k))
            #expect(got == want, "trial \(trial): n \(n), k \(k)")
        }
    }
}
