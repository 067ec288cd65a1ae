// `auscult convert`: any supported checkpoint to a Hugging Face safetensors directory.
import ArgumentParser
import AuscultWhisper

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a model as a Hugging Face directory (config.json + model.safetensors, float32).",
        discussion: "Example: auscult convert --model tiny.en --out /tmp/tiny-en-hf")
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Output directory.") var out: String

    func run() throws {
        let path = try ModelStore.resolve(modelOptions.model)
        let weights = try WeightLoader.load(path)
        try weights.writeHuggingFace(to: out)
        print("wrote \(out) (\(weights.tensors.count) tensors, from \(weights.format) \(path))")
    }
}
