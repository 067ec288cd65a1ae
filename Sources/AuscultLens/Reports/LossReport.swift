// The page of `auscult losses`: each subject's place on the first principal components of the
// per-word loss vectors, the words that load most on each, and every word's loss per subject.
import AuscultReport
import Foundation

public enum LossReport {
    public static func page(_ r: LossComparisonResult, title: String) -> HTMLDocument {
        var doc = HTMLDocument(
            title: title, subtitle: "\(r.points.count) subjects · \(r.words) words of \(r.clips.count) clips")
        let pcs = r.components.indices.map { "PC\($0 + 1)" }
        doc.section(
            "Subjects",
            HTMLDocument.table(
                ["subject", "mean loss per word (nats)"] + pcs,
                r.points.map { p in
                    [p.name, String(format: "%.3f", p.meanLoss)] + p.coordinates.map { String(format: "%+.3f", $0) }
                })
                + (r.components.count >= 2
                    ? Plot.lines(
                        r.points.map { (name: $0.name, points: [($0.coordinates[0], $0.coordinates[1])]) },
                        title: "Each subject on PC1 × PC2", xLabel: "PC1", yLabel: "PC2", connect: false) : ""),
            note: "Each subject's vector of per-word losses (a word's loss: the sum of its tokens' cross-entropies), "
                + "centred across subjects; PCA through the subjects' Gram matrix.")
        for (k, c) in r.components.enumerated() {
            let rows = zip(c.positive, c.negative).map { a, b in
                [
                    "\(a.clip): “\(a.word)”", String(format: "%+.3f", a.loading), "\(b.clip): “\(b.word)”",
                    String(format: "%+.3f", b.loading),
                ]
            }
            doc.section(
                String(format: "PC%d: %.0f %% of the variance", k + 1, 100 * c.explained),
                HTMLDocument.table(["loads positively", "", "loads negatively", ""], rows))
        }
        let cols = r.wordLabels.map { $0.split(separator: ":", maxSplits: 1).last.map(String.init) ?? $0 }
        doc.section(
            "Every word's loss",
            Plot.heatmap(
                r.losses, rowLabels: r.points.map(\.name), colLabels: cols, title: "Loss per word (nats)",
                cellText: { i, j in String(format: "%@ · %@: %.3f", r.points[i].name, r.wordLabels[j], r.losses[i][j]) }
            ))
        return doc
    }
}
