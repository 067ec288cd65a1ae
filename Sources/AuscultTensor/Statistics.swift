// Order statistics the layers above share, over arrays of Double.

/// Order statistics over plain numbers (Spearman's ρ for attribution and head scores, the median
/// of sweep summaries and word durations).
public enum Statistics {
    /// The median (numpy's: the mean of the two middle values for an even count); 0 when empty.
    public static func median(_ x: [Double]) -> Double {
        guard !x.isEmpty else { return 0 }
        let s = x.sorted(), n = s.count
        return n % 2 == 1 ? s[n / 2] : (s[n / 2 - 1] + s[n / 2]) / 2
    }

    /// Spearman's ρ: Pearson's correlation of the ranks (ties share their mean rank); 0 when
    /// either side is constant.
    public static func spearman(_ a: [Double], _ b: [Double]) -> Double { spearmanIfDefined(a, b) ?? 0 }

    /// Spearman's ρ, nil when either side is constant (or there are fewer than two values).
    public static func spearmanIfDefined(_ a: [Double], _ b: [Double]) -> Double? {
        precondition(a.count == b.count, "spearman: \(a.count) against \(b.count) values")
        guard a.count >= 2 else { return nil }
        let ra = ranks(a), rb = ranks(b), n = Double(a.count)
        let ma = ra.reduce(0, +) / n, mb = rb.reduce(0, +) / n
        var sab = 0.0, saa = 0.0, sbb = 0.0
        for i in ra.indices {
            sab += (ra[i] - ma) * (rb[i] - mb); saa += (ra[i] - ma) * (ra[i] - ma); sbb += (rb[i] - mb) * (rb[i] - mb)
        }
        return saa > 0 && sbb > 0 ? sab / (saa * sbb).squareRoot() : nil
    }

    /// 1-based ranks, ties given the mean of the ranks they span.
    public static func ranks(_ x: [Double]) -> [Double] {
        let order = x.indices.sorted { x[$0] < x[$1] }
        var out = [Double](repeating: 0, count: x.count)
        var i = 0
        while i < order.count {
            var j = i
            while j + 1 < order.count && x[order[j + 1]] == x[order[i]] { j += 1 }
            for k in i...j { out[order[k]] = Double(i + j) / 2 + 1 }
            i = j + 1
        }
        return out
    }
}
