// Detects a model's format from what is on disk and loads it strictly.
import Foundation

/// Loads Whisper weights from a CTranslate2 directory, a Hugging Face directory, or an
/// openai-whisper `.pt` checkpoint, detected from the files present.
public enum WeightLoader {
    public enum Format: String, Sendable { case ctranslate2, huggingFace, openaiPyTorch }

    /// The format of the model at `path`, or an error saying what was found instead.
    public static func detect(_ path: String) throws -> Format {
        var isDir: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDir) else {
            throw ModelLoadError(.modelNotFound, "\(path): no such model file or directory")
        }
        let fm = FileManager.default
        if isDir.boolValue {
            func has(_ f: String) -> Bool { fm.fileExists(atPath: (path as NSString).appendingPathComponent(f)) }
            if has("model.bin") { return .ctranslate2 }
            if has("model.safetensors") { return .huggingFace }
            if let pt = try? fm.contentsOfDirectory(atPath: path).first(where: { $0.hasSuffix(".pt") }) {
                _ = pt
                return .openaiPyTorch
            }
            throw ModelLoadError(
                .unknownFormat,
                "\(path): the directory holds no model.bin (CTranslate2), model.safetensors (Hugging Face) or .pt "
                    + "checkpoint (openai-whisper)"
            )
        }
        if path.hasSuffix(".safetensors") { return .huggingFace }
        if path.hasSuffix(".bin") { return .ctranslate2 }
        return .openaiPyTorch
    }

    /// Loads and verifies the weights at `path`.
    public static func load(_ path: String) throws -> WhisperWeights {
        switch try detect(path) {
        case .ctranslate2:
            let dir = path.hasSuffix(".bin") ? (path as NSString).deletingLastPathComponent : path
            return try CTranslate2Loader.load(directory: dir)
        case .huggingFace:
            return try HuggingFaceLoader.load(path)
        case .openaiPyTorch:
            return try PyTorchLoader.load(path)
        }
    }
}
