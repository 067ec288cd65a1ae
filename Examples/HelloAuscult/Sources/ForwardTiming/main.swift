// Times the forward pass as a user's program gets it (the benchmark compares it with
// `auscult bench`): encoder forward of one window and greedy decoding of one clip, best of N.
import AuscultTensor
import AuscultWhisper
import Foundation

let args = CommandLine.arguments
let clip = args.count > 1 ? args[1] : "data/clips/jfk.wav"
let repeats = args.count > 2 ? Int(args[2]) ?? 5 : 5
ProcessSetup.configure()  // as the auscult tool does
let model = try LoadedModel("tiny.en")
let (mel, _) = try AudioInput.file(clip).window(for: model.model.dims)
let batch = mel.reshaped([1] + mel.shape)
func best(_ body: () throws -> Void) rethrows -> Double {
    var times = [Double]()
    for _ in 0..<repeats {
        let t0 = DispatchTime.now().uptimeNanoseconds
        try body()
        times.append(Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e6)
    }
    return times.min()!
}
_ = try model.model.encode(batch)
let encoder = try best { _ = try model.model.encode(batch) }
let run = try best { _ = try model.run(.logMel(mel)) }
print(String(format: "{\"encoder_ms\": %.2f, \"run_ms\": %.2f}", encoder, run))
