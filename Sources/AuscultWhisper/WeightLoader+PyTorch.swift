// openai-whisper `.pt` checkpoints: a zip holding `data.pkl` (a pickled dict with `dims` and
// `model_state_dict`) and one raw storage file per tensor. Read with a small unpickler that knows
// only the opcodes torch.save emits for tensors, dicts and ints.
import AuscultTensor
import Foundation

enum PyTorchLoader {
    static func load(_ path: String) throws -> WhisperWeights {
        var isDir: ObjCBool = false
        _ = FileManager.default.fileExists(atPath: path, isDirectory: &isDir)
        var file = path
        if isDir.boolValue,
            let pt = try? FileManager.default.contentsOfDirectory(atPath: path).sorted().first(where: {
                $0.hasSuffix(".pt")
            })
        {
            file = (path as NSString).appendingPathComponent(pt)
        }
        guard let data = try? Data(contentsOf: URL(fileURLWithPath: file), options: .alwaysMapped) else {
            throw ModelLoadError(.modelNotFound, "\(file): cannot read the checkpoint")
        }
        let zip: ZipArchive
        do { zip = try ZipArchive(data) } catch {
            throw ModelLoadError(
                .corruptModel, "\(file): not an openai-whisper checkpoint (expected a torch.save zip archive)",
                cause: error)
        }
        guard let pklName = zip.names.first(where: { $0.hasSuffix("/data.pkl") || $0 == "data.pkl" }) else {
            throw ModelLoadError(.corruptModel, "\(file): the archive has no data.pkl")
        }
        let prefix = String(pklName.dropLast("data.pkl".count))
        let root: Pickle.Value
        do { root = try Pickle.load(try zip.entry(pklName)) } catch {
            throw ModelLoadError(.corruptModel, "\(file): cannot unpickle data.pkl", cause: error)
        }
        guard case .dict(let top) = root, case .dict(let dimsDict)? = top["dims"],
            case .dict(let sd)? = top["model_state_dict"]
        else {
            throw ModelLoadError(.corruptModel, "\(file): data.pkl is not a dict with 'dims' and 'model_state_dict'")
        }
        func dim(_ k: String) throws -> Int {
            guard case .int(let v)? = dimsDict[k] else {
                throw ModelLoadError(.corruptModel, "\(file): dims has no '\(k)'")
            }
            return v
        }
        let dims = ModelDimensions(
            n_mels: try dim("n_mels"), n_audio_ctx: try dim("n_audio_ctx"), n_audio_state: try dim("n_audio_state"),
            n_audio_head: try dim("n_audio_head"), n_audio_layer: try dim("n_audio_layer"), n_vocab: try dim("n_vocab"),
            n_text_ctx: try dim("n_text_ctx"), n_text_state: try dim("n_text_state"),
            n_text_head: try dim("n_text_head"),
            n_text_layer: try dim("n_text_layer"))
        var tensors = [String: Tensor]()
        for (key, value) in sd {
            guard case .tensor(let ref) = value else { continue }
            let bytes = try zip.entry(prefix + "data/" + ref.storageKey)
            tensors[key] = try ref.materialise(bytes, name: key, file: file)
        }
        if tensors["encoder.positional_embedding"] == nil {
            tensors["encoder.positional_embedding"] = whisperSinusoids(
                length: dims.n_audio_ctx, channels: dims.n_audio_state)
        }
        return try WhisperWeights(dims: dims, tensors: tensors, source: file, format: "openai-whisper")
    }
}
