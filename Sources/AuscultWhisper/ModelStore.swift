// Finding models by name: the ones scripts/setup.sh fetched into `models/`.
import AuscultTensor
import Foundation

/// Resolves `--model NAME|PATH` to a directory on disk.
public enum ModelStore {
    /// Names the setup script installs, and the default.
    public static let knownNames = ["tiny.en", "base"]
    public static let defaultName = "tiny.en"

    /// The `models/` directory: `$AUSCULT_MODELS` (when set and not empty), else the `models/` that
    /// scripts/setup.sh fills beside or above the running executable (so `.build/release/auscult`
    /// finds its checkout's models wherever it is run from), else `./models`. The working
    /// directory comes last: a `models/` folder that happens to be there must not hide the
    /// installed models.
    public static func modelsDirectory() -> String? {
        let fm = FileManager.default
        if let env = ProcessInfo.processInfo.environment["AUSCULT_MODELS"], !env.isEmpty { return env }
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<6 {
            let c = dir.appendingPathComponent("models").path
            if fm.fileExists(atPath: (c as NSString).appendingPathComponent(defaultName)) { return c }
            dir = dir.deletingLastPathComponent()
        }
        if fm.fileExists(atPath: "models") {
            return (fm.currentDirectoryPath as NSString).appendingPathComponent("models")
        }
        return nil
    }

    /// A path for `nameOrPath`: a known name (tiny.en, base) maps into `models/` first; anything
    /// else, or a known name not installed there, is used as a path if one exists.
    public static func resolve(_ nameOrPath: String?) throws -> String {
        let name = nameOrPath ?? defaultName
        if knownNames.contains(name), let dir = modelsDirectory() {
            let p = (dir as NSString).appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: p) { return p }
        }
        if FileManager.default.fileExists(atPath: name) { return name }
        if let dir = modelsDirectory() {
            let p = (dir as NSString).appendingPathComponent(name)
            if FileManager.default.fileExists(atPath: p) { return p }
        }
        if knownNames.contains(name) {
            throw ModelLoadError(
                .modelNotFound,
                "model '\(name)' is not installed; run scripts/setup.sh to fetch it into models/ (or point "
                    + "$AUSCULT_MODELS at a folder holding \(name)/)")
        }
        throw ModelLoadError(
            .modelNotFound,
            "'\(name)' is neither a model path nor a known model name (\(knownNames.joined(separator: ", ")))")
    }

    /// The directory holding the tokenizer for a model at `path` (its own directory, else the
    /// installed model of the same kind: tiny.en for English-only, base for multilingual).
    public static func tokenizerDirectory(for path: String, multilingual: Bool) -> String? {
        var isDir: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
        let dir = isDir.boolValue ? path : (path as NSString).deletingLastPathComponent
        if FileManager.default.fileExists(atPath: (dir as NSString).appendingPathComponent("tokenizer.json")) {
            return dir
        }
        if let models = modelsDirectory() {
            let p = (models as NSString).appendingPathComponent(multilingual ? "base" : "tiny.en")
            if FileManager.default.fileExists(atPath: (p as NSString).appendingPathComponent("tokenizer.json")) {
                return p
            }
        }
        return nil
    }
}

/// A model ready to transcribe: weights, tokenizer and decoder.
public struct LoadedModel: Sendable {
    public let path: String
    public let model: Whisper
    public let tokenizer: WhisperTokenizer
    public var decoder: WhisperDecoder { WhisperDecoder(model: model, tokenizer: tokenizer) }
    /// The model's name: the last component of its path (`tiny.en`, `model.pt`).
    public var name: String { (path as NSString).lastPathComponent }
    private let hashBox = ContentHashBox()

    /// SHA-256 of the weights as loaded (every tensor's name, shape and float32 values, in name
    /// order): what a result records to name the model it was made with, whatever the file's
    /// format or path. Computed on first use (about 0.5 s for tiny.en), then kept.
    public var contentHash: String {
        hashBox.value {
            var h = SHA256Hasher()
            let tensors = model.weights.tensors
            for name in tensors.keys.sorted() { h.update(tensors[name]!, named: name) }
            return h.hexDigest()
        }
    }

    /// Wraps parts already loaded.
    public init(path: String, model: Whisper, tokenizer: WhisperTokenizer) {
        self.path = path; self.model = model; self.tokenizer = tokenizer
    }

    /// The same model and tokenizer with the forward pass run by `backend`.
    public func running(on backend: any Backend) -> LoadedModel {
        LoadedModel(path: path, model: model.running(on: backend), tokenizer: tokenizer)
    }

    /// Loads `nameOrPath` (nil: the default, tiny.en, from the installed models).
    public init(_ nameOrPath: String?) throws {
        let path = try ModelStore.resolve(nameOrPath)
        let model = try Whisper(contentsOf: path)
        guard let tdir = ModelStore.tokenizerDirectory(for: path, multilingual: model.dims.isMultilingual) else {
            throw ModelLoadError(
                .tokenizerMissing,
                "\(path): no tokenizer.json beside the model, and no installed model to borrow one from; run "
                    + "scripts/setup.sh"
            )
        }
        self.path = path
        self.model = model
        self.tokenizer = try WhisperTokenizer(
            directory: tdir, multilingual: model.dims.isMultilingual, vocabularySize: model.dims.n_vocab)
    }
}

/// A value computed once, on first use, and shared by the copies of the struct holding it.
final class ContentHashBox: @unchecked Sendable {
    private let lock = NSLock()
    private var cached: String?
    func value(_ make: () -> String) -> String {
        lock.lock()
        defer { lock.unlock() }
        if let cached { return cached }
        let v = make()
        cached = v
        return v
    }
}
