// The page of `auscult optimize`: the metric over the steps, and the log-mel before and after.
import AuscultReport
import AuscultTensor
import Foundation

public enum OptimizationReport {
    /// `start` and `result` are log-mel windows `[n_mels, 2F]`; `frames` mel frames are drawn.
    public static func page(
        title: String, subtitle: String, values: [Double], start: Tensor, result: Tensor, frames: Int
    ) -> HTMLDocument {
        var doc = HTMLDocument(title: title, subtitle: subtitle)
        doc.section(
            "Metric",
            Plot.lines(
                [(name: "metric", points: values.enumerated().map { (Double($0.offset), $0.element) })],
                title: "The metric before each Adam step", xLabel: "step", yLabel: "metric"),
            note: String(
                format: "From %.4f to %.4f in %d steps.", values.first ?? 0, values.last ?? 0, values.count - 1))
        let bins = start.shape[0], width = start.shape[1], step = max(1, (frames + 299) / 300)
        func pooled(_ t: Tensor) -> [[Double]] {
            let v = t.scalars
            return (0..<bins).reversed().map { b in
                stride(from: 0, to: frames, by: step).map { c in
                    let cols = c..<min(frames, c + step)
                    return cols.reduce(0.0) { $0 + Double(v[b * width + $1]) } / Double(cols.count)
                }
            }
        }
        let rows = (0..<bins).reversed().map { "mel \($0)" }
        let cols = stride(from: 0, to: frames, by: step).map { String(format: "%.2fs", Double($0) * 0.01) }
        doc.section(
            "Log-mel",
            Plot.heatmap(pooled(start), rowLabels: rows, colLabels: cols, title: "Start (highest bin at the top)")
                + Plot.heatmap(pooled(result), rowLabels: rows, colLabels: cols, title: "Optimised"),
            note: "Whisper's normalised log-mel; columns pool \(step) frames of 10 ms.")
        return doc
    }
}
