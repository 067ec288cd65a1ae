// Starting the Studio's server.
import Foundation
import Hummingbird
import Logging
import NIOCore

extension Studio {
    /// Serves until the task is cancelled (or the process gets SIGINT/SIGTERM); `onListening`
    /// gets the address it listens on (the real port when the configuration asks for 0).
    public func run(onListening: @escaping @Sendable (String) -> Void = { _ in }) async throws {
        var logger = Logger(label: "auscult.studio")
        logger.logLevel = .warning
        let app = Application(
            router: router(),
            configuration: .init(
                address: .hostname(configuration.host, port: configuration.port), serverName: "Auscult"),
            onServerRunning: { channel in
                let port = channel.localAddress?.port ?? 0
                let host =
                    self.configuration.host.contains(":") ? "[\(self.configuration.host)]" : self.configuration.host
                onListening("http://\(host):\(port)/")
            },
            logger: logger)
        try await app.runService()
    }
}
