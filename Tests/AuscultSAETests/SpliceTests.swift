import AuscultAudio
import AuscultSAE
import AuscultTensor
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

@Suite("Splicing and steering an SAE")
struct SpliceTests {
    static let hook = "encoder.blocks.2.hook_resid_post"

    @Test("latent edits parse as LATENT=xSCALE or LATENT=VALUE, and anything else is refused with the syntax")
    func parseEdits() throws {
        #expect(try LatentEdit(parsing: "17=x0") == LatentEdit(latent: 17, kind: .scale(0)))
        #expect(try LatentEdit(parsing: "3=x2.5") == LatentEdit(latent: 3, kind: .scale(2.5)))
        #expect(try LatentEdit(parsing: "3=-1.5") == LatentEdit(latent: 3, kind: .clamp(-1.5)))
        for bad in ["17", "x=1", "-1=2", "4=abc", "4=x"] {
            #expect { _ = try LatentEdit(parsing: bad) } throws: { ($0 as? ConditionError)?.code == .syntax }
        }
        #expect {
            _ = try SAESplice(sae: identitySAE(4), hook: "h", edits: [LatentEdit(latent: 8, kind: .scale(0))])
        } throws: { ($0 as? ConditionError)?.code == .invalidSelector && "\($0)".contains("0…7") }
    }

    @Test(
        "a checkpoint with a short b_enc, an impossible k, an unknown architecture or a NaN weight is refused by name")
    func strictCheckpoints() throws {
        let good = identitySAE(4)
        func saved(_ cfg: [String: Any]? = nil, _ tensors: [String: Tensor]? = nil) throws -> String {
            let dir = try Fixtures.temporaryDirectory() + "/sae"
            try SAECheckpoint.save(good, to: dir, hook: Self.hook, model: "tiny.en")
            if let cfg {
                var json =
                    try JSONSerialization.jsonObject(
                        with: Data(contentsOf: URL(fileURLWithPath: dir + "/cfg.json"))) as! [String: Any]
                for (k, v) in cfg { json[k] = v }
                try JSONSerialization.data(withJSONObject: json).write(to: URL(fileURLWithPath: dir + "/cfg.json"))
            }
            if let tensors {
                var all = ["W_enc": good.wEnc, "b_enc": good.bEnc, "W_dec": good.wDec, "b_dec": good.bDec]
                for (k, v) in tensors { all[k] = v }
                try SafeTensorsFile.write(all, to: dir + "/sae_weights.safetensors")
            }
            return dir
        }
        /// A sparsify layout of `good` (encoder stored [d_sae, d_in]), with a skip connection if asked.
        func sparsify(skip: Bool) throws -> String {
            let dir = try Fixtures.temporaryDirectory() + "/sparsify"
            try FileManager.default.createDirectory(atPath: dir, withIntermediateDirectories: true)
            try #"{"k": 2}"#.write(toFile: dir + "/cfg.json", atomically: true, encoding: .utf8)
            let enc = Tensor(shape: [8, 4]) { out in
                for i in 0..<8 { for j in 0..<4 { out[i * 4 + j] = good.wEnc.storage[j * 8 + i] } }
            }
            var all = ["encoder.weight": enc, "encoder.bias": good.bEnc, "W_dec": good.wDec, "b_dec": good.bDec]
            if skip { all["W_skip"] = Tensor(zeros: [4, 4]) }
            try SafeTensorsFile.write(all, to: dir + "/sae.safetensors")
            return dir
        }
        #expect(try SAECheckpoint.load(try saved()).config.dSAE == 8)
        #expect(try SAECheckpoint.load(try sparsify(skip: false)).config.k == 2)
        // SAELens 6 keeps hook_name and model_name in a metadata block; both layouts are read.
        let modern = try saved(["hook_name": NSNull(), "model_name": NSNull()])
        var cfg =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: modern + "/cfg.json"))) as! [String: Any]
        cfg["hook_name"] = nil; cfg["model_name"] = nil
        cfg["metadata"] = ["hook_name": Self.hook, "model_name": "tiny.en"]
        try JSONSerialization.data(withJSONObject: cfg).write(to: URL(fileURLWithPath: modern + "/cfg.json"))
        #expect(SAECheckpoint.origin(modern).hook == Self.hook && SAECheckpoint.origin(modern).model == "tiny.en")
        #expect(try SAECheckpoint.load(modern).config.dSAE == 8)
        let cases: [(String, SAEFileError.Code, String)] = [
            (try saved(nil, ["b_enc": Tensor(zeros: [3])]), .shapeMismatch, "b_enc"),
            (try saved(["architecture": "topk", "k": 0]), .invalidConfig, "k 0 outside 1…8"),
            (try saved(["architecture": "topk", "k": 9]), .invalidConfig, "k 9 outside 1…8"),
            (try saved(["architecture": "gated"]), .invalidConfig, "gated"),
            (try saved(nil, ["b_dec": Tensor(shape: [4], storage: [0, .nan, 0, 0])]), .notFinite, "b_dec"),
            (try Fixtures.temporaryDirectory(), .missingFile, "cfg.json"),
            // What would change the SAE's output is refused by name, never dropped.
            (try saved(["reshape_activations": "hook_z"]), .unsupported, "reshape_activations = 'hook_z'"),
            (try saved(["architecture": "jumprelu"]), .missingTensor, "needs its 'threshold'"),
            (try saved(["architecture": "jumprelu"], ["threshold": Tensor(zeros: [7])]), .shapeMismatch, "threshold"),
            (try saved(["rescale_acts_by_decoder_norm": true]), .unsupported, "rescale_acts_by_decoder_norm"),
            (try saved(["normalize_activations": "expected_average_only_in"]), .unsupported, "expected_average"),
            (try saved(nil, ["threshold": Tensor(zeros: [8])]), .unsupported, "threshold"),
            (try sparsify(skip: true), .unsupported, "W_skip"),
        ]
        for (dir, code, words) in cases {
            #expect { _ = try SAECheckpoint.load(dir) } throws: {
                ($0 as? SAEFileError)?.code == code && "\($0)".contains(words)
            }
        }
    }

    @Test(
        "a splice touches only the frames that hold audio, clamps and scales the chosen latent, and keeps the error when asked"
    )
    func handlerEdits() throws {
        let d = 4
        var sae = identitySAE(d)
        sae.bDec = Tensor(shape: [d], storage: [0.5, 0, 0, 0])  // still exact: b_dec is subtracted, then added
        var g = SplitMix64(seed: 3)
        let x = Tensor(shape: [2, 5, d]) { out in
            for i in 0..<(2 * 5 * d) { out[i] = Float(Int(g.next() % 200)) / 50 - 2 }
        }
        // Zeroing: frames 0..<3 of clip 0 and 0..<1 of clip 1; the rest untouched.
        let zero = try SAESplice(sae: sae, hook: Self.hook, mode: .zero, frames: [3, 1])
        var y = x
        try zero.visit(Self.hook, &y, HookContext(clips: [0, 1]))
        for b in 0..<2 {
            for f in 0..<5 {
                for j in 0..<d {
                    let i = (b * 5 + f) * d + j
                    #expect(y.storage[i] == (f < [3, 1][b] ? 0 : x.storage[i]))
                }
            }
        }
        #expect(zero.stats.rows == 0, "zeroing runs no SAE, so it gathers no statistics")
        let observe = try SAESplice(sae: sae, hook: Self.hook, mode: .observe, frames: [3, 1])
        y = x
        try observe.visit(Self.hook, &y, HookContext(clips: [0, 1]))
        #expect(y.storage == x.storage)
        #expect(observe.stats.rows == 4)
        expectClose(observe.stats.fvu, 0, tolerance: 1e-10, "exact SAE")
        // Clamping latent 1 (relu(x₁ − b₁)) to 3 makes dimension 1 equal 3 − relu(b₁ − x₁).
        let clamp = try SAESplice(sae: sae, hook: Self.hook, edits: [LatentEdit(latent: 1, kind: .clamp(3))])
        y = x
        try clamp.visit(Self.hook, &y, HookContext(clips: [0, 1]))
        for r in 0..<10 {
            #expect(abs(y.storage[r * d + 1] - (3 - max(0, -x.storage[r * d + 1]))) < 1e-6)
            #expect(abs(y.storage[r * d + 2] - x.storage[r * d + 2]) < 1e-6)
        }
        // An inexact SAE: with the error kept and a ×1 edit the activation is unchanged; ×0 on
        // latent j removes exactly its decoder row's contribution.
        var lossy = SparseAutoencoder(config: SAEConfig(architecture: .topk, dIn: d, dSAE: 6, k: 2), seed: 9)
        lossy.bDec = Tensor(shape: [d], storage: [0.1, -0.2, 0, 0.3])
        let plain = try SAESplice(sae: lossy, hook: Self.hook, mode: .observe)
        let keep = try SAESplice(
            sae: lossy, hook: Self.hook, edits: [LatentEdit(latent: 0, kind: .scale(1))], keepError: true)
        y = x
        try keep.visit(Self.hook, &y, HookContext(clips: [0, 1]))
        expectClose(y, x, rtol: 0, atol: 1e-5)
        y = x
        try plain.visit(Self.hook, &y, HookContext(clips: [0, 1]))
        #expect(plain.stats.fvu > 0.01)
        let off = try SAESplice(
            sae: lossy, hook: Self.hook, edits: [LatentEdit(latent: 2, kind: .scale(0))], keepError: true)
        y = x
        try off.visit(Self.hook, &y, HookContext(clips: [0, 1]))
        let a = lossy.activate(lossy.preActivations(x.reshaped([10, d])))
        for r in 0..<10 {
            for j in 0..<d {
                let expected = x.storage[r * d + j] - a.storage[r * 6 + 2] * lossy.wDec.storage[2 * d + j]
                #expect(abs(y.storage[r * d + j] - expected) < 1e-5)
            }
        }
    }

    @Test(
        "an exact SAE spliced into tiny.en changes nothing downstream; zeroing its hook does, and the loss recovered is 1"
    )
    func evaluateExact() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let items = try Dataset.load(Fixtures.clips).items.filter { ["jfk", "ps_cards_003"].contains($0.id) }
        #expect(items.count == 2)
        let r = try SAEEvaluator(loaded: loaded, sae: identitySAE(384), hook: "encoder.blocks.2").evaluate(items)
        #expect(r.hook == Self.hook)
        let frames = try items.map {
            LoadedClip.validFrames(samples: try AudioClip(contentsOf: $0.path).samples.count, maxFrames: 1500)
        }
        #expect(r.rows == frames.reduce(0, +))
        #expect(r.fvu < 1e-9)
        for c in r.clips {
            #expect(c.spliced == c.clean)
            expectClose(c.ceSpliced, c.ceClean, tolerance: 1e-3, c.id)
            #expect(c.ceZeroed > c.ceClean + 0.1, "zeroing the residual stream after block 2 must hurt (\(c.id))")
        }
        expectClose(r.lossRecovered, 1, tolerance: 1e-3, "loss recovered")
        #expect(r.werSplicedVsClean == 0)
        #expect(r.werZeroedVsClean > 20)
        // Every frame has a nonzero coordinate, so L0 is the number of nonzero coordinates; the
        // histogram counts every latent once.
        #expect(r.l0 > 300 && r.l0 <= 384)
        #expect(r.densityHistogram.reduce(0) { $0 + $1.latents } == 768)
    }

    @Test(
        "the batched evaluation reruns from inside an encoder block and splices decoder rows alone: each condition's transcript is the front door's",
        arguments: ["encoder.blocks.1.hook_mlp_out", "decoder.blocks.2.hook_mlp_out"])
    func evaluateBatchedConditions(hook: String) throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let items = try Dataset.load(Fixtures.clips).items.filter {
            ["jfk", "ps_cards_003", "pae_counting"].contains($0.id)
        }
        #expect(items.count == 3)
        var evaluator = try SAEEvaluator(loaded: loaded, sae: identitySAE(384), hook: hook)
        evaluator.batchSize = 2  // two encoder batches in the first wave
        evaluator.waveClips = 2  // and a second wave
        let r = try evaluator.evaluate(items)
        #expect(r.fvu < 1e-9)
        for (item, clip) in zip(items, r.clips) {
            let audio = AudioInput.file(item.path)
            let frames = LoadedClip.validFrames(
                samples: try AudioClip(contentsOf: item.path).samples.count, maxFrames: 1500)
            let zero: Intervention =
                hook.hasPrefix("encoder.") ? .zero(HookName(hook), frames: 0..<frames) : .zero(HookName(hook))
            #expect(clip.clean == (try loaded.run(audio).text), "\(item.id)")
            #expect(clip.spliced == clip.clean, "\(item.id)")
            #expect(clip.zeroed == (try loaded.run(audio, interventions: [zero]).text), "\(item.id)")
            expectClose(clip.ceSpliced, clip.ceClean, tolerance: 1e-3, item.id)
            #expect(clip.ceZeroed != clip.ceClean, "\(item.id): zeroing \(hook) changed no log-probability")
        }
    }

    @Test(
        "eval-sae writes eval.json and a report; transcribe --sae with a steered latent runs, and bad latents are refused"
    )
    func commandLine() throws {
        let dir = try Fixtures.temporaryDirectory()
        try SAECheckpoint.save(identitySAE(384), to: dir + "/sae", hook: Self.hook, model: "tiny.en")
        let data = try Fixtures.dataset(["jfk"])
        let ev = try AuscultCLI.run(["eval-sae", "--sae", dir + "/sae", "--data", data, "--out", dir + "/eval"])
        #expect(ev.status == 0, "\(ev.err)")
        #expect(ev.out.contains("loss recovered 1.000"))
        let json =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/eval/eval.json")))
            as? [String: Any]
        #expect(json?["hook"] as? String == Self.hook)
        #expect((json?["clips"] as? [Any])?.count == 1)
        #expect(FileManager.default.fileExists(atPath: dir + "/eval/report.html"))
        let clean = try AuscultCLI.run(["transcribe", Fixtures.clip("jfk")])
        let spliced = try AuscultCLI.run(["transcribe", "--sae", dir + "/sae", Fixtures.clip("jfk")])
        #expect(spliced.status == 0 && spliced.out == clean.out)
        // Latent 5 is relu(x₅): clamping it far up on every frame must change the transcript.
        let steered = try AuscultCLI.run([
            "transcribe", "--sae", dir + "/sae", "--steer", "5=400", "--steer", "389=0", Fixtures.clip("jfk"),
        ])
        #expect(steered.status == 0 && steered.out != clean.out, "\(steered.err)")
        let bad = try AuscultCLI.run(["transcribe", "--sae", dir + "/sae", "--steer", "900=x0", Fixtures.clip("jfk")])
        #expect(bad.status != 0 && bad.err.contains("latents 0…767"))
        let noSAE = try AuscultCLI.run(["eval-sae", "--sae", dir + "/missing", "--data", data, "--out", dir + "/e2"])
        #expect(noSAE.status != 0 && noSAE.err.contains("cfg.json"))
    }

    @Test(
        "train-sae straight from the model collects into OUT/activations, trains, and a rerun neither recollects nor retrains"
    )
    func trainFromModel() throws {
        let dir = try Fixtures.temporaryDirectory()
        let data = try Fixtures.dataset(["jfk", "ps_cards_003"])
        let args = [
            "train-sae", "--hook", "encoder.blocks.1", "--data", data, "--out", dir + "/sae", "--steps", "6",
            "--batch-size", "128", "--expansion", "1", "--checkpoint-every", "3", "--b-dec-init", "median",
        ]
        let first = try AuscultCLI.run(args)
        #expect(first.status == 0, "\(first.err)")
        let manifest =
            try JSONSerialization.jsonObject(
                with: Data(contentsOf: URL(fileURLWithPath: dir + "/sae/activations/manifest.json"))) as? [String: Any]
        #expect((manifest?["clips"] as? [Any])?.count == 2)
        #expect(manifest?["hook"] as? String == "encoder.blocks.1.hook_resid_post")
        let summary =
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/sae/summary.json")))
            as? [String: Any]
        #expect(summary?["step"] as? Int == 6)
        let again = try AuscultCLI.run(args)
        #expect(again.status == 0 && again.err.contains("resuming at step 6"), "\(again.err)")
        // Another learning rate or seed is another training: its checkpoint is not continued.
        for (flag, value, name) in [("--lr", "1e-3", "lr"), ("--seed", "7", "seed")] {
            let other = try AuscultCLI.run(args + [flag, value])
            #expect(
                other.status != 0 && other.err.contains(name) && other.err.contains("other settings"), "\(other.err)")
        }
        let nanRate = try AuscultCLI.run(args + ["--lr", "nan"])
        #expect(nanRate.status != 0 && nanRate.err.contains("--lr nan"), "\(nanRate.err)")
        let both = try AuscultCLI.run([
            "train-sae", "--store", dir + "/sae/activations", "--hook", "encoder.blocks.1", "--out", dir + "/x",
        ])
        #expect(both.status != 0 && both.err.contains("not both"))
        let badInit = try AuscultCLI.run([
            "train-sae", "--store", dir + "/sae/activations", "--out", dir + "/y", "--b-dec-init", "mode",
        ])
        #expect(badInit.status != 0 && badInit.err.contains("mean or median"))
    }
}
