// `auscult studio`: serve the Studio (feature pages, clip inspector, steering) in a browser.
import ArgumentParser
import AuscultStudio
import AuscultWhisper
import Foundation

struct StudioCommand: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "studio",
        abstract: "Look at and listen to what neurons and SAE latents respond to, in a browser.",
        discussion: """
            Serves a local web app over feature indexes (auscult index): each feature's
            page (activation histogram, top examples, quantile groups and most negative
            examples drawn on Whisper's log-mel spectrogram with the activation over it,
            playable, with the words under them; co-active features; search by word), a
            clip inspector (bundled clips, uploads, or the microphone: transcript with word
            times and the clip's most active features over time), and steering (scale or
            clamp a latent or neuron and see the transcript change, word by word).

            With no --index it serves the demo's results (scripts/demo.sh): the neurons of
            encoder.blocks.2.mlp.hook_post and the demo SAE's latents over data/clips,
            building whatever is missing first. Listens on 127.0.0.1; any other --host
            needs --token, which every request must then carry.

            Examples:
              auscult studio
              auscult studio --index out/sae/features.sqlite --port 9000
              auscult studio --index neurons.sqlite --host 0.0.0.0 --token "$(openssl rand -hex 16)"
            """)

    @OptionGroup var modelOptions: ModelOptions
    @Option(name: .customLong("index"), help: ArgumentHelp("Feature index to serve (repeatable).", valueName: "file"))
    var indexes: [String] = []
    @Option(help: ArgumentHelp("SAE directory of an SAE index whose SAE moved.", valueName: "dir")) var sae: String?
    @Option(help: ArgumentHelp("Clips for the demo's indexes (no --index).", valueName: "dir"))
    var data: String = "data/clips"
    @Option(help: ArgumentHelp("Where the demo's results are (no --index).", valueName: "dir")) var out: String = "out"
    @Option(help: "Port to listen on (0: any free port).") var port: Int = 8321
    @Option(help: "Address to listen on; other than 127.0.0.1 needs --token.") var host: String = "127.0.0.1"
    @Option(help: "Secret every request must carry (Authorization: Bearer or ?token=).") var token: String?
    @Option(help: "Largest upload in MB.") var maxUploadMb: Int = 20
    @Flag(help: "Build what is missing and check the indexes, then exit without serving (for CI).")
    var noServe = false

    func run() async throws {
        guard (1...512).contains(maxUploadMb) else { throw ValidationError("--max-upload-mb: use 1…512") }
        let loaded = try LoadedModel(modelOptions.model)
        var files = indexes
        if files.isEmpty {
            let demo = StudioDemo(out: out, data: data)
            files = try demo.prepare(loaded: loaded) { line in
                FileHandle.standardError.write("studio: \(line)\n".data(using: .utf8)!)
            }
        }
        var config = StudioConfiguration(indexes: files, sae: sae)
        config.host = host; config.port = port; config.token = token
        config.maxUploadBytes = maxUploadMb << 20
        let studio = try Studio(configuration: config, loaded: loaded)
        let names = files.map { ($0 as NSString).lastPathComponent }.joined(separator: ", ")
        if noServe {
            print("studio: ready to serve \(names) with \(loaded.name) (not serving: --no-serve)")
            return
        }
        try await studio.run { address in
            let link = token.map { address + "?token=" + $0 } ?? address
            FileHandle.standardOutput.write(
                "Auscult Studio: \(names) with \(loaded.name) at \(link) (Ctrl-C stops)\n".data(using: .utf8)!)
        }
    }
}
