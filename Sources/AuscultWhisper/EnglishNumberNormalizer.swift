// Spelled-out numbers to digits, equivalent to openai-whisper's `EnglishNumberNormalizer`
// ("twenty one" → "21", "one oh one" → "101", "$20 million" → "$20000000", "3rd", "1960s").
// Integers are Int64 here (Python's are unbounded): a value past ~9.2e18 is kept as digits text.
import Foundation

struct EnglishNumberNormalizer: Sendable {
    enum Value: Equatable {
        case int(Int)
        case str(String)
        var text: String {
            switch self {
            case .int(let i): return String(i);
            case .str(let s): return s
            }
        }
    }

    static let zeros: Set<String> = ["o", "oh", "zero"]
    static let onesList = [
        "one", "two", "three", "four", "five", "six", "seven", "eight", "nine", "ten", "eleven",
        "twelve", "thirteen", "fourteen", "fifteen", "sixteen", "seventeen", "eighteen", "nineteen",
    ]
    static let ones: [String: Int] = Dictionary(uniqueKeysWithValues: onesList.enumerated().map { ($1, $0 + 1) })
    static let onesSuffixed: [String: (Int, String)] = {
        var d = [String: (Int, String)]()
        for (name, v) in ones { d[name == "six" ? "sixes" : name + "s"] = (v, "s") }
        d["zeroth"] = (0, "th"); d["first"] = (1, "st"); d["second"] = (2, "nd"); d["third"] = (3, "rd")
        d["fifth"] = (5, "th"); d["twelfth"] = (12, "th")
        for (name, v) in ones where v > 3 && v != 5 && v != 12 {
            d[name + (name.hasSuffix("t") ? "h" : "th")] = (v, "th")
        }
        return d
    }()
    static let tens: [String: Int] = [
        "twenty": 20, "thirty": 30, "forty": 40, "fifty": 50, "sixty": 60,
        "seventy": 70, "eighty": 80, "ninety": 90,
    ]
    static let tensSuffixed: [String: (Int, String)] = {
        var d = [String: (Int, String)]()
        for (name, v) in tens {
            d[name.replacingOccurrences(of: "y", with: "ies")] = (v, "s")
            d[name.replacingOccurrences(of: "y", with: "ieth")] = (v, "th")
        }
        return d
    }()
    /// Multipliers that fit in Int64; larger ones (quintillion and up) are left as words.
    static let multipliers: [String: Int] = [
        "hundred": 100, "thousand": 1_000, "million": 1_000_000,
        "billion": 1_000_000_000, "trillion": 1_000_000_000_000,
        "quadrillion": 1_000_000_000_000_000,
    ]
    static let multipliersSuffixed: [String: (Int, String)] = {
        var d = [String: (Int, String)]()
        for (name, v) in multipliers { d[name + "s"] = (v, "s"); d[name + "th"] = (v, "th") }
        return d
    }()
    static let decimals: Set<String> = Set(ones.keys).union(tens.keys).union(zeros)
    static let precedingPrefixers = ["minus": "-", "negative": "-", "plus": "+", "positive": "+"]
    static let followingPrefixers = [
        "pound": "£", "pounds": "£", "euro": "€", "euros": "€",
        "dollar": "$", "dollars": "$", "cent": "¢", "cents": "¢",
    ]
    static let prefixes: Set<Character> = Set(
        precedingPrefixers.values.map { Character($0) } + followingPrefixers.values.map { Character($0) })
    static let specials: Set<String> = ["and", "double", "triple", "point"]
    static let words: Set<String> = {
        var w = Set<String>(zeros)
        w.formUnion(ones.keys); w.formUnion(onesSuffixed.keys); w.formUnion(tens.keys); w.formUnion(tensSuffixed.keys)
        w.formUnion(multipliers.keys); w.formUnion(multipliersSuffixed.keys); w.formUnion(precedingPrefixers.keys)
        w.formUnion(followingPrefixers.keys); w.formUnion(["per", "percent"]); w.formUnion(specials)
        return w
    }()

    /// A decimal string as a reduced fraction (Python `Fraction(str)` for digits with an optional point).
    static func fraction(_ s: String) -> (num: Int, den: Int)? {
        guard Regex.matches("^\\s*\\d*\\.?\\d*\\s*$", s) else { return nil }
        let t = s.trimmingCharacters(in: .whitespaces)
        let parts = t.split(separator: ".", omittingEmptySubsequences: false)
        let whole = String(parts[0]), frac = parts.count > 1 ? String(parts[1]) : ""
        guard !(whole.isEmpty && frac.isEmpty), frac.count <= 17, let num = Int(whole + frac) else { return nil }
        var den = 1
        for _ in 0..<frac.count { den *= 10 }
        func gcd(_ a: Int, _ b: Int) -> Int { b == 0 ? a : gcd(b, a % b) }
        let g = max(1, gcd(num, den))
        return (num / g, den / g)
    }

