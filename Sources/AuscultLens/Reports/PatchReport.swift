// The page of `auscult patch`: clean and corrupted transcripts, the metric at both ends, and
// one restoration heatmap per patching grid.
import AuscultReport
import Foundation

public enum PatchReport {
    public static func page(_ r: PatchResult, title: String) -> HTMLDocument {
        var doc = HTMLDocument(title: title, subtitle: "\(r.clean) · corruption: \(r.corruption) · metric: \(r.metric)")
        doc.section(
            "Runs",
            HTMLDocument.table(
                ["run", "transcript", "metric"],
                [
                    ["clean", htmlEscape(r.cleanText), String(format: "%.3f", r.cleanValue)],
                    ["corrupted", htmlEscape(r.corruptText), String(format: "%.3f", r.corruptValue)],
                ]),
            note:
                "The decoder is teacher-forced on the clean transcript; each patched run takes one activation from the "
                + "clean run."
        )
        for g in r.grids {
            doc.section(
                g.hook,
                Plot.heatmap(
                    g.restored, rowLabels: g.rows, colLabels: g.cols.map { LensReport.shortToken($0) },
                    title: "Restored fraction: (m − m_corrupt) / (m_clean − m_corrupt)", scale: .diverging,
                    range: (-1, 1),
                    cellText: { i, j in
                        String(
                            format: "%@ × %@: restored %.3f (metric %.3f)", g.rows[i], g.cols[j], g.restored[i][j],
                            g.values[i][j])
                    }, cell: g.cols.count > 40 ? 0 : 24))
        }
        return doc
    }
}
