// `auscult convert`: any supported checkpoint to a Hugging Face transformers directory.
import ArgumentParser
import AuscultTensor
import AuscultWhisper

extension FloatPrecision: ExpressibleByArgument {}

struct Convert: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write a model as a Hugging Face transformers directory.",
        discussion: """
            Writes model.safetensors, config.json, generation_config.json, preprocessor_config.json and the \
            tokenizer files, so that transformers' WhisperProcessor, generate and \
            pipeline("automatic-speech-recognition") use the directory as it is, decoding as openai-whisper \
            does (its suppress lists, language and task tokens, alignment heads).
            Example: auscult convert --model tiny.en --out /tmp/tiny-en-hf --dtype f16
            """)
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Output directory.") var out: String
    @Option(help: "Stored type of the weights: f32, f16 or bf16.") var dtype: FloatPrecision = .f32

    func run() throws {
        let model = try LoadedModel(modelOptions.model)
        try model.writeHuggingFace(to: out, precision: dtype)
        print("wrote \(out) (\(model.model.weights.tensors.count) tensors as \(dtype.rawValue), from \(model.path))")
    }
}
