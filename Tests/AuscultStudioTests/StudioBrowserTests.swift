import AuscultSAE
import AuscultStudio
import AuscultWhisper
import Foundation
import Testing
import _TestSupport

/// Letters and digits of a transcript, lowercased: the page shows words with spaces around
/// punctuation, `auscult transcribe` prints Whisper's text.
func normalized(_ text: String) -> String { text.lowercased().filter { $0.isLetter || $0.isNumber } }

@Suite("Studio in headless Chromium", .serialized)
struct StudioBrowserTests {
    /// Fails on any console message of warning level or above (but the network's report of a
    /// request the test made fail on purpose, naming `expected`).
    func expectQuietConsole(_ session: BrowserSession, _ page: String, expected: String? = nil) async throws {
        let messages = try await session.consoleMessages().filter { $0.level == "SEVERE" || $0.level == "WARNING" }
            .filter { m in
                expected.map { !(m.message.contains($0) && m.message.contains("Failed to load resource")) } ?? true
            }
        #expect(messages.isEmpty, "\(page): \(messages.map(\.message))")
    }

    /// Opens the experiments view and the results file `path` in it, as a user picking the file would.
    func showExperiment(_ path: String, in session: BrowserSession, base: String) async throws {
        try await session.open(base + "#/experiments")
        try await session.wait(for: "document.body.dataset.state === 'ready'")
        try await session.type("#results-input", path)
        try await session.wait(for: "document.body.dataset.experiment === 'shown'")
    }

