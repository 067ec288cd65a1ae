// `auscult cache`: named activations of one clip to a safetensors file.
import ArgumentParser
import AuscultTensor
import AuscultWhisper
import Foundation

struct Cache: ParsableCommand {
    static let configuration = CommandConfiguration(
        abstract: "Write the activations at the named hook points of one clip to safetensors.",
        discussion: """
            Keys are hook names, shapes drop the batch axis. Decoder hooks cover the greedy
            generation in order, prompt included (or the teacher-forced --tokens).
            decoder.tokens holds the decoder's input ids (I64); the metadata names the
            model and how many encoder frames hold audio (audio_frames).
              auscult cache \\
                  --hooks 'encoder.blocks.*.hook_resid_post,decoder.hook_logits' \\
                  --out jfk.safetensors clip.wav
            """)
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup(title: "Prompt and prefix (when generating)") var promptOptions: PromptOptions
    @Option(help: "Comma-separated hook names, aliases or globs.") var hooks: String
    @Option(help: "Output .safetensors file.") var out: String
    @Option(help: "Teacher-force these comma-separated token ids instead of generating.") var tokens: String?
    @Argument(help: "Audio file.") var audio: String

    func run() throws {
        let loaded = try LoadedModel(modelOptions.model)
        let forced = try tokens.map { s in
            try s.split(separator: ",").map { t -> Int in
                guard let v = Int(t.trimmingCharacters(in: .whitespaces)) else {
                    throw ValidationError("--tokens: '\(t)' is not a token id")
                }
                return v
            }
        }
        let names = hooks.split(separator: ",").map { HookName($0.trimmingCharacters(in: .whitespaces)) }
        var options = DecodingOptions()
        try promptOptions.apply(to: &options, loaded)
        if forced != nil && (options.prompt != nil || options.prefix != nil) {
            throw ValidationError("--tokens gives the whole decoder input; --prompt and --prefix apply when generating")
        }
        let (_, cache) = try loaded.runWithCache(.file(audio), names: names, tokens: forced, options: options)
        try cache.write(to: out, metadata: ["audio": (audio as NSString).lastPathComponent])
        FileHandle.standardError.write(
            "wrote \(cache.names.count) tensors and decoder.tokens to \(out)\n".data(using: .utf8)!)
    }
}
