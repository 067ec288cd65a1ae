import ArgumentParser
import AuscultLens
import AuscultSAE
import AuscultTensor

// Memory retention for long jobs, and OpenBLAS's kernels: Debian 12's 0.3.21 does not recognise
// recent Xeons and falls back to its Prescott (SSE3) kernels, 2-4x slower; the process restarts
// with the right ones when that happened and the user did not choose (ProcessSetup.configure).
ProcessSetup.configure()
do {
    var command = try Auscult.parseAsRoot()
    if var server = command as? any AsyncParsableCommand {
        try await runAsync(&server)
    } else {
        try command.run()
    }
} catch {
    Auscult.exit(withError: FlagHint.annotate(error))
}

/// Runs a command whose `run` is async (`auscult studio`): called through a generic so that the
/// async requirement, not ParsableCommand's synchronous default, is the one chosen.
func runAsync<C: AsyncParsableCommand>(_ command: inout C) async throws { try await command.run() }
