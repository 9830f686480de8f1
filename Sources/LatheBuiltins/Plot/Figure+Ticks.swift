// Figure+Ticks: axis ticks at 1-2-5 steps or decades, and compact number labels ("0.25", "20k", "1e-5").

import Foundation

extension Figure {
  /// An axis: its bounds and the labelled tick values between them (both ends included on a linear axis).
  public struct Ticks: Equatable, Sendable {
    public var lo: Double, hi: Double
    public var values: [Double]
    public var labels: [String]
  }

  /// The step of the form {1, 2, 5} × 10^k that cuts `span` into the number of parts closest to `target`
  /// (the larger step on a tie).
  ///
  ///     Figure.niceStep(105_000, target: 5) == 20_000
  public static func niceStep(_ span: Double, target: Int) -> Double {
    let target = Double(max(target, 1)), raw = span / target
    guard raw.isFinite, raw > 0 else { return 0 }
    let magnitude = pow(10, (log10(raw)).rounded(.down))
    var best = 10 * magnitude
    for candidate in [5, 2, 1].map({ $0 * magnitude }) where abs(span / candidate - target) < abs(span / best - target) {
      best = candidate
    }
    return best
  }

  /// A range that is safe to divide by: a constant (or nearly constant) range is widened around its centre.
  static func widened(_ lo: Double, _ hi: Double) -> (lo: Double, hi: Double) {
    let scale = max(abs(lo), abs(hi))
    if hi - lo > scale * 1e-9, (hi - lo).isFinite { return (lo, hi) }
    let centre = lo / 2 + hi / 2
    var half = abs(centre) / 10
    if !(centre + half > centre - half) { half = 1 }     // zero, or so small that a tenth of it rounds away
    return (centre - half, centre + half)
  }

  /// About `target` ticks at a 1-2-5 step inside [lo, hi]; the bounds stay (widened only when lo == hi).
  ///
  ///     Figure.linearTicks(0, 0.9, target: 5).labels == ["0.0", "0.2", "0.4", "0.6", "0.8"]
  public static func linearTicks(_ lo: Double, _ hi: Double, target: Int = 6) -> Ticks {
    let (lo, hi) = widened(lo, hi)
    let step = niceStep(hi - lo, target: target)
    let first = (lo / step - 1e-9).rounded(.up), last = (hi / step + 1e-9).rounded(.down)
    guard step > 0, first.isFinite, last.isFinite, last >= first, last - first <= 1000 else {
      return Ticks(lo: lo, hi: hi, values: [lo, hi], labels: [compact(lo), compact(hi)])
    }
    let values = (0...Int(last - first)).map { (first + Double($0)) * step }
    return Ticks(lo: lo, hi: hi, values: values, labels: axisLabels(values, step: step))
  }

  /// Ticks at powers of ten inside [lo, hi] (both > 0): every few decades on a wide range, with 2× and 5× between
  /// on a narrow one, and linear ticks when fewer than two of those fall inside.
  public static func logTicks(_ lo: Double, _ hi: Double) -> Ticks {
    guard lo > 0, hi > lo, hi.isFinite else { return linearTicks(lo, hi) }
    let low = log10(lo).rounded(.down), high = log10(hi).rounded(.up)
    let decades = high - low
    let stride = max(1, (decades / 8).rounded(.up))
    var values: [Double] = []
    var e = low
    while e <= high {
      let decade = pow(10, e)
      for v in decades <= 2 ? [decade, 2 * decade, 5 * decade] : [decade] where v >= lo * (1 - 1e-9) && v <= hi * (1 + 1e-9) {
        values.append(v)
      }
      e += stride
    }
    guard values.count >= 2 else {
      let linear = linearTicks(lo, hi, target: 4)
      return Ticks(lo: lo, hi: hi, values: linear.values, labels: linear.labels)
    }
    return Ticks(lo: lo, hi: hi, values: values, labels: values.map(compact))
  }

