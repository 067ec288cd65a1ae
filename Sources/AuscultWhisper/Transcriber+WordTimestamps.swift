// Word timestamps for the segments of one long-form window, following openai-whisper's
// `timing.py` (`add_word_timestamps`, `merge_punctuations`): the window's text tokens are aligned
// in one teacher-forced pass, words at sentence ends are kept within twice the median word length,
// punctuation joins its word, and each segment's first and last word are reconciled with its
// timestamps.
import AuscultTensor
import Foundation

extension LoadedModel {
    /// Times the words of `segments` (one window's, all with the same `seek`), whose encoded window
    /// is `audio` `[1, F, d]` holding `segmentFrames` log-mel frames of audio (10 ms each);
    /// `lastSpeech` is where the previous window's last word ended (seconds). Sets each segment's
    /// `words` and may move its start and end to its words', as openai-whisper's
    /// `add_word_timestamps` does.
    func addWordTimestamps(
        _ segments: inout [Segment], audio: Tensor, segmentFrames: Int, language: String, lastSpeech: Double,
        options: TranscribeOptions
    ) throws {
        guard let seek = segments.first?.seek else { return }
        let eot = tokenizer.eot
        let perSegment = segments.map { $0.tokens.filter { $0 < eot } }
        var alignment = try alignWords(
            audio: audio, textTokens: perSegment.flatMap { $0 }, samples: segmentFrames * 160, language: language)
        let durations = alignment.map { $0.end - $0.start }.filter { $0 != 0 }
        let median = min(0.7, Statistics.median(durations))
        let maxDuration = median * 2
        // Words at sentence boundaries are no longer than twice the median word.
        if !durations.isEmpty {
            let sentenceEnds = ".。!！?？"
            for i in alignment.indices.dropFirst() where alignment[i].end - alignment[i].start > maxDuration {
                if Self.isPunctuation(alignment[i].word, in: sentenceEnds) {
                    alignment[i].end = alignment[i].start + maxDuration
                } else if Self.isPunctuation(alignment[i - 1].word, in: sentenceEnds) {
                    alignment[i].start = alignment[i].end - maxDuration
                }
            }
        }
        Self.mergePunctuations(&alignment, prepended: options.prependPunctuations, appended: options.appendPunctuations)
        let timeOffset = Double(seek * 160) / 16_000
        var wordIndex = 0
        var lastSpeech = lastSpeech
        for s in segments.indices {
            var saved = 0
            var words = [WordTiming]()
            while wordIndex < alignment.count && saved < perSegment[s].count {
                var timing = alignment[wordIndex]
                if !timing.word.isEmpty {
                    timing.start = Self.round2(timeOffset + timing.start)
                    timing.end = Self.round2(timeOffset + timing.end)
                    words.append(timing)
                }
                saved += alignment[wordIndex].tokens.count
                wordIndex += 1
            }
            if !words.isEmpty {
                // The first and second word after a pause are no longer than twice the median word.
                let longFirst =
                    words[0].end - words[0].start > maxDuration
                    || (words.count > 1 && words[1].end - words[0].start > maxDuration * 2)
                if words[0].end - lastSpeech > median * 4 && longFirst {
                    if words.count > 1 && words[1].end - words[1].start > maxDuration {
                        let boundary = max(words[1].end / 2, words[1].end - maxDuration)
                        words[0].end = boundary
                        words[1].start = boundary
                    }
                    words[0].start = max(0, words[0].end - maxDuration)
                }
                // The segment's own start and end win over a first or last word that runs long.
                if segments[s].start < words[0].end && segments[s].start - 0.5 > words[0].start {
                    words[0].start = max(0, min(words[0].end - median, segments[s].start))
                } else {
                    segments[s].start = words[0].start
                }
                let last = words.count - 1
                if segments[s].end > words[last].start && segments[s].end + 0.5 < words[last].end {
                    words[last].end = max(words[last].start + median, segments[s].end)
                } else {
                    segments[s].end = words[last].end
                }
                lastSpeech = segments[s].end
            }
            segments[s].words = words
        }
    }

    /// Joins punctuation to its word as openai-whisper's `merge_punctuations`: an opening mark
    /// (a word that is a space and one of `prepended`) goes to the word after it, a closing mark
    /// (one of `appended`) to the word before it; the mark's own entry is left empty.
    static func mergePunctuations(_ a: inout [WordTiming], prepended: String, appended: String) {
        guard a.count >= 2 else { return }
        let isIn = { (s: String, set: String) in isPunctuation(s, in: set) }
        var i = a.count - 2, j = a.count - 1
        while i >= 0 {
            if a[i].word.hasPrefix(" ") && isIn(a[i].word.trimmingCharacters(in: .whitespacesAndNewlines), prepended) {
                a[j].word = a[i].word + a[j].word
                a[j].tokens = a[i].tokens + a[j].tokens
                a[i].word = ""
                a[i].tokens = []
            } else {
                j = i
            }
            i -= 1
        }
        i = 0
        j = 1
        while j < a.count {
            if !a[i].word.hasSuffix(" ") && isIn(a[j].word, appended) {
                a[i].word += a[j].word
                a[i].tokens += a[j].tokens
                a[j].word = ""
                a[j].tokens = []
            } else {
                i = j
            }
            j += 1
        }
    }

    /// Seconds rounded to hundredths (Python's `round(x, 2)`; times here are never near a tie).
    static func round2(_ x: Double) -> Double { (x * 100).rounded(.toNearestOrEven) / 100 }
}
