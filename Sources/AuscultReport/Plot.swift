// Plots as inline SVG (bar and line charts, small heatmaps as rectangles) and large heatmaps as
// PNG data URIs inside SVG (a 1500×1500 attention pattern would be 2 M rectangles).
import CZlib
import Foundation

/// A colour as 8-bit RGB.
public struct RGB: Sendable {
    public var r: UInt8, g: UInt8, b: UInt8
    public var hex: String { String(format: "#%02x%02x%02x", r, g, b) }
}

/// Colour scales for heatmaps.
public enum ColorScale: Sendable {
    /// Sequential (viridis-like), 0 → dark blue, 1 → yellow.
    case sequential
    /// Diverging, −1 → blue, 0 → white, 1 → red.
    case diverging

    static let viridis: [(Double, Double, Double)] = [
        (68, 1, 84), (72, 40, 120), (62, 74, 137), (49, 104, 142), (38, 130, 142),
        (31, 158, 137), (53, 183, 121), (109, 205, 89), (180, 222, 44), (253, 231, 37),
    ]

    /// The colour of `t` (0…1 for sequential, −1…1 for diverging; clamped).
    public func color(_ t: Double) -> RGB {
        switch self {
        case .sequential:
            let x = min(1, max(0, t.isFinite ? t : 0)) * Double(Self.viridis.count - 1)
            let i = min(Int(x), Self.viridis.count - 2), f = x - Double(i)
            let a = Self.viridis[i], b = Self.viridis[i + 1]
            return RGB(
                r: UInt8(a.0 + (b.0 - a.0) * f), g: UInt8(a.1 + (b.1 - a.1) * f), b: UInt8(a.2 + (b.2 - a.2) * f))
        case .diverging:
            let x = min(1, max(-1, t.isFinite ? t : 0))
            if x >= 0 { return RGB(r: 255, g: UInt8(255 - 190 * x), b: UInt8(255 - 200 * x)) }
            return RGB(r: UInt8(255 + 200 * x), g: UInt8(255 + 150 * x), b: 255)
        }
    }
}

/// Inline SVG charts. Every chart is an `<svg class="plot">` the report's check counts.
public enum Plot {
    static func fmt(_ v: Double) -> String {
        if v == 0 { return "0" }
        if v == v.rounded() && abs(v) < 1e9 { return String(format: "%.0f", v) }  // counts
        if abs(v) >= 100 { return String(format: "%.0f", v) }
        if abs(v) >= 1 { return String(format: "%.2f", v) }
        return String(format: "%.3f", v)
    }

    /// Horizontal bars, one per label, longest first as given.
    public static func bars(
        _ items: [(label: String, value: Double)], title: String, unit: String = "",
        width: Int = 640, color: String = "#3d6fb6"
    ) -> String {
        let rowH = 18, left = 260, top = 28, h = top + rowH * items.count + 24
        let maxV = max(items.map { abs($0.value) }.max() ?? 1, 1e-12)
        let plotW = Double(width - left - 110)  // room for the value label after the longest bar
        var s =
            "<svg class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(h)\" viewBox=\"0 0 "
            + "\(width) \(h)\">"
        s += "<text x=\"4\" y=\"16\" font-size=\"13\" font-weight=\"600\">\(htmlEscape(title))</text>"
        for (i, it) in items.enumerated() {
            let y = top + i * rowH
            let w = max(1, abs(it.value) / maxV * plotW)
            s +=
                "<text x=\"\(left - 6)\" y=\"\(y + 12)\" font-size=\"11\" "
                + "text-anchor=\"end\">\(htmlEscape(it.label))</text>"
            s +=
                "<rect x=\"\(left)\" y=\"\(y + 2)\" width=\"\(String(format: "%.1f", w))\" height=\"\(rowH - 5)\" "
                + "fill=\"\(it.value < 0 ? "#b3261e" : color)\"><title>\(htmlEscape(it.label)): "
                + "\(fmt(it.value))\(unit)</title></rect>"
            s +=
                "<text x=\"\(left + Int(w) + 4)\" y=\"\(y + 12)\" font-size=\"10.5\" "
                + "fill=\"#444\">\(fmt(it.value))\(unit)</text>"
        }
        return s + "</svg>"
    }

