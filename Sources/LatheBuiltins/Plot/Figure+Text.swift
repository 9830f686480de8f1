// Figure+Text: a figure for the terminal: Unicode braille dots (2×4 per character) for lines and scatter, block
// characters for bars, with the y range at the left, the x range below and the title above.

import Foundation

extension Figure {
  /// The figure as text, `columns` characters wide and `rows` high (not counting the ranges and title).
  ///
  ///     print(try Figure(.line, series: [.init(name: "", ys: [1, 3, 2])], title: "t").text(columns: 20, rows: 4))
  public func text(columns: Int = 60, rows: Int = 15) throws -> String {
    let layout = try self.layout()
    let columns = min(max(columns, 10), 500), rows = min(max(rows, 2), 200)
    return kind == .bar ? barText(layout, columns: columns) : dotText(layout, columns: columns, rows: rows)
  }

  /// Braille dot bits by position in a character: `brailleBits[dx][dy]`, dx in 0...1, dy in 0...3 from the top.
  static let brailleBits: [[UInt8]] = [[0x01, 0x02, 0x04, 0x40], [0x08, 0x10, 0x20, 0x80]]

  private func dotText(_ layout: Layout, columns: Int, rows: Int) -> String {
    let width = 2 * columns, height = 4 * rows
    let (xlo, xhi) = Figure.widened(layout.xMin, layout.xMax)
    let (ylo, yhi) = logY ? Figure.widened(log10(layout.yMin), log10(layout.yMax)) : Figure.widened(layout.yMin, layout.yMax)
    /// Dot coordinates of a point: column from the left, row from the top.
    func dot(_ p: Point) -> (Int, Int) {
      let t = logY ? log10(p.y) : p.y
      let u = ((p.x - xlo) / (xhi - xlo) * Double(width - 1)).rounded()
      let v = ((yhi - t) / (yhi - ylo) * Double(height - 1)).rounded()
      func clamp(_ d: Double, _ n: Int) -> Int { d.isFinite ? Int(min(max(d, 0), Double(n - 1))) : 0 }
      return (clamp(u, width), clamp(v, height))
    }
    var cells = [UInt8](repeating: 0, count: columns * rows)
    func set(_ x: Int, _ y: Int) { cells[(y / 4) * columns + x / 2] |= Figure.brailleBits[x % 2][y % 4] }
    for runs in layout.runs {
      for run in runs {
        var previous: (Int, Int)? = nil
        for p in run {
          let d = dot(p)
          if kind == .line, let q = previous { Figure.bresenham(from: q, to: d, set) } else { set(d.0, d.1) }
          previous = d
        }
      }
    }

    let top = Figure.compact(logY ? pow(10, yhi) : yhi), bottom = Figure.compact(logY ? pow(10, ylo) : ylo)
    let gutter = max(top.count, bottom.count)
    func pad(_ s: String) -> String { String(repeating: " ", count: gutter - s.count) + s }
    var lines: [String] = []
    if !title.isEmpty { lines.append(Figure.centred(title, in: gutter + 2 + columns)) }
    if !yLabel.isEmpty || logY {
      lines.append([yLabel, logY ? "(log scale)" : ""].filter { !$0.isEmpty }.joined(separator: " "))
    }
    for r in 0..<rows {
      let label = r == 0 ? top : r == rows - 1 ? bottom : ""
      var line = pad(label) + (label.isEmpty ? " │" : " ┤")
      for c in 0..<columns { line.unicodeScalars.append(Unicode.Scalar(0x2800 + UInt32(cells[r * columns + c])) ?? " ") }
      lines.append(line)
    }
    lines.append(String(repeating: " ", count: gutter) + " └" + String(repeating: "─", count: columns))
    let left = Figure.compact(xlo), right = Figure.compact(xhi)
    var xs = left
    let room = columns - left.count - right.count
    if !xLabel.isEmpty, room >= xLabel.count + 2 {
      let before = (room - xLabel.count) / 2
      xs += String(repeating: " ", count: before) + xLabel + String(repeating: " ", count: room - before - xLabel.count)
      xs += right
    } else {
      xs += String(repeating: " ", count: max(1, room)) + right
      if !xLabel.isEmpty { xs += "  " + xLabel }
    }
    lines.append(String(repeating: " ", count: gutter + 2) + xs)
    if series.count > 1 { lines.append("series: " + seriesNames.joined(separator: ", ")) }
    return lines.joined(separator: "\n")
  }

  /// Calls `set` for every dot on the straight line from `a` to `b`, both ends included.
  static func bresenham(from a: (Int, Int), to b: (Int, Int), _ set: (Int, Int) -> Void) {
    var (x, y) = a
    let dx = abs(b.0 - x), dy = -abs(b.1 - y)
    let sx = x < b.0 ? 1 : -1, sy = y < b.1 ? 1 : -1
    var error = dx + dy
    while true {
      set(x, y)
      if x == b.0 && y == b.1 { return }
      let e2 = 2 * error
      if e2 >= dy { error += dy; x += sx }
      if e2 <= dx { error += dx; y += sy }
    }
  }

  /// The most bars the text form lists; the SVG draws them all.
  static let maxTextBars = 60

  /// Horizontal bars of block characters (to an eighth of a character), one line per label, value after the bar.
  private func barText(_ layout: Layout, columns: Int) -> String {
    let values = series[0].ys
    let names = categories.map { SVGWriter.fit($0, width: 16, characterWidth: 1) }
    let labelWidth = names.map(\.count).max() ?? 0
    let shown = values.map { Figure.compact($0) }
    let area = max(10, columns - labelWidth - 3 - (shown.map(\.count).max() ?? 0))
    let span = layout.yMax - layout.yMin > 0 ? layout.yMax - layout.yMin : 1
    let zero = Int((Double(area) * -layout.yMin / span).rounded())
    let partial = ["", "▏", "▎", "▍", "▌", "▋", "▊", "▉"]
    var lines: [String] = []
    if !title.isEmpty { lines.append(Figure.centred(title, in: labelWidth + 2 + area)) }
    if !xLabel.isEmpty { lines.append(xLabel) }           // the bars lie on their side: x names the labels
    for (i, v) in values.enumerated().prefix(Figure.maxTextBars) {
      var bar = String(repeating: " ", count: zero)
      if v.isFinite, v >= 0 {
        let eighths = max(v > 0 ? 1 : 0, Int((v / span * Double(area) * 8).rounded()))
        bar += String(repeating: "█", count: eighths / 8) + partial[eighths % 8]
      } else if v.isFinite {
        let length = min(zero, max(1, Int((-v / span * Double(area)).rounded())))
        bar = String(repeating: " ", count: zero - length) + String(repeating: "█", count: length)
      }
      let name = names[i]
      lines.append(String(repeating: " ", count: labelWidth - name.count) + name + " │" + bar + " " + shown[i])
    }
    if values.count > Figure.maxTextBars {
      lines.append(String(repeating: " ", count: labelWidth + 2) + "… \(values.count - Figure.maxTextBars) more")
    }
    if !yLabel.isEmpty { lines.append(String(repeating: " ", count: labelWidth + 2) + yLabel) }
    return lines.joined(separator: "\n")
  }

  static func centred(_ s: String, in width: Int) -> String {
    String(repeating: " ", count: max(0, (width - s.count) / 2)) + s
  }
}
