// Options shared by commands that splice an SAE into the model (`transcribe --sae`, `eval-sae`).
import ArgumentParser
import AuscultSAE
import AuscultWhisper
import Foundation

struct SAEOptions: ParsableArguments {
    @Option(
        help: ArgumentHelp(
            "SAE checkpoint directory (SAELens cfg.json + sae_weights.safetensors, or sparsify); its reconstruction "
                + "replaces the activation at its hook.",
            valueName: "dir"))
    var sae: String?
    @Option(help: ArgumentHelp("Hook point to splice at (default: cfg.json's hook_name).", valueName: "name"))
    var saeHook: String?
    @Option(
        help: ArgumentHelp(
            "Steer one latent: LATENT=xSCALE multiplies it (17=x0 turns it off, 17=x4 boosts it), LATENT=VALUE clamps "
                + "it wherever the SAE is spliced (17=12). Repeatable.",
            valueName: "latent=xS|V"))
    var steer: [String] = []
    @Flag(help: "Add the SAE's error (x − x̂) back, so only the steering changes the run.") var keepError = false

    /// The SAE and its hook, or nil without --sae.
    func load(_ loaded: LoadedModel) throws -> (sae: SparseAutoencoder, hook: String, edits: [LatentEdit])? {
        guard let dir = sae else {
            if !steer.isEmpty || keepError { throw ValidationError("--steer and --keep-error need --sae DIR") }
            return nil
        }
        let model = try SAECheckpoint.load(dir)
        guard let hookName = saeHook ?? SAECheckpoint.origin(dir).hook else {
            throw ValidationError("\(dir)/cfg.json names no hook_name; give --sae-hook")
        }
        let checked = try SAEEvaluator(loaded: loaded, sae: model, hook: hookName)
        return (model, checked.hook, try steer.map(LatentEdit.init(parsing:)))
    }
}
