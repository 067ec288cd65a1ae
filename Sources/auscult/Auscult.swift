// The `auscult` command: subcommands for each job (docs/README.md).
import ArgumentParser

struct Auscult: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "auscult",
        abstract: "Mechanistic interpretability for Whisper: exact inference with hook points.",
        discussion: """
            Models: --model takes a name the setup fetched (tiny.en, base) or a path to a
            CTranslate2 directory, a Hugging Face directory (config.json +
            model.safetensors) or an openai-whisper .pt checkpoint; the format is detected.
            Without --model, tiny.en is used: the one scripts/setup.sh installs into the
            checkout's models/ (or the folder $AUSCULT_MODELS names); names are looked up
            there before the working directory.
            """,
        subcommands: [
            Transcribe.self, Ablate.self, Layers.self, LensCommand.self, Patch.self, Attribute.self, Optimize.self,
            Probe.self, Collect.self, TrainSAE.self, EvalSAE.self, Index.self, Features.self, Hooks.self, Cache.self,
            EncodeSAE.self, Convert.self, Bench.self, Tokens.self, Heads.self, Paths.self, Losses.self,
            StudioCommand.self,
        ])
}

/// Options every model-using subcommand shares.
struct ModelOptions: ParsableArguments {
    @Option(name: .long, help: "Model name (tiny.en, base: installed by scripts/setup.sh) or path; default: tiny.en.")
    var model: String?
}
