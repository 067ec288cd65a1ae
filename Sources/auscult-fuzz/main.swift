// `auscult-fuzz`: Auscult's readers of untrusted input under libFuzzer, or replayed.
//
// Built by scripts/fuzz.sh with `-sanitize=fuzzer,address -DAUSCULT_FUZZ`, it is a libFuzzer
// binary for the reader AUSCULT_FUZZ_TARGET names (FuzzTarget: safetensors, ctranslate2, pytorch,
// hf-config, sae-config, sae-weights, manifest, condition); it takes libFuzzer's options and a
// corpus directory. Built plainly, `auscult-fuzz TARGET FILE...` runs the reader on each file and
// prints whether it was accepted or refused (a crash stops it).
import Foundation
import _TestSupport

let scratch = NSTemporaryDirectory() + "auscult-fuzz-\(getpid())"
try? FileManager.default.createDirectory(atPath: scratch, withIntermediateDirectories: true)

#if AUSCULT_FUZZ
@_silgen_name("LLVMFuzzerRunDriver")
func runDriver(
    _ argc: UnsafeMutablePointer<CInt>,
    _ argv: UnsafeMutablePointer<UnsafeMutablePointer<UnsafeMutablePointer<CChar>?>>,
    _ callback: @convention(c) (UnsafePointer<UInt8>?, Int) -> CInt
) -> CInt

let name = ProcessInfo.processInfo.environment["AUSCULT_FUZZ_TARGET"] ?? ""
guard let chosen = FuzzTarget(rawValue: name) else {
    FileHandle.standardError.write(
        Data("AUSCULT_FUZZ_TARGET '\(name)': one of \(FuzzTarget.allCases.map(\.rawValue))\n".utf8))
    exit(2)
}
nonisolated(unsafe) var target = chosen
nonisolated(unsafe) var scratchDirectory = scratch

/// libFuzzer's entry for one input (its runtime references the symbol even when driven by
/// LLVMFuzzerRunDriver).
@_cdecl("LLVMFuzzerTestOneInput")
func fuzzOne(_ data: UnsafePointer<UInt8>?, _ size: Int) -> CInt {
    let bytes = data.map { Array(UnsafeBufferPointer(start: $0, count: size)) } ?? []
    target.run(bytes, scratch: scratchDirectory)
    return 0
}

var argc = CommandLine.argc
var argv = CommandLine.unsafeArgv
exit(runDriver(&argc, &argv) { fuzzOne($0, $1) })
#else
let args = Array(CommandLine.arguments.dropFirst())
guard let first = args.first, let target = FuzzTarget(rawValue: first) else {
    print(
        "usage: auscult-fuzz TARGET FILE...  (TARGET: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")))")
    exit(2)
}
for path in args.dropFirst() {
    guard let data = FileManager.default.contents(atPath: path) else {
        print("\(path): unreadable")
        exit(1)
    }
    print("\(path): " + (target.run(Array(data), scratch: scratch).map { "refused: \($0)" } ?? "accepted"))
}
#endif
