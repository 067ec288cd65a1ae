// Batched transcription of many files: load audio, log-mel, encode a batch, decode it.
import AuscultAudio
import AuscultTensor
import Foundation

/// Transcribes clips in batches (one 30 s window each), reporting each result as it is ready.
public struct BatchTranscriber: Sendable {
    public let loaded: LoadedModel
    public let options: DecodingOptions
    public let batchSize: Int

    /// Makes the hook handler for one batch (its items in batch order), or nil for none.
    public var hooks: (@Sendable ([DatasetItem]) throws -> HookHandler?)?
    /// Times each result's words from the alignment heads (one teacher-forced pass per clip).
    public var wordTimestamps = false

    public init(
        loaded: LoadedModel, options: DecodingOptions, batchSize: Int = 8,
        hooks: (@Sendable ([DatasetItem]) throws -> HookHandler?)? = nil
    ) {
        self.loaded = loaded; self.options = options; self.batchSize = batchSize; self.hooks = hooks
    }

    /// Runs every item; a file that fails to load is reported as a failure and the rest go on.
    public func run(
        _ items: [DatasetItem], progress: ProgressReporter? = nil,
        _ report: (DatasetItem, Result<DecodingResult, Error>) throws -> Void
    ) throws {
        let mel = LogMel(nMels: loaded.model.dims.n_mels)
        var start = 0
        while start < items.count {
            let batch = Array(items[start..<min(items.count, start + batchSize)])
            start += batch.count
            let good = try mel.load(batch) { item, error in try report(item, .failure(error)) }
            if !good.isEmpty {
                let handler = try hooks?(good.map(\.item))
                let features = try loaded.model.encode(Tensor.stack(good.map(\.mel)), hooks: handler)
                var results = try loaded.decoder.decode(audio: features, options: options, hooks: handler)
                if wordTimestamps {
                    for i in results.indices {
                        let text = results[i].tokens.filter { $0 < loaded.tokenizer.eot }
                        results[i].words = try loaded.alignWords(
                            audio: features.row(i).reshaped([1] + Array(features.shape.dropFirst())),
                            textTokens: text, samples: good[i].samples)
                    }
                }
                for (g, r) in zip(good, results) { try report(g.item, .success(r)) }
            }
            progress?.advance(by: batch.count)
        }
        progress?.finish()
    }
}

/// Prints "done / total, rate, ETA" to standard error for long jobs.
public final class ProgressReporter: @unchecked Sendable {
    let total: Int
    let label: String
    var done = 0
    let started = Date()
    public init(total: Int, label: String) { self.total = total; self.label = label }
    public func advance(by n: Int) {
        done += n
        let el = Date().timeIntervalSince(started)
        let rate = Double(done) / max(el, 1e-9)
        let eta = rate > 0 ? Double(total - done) / rate : 0
        let line = String(format: "\r%@ %d/%d  %.2f/s  ETA %.0fs   ", label, done, total, rate, eta)
        FileHandle.standardError.write(line.data(using: .utf8)!)
    }
    public func finish() {
        let el = Date().timeIntervalSince(started)
        FileHandle.standardError.write(
            String(format: "\r%@ %d/%d done in %.1fs                \n", label, done, total, el).data(using: .utf8)!)
    }
}

/// A clip read for a batch: its dataset item, its padded 30 s log-mel window `[n_mels, 3000]`
/// and its length in 16 kHz samples.
public struct LoadedClip: Sendable {
    public var item: DatasetItem
    public var mel: Tensor
    public var samples: Int

    /// Encoder frames that hold audio (20 ms each, at most `maxFrames`).
    public func validFrames(maxFrames: Int) -> Int { Self.validFrames(samples: samples, maxFrames: maxFrames) }

    /// Encoder frames that hold audio in a clip of `samples` 16 kHz samples.
    public static func validFrames(samples: Int, maxFrames: Int) -> Int {
        min(maxFrames, max(1, (samples + 319) / 320))
    }
}

extension LogMel {
    /// Reads `items` and makes their windows; an unreadable file goes to `failed` and is left out.
    public func load(_ items: [DatasetItem], failed: (DatasetItem, Error) throws -> Void) rethrows -> [LoadedClip] {
        var out = [LoadedClip]()
        for item in items {
            do {
                let samples = try AudioClip(contentsOf: item.path).samples
                out.append(LoadedClip(item: item, mel: window(samples), samples: samples.count))
            } catch { try failed(item, error) }
        }
        return out
    }
}
