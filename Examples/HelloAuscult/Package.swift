// swift-tools-version: 6.1
// A package that uses Auscult as any user's would: through a git URL at a version.
// scripts/consumer.sh points it at a temporary clone of this repository tagged with a version.
import PackageDescription

let auscult = Context.environment["AUSCULT_GIT_URL"] ?? "https://github.com/auscult/auscult.git"
let version = Version(Context.environment["AUSCULT_VERSION"] ?? "0.1.0") ?? "0.1.0"

let package = Package(
    name: "HelloAuscult",
    platforms: [.macOS(.v14)],
    dependencies: [.package(url: auscult, exact: version)],
    targets: [
        .executableTarget(name: "HelloAuscult", dependencies: [.product(name: "AuscultWhisper", package: "auscult")]),
        .executableTarget(
            name: "ForwardTiming",
            dependencies: [
                .product(name: "AuscultWhisper", package: "auscult"),
                .product(name: "AuscultTensor", package: "auscult"),
            ]),
    ]
)
