import AuscultLens
import AuscultReport
import Foundation
import Testing
import _TestSupport

/// Reports in a real browser: Debian's Chromium, headless, loading the file as a user would.
enum Browser {
    static let chromium: String? = ["/usr/bin/chromium", "/usr/bin/chromium-browser", "/usr/bin/google-chrome"]
        .first { FileManager.default.isExecutableFile(atPath: $0) }

    /// The DOM after load and the browser's log (console messages appear as `CONSOLE` lines).
    static func render(_ path: String) throws -> (dom: String, log: String) {
        guard let chromium else {
            throw LensError(.invalidArgument, "Chromium is not installed; scripts/test.sh installs Debian's chromium")
        }
        let profile = try Fixtures.temporaryDirectory()
        let r = try runProcess(
            chromium,
            [
                "--headless=new", "--no-sandbox", "--disable-gpu", "--no-first-run", "--user-data-dir=\(profile)",
                "--enable-logging=stderr", "--v=0", "--virtual-time-budget=10000", "--dump-dom", "file://" + path,
            ])
        return (r.out, r.err)
    }

    /// The value of `attr` on the rendered `<body>`.
    static func bodyAttribute(_ dom: String, _ attr: String) -> String? {
        guard let body = dom.range(of: "<body[^>]*>", options: .regularExpression) else { return nil }
        let tag = String(dom[body])
        guard let r = tag.range(of: "\(attr)=\"[^\"]*\"", options: .regularExpression) else { return nil }
        return String(tag[r].dropFirst(attr.count + 2).dropLast())
    }
}

@Suite("Reports in headless Chromium")
struct ReportTests {
    /// Writes the reports of small real runs and checks each one renders its plots without errors.
    @Test(
        "ablation, lens, patching, attribution, SAE and feature reports open with every plot drawn and no console messages"
    )
    func reportsRender() throws {
        let dir = try Fixtures.temporaryDirectory()
        let data = try CLIContractTests.dataset(["jfk", "ls_1089-134691-0000", "ps_cards_003"])
        var pages = [(String, Int)]()  // path, least number of plots
        let ab = try AuscultCLI.run([
            "ablate", "--data", data, "--out", dir + "/ablate", "--targets", "encoder.blocks.3", "decoder.blocks.0",
        ])
        #expect(ab.status == 0, "\(ab.err)")
        pages.append((dir + "/ablate/report.html", 3))
        let lens = try AuscultCLI.run(["lens", Fixtures.clip("jfk"), "--out", dir + "/lens"])
        #expect(lens.status == 0, "\(lens.err)")
        pages.append((dir + "/lens/report.html", 4 + 4 * 6 * 3))
        // The kept clips were made with top-k 5 and attention: another setting does not reuse them.
        let other = try AuscultCLI.run(["lens", Fixtures.clip("jfk"), "--out", dir + "/lens", "--top-k", "3"])
        #expect(other.status != 0 && other.err.contains("top_k") && other.err.contains("--fresh"), "\(other.err)")
        let patch = try AuscultCLI.run([
            "patch", Fixtures.clip("ls_1089-134691-0000"), "--silence", "0.3:1.2", "--out", dir + "/patch",
        ])
        #expect(patch.status == 0, "\(patch.err)")
        pages.append((dir + "/patch/report.html", 5))
        let attribute = try AuscultCLI.run([
            "attribute", Fixtures.clip("ls_1089-134691-0000"), "--silence", "0.3:1.2", "--integrated-gradients", "2",
            "--out", dir + "/attribute",
        ])
        #expect(attribute.status == 0 && attribute.out.contains("Spearman"), "\(attribute.err)")
        pages.append((dir + "/attribute/report.html", 3 * 5 + 2))  // estimate, patching, scatter per grid; log-mel maps
        let collect = try AuscultCLI.run([
            "collect", "--hook", "encoder.blocks.1", "--data", data, "--out", dir + "/store",
        ])
        #expect(collect.status == 0, "\(collect.err)")
        let train = try AuscultCLI.run([
            "train-sae", "--store", dir + "/store", "--out", dir + "/sae", "--steps", "20", "--batch-size", "256",
            "--expansion", "2", "--lr", "1e-3", "--warmup", "5",
        ])
        #expect(train.status == 0, "\(train.err)")
        pages.append((dir + "/sae/report.html", 4))
        let eval = try AuscultCLI.run(["eval-sae", "--sae", dir + "/sae", "--data", data, "--out", dir + "/eval"])
        #expect(eval.status == 0, "\(eval.err)")
        pages.append((dir + "/eval/report.html", 2))
        let index = try AuscultCLI.run([
            "index", "--sae", dir + "/sae", "--data", data, "--out", dir + "/f.sqlite", "--top", "3",
        ])
        #expect(index.status == 0, "\(index.err)")
        let features = try AuscultCLI.run([
            "features", "--index", dir + "/f.sqlite", "--limit", "3", "--html", dir + "/features.html",
        ])
        #expect(features.status == 0, "\(features.err)")
        #expect(try String(contentsOfFile: dir + "/features.html", encoding: .utf8).contains("<audio controls"))
        pages.append((dir + "/features.html", 4))
        for (page, least) in pages {
            let (dom, log) = try Browser.render(page)
            let rendered = Int(Browser.bodyAttribute(dom, "data-rendered") ?? "") ?? -1
            #expect(rendered >= least, "\(page): \(rendered) plots drew, expected at least \(least)")
            #expect(Browser.bodyAttribute(dom, "data-errors") == "0", "\(page): script errors")
            let console = log.split(separator: "\n").filter { $0.contains("CONSOLE") }
            #expect(console.isEmpty, "\(page): \(console)")
            #expect(dom.contains("<svg class=\"plot\""))
        }
    }

    @Test("heatmaps too large for SVG rectangles become a valid PNG")
    func pngHeatmap() throws {
        let values = (0..<120).map { i in (0..<100).map { j in Double(i * j) } }
        let svg = Plot.heatmap(
            values, rowLabels: (0..<120).map(String.init), colLabels: (0..<100).map(String.init), title: "big")
        #expect(svg.contains("data:image/png;base64,"))
        #expect(!svg.contains("<rect x=2"))
        let png = PNG.encode(width: 3, height: 2, rgb: [UInt8](repeating: 200, count: 18))
        #expect(Array(png.prefix(8)) == [0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        #expect(png.count > 40)
    }
}
