// `auscult encode-sae`: an SAE's latents and reconstructions for activations stored in a file.
import ArgumentParser
import AuscultSAE
import AuscultTensor

struct EncodeSAE: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "encode-sae",
        abstract: "Encode activations stored in a safetensors file with an SAE: latents and reconstructions.",
        discussion: """
            INPUT holds the activations: a tensor [..., d_in] (an `auscult cache` export, or one
            written with safetensors from Python); its rows are encoded one by one, so a row's
            latents never depend on the others. OUT gets `latents` [N, d_sae] and `reconstruction`
            [N, d_in] (float32) — what SAELens's encode and decode give for the same file.

            Example:
              auscult cache --names encoder.blocks.2.hook_resid_post --out acts.safetensors \\
                  data/clips/jfk.wav
              auscult encode-sae --sae sae/ --input acts.safetensors --out latents.safetensors
            """)

    @Option(help: ArgumentHelp("SAE checkpoint directory (SAELens or sparsify layout).", valueName: "dir"))
    var sae: String
    @Option(help: ArgumentHelp("safetensors file holding the activations.", valueName: "file")) var input: String
    @Option(
        help: ArgumentHelp(
            "Tensor to encode (default: the file's only one, or the one named by the SAE's hook_name).",
            valueName: "name"))
    var tensor: String?
    @Option(help: ArgumentHelp("safetensors file to write.", valueName: "file")) var out: String

    func run() throws {
        let model = try SAECheckpoint.load(sae)
        let (name, latents, reconstruction) = try model.encode(
            file: input, tensor: tensor, hook: SAECheckpoint.origin(sae).hook)
        try SafeTensorsFile.write(
            ["latents": latents, "reconstruction": reconstruction], metadata: ["input": input, "tensor": name],
            to: out)
        let active = latents.scalars.filter { $0 > 0 }.count
        print(
            "\(out): \(latents.shape[0]) rows of '\(name)' encoded, \(latents.shape[1]) latents, "
                + "L0 \(Double(active) / Double(max(1, latents.shape[0])))")
    }
}
