// Figure+SVG: a figure as a standalone, static SVG document (no scripts, styles or links; escaped text).

import Foundation
import LatheLang

extension Figure {
  /// Series colours, in order (matplotlib's tab10).
  static let palette = ["#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                        "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf"]

  /// The plot area in pixels, and the maps from data to pixels.
  struct Frame {
    var left: Double, right: Double, top: Double, bottom: Double
    var x: Ticks, y: Ticks
    var logY: Bool
    var width: Double { right - left }
    var height: Double { bottom - top }
    func px(_ v: Double) -> Double { left + (v - x.lo) / (x.hi - x.lo) * width }
    func py(_ v: Double) -> Double {
      let (t, lo, hi) = logY ? (log10(v), log10(y.lo), log10(y.hi)) : (v, y.lo, y.hi)
      return bottom - (t - lo) / (hi - lo) * height
    }
  }

  /// Approximate width of one character of 12px sans-serif text, for laying out labels.
  static let characterWidth = 7.0

  /// The figure as SVG: the same figure gives the same bytes.
  ///
  ///     let svg = try Figure(.scatter, series: [.init(name: "", xs: [1, 2], ys: [3, 4])]).svg()
  public func svg() throws -> String {
    let layout = try self.layout()
    let w = Double(width), h = Double(height)
    let top = title.isEmpty ? 16.0 : 40.0
    let bottom = h - (xLabel.isEmpty ? 34 : 54)
    let y = yAxis(layout, target: max(3, Int((bottom - top) / 55)))
    let yLabelWidth = Double(y.labels.map(\.count).max() ?? 1) * Figure.characterWidth
    let left = 14 + yLabelWidth + 8 + (yLabel.isEmpty ? 0 : 22)
    let right = w - 20
    let x: Ticks
    if kind == .bar {
      x = Ticks(lo: -0.5, hi: Double(categories.count) - 0.5, values: [], labels: [])
    } else {
      let (lo, hi) = Figure.padded(layout.xMin, layout.xMax, fraction: kind == .scatter ? 0.04 : 0)
      x = Figure.linearTicks(lo, hi, target: max(3, Int((right - left) / 90)))
    }
    let frame = Frame(left: left, right: right, top: top, bottom: bottom, x: x, y: y, logY: logY)

    var out = SVGWriter()
    out.line("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" "
      + "viewBox=\"0 0 \(width) \(height)\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">")
    if !title.isEmpty { out.line("<title>\(SVGWriter.escape(title))</title>") }
    out.line("<rect width=\"\(width)\" height=\"\(height)\" fill=\"#ffffff\"/>")
    drawAxes(&out, frame)
    switch kind {
    case .line: drawLines(&out, frame, layout)
    case .scatter: drawDots(&out, frame, layout)
    case .bar: drawBars(&out, frame, layout)
    }
    if kind != .bar, series.count > 1 { drawLegend(&out, frame, layout) }
    out.line("<g fill=\"#222222\" text-anchor=\"middle\">")
    if !title.isEmpty {
      out.text(SVGWriter.fit(title, width: w - 20, characterWidth: 8.5), x: w / 2, y: 26, attributes: "font-size=\"15\"")
    }
    if !xLabel.isEmpty {
      out.text(SVGWriter.fit(xLabel, width: frame.width, characterWidth: Figure.characterWidth), x: (left + right) / 2, y: h - 12)
    }
    if !yLabel.isEmpty {
      let cy = SVGWriter.number((top + bottom) / 2)
      out.line("<text transform=\"translate(18,\(cy)) rotate(-90)\">"
        + "\(SVGWriter.escape(SVGWriter.fit(yLabel, width: frame.height, characterWidth: Figure.characterWidth)))</text>")
    }
    out.line("</g>")
    out.line("</svg>")
    return out.text
  }

  /// The y axis: the data's range padded by 5% (a bar chart's zero baseline stays on the frame), then ticks.
  private func yAxis(_ layout: Layout, target: Int) -> Ticks {
    if logY {
      let (lo, hi) = Figure.padded(layout.yMin, layout.yMax, fraction: 0.05, log: true)
      return Figure.logTicks(lo, hi)
    }
    var (lo, hi) = Figure.padded(layout.yMin, layout.yMax, fraction: 0.05)
    if kind == .bar, layout.yMin == 0, layout.yMax > 0 { lo = 0 }
    if kind == .bar, layout.yMax == 0, layout.yMin < 0 { hi = 0 }
    return Figure.linearTicks(lo, hi, target: target)
  }

  private func drawAxes(_ out: inout SVGWriter, _ f: Frame) {
    let n = SVGWriter.number
    out.line("<g stroke=\"#e4e4e4\" stroke-width=\"1\">")
    for v in f.y.values { out.line("<line x1=\"\(n(f.left))\" y1=\"\(n(f.py(v)))\" x2=\"\(n(f.right))\" y2=\"\(n(f.py(v)))\"/>") }
    for v in f.x.values { out.line("<line x1=\"\(n(f.px(v)))\" y1=\"\(n(f.top))\" x2=\"\(n(f.px(v)))\" y2=\"\(n(f.bottom))\"/>") }
    out.line("</g>")
    out.line("<g stroke=\"#444444\" stroke-width=\"1\">")
    for v in f.y.values { out.line("<line x1=\"\(n(f.left - 5))\" y1=\"\(n(f.py(v)))\" x2=\"\(n(f.left))\" y2=\"\(n(f.py(v)))\"/>") }
    for v in f.x.values { out.line("<line x1=\"\(n(f.px(v)))\" y1=\"\(n(f.bottom))\" x2=\"\(n(f.px(v)))\" y2=\"\(n(f.bottom + 5))\"/>") }
    out.line("<rect x=\"\(n(f.left))\" y=\"\(n(f.top))\" width=\"\(n(f.width))\" height=\"\(n(f.height))\" fill=\"none\"/>")
    out.line("</g>")
    out.line("<g fill=\"#333333\" font-size=\"11\">")
    for (v, label) in zip(f.y.values, f.y.labels) {
      out.text(label, x: f.left - 8, y: f.py(v) + 4, attributes: "text-anchor=\"end\"")
    }
    for (v, label) in zip(f.x.values, f.x.labels) {
      out.text(label, x: f.px(v), y: f.bottom + 18, attributes: "text-anchor=\"middle\"")
    }
    if kind == .bar { drawCategories(&out, f) }
    out.line("</g>")
  }

  /// Bar labels under their bars: shortened to fit their slot, and only every k-th one when slots are too narrow.
  private func drawCategories(_ out: inout SVGWriter, _ f: Frame) {
    let slot = f.width / Double(max(categories.count, 1))
    let every = max(1, Int((4 * Figure.characterWidth / slot).rounded(.up)))
    for (i, label) in categories.enumerated() where i % every == 0 {
      let room = slot * Double(every) - 4
      out.text(SVGWriter.fit(label, width: room, characterWidth: Figure.characterWidth), x: f.px(Double(i)),
               y: f.bottom + 18, attributes: "text-anchor=\"middle\"")
    }
  }

  private func drawLines(_ out: inout SVGWriter, _ f: Frame, _ layout: Layout) {
    let n = SVGWriter.number
    for (i, runs) in layout.runs.enumerated() where !runs.isEmpty {
      var d = ""
      for run in runs {
        let pixels = Figure.thinned(run.map { (f.px($0.x), f.py($0.y)) }, limit: Int(f.width) * 4)
        for (k, p) in pixels.enumerated() { d += (k == 0 ? (d.isEmpty ? "M" : " M") : " L") + "\(n(p.0)) \(n(p.1))" }
      }
      let colour = Figure.palette[i % Figure.palette.count]
      out.line("<path class=\"series\" d=\"\(d)\" fill=\"none\" stroke=\"\(colour)\" stroke-width=\"1.75\" "
        + "stroke-linejoin=\"round\" stroke-linecap=\"round\"/>")
    }
  }

  private func drawDots(_ out: inout SVGWriter, _ f: Frame, _ layout: Layout) {
    let n = SVGWriter.number
    for (i, runs) in layout.runs.enumerated() where !runs.isEmpty {
      out.line("<g class=\"series\" fill=\"\(Figure.palette[i % Figure.palette.count])\" fill-opacity=\"0.85\">")
      var drawn = Set<Int64>()                 // one dot per pixel is enough: a million points stay a small file
      for p in runs.joined() {
        let x = f.px(p.x), y = f.py(p.y)
        guard x.isFinite, y.isFinite, drawn.insert(Int64(x.rounded()) << 32 | Int64(y.rounded())).inserted else { continue }
        out.line("<circle cx=\"\(n(x))\" cy=\"\(n(y))\" r=\"3\"/>")
      }
      out.line("</g>")
    }
  }

  private func drawBars(_ out: inout SVGWriter, _ f: Frame, _ layout: Layout) {
    let n = SVGWriter.number
    let slot = f.width / Double(max(categories.count, 1)), barWidth = max(1, slot * 0.7)
    out.line("<g class=\"series\" fill=\"\(Figure.palette[0])\">")
    for p in layout.runs.joined().joined() {
      let top = f.py(max(p.y, 0)), base = f.py(min(p.y, 0))
      out.line("<rect x=\"\(n(f.px(p.x) - barWidth / 2))\" y=\"\(n(top))\" width=\"\(n(barWidth))\" "
        + "height=\"\(n(base - top))\"/>")
    }
    out.line("</g>")
    if f.y.lo < 0 {
      out.line("<line x1=\"\(n(f.left))\" y1=\"\(n(f.py(0)))\" x2=\"\(n(f.right))\" y2=\"\(n(f.py(0)))\" stroke=\"#444444\"/>")
    }
  }

  /// The legend, in the corner of the plot area that covers the fewest points (top right on a tie).
  private func drawLegend(_ out: inout SVGWriter, _ f: Frame, _ layout: Layout) {
    let n = SVGWriter.number
    let names = seriesNames.map { SVGWriter.fit($0, width: 160, characterWidth: Figure.characterWidth) }
    let boxWidth = 36 + Double(names.map(\.count).max() ?? 0) * Figure.characterWidth
    let boxHeight = 8 + 18 * Double(names.count)
    let corners = [(f.right - boxWidth - 8, f.top + 8), (f.left + 8, f.top + 8),
                   (f.right - boxWidth - 8, f.bottom - boxHeight - 8), (f.left + 8, f.bottom - boxHeight - 8)]
    var covered = [Int](repeating: 0, count: corners.count)
    let all = layout.runs.joined().joined()
    let every = max(1, all.count / 20_000)          // a sample is enough to choose a corner
    for (k, p) in all.enumerated() where k % every == 0 {
      let x = f.px(p.x), y = f.py(p.y)
      for (i, c) in corners.enumerated() where x >= c.0 - 4 && x <= c.0 + boxWidth + 4 && y >= c.1 - 4 && y <= c.1 + boxHeight + 4 {
        covered[i] += 1
      }
    }
    let best = covered.indices.min { covered[$0] < covered[$1] } ?? 0
    let (x0, y0) = corners[best]
    out.line("<g class=\"legend\">")
    out.line("<rect x=\"\(n(x0))\" y=\"\(n(y0))\" width=\"\(n(boxWidth))\" height=\"\(n(boxHeight))\" fill=\"#ffffff\" "
      + "fill-opacity=\"0.9\" stroke=\"#bbbbbb\"/>")
    for (i, name) in names.enumerated() {
      let colour = Figure.palette[i % Figure.palette.count], cy = y0 + 13 + 18 * Double(i)
      if kind == .scatter {
        out.line("<circle cx=\"\(n(x0 + 17))\" cy=\"\(n(cy))\" r=\"3\" fill=\"\(colour)\"/>")
      } else {
        out.line("<line x1=\"\(n(x0 + 8))\" y1=\"\(n(cy))\" x2=\"\(n(x0 + 26))\" y2=\"\(n(cy))\" stroke=\"\(colour)\" "
          + "stroke-width=\"2\"/>")
      }
      out.text(name, x: x0 + 32, y: cy + 4, attributes: "fill=\"#222222\"")
    }
    out.line("</g>")
  }

  /// A long line's pixels with each run of points in the same pixel column cut to its first, lowest, highest and
  /// last point: the drawing is unchanged, and the file stays small. Shorter lines come back as they are.
  static func thinned(_ points: [(Double, Double)], limit: Int) -> [(Double, Double)] {
    guard points.count > limit else { return points }
    var out: [(Double, Double)] = [], column: [(Double, Double)] = []
    func flush() {
      guard let first = column.first else { return }
      var low = first, high = first
      var lowIndex = 0, highIndex = 0
      for (i, p) in column.enumerated() {
        if p.1 < low.1 { low = p; lowIndex = i }
        if p.1 > high.1 { high = p; highIndex = i }
      }
      var keep = [0, lowIndex, highIndex, column.count - 1]
      keep.sort()
      var previous = -1
      for i in keep where i != previous { out.append(column[i]); previous = i }
      column = []
    }
    for p in points {
      if let c = column.first, c.0.rounded() != p.0.rounded() { flush() }
      column.append(p)
    }
    flush()
    return out
  }
}

/// Builds SVG text: one element a line, numbers at 0.1 px, text escaped for XML.
struct SVGWriter {
  var text = ""

  mutating func line(_ s: String) { text += s; text += "\n" }

  mutating func text(_ s: String, x: Double, y: Double, attributes: String = "") {
    let extra = attributes.isEmpty ? "" : " " + attributes
    line("<text x=\"\(SVGWriter.number(x))\" y=\"\(SVGWriter.number(y))\"\(extra)>\(SVGWriter.escape(s))</text>")
  }

  /// A coordinate rounded to 0.1: "12", "12.5", never "-0".
  static func number(_ v: Double) -> String {
    guard v.isFinite else { return "0" }
    let r = (v * 10).rounded() / 10
    if r == 0 { return "0" }
    if r == r.rounded(), abs(r) < 1e15 { return String(Int64(r)) }
    return String(format: "%.1f", r)
  }

  /// Text for one line of SVG: Markup.escape with tabs and line breaks as spaces.
  static func escape(_ s: String) -> String { Markup.escape(s, flattenWhitespace: true) }

  /// `s` shortened with "…" so that it takes at most `width` pixels at `characterWidth` per character.
  static func fit(_ s: String, width: Double, characterWidth: Double) -> String {
    let room = max(1, Int(width / characterWidth))
    guard s.count > room else { return s }
    return String(s.prefix(max(0, room - 1))) + "…"
  }
}
