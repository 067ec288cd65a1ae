// swift-tools-version: 6.1
import PackageDescription

// No target sets compiler flags: SwiftPM refuses unsafe flags in a package used at a version, and
// the kernels that need AVX2, FMA or AVX-512 choose them at run time (CAuscultKernels, per-function
// target attributes), so a plain `swift build -c release` is as fast as the project's own scripts.
let package = Package(
    name: "Auscult",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "auscult", targets: ["auscult"]),
        .library(name: "AuscultStudio", targets: ["AuscultStudio"]),
        .library(name: "AuscultReport", targets: ["AuscultReport"]),
        .library(name: "AuscultLens", targets: ["AuscultLens"]),
        .library(name: "AuscultSAE", targets: ["AuscultSAE"]),
        .library(name: "AuscultWhisper", targets: ["AuscultWhisper"]),
        .library(name: "AuscultAudio", targets: ["AuscultAudio"]),
        .library(name: "AuscultTensor", targets: ["AuscultTensor"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        // The Studio's HTTP server (SwiftNIO underneath). Its default traits pull in
        // swift-configuration, which the Studio does not use.
        .package(url: "https://github.com/hummingbird-project/hummingbird", from: "2.28.1", traits: []),
        .package(url: "https://github.com/apple/swift-nio", from: "2.101.2"),
        .package(url: "https://github.com/apple/swift-log", from: "1.16.2"),
    ],
    targets: [
        // C system libraries (Debian -dev packages, installed by scripts/setup.sh).
        .systemLibrary(
            name: "CAuscultBLAS", pkgConfig: "openblas",
            providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CSndfile", pkgConfig: "sndfile", providers: [.apt(["libsndfile1-dev"])]),
        .systemLibrary(name: "CSoxr", pkgConfig: "soxr", providers: [.apt(["libsoxr-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),

        // Layer 1: tensor core, with its hand-vectorised C kernels (run-time dispatched).
        .target(name: "CAuscultKernels"),
        .target(
            name: "AuscultTensor",
            dependencies: ["CAuscultBLAS", "CAuscultKernels"],
            exclude: ["README.md"]),
        // Layer 2: audio, then the Whisper model on top of it.
        .target(
            name: "AuscultAudio", dependencies: ["AuscultTensor", "CSndfile", "CSoxr"],
            exclude: ["README.md"]),
        .target(
            name: "AuscultWhisper", dependencies: ["AuscultTensor", "AuscultAudio", "CZlib"],
            exclude: ["README.md"]),
        // A leaf: self-contained HTML pages and plots (no model, no experiment).
        .target(name: "AuscultReport", dependencies: ["CZlib"], exclude: ["README.md"]),
        // Layer 3: experiments (sweeps, lenses, patching, attribution) on the hooked model, with their pages.
        .target(
            name: "AuscultLens",
            dependencies: ["AuscultWhisper", "AuscultAudio", "AuscultTensor", "AuscultReport"],
            exclude: ["README.md"]),
        // Layer 3: sparse autoencoders (activation store, training, evaluation, feature index in
        // SQLite), with their pages.
        .target(
            name: "AuscultSAE",
            dependencies: ["AuscultWhisper", "AuscultAudio", "AuscultTensor", "AuscultReport", "CSQLite"],
            exclude: ["README.md"]),
        // Layer 4: the Studio, a local web app over the feature indexes, the model and SAE steering:
        // a Hummingbird server with a JSON API (OpenAPI document served) and plain HTML/CSS/JS pages.
        .target(
            name: "AuscultStudio",
            dependencies: [
                "AuscultSAE", "AuscultLens", "AuscultWhisper", "AuscultAudio", "AuscultTensor", "AuscultReport",
                .product(name: "Hummingbird", package: "hummingbird"),
                .product(name: "NIOCore", package: "swift-nio"),
                .product(name: "Logging", package: "swift-log"),
            ],
            exclude: ["README.md"], resources: [.copy("Web")]),
        // Top: the command-line tool.
        .executableTarget(
            name: "auscult",
            dependencies: [
                "AuscultStudio", "AuscultReport", "AuscultLens", "AuscultSAE", "AuscultWhisper", "AuscultAudio",
                "AuscultTensor",
                .product(name: "ArgumentParser", package: "swift-argument-parser"),
            ],
            exclude: ["README.md"]),

        .target(
            name: "_TestSupport",
            dependencies: ["AuscultTensor", "AuscultAudio", "AuscultWhisper", "AuscultSAE", "AuscultLens"],
            exclude: ["README.md"]),
        // The fuzzing harness (scripts/fuzz.sh); built plainly it replays inputs.
        .executableTarget(name: "auscult-fuzz", dependencies: ["_TestSupport"]),
        .testTarget(name: "AuscultTensorTests", dependencies: ["AuscultTensor", "_TestSupport"]),
        .testTarget(name: "AuscultAudioTests", dependencies: ["AuscultAudio", "_TestSupport"]),
        .testTarget(
            name: "AuscultWhisperTests",
            dependencies: ["AuscultWhisper", "AuscultAudio", "_TestSupport"]),
        .testTarget(
            name: "AuscultLensTests",
            dependencies: [
                "AuscultLens", "AuscultReport", "AuscultWhisper", "AuscultAudio", "AuscultSAE", "_TestSupport",
            ]),
        .testTarget(
            name: "AuscultSAETests",
            dependencies: ["AuscultSAE", "AuscultWhisper", "AuscultTensor", "_TestSupport"]),
        .testTarget(
            name: "AuscultStudioTests",
            dependencies: [
                "AuscultStudio", "AuscultSAE", "AuscultWhisper", "AuscultAudio", "CZlib", "_TestSupport",
            ]),
    ]
)
