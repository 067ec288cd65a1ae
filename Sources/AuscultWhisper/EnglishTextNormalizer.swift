// English text normalisation for WER, equivalent to openai-whisper's `EnglishTextNormalizer`
// (normalizers/english.py): lower-case, drop bracketed/parenthesised text and fillers, expand
// contractions and titles, strip symbols and diacritics, standardise spelled-out numbers and
// British spellings (the mapping openai-whisper ships as english.json, fetched by setup).
import Foundation

/// Normalises English transcripts the way openai-whisper does before computing WER.
public struct EnglishTextNormalizer: Sendable {
    let spelling: [String: String]
    let numbers = EnglishNumberNormalizer()

    /// Uses the British→American spelling map at `spellingMap` (default: `models/english.json`,
    /// installed by scripts/setup.sh); throws if it cannot be read.
    public init(spellingMap: String? = nil) throws {
        guard
            let path = spellingMap
                ?? ModelStore.modelsDirectory().map({ ($0 as NSString).appendingPathComponent("english.json") }),
            let data = FileManager.default.contents(atPath: path),
            let map = try? JSONSerialization.jsonObject(with: data) as? [String: String]
        else {
            throw ModelLoadError(
                .modelNotFound, "the English spelling map (english.json) was not found in models/; run scripts/setup.sh"
            )
        }
        spelling = map
    }

    /// An instance with an explicit spelling map (tests, or languages without one).
    public init(spelling: [String: String]) { self.spelling = spelling }

    static let replacers: [(NSRegularExpression, String)] = [
        ("\\bwon't\\b", "will not"), ("\\bcan't\\b", "can not"), ("\\blet's\\b", "let us"), ("\\bain't\\b", "aint"),
        ("\\by'all\\b", "you all"), ("\\bwanna\\b", "want to"), ("\\bgotta\\b", "got to"), ("\\bgonna\\b", "going to"),
        ("\\bi'ma\\b", "i am going to"), ("\\bimma\\b", "i am going to"), ("\\bwoulda\\b", "would have"),
        ("\\bcoulda\\b", "could have"), ("\\bshoulda\\b", "should have"), ("\\bma'am\\b", "madam"),
        ("\\bmr\\b", "mister "), ("\\bmrs\\b", "missus "), ("\\bst\\b", "saint "), ("\\bdr\\b", "doctor "),
        ("\\bprof\\b", "professor "), ("\\bcapt\\b", "captain "), ("\\bgov\\b", "governor "),
        ("\\bald\\b", "alderman "),
        ("\\bgen\\b", "general "), ("\\bsen\\b", "senator "), ("\\brep\\b", "representative "),
        ("\\bpres\\b", "president "),
        ("\\brev\\b", "reverend "), ("\\bhon\\b", "honorable "), ("\\basst\\b", "assistant "),
        ("\\bassoc\\b", "associate "),
        ("\\blt\\b", "lieutenant "), ("\\bcol\\b", "colonel "), ("\\bjr\\b", "junior "), ("\\bsr\\b", "senior "),
        ("\\besq\\b", "esquire "),
        ("'d been\\b", " had been"), ("'s been\\b", " has been"), ("'d gone\\b", " had gone"),
        ("'s gone\\b", " has gone"),
        ("'d done\\b", " had done"), ("'s got\\b", " has got"),
        ("n't\\b", " not"), ("'re\\b", " are"), ("'s\\b", " is"), ("'d\\b", " would"), ("'ll\\b", " will"),
        ("'t\\b", " not"), ("'ve\\b", " have"), ("'m\\b", " am"),
    ].map { (Regex.make($0.0), $0.1) }