    static func isNumeric(_ s: String?) -> Bool { s.map { Regex.matches("^\\d+(\\.\\d+)?$", $0) } ?? false }

    func processWords(_ words: [String]) -> [String] {
        var out = [String]()
        var prefix: String? = nil
        var value: Value? = nil
        var skip = false
        func output(_ r: String) -> String {
            let s = (prefix ?? "") + r
            value = nil; prefix = nil
            return s
        }
        func emit(_ r: String) { out.append(output(r)) }
        let padded: [String?] = [nil] + words.map { Optional($0) } + [nil]
        for i in 1..<(padded.count - 1) {
            if skip { skip = false; continue }
            let prev = padded[i - 1], current = padded[i]!, next = padded[i + 1]
            let nextIsNumeric = Self.isNumeric(next)
            let hasPrefix = Self.prefixes.contains(current.first!)
            let bare = hasPrefix ? String(current.dropFirst()) : current
            let prevIn: (Set<String>) -> Bool = { set in prev.map { set.contains($0) } ?? false }
            let nextInWords = next.map { Self.words.contains($0) } ?? false
            if Self.isNumeric(bare) {
                let f = Self.fraction(bare)!
                if let v = value {
                    if case .str(let sv) = v, sv.hasSuffix(".") { value = .str(sv + current); continue }
                    emit(v.text)
                }
                prefix = hasPrefix ? String(current.first!) : prefix
                value = f.den == 1 ? .int(f.num) : .str(bare)
            } else if !Self.words.contains(current) {
                if let v = value { emit(v.text) }
                emit(current)
            } else if Self.zeros.contains(current) {
                value = .str(Self.orEmpty(value) + "0")
            } else if let ones = Self.ones[current] {
                value = Self.combineOnes(
                    value, ones, prevIsOnes: prevIn(Set(Self.ones.keys)), prevIsTens: prevIn(Set(Self.tens.keys)))
            } else if let (ones, suffix) = Self.onesSuffixed[current] {
                if value == nil {
                    emit(String(ones) + suffix)
                } else {
                    emit(
                        Self.combineOnes(
                            value, ones, prevIsOnes: prevIn(Set(Self.ones.keys)),
                            prevIsTens: prevIn(Set(Self.tens.keys))
                        ).text + suffix)
                }
                value = nil
            } else if let tens = Self.tens[current] {
                switch value {
                case nil: value = .int(tens)
                case .str(let s)?: value = .str(s + String(tens))
                case .int(let v)?: value = v % 100 == 0 ? .int(v + tens) : .str(String(v) + String(tens))
                }
            } else if let (tens, suffix) = Self.tensSuffixed[current] {
                switch value {
                case nil: emit(String(tens) + suffix)
                case .str(let s)?: emit(s + String(tens) + suffix)
                case .int(let v)?: emit((v % 100 == 0 ? String(v + tens) : String(v) + String(tens)) + suffix)
                }
            } else if let mult = Self.multipliers[current] {
                if let v = value {
                    var textual = false
                    if case .str = v { textual = true }
                    if textual || v == .int(0) {
                        if let f = Self.fraction(v.text), let p = Self.times(f, mult) {
                            value = .int(p)
                        } else {
                            emit(v.text); value = .int(mult)
                        }
                    } else if case .int(let n) = v {
                        value = .int(Self.scale(n, mult))
                    }
                } else {
                    value = .int(mult)
                }
            } else if let (mult, suffix) = Self.multipliersSuffixed[current] {
                switch value {
                case nil: emit(String(mult) + suffix)
                case .str(let s)?:
                    if let f = Self.fraction(s), let p = Self.times(f, mult) {
                        emit(String(p) + suffix)
                    } else {
                        emit(s); emit(String(mult) + suffix)
                    }
                case .int(let v)?:
                    emit(String(Self.scale(v, mult)) + suffix)
                }
                value = nil
            } else if let p = Self.precedingPrefixers[current] {
                if let v = value { emit(v.text) }
                if nextInWords || nextIsNumeric { prefix = p } else { emit(current) }
            } else if let p = Self.followingPrefixers[current] {
                if let v = value { prefix = p; emit(v.text) } else { emit(current) }
            } else if current == "per" || current == "percent" {
                if let v = value {
                    if current == "percent" {
                        emit(v.text + "%")
                    } else if next == "cent" {
                        emit(v.text + "%"); skip = true
                    } else {
                        emit(v.text); emit(current)
                    }
                } else {
                    emit(current)
                }
            } else if Self.specials.contains(current) {
                if !nextInWords && !nextIsNumeric {
                    if let v = value { emit(v.text) }
                    emit(current)
                } else if current == "and" {
                    if !prevIn(Set(Self.multipliers.keys)) {
                        if let v = value { emit(v.text) }
                        emit(current)
                    }
                } else if current == "double" || current == "triple" {
                    if let n = next, Self.ones[n] != nil || Self.zeros.contains(n) {
                        let reps = current == "double" ? 2 : 3
                        let digit = String(Self.ones[n] ?? 0)
                        value = .str(Self.orEmpty(value) + String(repeating: digit, count: reps))
                        skip = true
                    } else {
                        if let v = value { emit(v.text) }
                        emit(current)
                    }
                } else if current == "point" {
                    if (next.map { Self.decimals.contains($0) } ?? false) || nextIsNumeric {
                        value = .str(Self.orEmpty(value) + ".")
                    }
                }
            }
        }
        if let v = value { emit(v.text) }
        return out
    }