  /// [lo, hi] with `fraction` of its span added at each end (in log space on a log axis), so that no point sits on
  /// the frame.
  static func padded(_ lo: Double, _ hi: Double, fraction: Double, log: Bool = false) -> (lo: Double, hi: Double) {
    if log {
      let (a, b) = widened(log10(lo), log10(hi))
      let pad = (b - a) * fraction
      return (pow(10, a - pad), pow(10, b + pad))
    }
    let (a, b) = widened(lo, hi)
    let pad = (b - a) * fraction
    return (a - pad, b + pad)
  }

  /// Labels for ticks `step` apart, all with the same number of decimals: "0.5", "1.0"; large values in k, M, G,
  /// T ("20k"); tiny or huge ones in scientific notation ("1e-5").
  static func axisLabels(_ values: [Double], step: Double) -> [String] {
    let largest = values.map(abs).max() ?? 0
    if largest >= 1e15 || largest < 1e-4 { return values.map(compact) }
    if largest >= 1e4 {
      let units: [(Double, String)] = [(1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k")]
      if let (unit, suffix) = units.first(where: { largest >= $0.0 }), decimals(for: step / unit) <= 2 {
        let d = decimals(for: step / unit)
        return values.map { $0 == 0 || abs($0) < step / 2 ? "0" : fixed($0 / unit, d) + suffix }
      }
    }
    let d = decimals(for: step)
    return values.map { fixed(abs($0) < step / 2 ? 0 : $0, d) }
  }

  /// Decimals that show a step of `step` exactly: 0 for 1, 2, 5, 10...; 1 for 0.1, 0.2, 0.5; and so on.
  static func decimals(for step: Double) -> Int {
    guard step > 0, step.isFinite else { return 0 }
    return max(0, -Int((log10(step) + 1e-9).rounded(.down)))
  }

  static func fixed(_ v: Double, _ decimals: Int) -> String {
    let s = String(format: "%.\(min(decimals, 17))f", v)
    return s.hasPrefix("-") && s.dropFirst().allSatisfy({ $0 == "0" || $0 == "." }) ? String(s.dropFirst()) : s
  }

  /// A number in at most 4 significant digits (3 in scientific notation), without trailing zeros: "0.25", "1234",
  /// "12.35k", "1.5e-5", "nan".
  public static func compact(_ v: Double) -> String {
    guard v.isFinite else { return v.isNaN ? "nan" : v > 0 ? "inf" : "-inf" }
    if v == 0 { return "0" }
    let a = abs(v)
    func trimmed(_ s: String) -> String {
      guard s.contains(".") else { return s }
      var t = Substring(s)
      while t.hasSuffix("0") { t = t.dropLast() }
      if t.hasSuffix(".") { t = t.dropLast() }
      return String(t)
    }
    if a >= 1e15 || a < 1e-4 {
      // printf rounds the mantissa to 3 digits and handles subnormals, where pow(10, exponent) would not.
      let parts = String(format: "%.2e", v).split(separator: "e")
      guard parts.count == 2, let exponent = Int(parts[1]) else { return String(format: "%.2e", v) }
      return trimmed(String(parts[0])) + "e\(exponent)"
    }
    /// v in 4 significant digits, or nil when that rounds up to 10000 (so a larger unit should show it).
    func fourDigits(_ v: Double) -> String? {
      let digits = max(0, 3 - Int(log10(abs(v)).rounded(.down)))
      let s = trimmed(fixed(v, digits))
      return abs(Double(s) ?? 0) >= 1e4 ? nil : s
    }
    if a < 1e4, let s = fourDigits(v) { return s }
    for (unit, suffix) in [(1e3, "k"), (1e6, "M"), (1e9, "G"), (1e12, "T")] {
      if let s = fourDigits(v / unit), abs(Double(s) ?? 0) < 1000 || unit == 1e12 { return s + suffix }
    }
    return String(format: "%.0f", v)
  }
}
