// The pages of `auscult ablate` and `auscult layers`: components ranked by damage, WER and
// cross-entropy plots, the clip × condition grid, and every transcript beside the clean one.
import AuscultReport
import Foundation

/// Reports for sweep results.
public enum SweepReport {
    /// The ablation page for `entries` (one per clip and condition).
    public static func ablation(_ entries: [SweepEntry], title: String, subtitle: String) -> HTMLDocument {
        var doc = HTMLDocument(title: title, subtitle: subtitle)
        let ranked = ConditionSummary.rank(entries)
        let ablated = ranked.filter { $0.condition != "clean" }
        let clean = ranked.first { $0.condition == "clean" }
        doc.section(
            "Components ranked by damage",
            Plot.bars(
                ablated.map { ($0.condition, $0.meanCEDelta) },
                title: "Increase in cross-entropy of the clean transcript (nats/token)")
                + Plot.bars(
                    ablated.map { ($0.condition, $0.wer * 100) },
                    title: "Corpus WER (%)\(clean.map { String(format: " — clean %.1f %%", $0.wer * 100) } ?? "")",
                    unit: "%", color: "#d9822b"),
            note:
                "Mean over clips (and donor draws). Cross-entropy is teacher-forced on each clip's clean transcript, "
                + "end-of-text included; WER is against the dataset's reference transcript when it has one, else "
                + "against the clean transcript."
        )
        doc.section("Summary", summaryTable(ranked))
        doc.section(
            "Clip × condition", clipGrid(entries, conditions: ranked.map(\.condition)),
            note:
                "Word error rate against the clean transcript for each clip under each condition; hover a cell for the "
                + "transcript."
        )
        doc.section(
            "Transcripts", transcripts(entries, conditions: ranked.map(\.condition)),
            note:
                "Each clip's transcript under every condition; changed ones are highlighted, loops and length-limit "
                + "hits marked."
        )
        return doc
    }

    /// The layer-removal page: WER against blocks kept per side, where degeneration starts, transcripts.
    public static func layers(
        _ entries: [SweepEntry], layers: [String: Int], title: String, subtitle: String
    ) -> HTMLDocument {
        var doc = HTMLDocument(title: title, subtitle: subtitle)
        let ranked = ConditionSummary.rank(entries)
        var series = [(name: String, points: [(Double, Double)])]()
        var degen = [(name: String, points: [(Double, Double)])]()
        var onset = [[String]]()
        let clean = ranked.first { $0.condition == "clean" }
        for side in ["encoder", "decoder"] {
            guard let n = layers[side] else { continue }
            var pts = [(Double, Double)](), dg = [(Double, Double)]()
            if let clean { pts.append((Double(n), clean.wer * 100)); dg.append((Double(n), Double(clean.degenerate))) }
            for s in ranked where s.side == side {
                let removed = removedCount(s.component ?? "")
                pts.append((Double(n - removed), s.wer * 100))
                dg.append((Double(n - removed), Double(s.degenerate)))
            }
            pts.sort { $0.0 < $1.0 }; dg.sort { $0.0 < $1.0 }
            series.append((side, pts)); degen.append((side, dg))
            let first = dg.sorted { $0.0 > $1.0 }.first { $0.1 > 0 }
            onset.append([side, String(n), first.map { String(Int($0.0)) } ?? "none"])
        }
        doc.section(
            "WER against blocks kept",
            Plot.lines(series, title: "Corpus WER (%)", xLabel: "blocks kept", yLabel: "WER %")
                + Plot.lines(
                    degen, title: "Clips with repetition loops or length-limit hits", xLabel: "blocks kept",
                    yLabel: "clips"),
            note:
                "Blocks are removed from the end (the last k blocks return their input); the encoder's ln_post and the "
                + "decoder's final LayerNorm stay."
        )
        doc.section(
            "Where degeneration starts",
            HTMLDocument.table(
                ["side", "blocks", "most blocks kept with a loop or length-limit hit"], onset.map { $0.map(htmlEscape) }
            ))
        doc.section("Summary", summaryTable(ranked))
        doc.section("Transcripts", transcripts(entries, conditions: ranked.map(\.condition)))
        return doc
    }