    @Test(
        "a neuron's page draws each example's spectrogram with the activation red where the example fires, and plays it"
    )
    func featurePage() async throws {
        let base = try await StudioFixture.shared.server()
        let index = try FeatureIndex(path: try await StudioFixture.shared.indexes().neurons)
        let feature = try #require(try index.ranked(by: "max_value", limit: 1).first?.feature)
        let page = try #require(try index.page(feature))
        let first = try #require(page.top.first)
        let session = try await BrowserSession()
        defer { Task { await session.close() } }
        try await session.open(base + "#/features/neurons/\(feature)")
        // Each card's trace runs the encoder on its clip; beside the other pages' model work on two
        // cores that took over 30 s once (the steering and inspection waits allow 60 s likewise).
        try await session.wait(for: "document.body.dataset.cards === 'drawn'", seconds: 60)
        #expect(
            try await session.run("return document.querySelectorAll('#top-examples .example').length;") as? Int
                == page.top.count)
        // The labels line: what the labels endpoint says, in words.
        try await session.wait(for: "document.querySelector('#feature-labels').dataset.feature === '\(feature)'")
        let labels = try await session.run("return document.querySelector('#feature-labels').textContent;") as? String
        let served = try #require(
            try await http(base + "api/indexes/neurons/features/\(feature)/labels").json() as? [String: Any])
        if let top = served["top_word"] as? [String: Any], let word = top["label"] as? String {
            #expect(labels?.contains("word \(word) (") == true, "\(labels ?? "")")
        }
        #expect(labels?.hasPrefix("Fires on: ") == true, "\(labels ?? "")")
        // The first card's window and trace, as the page fetched them.
        let start = max(0, first.time - 1), end = first.time + 1
        let trace = try #require(
            try await http(
                base + "api/indexes/neurons/clips/\(first.clip)/trace?feature=\(feature)&start=\(start)&end=\(end)"
            )
            .json() as? [String: Any])
        let values = try #require(trace["activation"] as? [Double])
        let firstFrame = try #require(trace["first_frame"] as? Int)
        let scale = max(abs(page.maxValue ?? 0), abs(page.minValue ?? 0))
        let image = try await session.screenshot("#top-examples .example canvas")
        #expect(image.width == 300 && image.height == 114)
        let x = { (t: Double) in min(299, Int((t - start) / (end - start) * 300)) }
        // Spectrogram: many colours in the top 80 rows.
        var colours = Set<Int>()
        for y in stride(from: 0, to: 80, by: 3) {
            for px in stride(from: 0, to: 300, by: 3) {
                let c = image.rgb(px, y); colours.insert(c.r << 16 | c.g << 8 | c.b)
            }
        }
        #expect(colours.count > 200, "the spectrogram is drawn (\(colours.count) colours)")
        // The strip under it is red at the example's peak and white where the neuron is near 0.
        let peak = image.rgb(x(first.time), 86)
        #expect(peak.r > 150 && peak.r - peak.b > 60, "strip at the peak \(first.time) s: \(peak)")
        let quiet = try #require(values.indices.first { abs(values[$0]) < 0.01 * scale })
        let calm = image.rgb(x((Double(firstFrame + quiet) + 0.5) * 0.02), 86)
        #expect(calm.r > 225 && calm.g > 225 && calm.b > 225, "strip where the neuron is ~0: \(calm)")
        // The activation line reaches the top of the spectrogram at the peak.
        let near = (0..<12).flatMap { y in (-2...2).map { image.rgb(max(0, min(299, x(first.time) + $0)), y) } }
        #expect(near.contains { min($0.r, $0.g, $0.b) > 205 }, "the activation line at the peak: \(near)")
        // Playing moves the cursor through the window.
        try await session.click("#top-examples .example .play")
        try await session.wait(
            for: "Number(document.querySelector('#top-examples .example').dataset.cursor) > \(start + 0.2)", seconds: 10
        )
        let a =
            try await session.run("return Number(document.querySelector('#top-examples .example').dataset.cursor);")
            as? Double
        try await Task.sleep(nanoseconds: 300_000_000)
        let b =
            try await session.run("return Number(document.querySelector('#top-examples .example').dataset.cursor);")
            as? Double
        #expect((b ?? 0) > (a ?? 0) || (b ?? 0) >= end - 0.05, "cursor \(a ?? -1) → \(b ?? -1)")
        // A quantile group loads its cards when opened.
        try await session.click("#feature-page details:nth-of-type(2) summary")
        try await session.wait(for: "document.querySelectorAll('.example[data-drawn=true]').length > \(page.top.count)")
        try await expectQuietConsole(session, "feature page")
    }

    @Test(
        "uploading a bundled clip shows its transcript, its top features under the spectrogram, and steering changes it"
    )
    func uploadAndSteer() async throws {
        let base = try await StudioFixture.shared.server()
        let loaded = try Fixtures.loaded("tiny.en")
        let session = try await BrowserSession()
        defer { Task { await session.close() } }
        try await session.open(base + "#/inspect/latents")
        try await session.wait(for: "document.body.dataset.state === 'ready'")
        try await session.type("#upload-input", Fixtures.clip("jfk"))
        try await session.wait(for: "document.body.dataset.state === 'inspected'", seconds: 60)
        let shown = try await session.run("return document.querySelector('#transcript').textContent;") as? String ?? ""
        #expect(normalized(shown) == normalized(try loaded.run(.file(Fixtures.clip("jfk"))).text))
        #expect(try await session.run("return state.inspection.features.length;") as? Int == 12)
        let heat = try await session.screenshot("#inspect-canvas")
        var red = 0
        for y in stride(from: 102, to: heat.height - 16, by: 2) {
            for x in stride(from: 60, to: heat.width, by: 2) { let c = heat.rgb(x, y); if c.r - c.b > 60 { red += 1 } }
        }
        #expect(red > 50, "the features × time heatmap is drawn (\(red) red cells)")
        // Steer: clamp the first listed latent far up.
        try await session.run("document.querySelector('#steer-mode').value = 'clamp';")
        try await session.run("document.querySelector('#steer-value').value = '400';")
        try await session.click("#steer-button")
        try await session.wait(for: "document.body.dataset.steered", seconds: 60)
        #expect(try await session.run("return document.body.dataset.steered;") as? String == "changed")
        let marked = try await session.run(
            "return document.querySelectorAll('#steer-diff .added, #steer-diff .removed').length;")
        #expect((marked as? Int ?? 0) > 0)
        // Clicking a feature row opens that feature's page.
        let feature = try await session.run("return state.inspection.features[0].feature;") as? Int ?? -1
        try await session.run("location.hash = '#/features/latents/' + state.inspection.features[0].feature;")
        try await session.wait(for: "document.body.dataset.state === 'feature'")
        let title = try await session.run("return document.querySelector('#feature-page h2').textContent;") as? String
        #expect(title?.hasPrefix("Latent \(feature) ") == true)
        try await expectQuietConsole(session, "inspector")
    }

    @Test("recording through Chromium's fake microphone gives the transcript auscult transcribe gives for the file")
    func recording() async throws {
        let base = try await StudioFixture.shared.server()
        let clip = Fixtures.clip("jfk")
        let cli = try AuscultCLI.run(["transcribe", clip])
        #expect(cli.status == 0, "\(cli.err)")
        let session = try await BrowserSession(microphone: clip)
        defer { Task { await session.close() } }
        try await session.open(base + "#/inspect/neurons")
        try await session.wait(for: "document.body.dataset.state === 'ready'")
        try await session.click("#record-button")
        try await session.wait(for: "document.querySelector('#record-button').classList.contains('recording')")
        try await Task.sleep(nanoseconds: 12_500_000_000)  // jfk.wav is 11 s
        try await session.click("#record-button")
        try await session.wait(for: "document.body.dataset.state === 'inspected'", seconds: 60)
        let shown = try await session.run("return document.querySelector('#transcript').textContent;") as? String ?? ""
        #expect(normalized(shown) == normalized(cli.out), "recorded: \(shown) / file: \(cli.out)")
        try await expectQuietConsole(session, "recording")
    }

    @Test("a sweep's results.json opens as a sortable, filterable table and a heatmap whose hover shows transcripts")
    func experimentViews() async throws {
        let base = try await StudioFixture.shared.server()
        let dir = try Fixtures.temporaryDirectory()
        let ablate = try AuscultCLI.run([
            "ablate", "--data", try Fixtures.dataset(["jfk", "ps_cards_003"]), "--out", dir + "/ablate", "--targets",
            "encoder.blocks.3", "decoder.blocks.0",
        ])
        #expect(ablate.status == 0, "\(ablate.err)")
        let rows = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/ablate/results.json")))
                as? [[String: Any]])
        let conditions = Set(rows.compactMap { $0["condition"] as? String })
        let session = try await BrowserSession()
        defer { Task { await session.close() } }
        try await showExperiment(dir + "/ablate/results.json", in: session, base: base)
        let shown = try await session.run(
            "return [...document.querySelectorAll('#sweep-table tr[data-condition]')].map(r => r.dataset.condition);")
        #expect(Set(shown as? [String] ?? []) == conditions)
        // Sorted by mean Δ cross-entropy, largest first; clicking the condition header sorts by name.
        #expect((shown as? [String])?.last == "clean")
        try await session.click("#sweep-table th[data-key=condition]")
        let byName = try await session.run(
            "return [...document.querySelectorAll('#sweep-table tr[data-condition]')].map(r => r.dataset.condition);")
        #expect(byName as? [String] == conditions.sorted { $0.localizedCompare($1) == .orderedAscending })
        // Filtering, then a row's transcripts.
        try await session.type("#sweep-filter", "skip")
        let filtered = try await session.run(
            "return document.querySelectorAll('#sweep-table tr[data-condition]').length;")
        #expect(filtered as? Int == conditions.filter { $0.contains("skip") }.count)
        try await session.click("#sweep-table tr[data-condition]")
        let detail = try await session.run("return document.querySelector('#sweep-table tr.transcripts').textContent;")
        #expect((detail as? String)?.contains("jfk:") == true)
        // Hovering the heatmap's first cell (clean, first clip) shows that run's transcript.
        let tip = try await session.run(
            """
            const c = document.querySelector('#sweep-heatmap'), r = c.getBoundingClientRect();
            c.dispatchEvent(new MouseEvent('mousemove', {clientX: r.left + 172, clientY: r.top + 8, bubbles: true}));
            return document.querySelector('#tooltip').textContent;
            """)
        let firstClip = try #require(rows.first?["clip"] as? String)  // the heatmap's first column
        let clean = try #require(
            rows.first { $0["condition"] as? String == "clean" && $0["clip"] as? String == firstClip })
        #expect((tip as? String)?.contains(clean["text"] as? String ?? "?") == true, "\(tip)")
        try await expectQuietConsole(session, "experiments")
    }

    @Test("an auscult heads results.json opens as the ranked alignment heads and a layer × head map per score")
    func headsView() async throws {
        let base = try await StudioFixture.shared.server()
        let dir = try Fixtures.temporaryDirectory()
        let heads = try AuscultCLI.run([
            "heads", "--data", try Fixtures.dataset(["jfk", "ps_cards_003"]), "--random-sequences", "1", "--out", dir,
        ])
        #expect(heads.status == 0, "\(heads.err)")
        let json = try #require(
            try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: dir + "/results.json")))
                as? [String: Any])
        let ranked = try #require((json["alignment"] as? [String: Any])?["ranked"] as? [[String: Any]])
        let session = try await BrowserSession()
        defer { Task { await session.close() } }
        try await showExperiment(dir + "/results.json", in: session, base: base)
        let order = try await session.run(
            "return [...document.querySelectorAll('#heads-table tr[data-head]')].map(r => r.dataset.head);")
        let expected = ranked.prefix(16).map { "L\($0["layer"] as? Int ?? -1).H\($0["head"] as? Int ?? -1)" }
        #expect(order as? [String] == expected)
        let maps = try await session.run("return document.querySelectorAll('.heads-map canvas').length;")
        #expect(maps as? Int == (json["maps"] as? [Any])?.count)
        // Hovering the induction map's first cell names the head, the score and its value.
        let tip = try await session.run(
            """
            const c = document.querySelector('#heads-decoder_self-induction'), r = c.getBoundingClientRect();
            c.dispatchEvent(new MouseEvent('mousemove', {clientX: r.left + 172, clientY: r.top + 8, bubbles: true}));
            return document.querySelector('#tooltip').textContent;
            """)
        #expect((tip as? String)?.hasPrefix("L0.H0 induction: ") == true, "\(tip)")
        try await expectQuietConsole(session, "heads")
    }

    @Test("an auscult paths results.json opens as losses, patching, token groups and each clip's contributions")
    func pathsView() async throws {
        let base = try await StudioFixture.shared.server()
        let dir = try Fixtures.temporaryDirectory()
        let paths = try AuscultCLI.run([
            "paths", "--data", try Fixtures.dataset(["jfk", "ps_cards_003"]), "--inputs", "dataset,noise", "--out", dir,
        ])
        #expect(paths.status == 0, "\(paths.err)")
        let session = try await BrowserSession()
        defer { Task { await session.close() } }
        try await showExperiment(dir + "/results.json", in: session, base: base)
        let conditions = try await session.run(
            "return [...document.querySelectorAll('#paths-table tr[data-key]')].map(r => r.dataset.key);")
        #expect(conditions as? [String] == ["clean", "no audio (silence)", "no cross-attention", "unigram"])
        // tiny.en's 4 blocks patched 3 ways; the groups name the noise input beside the dataset's.
        let patched = try await session.run(
            "return [...document.querySelectorAll('#paths-patching tr[data-key]')].map(r => r.dataset.key);")
        #expect((patched as? [String])?.count == 12 && (patched as? [String])?.last == "decoder.blocks.3.hook_mlp_out")
        let groups = try await session.run(
            "return [...document.querySelectorAll('#paths-groups tr[data-key]')].map(r => r.dataset.key);")
        #expect((groups as? [String])?.contains("dataset|false") == true, "\(groups)")
        #expect((groups as? [String])?.contains("noise|false") == true, "\(groups)")
        // Choosing the second clip redraws the contributions for its tokens; hovering names token and losses.
        _ = try await session.run(
            "const s = document.querySelector('#paths-clip'); s.value = '1'; s.dispatchEvent(new Event('change'));")
        let tip = try await session.run(
            """
            const c = document.querySelector('#paths-heatmap'), r = c.getBoundingClientRect();
            c.dispatchEvent(new MouseEvent('mousemove', {clientX: r.left + 172, clientY: r.top + 8, bubbles: true}));
            return document.querySelector('#tooltip').textContent;
            """)
        #expect(
            (tip as? String)?.hasPrefix("embed · ") == true && (tip as? String)?.contains("no audio (silence)") == true,
            "\(tip)")
        let caption = try await session.run(
            "return document.querySelector('#paths-repeats').previousSibling.textContent;")
        #expect((caption as? String)?.hasPrefix("ps_cards_003") == true, "\(caption)")
        let repeats = try await session.run("return document.querySelector('#paths-repeats').textContent;")
        #expect((repeats as? String)?.contains("tokens repeat a token pair") == true, "\(repeats)")
        try await expectQuietConsole(session, "paths")
    }

    @Test("an auscult losses results.json opens as the subjects on their components and every word's loss")
    func lossesView() async throws {
        let base = try await StudioFixture.shared.server()
        let dir = try Fixtures.temporaryDirectory()
        let run = try AuscultCLI.run([
            "losses", "--models", "tiny.en", "--direct-path", "--data", try Fixtures.dataset(["jfk"]), "--out", dir,
        ])
        #expect(run.status == 0, "\(run.err)")
        let session = try await BrowserSession()
        defer { Task { await session.close() } }
        try await showExperiment(dir + "/results.json", in: session, base: base)
        let subjects = try await session.run(
            "return [...document.querySelectorAll('#losses-table tr[data-subject]')].map(r => r.dataset.subject);")
        #expect(subjects as? [String] == ["tiny.en", "tiny.en · direct path"])
        let tip = try await session.run(
            """
            const c = document.querySelector('#losses-heatmap'), r = c.getBoundingClientRect();
            c.dispatchEvent(new MouseEvent('mousemove', {clientX: r.left + 172, clientY: r.top + 8, bubbles: true}));
            return document.querySelector('#tooltip').textContent;
            """)
        #expect((tip as? String)?.hasPrefix("tiny.en · jfk: And: ") == true, "\(tip)")
        try await expectQuietConsole(session, "losses")
    }

    @Test("a prefix typed in the inspector transcribes the clip again after it; one too long gets a 400")
    func inspectWithPrefix() async throws {
        let base = try await StudioFixture.shared.server()
        let session = try await BrowserSession()
        defer { Task { await session.close() } }
        try await session.open(base + "#/inspect/neurons/clip/jfk")
        try await session.wait(for: "document.body.dataset.state === 'inspected'", seconds: 60)
        let plain = try await session.run("return state.inspection.transcript;") as? String ?? ""
        let quoted = String(
            decoding: try JSONSerialization.data(withJSONObject: plain, options: .fragmentsAllowed), as: UTF8.self)
        _ = try await session.run(
            """
            const p = document.querySelector('#inspect-prefix'); p.value = 'And so my';
            p.dispatchEvent(new Event('change'));
            """)
        try await session.wait(
            for: "document.body.dataset.state === 'inspected' && state.inspection.transcript !== \(quoted)",
            seconds: 60)
        let prefixed = try await session.run("return state.inspection.transcript;") as? String ?? ""
        let loaded = try Fixtures.loaded("tiny.en")
        var options = DecodingOptions()
        options.prefix = loaded.promptTokens("And so my")
        let expected = try loaded.run(.file(Fixtures.clip("jfk")), options: options).text
        #expect(prefixed == expected && !prefixed.hasPrefix("And so my"), "\(prefixed) vs \(expected)")
        try await expectQuietConsole(session, "inspect with a prefix")
        let long = try await http(
            base + "api/indexes/neurons/clips/jfk/inspect?prefix=" + String(repeating: "x", count: 401))
        #expect(long.status == 400 && long.text.contains("prefix: 401 characters"), "\(long.text)")
    }

    @Test("a clip's cross-attention is drawn under its spectrogram, one row per decoder token")
    func attentionView() async throws {
        let base = try await StudioFixture.shared.server()
        let session = try await BrowserSession()
        defer { Task { await session.close() } }
        try await session.open(base + "#/inspect/neurons/clip/jfk")
        try await session.wait(for: "document.body.dataset.state === 'inspected'", seconds: 60)
        try await session.run("document.querySelector('#attention-layer').value = '3';")
        try await session.click("#attention-button")
        try await session.wait(for: "document.body.dataset.attention === 'cross:3:0'", seconds: 60)
        let image = try await session.screenshot("#attention-canvas")
        // Below the spectrogram and words, the pattern: dark mostly, brighter (weight ≳ 0.1) along the alignment.
        var bright = 0, dark = 0
        for y in stride(from: 110, to: image.height, by: 2) {
            for x in stride(from: 60, to: image.width, by: 2) {
                let c = image.rgb(x, y)
                if c.r > 90 { bright += 1 } else if c.r + c.g + c.b < 60 { dark += 1 }
            }
        }
        #expect(dark > 10 * bright && bright > 0, "bright \(bright), dark \(dark)")
        try await expectQuietConsole(session, "attention")
    }

    @Test("an API error reaches the page as a message, not a console error or a broken page")
    func errorsShown() async throws {
        let base = try await StudioFixture.shared.server()
        let session = try await BrowserSession()
        defer { Task { await session.close() } }
        try await session.open(base + "#/features/neurons/99999")
        try await session.wait(for: "!document.querySelector('#error').hidden")
        let message = try await session.run("return document.querySelector('#error').textContent;") as? String
        #expect(message?.contains("0…1535") == true, "\(message ?? "")")
        try await expectQuietConsole(session, "error page", expected: "/features/99999")
    }
}
