import AuscultAudio
import AuscultSAE
import AuscultTensor
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

@Suite("Activation store")
struct ActivationStoreTests {
    static let clips = ["jfk", "ls_1089-134691-0000", "ps_cards_003"]
    static func items() -> [DatasetItem] { clips.map { DatasetItem(id: $0, path: Fixtures.clip($0), reference: nil) } }

    func store(_ dir: String, _ c: ActivationCollector, _ dtype: StoreDType) throws -> ActivationStore {
        try ActivationStore(
            directory: dir,
            creating: StoreManifest(model: "tiny.en", hook: c.hook, dtype: dtype, width: c.width, clips: []))
    }

    @Test(
        "stored rows are the hook's activation on the frames that hold audio, f32 exactly and f16 within half precision"
    )
    func contents() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let c = try ActivationCollector(loaded: loaded, hook: "encoder.blocks.2")
        #expect(c.hook == "encoder.blocks.2.hook_resid_post" && c.width == 384)
        let f32 = try store(try Fixtures.temporaryDirectory(), c, .f32)
        let f16 = try store(try Fixtures.temporaryDirectory(), c, .f16)
        try c.collect(Self.items(), into: f32)
        try c.collect(Self.items(), into: f16)
        for id in Self.clips {
            let samples = try AudioClip(contentsOf: Fixtures.clip(id)).samples
            let frames = (samples.count + 319) / 320
            let full = try loaded.activation(HookName(c.hook), on: .file(Fixtures.clip(id)))
            let want = full.rows(0..<frames)
            let got = try f32.rows(of: id)
            #expect(got.shape == [frames, 384])
            #expect(got == want, "\(id) f32")
            expectClose(try f16.rows(of: id), want, rtol: 1e-3, atol: 1e-3, "\(id) f16")
        }
        // Reopened from disk: the same manifest, rows read back through the map.
        let again = try ActivationStore(directory: f32.directory)
        #expect(again.manifest == f32.manifest)
        #expect(again.manifest.rows == f32.manifest.clips.reduce(0) { $0 + $1.frames })
        #expect(throws: StoreError.self) {
            try ActivationCollector(loaded: loaded, hook: "decoder.blocks.0.hook_resid_post")
        }
    }

    @Test("an interrupted collection resumes without losing or duplicating clips, even after a torn write")
    func resume() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let c = try ActivationCollector(loaded: loaded, hook: "encoder.blocks.1.mlp.hook_post")
        let dir = try Fixtures.temporaryDirectory()
        let s = try store(dir, c, .f32)
        try c.collect(Array(Self.items().prefix(2)), into: s)
        let first = try s.rows(of: "jfk")
        // A kill between writing rows and the manifest leaves bytes no clip owns.
        let h = try FileHandle(forWritingTo: URL(fileURLWithPath: dir + "/shard-0-of-1.bin"))
        try h.seekToEnd(); try h.write(contentsOf: Data(repeating: 0xAB, count: 1000)); try h.close()
        let reopened = try ActivationStore(directory: dir, creating: s.manifest)
        try c.collect(Self.items(), into: reopened)
        #expect(reopened.manifest.clips.map(\.id) == Self.clips)
        #expect(try reopened.rows(of: "jfk") == first)
        let fresh = try store(try Fixtures.temporaryDirectory(), c, .f32)
        try c.collect(Self.items(), into: fresh)
        for id in Self.clips { #expect(try reopened.rows(of: id) == fresh.rows(of: id), "\(id)") }
        // A store of another hook is not appended to.
        #expect {
            try ActivationStore(
                directory: dir,
                creating: StoreManifest(
                    model: "tiny.en", hook: "encoder.blocks.0.hook_resid_post", dtype: .f32, width: 384, clips: []))
        } throws: { ($0 as? StoreError)?.code == .occupied && !"\($0)".contains("--") }
    }

    @Test("shards k/N cover the dataset once and merge by manifest into the single-job store")
    func shardsMerge() throws {
        let loaded = try Fixtures.loaded("tiny.en")
        let c = try ActivationCollector(loaded: loaded, hook: "encoder.blocks.0.hook_attn_out")
        let parts = try (0..<2).map { k -> String in
            let dir = try Fixtures.temporaryDirectory()
            try c.collect(Self.items(), into: try store(dir, c, .f16), shard: k, of: 2)
            return dir
        }
        let merged = try ActivationStore.merge(parts, into: try Fixtures.temporaryDirectory() + "/merged")
        #expect(Set(merged.manifest.clips.map(\.id)) == Set(Self.clips))
        #expect(merged.manifest.clips.count == Self.clips.count)
        let whole = try store(try Fixtures.temporaryDirectory(), c, .f16)
        try c.collect(Self.items(), into: whole)
        for id in Self.clips { #expect(try merged.rows(of: id) == whole.rows(of: id), "\(id)") }
        #expect(throws: StoreError.self) {
            try ActivationStore.merge([parts[0], parts[0]], into: try Fixtures.temporaryDirectory() + "/dup")
        }
    }
}