    /// `before + residual · multiplier` where before = v // 1000 · 1000 (Python's int arithmetic).
    static func scale(_ v: Int, _ mult: Int) -> Int {
        let before = v / 1000 * 1000, residual = v % 1000
        let (p, o) = residual.multipliedReportingOverflow(by: mult)
        return o ? v : before + p
    }

    /// `f · mult` if it is a whole number that fits in Int64.
    static func times(_ f: (num: Int, den: Int), _ mult: Int) -> Int? {
        let (p, o) = f.num.multipliedReportingOverflow(by: mult)
        return !o && p % f.den == 0 ? p / f.den : nil
    }

    /// Python's `str(value or "")`: nil and integer 0 give "".
    static func orEmpty(_ v: Value?) -> String {
        guard let v, v != .int(0) else { return "" }
        return v.text
    }

    /// The "ones" rule shared by cardinals and their suffixed forms.
    static func combineOnes(_ value: Value?, _ ones: Int, prevIsOnes: Bool, prevIsTens: Bool) -> Value {
        guard let value else { return .int(ones) }
        switch value {
        case .str(let s):
            if prevIsTens && ones < 10 { return .str(String(s.dropLast()) + String(ones)) }
            return .str(s + String(ones))
        case .int(let v):
            if prevIsOnes { return .str(String(v) + String(ones)) }
            if ones < 10 { return v % 10 == 0 ? .int(v + ones) : .str(String(v) + String(ones)) }
            return v % 100 == 0 ? .int(v + ones) : .str(String(v) + String(ones))
        }
    }

    func preprocess(_ s: String) -> String {
        let segments = Regex.make("\\band\\s+a\\s+half\\b").splitting(s)
        var results = [String]()
        for (i, seg) in segments.enumerated() {
            if seg.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty { continue }
            results.append(seg)
            if i != segments.count - 1 {
                let last = seg.split(whereSeparator: \.isWhitespace).last.map(String.init) ?? ""
                results.append(
                    Self.decimals.contains(last) || Self.multipliers[last] != nil ? "point five" : "and a half")
            }
        }
        var t = results.joined(separator: " ")
        t = Regex.sub("([a-z])([0-9])", "$1 $2", t)
        t = Regex.sub("([0-9])([a-z])", "$1 $2", t)
        t = Regex.sub("([0-9])\\s+(st|nd|rd|th|s)\\b", "$1$2", t)
        return t
    }

    func postprocess(_ s: String) -> String {
        var t = Regex.sub("([€£$])([0-9]+) (?:and )?¢([0-9]{1,2})\\b", s) { g in
            guard let c = Int(g[3]!) else { return g[0]! }
            return g[1]! + g[2]! + "." + String(format: "%02d", c)
        }
        t = Regex.sub("[€£$]0.([0-9]{1,2})\\b", t) { g in
            guard let c = Int(g[1]!) else { return g[0]! }
            return "¢" + String(c)
        }
        t = Regex.sub("\\b1(s?)\\b", "one$1", t)
        return t
    }

    func callAsFunction(_ s: String) -> String {
        let pre = preprocess(s)
        return postprocess(
            processWords(pre.split(whereSeparator: \.isWhitespace).map(String.init)).joined(separator: " "))
    }
}

extension NSRegularExpression {
    /// Python `re.split` without capture groups.
    func splitting(_ s: String) -> [String] {
        let ns = s as NSString
        var parts = [String](), last = 0
        for m in matches(in: s, range: NSRange(location: 0, length: ns.length)) {
            parts.append(ns.substring(with: NSRange(location: last, length: m.range.location - last)))
            last = m.range.location + m.range.length
        }
        parts.append(ns.substring(from: last))
        return parts
    }
}