    public func callAsFunction(_ input: String) -> String {
        var s = input.lowercased()
        s = Regex.sub("[<\\[][^>\\]]*[>\\]]", "", s)
        s = Regex.sub("\\(([^)]+?)\\)", "", s)
        s = Regex.sub("\\b(hmm|mm|mhm|mmm|uh|um)\\b", "", s)
        s = Regex.sub("\\s+'", "'", s)
        for (re, rep) in Self.replacers { s = Regex.sub(re, rep, s) }
        s = Regex.sub("(\\d),(\\d)", "$1$2", s)
        s = Regex.sub("\\.([^0-9]|$)", " $1", s)
        s = TextCleanup.removeSymbolsAndDiacritics(s, keep: ".%$¢€£")
        s = numbers(s)
        s = s.split(whereSeparator: \.isWhitespaceForPython).map { spelling[String($0)] ?? String($0) }.joined(
            separator: " ")
        s = Regex.sub("[.$¢€£]([^0-9])", " $1", s)
        s = Regex.sub("([^0-9])%", "$1 ", s)
        s = Regex.sub("\\s+", " ", s)
        return s
    }
}

/// Unicode clean-up shared by the normalisers (openai-whisper normalizers/basic.py).
enum TextCleanup {
    /// Letters NFKD does not decompose, spelled out.
    static let additionalDiacritics: [Character: String] = [
        "œ": "oe", "Œ": "OE", "ø": "o", "Ø": "O", "æ": "ae", "Æ": "AE", "ß": "ss", "ẞ": "SS",
        "đ": "d", "Đ": "D", "ð": "d", "Ð": "D", "þ": "th", "Þ": "th", "ł": "l", "Ł": "L",
    ]

    /// NFKD, then: keep `keep`; spell out `additionalDiacritics`; drop nonspacing marks (Mn);
    /// replace other marks, symbols and punctuation (M*, S*, P*) with a space.
    static func removeSymbolsAndDiacritics(_ s: String, keep: String) -> String {
        var out = String.UnicodeScalarView()
        let keepSet = Set(keep.unicodeScalars)
        for u in s.decomposedStringWithCompatibilityMapping.unicodeScalars {
            if keepSet.contains(u) { out.append(u); continue }
            if let rep = additionalDiacritics[Character(u)] { out.append(contentsOf: rep.unicodeScalars); continue }
            switch u.properties.generalCategory {
            case .nonspacingMark: continue
            case .spacingMark, .enclosingMark,
                .mathSymbol, .currencySymbol, .modifierSymbol, .otherSymbol,
                .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation,
                .initialPunctuation, .finalPunctuation, .otherPunctuation:
                out.append(" ")
            default: out.append(u)
            }
        }
        return String(out)
    }
}

extension Character {
    /// Python's `str.split()` separators (Unicode whitespace).
    var isWhitespaceForPython: Bool { isWhitespace }
}

/// Python-`re`-like helpers over NSRegularExpression.
enum Regex {
    nonisolated(unsafe) static var cache = [String: NSRegularExpression]()
    static let lock = NSLock()

    static func make(_ pattern: String) -> NSRegularExpression {
        lock.lock(); defer { lock.unlock() }
        if let r = cache[pattern] { return r }
        let r = try! NSRegularExpression(pattern: pattern)
        cache[pattern] = r
        return r
    }

    static func sub(_ pattern: String, _ template: String, _ s: String) -> String {
        sub(make(pattern), template, s)
    }

    static func sub(_ re: NSRegularExpression, _ template: String, _ s: String) -> String {
        re.stringByReplacingMatches(in: s, range: NSRange(s.startIndex..., in: s), withTemplate: template)
    }

    /// `re.sub` with a function of the match's groups (nil for groups that did not take part).
    static func sub(_ pattern: String, _ s: String, _ f: ([String?]) -> String) -> String {
        let re = make(pattern)
        let ns = s as NSString
        var out = ""
        var last = 0
        for m in re.matches(in: s, range: NSRange(location: 0, length: ns.length)) {
            out += ns.substring(with: NSRange(location: last, length: m.range.location - last))
            let groups = (0..<m.numberOfRanges).map { i -> String? in
                let r = m.range(at: i)
                return r.location == NSNotFound ? nil : ns.substring(with: r)
            }
            out += f(groups)
            last = m.range.location + m.range.length
        }
        return out + ns.substring(from: last)
    }

    static func matches(_ pattern: String, _ s: String) -> Bool {
        make(pattern).firstMatch(in: s, range: NSRange(s.startIndex..., in: s)) != nil
    }
}