    /// Line chart of several series over a shared numeric x axis; with `connect: false`, a
    /// scatter plot (the points alone).
    public static func lines(
        _ series: [(name: String, points: [(Double, Double)])], title: String, xLabel: String,
        yLabel: String, width: Int = 520, height: Int = 300, connect: Bool = true
    ) -> String {
        let palette = ["#3d6fb6", "#d9822b", "#2e9e6a", "#b3261e", "#7b4fb0", "#5b6573"]
        let all = series.flatMap(\.points)
        let xs = all.map(\.0), ys = all.map(\.1)
        let x0 = xs.min() ?? 0, x1 = max(xs.max() ?? 1, x0 + 1e-9)
        let y0 = min(0, ys.min() ?? 0), y1 = max(ys.max() ?? 1, y0 + 1e-9)
        let l = 56.0, r = 12.0, t = 30.0, b = 42.0
        let pw = Double(width) - l - r, ph = Double(height) - t - b
        func px(_ x: Double) -> Double { l + (x - x0) / (x1 - x0) * pw }
        func py(_ y: Double) -> Double { t + ph - (y - y0) / (y1 - y0) * ph }
        var s =
            "<svg class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" "
            + "viewBox=\"0 0 \(width) \(height)\">"
        s += "<text x=\"4\" y=\"16\" font-size=\"13\" font-weight=\"600\">\(htmlEscape(title))</text>"
        s +=
            "<line x1=\"\(l)\" y1=\"\(t + ph)\" x2=\"\(l + pw)\" y2=\"\(t + ph)\" stroke=\"#888\"/><line x1=\"\(l)\" "
            + "y1=\"\(t)\" x2=\"\(l)\" y2=\"\(t + ph)\" stroke=\"#888\"/>"
        for k in 0...4 {
            let yv = y0 + (y1 - y0) * Double(k) / 4
            s += "<text x=\"\(l - 4)\" y=\"\(py(yv) + 4)\" font-size=\"10\" text-anchor=\"end\">\(fmt(yv))</text>"
            s += "<line x1=\"\(l)\" y1=\"\(py(yv))\" x2=\"\(l + pw)\" y2=\"\(py(yv))\" stroke=\"#eee\"/>"
        }
        let xticks = Set(xs).sorted()
        let stepX = max(1, xticks.count / 10)
        for (i, xv) in xticks.enumerated() where i % stepX == 0 {
            s += "<text x=\"\(px(xv))\" y=\"\(t + ph + 14)\" font-size=\"10\" text-anchor=\"middle\">\(fmt(xv))</text>"
        }
        s +=
            "<text x=\"\(l + pw / 2)\" y=\"\(height - 6)\" font-size=\"11\" "
            + "text-anchor=\"middle\">\(htmlEscape(xLabel))</text>"
        s +=
            "<text x=\"12\" y=\"\(t + ph / 2)\" font-size=\"11\" text-anchor=\"middle\" transform=\"rotate(-90 12 "
            + "\(t + ph / 2))\">\(htmlEscape(yLabel))</text>"
        for (k, ser) in series.enumerated() {
            let c = palette[k % palette.count]
            let d = ser.points.enumerated().map { (i, p) in
                (i == 0 ? "M" : "L") + String(format: "%.1f %.1f", px(p.0), py(p.1))
            }.joined(separator: " ")
            if connect { s += "<path d=\"\(d)\" fill=\"none\" stroke=\"\(c)\" stroke-width=\"2\"/>" }
            for p in ser.points {
                s +=
                    "<circle cx=\"\(String(format: "%.1f", px(p.0)))\" cy=\"\(String(format: "%.1f", py(p.1)))\" "
                    + "r=\"3\" fill=\"\(c)\"><title>\(htmlEscape(ser.name)) \(fmt(p.0)): "
                    + "\(fmt(p.1))</title></circle>"
            }
            s +=
                "<rect x=\"\(Int(l) + 10 + k * 130)\" y=\"\(Int(t) - 12)\" width=\"10\" height=\"10\" "
                + "fill=\"\(c)\"/><text x=\"\(Int(l) + 24 + k * 130)\" y=\"\(Int(t) - 3)\" "
                + "font-size=\"10.5\">\(htmlEscape(ser.name))</text>"
        }
        return s + "</svg>"
    }

