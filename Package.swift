// swift-tools-version: 6.1
import PackageDescription

// Kernels are 4x slower on baseline x86-64 (SSE2): build for a real CPU level (DESIGN.md §6).
#if arch(x86_64)
let cpuFlags: [SwiftSetting] = [.unsafeFlags(["-target-cpu", "haswell"])]
let cpuCFlags: [CSetting] = [.unsafeFlags(["-march=x86-64-v3", "-O3"])]
#else
let cpuFlags: [SwiftSetting] = []
let cpuCFlags: [CSetting] = []
#endif
let fast: [SwiftSetting] = cpuFlags + [.unsafeFlags(["-Ounchecked", "-wmo"], .when(configuration: .release))]

let package = Package(
    name: "Auscult",
    platforms: [.macOS(.v14)],
    products: [
        .executable(name: "auscult", targets: ["auscult"]),
        .library(name: "AuscultReport", targets: ["AuscultReport"]),
        .library(name: "AuscultLens", targets: ["AuscultLens"]),
        .library(name: "AuscultSAE", targets: ["AuscultSAE"]),
        .library(name: "AuscultWhisper", targets: ["AuscultWhisper"]),
        .library(name: "AuscultAudio", targets: ["AuscultAudio"]),
        .library(name: "AuscultTensor", targets: ["AuscultTensor"]),
    ],
    dependencies: [
        .package(url: "https://github.com/apple/swift-argument-parser", from: "1.8.2"),
        .package(url: "https://github.com/apple/swift-numerics", from: "1.1.1"),
    ],
    targets: [
        // C system libraries (Debian -dev packages, installed by scripts/setup.sh).
        .systemLibrary(name: "CAuscultBLAS", pkgConfig: "openblas",
                       providers: [.apt(["libopenblas-dev"])]),
        .systemLibrary(name: "CSndfile", pkgConfig: "sndfile", providers: [.apt(["libsndfile1-dev"])]),
        .systemLibrary(name: "CSoxr", pkgConfig: "soxr", providers: [.apt(["libsoxr-dev"])]),
        .systemLibrary(name: "CZlib", pkgConfig: "zlib", providers: [.apt(["zlib1g-dev"])]),
        .systemLibrary(name: "CSQLite", pkgConfig: "sqlite3", providers: [.apt(["libsqlite3-dev"])]),

        // Layer 1: tensor core, with its hand-vectorised C kernels (run-time dispatched).
        .target(name: "CAuscultKernels", cSettings: cpuCFlags),
        .target(name: "AuscultTensor",
                dependencies: ["CAuscultBLAS", "CAuscultKernels", .product(name: "RealModule", package: "swift-numerics")],
                exclude: ["README.md"], swiftSettings: fast),
        // Layer 2: audio, then the Whisper model on top of it.
        .target(name: "AuscultAudio", dependencies: ["AuscultTensor", "CSndfile", "CSoxr"],
                exclude: ["README.md"], swiftSettings: fast),
        .target(name: "AuscultWhisper", dependencies: ["AuscultTensor", "AuscultAudio", "CZlib"],
                exclude: ["README.md"], swiftSettings: fast),
        // Layer 3: experiments (sweeps, lenses, patching, attribution) on the hooked model.
        .target(name: "AuscultLens", dependencies: ["AuscultWhisper", "AuscultAudio", "AuscultTensor"],
                exclude: ["README.md"], swiftSettings: fast),
        // Layer 3: sparse autoencoders (activation store, training, evaluation, feature index in SQLite).
        .target(name: "AuscultSAE", dependencies: ["AuscultWhisper", "AuscultAudio", "AuscultTensor", "CSQLite"],
                exclude: ["README.md"], swiftSettings: fast),
        // Top: reports (HTML + SVG) and the command-line tool.
        .target(name: "AuscultReport", dependencies: ["AuscultLens", "AuscultSAE", "AuscultWhisper", "AuscultTensor", "CZlib"],
                exclude: ["README.md"], swiftSettings: fast),
        .executableTarget(name: "auscult",
                          dependencies: ["AuscultReport", "AuscultLens", "AuscultSAE", "AuscultWhisper", "AuscultAudio", "AuscultTensor",
                                         .product(name: "ArgumentParser", package: "swift-argument-parser")],
                          exclude: ["README.md"], swiftSettings: fast),

        .target(name: "_TestSupport", dependencies: ["AuscultTensor", "AuscultAudio", "AuscultWhisper"], exclude: ["README.md"],
                swiftSettings: cpuFlags),
        .testTarget(name: "AuscultTensorTests", dependencies: ["AuscultTensor", "_TestSupport"], swiftSettings: cpuFlags),
        .testTarget(name: "AuscultAudioTests", dependencies: ["AuscultAudio", "_TestSupport"], swiftSettings: cpuFlags),
        .testTarget(name: "AuscultWhisperTests",
                    dependencies: ["AuscultWhisper", "AuscultAudio", "_TestSupport"], swiftSettings: cpuFlags),
        .testTarget(name: "AuscultLensTests",
                    dependencies: ["AuscultLens", "AuscultReport", "AuscultWhisper", "AuscultAudio", "_TestSupport"], swiftSettings: cpuFlags),
        .testTarget(name: "AuscultSAETests",
                    dependencies: ["AuscultSAE", "AuscultWhisper", "AuscultTensor", "_TestSupport"], swiftSettings: cpuFlags),
    ]
)
