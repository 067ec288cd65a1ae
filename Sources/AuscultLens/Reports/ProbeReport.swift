// The page of `auscult probe`: training and held-out scores against the majority baseline, and
// the probe's output over one held-out clip beside its labels.
import AuscultReport
import Foundation

public enum ProbeReport {
    public static func page(_ r: ProbeResult, title: String) -> HTMLDocument {
        var doc = HTMLDocument(title: title, subtitle: "\(r.hook) · \(r.task) · \(r.kind) probe")
        let score = r.kind == "logistic" ? "accuracy" : "R²"
        doc.section(
            "Scores",
            Plot.bars(
                [
                    (label: "training (\(r.trainFrames) frames)", value: r.trainScore),
                    (label: "held out (\(r.heldOutFrames) frames)", value: r.heldOutScore),
                ] + (r.kind == "logistic" ? [(label: "majority label, held out", value: r.majorityBaseline)] : []),
                title: score)
                + HTMLDocument.table(
                    ["", "clips"],
                    [
                        ["training", r.trainClips.joined(separator: ", ")],
                        ["held out", r.heldOutClips.joined(separator: ", ")],
                    ]),
            note: String(
                format: "Weight decay %g. %.1f %% of held-out frames are labelled 1.", r.weightDecay,
                100 * r.heldOutPositive)
        )
        if let e = r.example {
            doc.section(
                "Held-out clip \(e.clip)",
                Plot.lines(
                    [
                        (
                            name: "label",
                            points: e.labels.enumerated().map { (Double($0.offset) * 0.02, Double($0.element)) }
                        ),
                        (
                            name: "probe",
                            points: e.outputs.enumerated().map { (Double($0.offset) * 0.02, Double($0.element)) }
                        ),
                    ], title: "Per encoder frame (20 ms)", xLabel: "seconds",
                    yLabel: r.kind == "logistic" ? "p(1)" : "value"))
        }
        return doc
    }
}