    /// Heatmap of `values[row][col]` with labelled axes. `range` maps values to colours
    /// (sequential: lo…hi → 0…1; diverging: ±max|range| → ±1). Up to 2 500 cells are SVG
    /// rectangles with tooltips (`cellText` for each cell); larger ones, or any when `image` is
    /// set (pages with hundreds of small maps), become one PNG.
    public static func heatmap(
        _ values: [[Double]], rowLabels: [String], colLabels: [String], title: String,
        scale: ColorScale = .sequential, range: (Double, Double)? = nil,
        cellText: ((Int, Int) -> String)? = nil, cell: Int = 0, maxWidth: Int = 1100, image: Bool = false
    ) -> String {
        let nr = values.count, nc = values.first?.count ?? 0
        let finite = values.flatMap { $0 }.filter(\.isFinite)
        let lo = range?.0 ?? (finite.min() ?? 0), hi = range?.1 ?? (finite.max() ?? 1)
        func t(_ v: Double) -> Double {
            switch scale {
            case .sequential: return hi > lo ? (v - lo) / (hi - lo) : 0
            case .diverging: let m = max(abs(lo), abs(hi), 1e-12); return v / m
            }
        }
        let left = min(180, 8 + 7 * (rowLabels.map(\.count).max() ?? 0)), top = 30
        let labelRoom = min(90, 8 + 6 * (colLabels.map(\.count).max() ?? 0))
        let cw = cell > 0 ? cell : max(2, min(28, (maxWidth - left - 20) / max(nc, 1)))
        let ch = cell > 0 ? cell : max(2, min(22, 520 / max(nr, 1)))
        let w = max(left + cw * nc + 20, left + 200), h = top + ch * nr + labelRoom + 26
        var s =
            "<svg class=\"plot\" xmlns=\"http://www.w3.org/2000/svg\" width=\"\(w)\" height=\"\(h)\" viewBox=\"0 0 "
            + "\(w) \(h)\">"
        s += "<text x=\"4\" y=\"16\" font-size=\"13\" font-weight=\"600\">\(htmlEscape(title))</text>"
        if nr * nc <= 2500 && !image {
            for i in 0..<nr {
                for j in 0..<nc {
                    let v = values[i][j]
                    let tip = cellText?(i, j) ?? "\(rowLabels[i]) × \(colLabels[j]): \(fmt(v))"
                    s +=
                        "<rect x=\(left + j * cw) y=\(top + i * ch) width=\(cw) height=\(ch) "
                        + "fill=\"\(scale.color(t(v)).hex)\"><title>\(htmlEscape(tip))</title></rect>"
                }
            }
        } else {
            var rgb = [UInt8](repeating: 0, count: nr * nc * 3)
            for i in 0..<nr {
                for j in 0..<nc {
                    let c = scale.color(t(values[i][j]))
                    rgb[(i * nc + j) * 3] = c.r; rgb[(i * nc + j) * 3 + 1] = c.g; rgb[(i * nc + j) * 3 + 2] = c.b
                }
            }
            let png = PNG.encode(width: nc, height: nr, rgb: rgb).base64EncodedString()
            s +=
                "<image x=\"\(left)\" y=\"\(top)\" width=\"\(cw * nc)\" height=\"\(ch * nr)\" "
                + "preserveAspectRatio=\"none\" style=\"image-rendering:pixelated\" "
                + "href=\"data:image/png;base64,\(png)\"/>"
        }
        let rstep = max(1, Int((12.0 / Double(ch)).rounded(.up)))
        for (i, l) in rowLabels.enumerated() where i % rstep == 0 {
            s +=
                "<text x=\"\(left - 4)\" y=\"\(top + i * ch + ch / 2 + 4)\" font-size=\"10\" "
                + "text-anchor=\"end\">\(htmlEscape(l))</text>"
        }
        let cstep = max(1, Int((12.0 / Double(cw)).rounded(.up)))
        for (j, l) in colLabels.enumerated() where j % cstep == 0 {
            let x = left + j * cw + cw / 2, y = top + nr * ch + 6
            s +=
                "<text x=\"\(x)\" y=\"\(y)\" font-size=\"10\" text-anchor=\"end\" transform=\"rotate(-60 \(x) "
                + "\(y))\">\(htmlEscape(l))</text>"
        }
        // Colour bar.
        let by = h - 14
        for k in 0..<20 {
            let f = Double(k) / 19
            let c = scale == .sequential ? scale.color(f) : scale.color(f * 2 - 1)
            s += "<rect x=\"\(left + k * 8)\" y=\"\(by)\" width=\"8\" height=\"8\" fill=\"\(c.hex)\"/>"
        }
        let lv = scale == .sequential ? lo : -max(abs(lo), abs(hi)),
            hv = scale == .sequential ? hi : max(abs(lo), abs(hi))
        s +=
            "<text x=\"\(left - 4)\" y=\"\(by + 8)\" font-size=\"9.5\" text-anchor=\"end\">\(fmt(lv))</text><text "
            + "x=\"\(left + 164)\" y=\"\(by + 8)\" font-size=\"9.5\">\(fmt(hv))</text>"
        return s + "</svg>"
    }
}

extension ColorScale: Equatable {}

/// A minimal PNG writer (8-bit RGB, one IDAT, zlib from the system).
public enum PNG {
    public static func encode(width: Int, height: Int, rgb: [UInt8]) -> Data {
        precondition(rgb.count == width * height * 3)
        var raw = [UInt8]()
        raw.reserveCapacity((width * 3 + 1) * height)
        for y in 0..<height {
            raw.append(0)
            raw.append(contentsOf: rgb[(y * width * 3)..<((y + 1) * width * 3)])
        }
        var destLen = compressBound(uLong(raw.count))
        var packed = [UInt8](repeating: 0, count: Int(destLen))
        _ = compress2(&packed, &destLen, raw, uLong(raw.count), 6)
        packed.removeLast(packed.count - Int(destLen))
        var out = Data([0x89, 0x50, 0x4E, 0x47, 0x0D, 0x0A, 0x1A, 0x0A])
        func bigEndianBytes(_ v: UInt32) -> [UInt8] { (0..<4).map { UInt8(truncatingIfNeeded: v >> (24 - 8 * $0)) } }
        func chunk(_ type: String, _ body: [UInt8]) {
            out.append(contentsOf: bigEndianBytes(UInt32(body.count)))
            let tb = Array(type.utf8) + body
            out.append(contentsOf: tb)
            out.append(contentsOf: bigEndianBytes(UInt32(crc32(0, tb, uInt(tb.count)))))
        }
        var ihdr = [UInt8]()
        for v in [UInt32(width), UInt32(height)] { ihdr += bigEndianBytes(v) }
        ihdr += [8, 2, 0, 0, 0]
        chunk("IHDR", ihdr)
        chunk("IDAT", packed)
        chunk("IEND", [])
        return out
    }
}