    static func removedCount(_ component: String) -> Int {
        guard let last = component.split(separator: ".").last else { return 0 }
        return last.split(separator: "+").count
    }

    static func summaryTable(_ ranked: [ConditionSummary]) -> String {
        HTMLDocument.table(
            ["condition", "clips", "WER %", "median WER %", "readable", "mean CE", "Δ CE", "changed", "loops / limit"],
            ranked.map { s in
                [
                    "<code>\(htmlEscape(s.condition))</code>", "\(s.clips)", String(format: "%.2f", s.wer * 100),
                    String(format: "%.2f", s.medianWER * 100), String(format: "%.0f %%", s.readable * 100),
                    String(format: "%.3f", s.meanCE), String(format: "%+.3f", s.meanCEDelta), "\(s.changed)",
                    "\(s.degenerate)",
                ]
            })
    }

    static func clipGrid(_ entries: [SweepEntry], conditions: [String]) -> String {
        var clips = [String]()
        for e in entries where !clips.contains(e.clip) { clips.append(e.clip) }
        var byKey = [String: SweepEntry]()
        for e in entries where e.draw == 0 { byKey[e.clip + "\u{1F}" + e.condition] = e }
        let values = clips.map { c in
            conditions.map { byKey[c + "\u{1F}" + $0].map { min($0.werVsClean, 1.5) } ?? .nan }
        }
        return Plot.heatmap(
            values, rowLabels: clips.map(shortClip), colLabels: conditions, title: "WER vs clean (capped at 150 %)",
            range: (0, 1),
            cellText: { i, j in
                let e = byKey[clips[i] + "\u{1F}" + conditions[j]]
                return
                    "\(clips[i]) · \(conditions[j]): "
                    + "\(e.map { String(format: "%.0f%% — %@", $0.werVsClean * 100, $0.text) } ?? "n/a")"
            })
    }

    static func shortClip(_ s: String) -> String {
        let base = (s as NSString).lastPathComponent
        return base.count > 28 ? String(base.prefix(26)) + "…" : base
    }

    static func transcripts(_ entries: [SweepEntry], conditions: [String]) -> String {
        var clips = [String]()
        for e in entries where !clips.contains(e.clip) { clips.append(e.clip) }
        let byClip = Dictionary(grouping: entries, by: \.clip)
        var s = ""
        for c in clips {
            let es = byClip[c]!
            let cleanText = es.first { $0.condition == "clean" }?.text ?? ""
            let rows = es.sorted {
                (conditions.firstIndex(of: $0.condition) ?? 0, $0.draw) < (
                    conditions.firstIndex(of: $1.condition) ?? 0, $1.draw
                )
            }
            .map { e -> [String] in
                let changed = e.condition != "clean" && e.text != cleanText
                let flag =
                    e.degenerate
                    ? " <span class=\"bad\">\(e.hitLimit ? "[length limit]" : "[loop ×\(e.maxRepeat)]")</span>" : ""
                return [
                    "<code>\(htmlEscape(e.condition))</code>"
                        + (e.donor.map { "<br><small>donor \(htmlEscape(shortClip($0)))</small>" } ?? ""),
                    (changed ? "<span class=\"diff\">" : "<span>") + htmlEscape(e.text) + "</span>" + flag,
                    String(format: "%.0f", e.werVsClean * 100), String(format: "%+.2f", e.ceDelta),
                ]
            }
            s += "<details><summary>\(htmlEscape(c)) — \(htmlEscape(cleanText))</summary>"
            s += HTMLDocument.table(["condition", "transcript", "WER vs clean %", "Δ CE"], rows) + "</details>"
        }
        return s
    }
}
