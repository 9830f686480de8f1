// PrefillTimeline+SVG: a parallel prefill's timeline as a Gantt chart, in SVG for the notebook and in text for the
// terminal, drawn like the other figures (same writer, ticks, fonts and palette).

import Foundation
import LatheLang
import LatheTechniques

extension PrefillTimeline {
  /// Colours by segment kind: compute blue, wait red, send green (tab10).
  static let colours: [Segment.Kind: String] = [.compute: Figure.palette[0], .wait: Figure.palette[3], .send: Figure.palette[2]]

  /// One row per process on a time axis in ms: compute and wait bars fill the row, each layer's segments their own
  /// bar with a thin gap, and sends run as a thin bar along the bottom, since they overlap compute. A legend names
  /// the colours. The same timeline gives the same bytes.
  ///
  ///     let svg = try simulated.timeline.svg(title: "KVR-S, p = 4, 4096 tokens")
  public func svg(title: String = "prefill timeline", width: Int = 720) throws -> String {
    let total = try checkedEnd()
    guard (300...10_000).contains(width) else {
      throw LatheError("timeline: a width of \(width) pixels is out of range (300...10000)")
    }
    let rowHeight = 26.0, w = Double(width)
    let legendY = title.isEmpty ? 16.0 : 46.0
    let top = legendY + 16, bottom = top + rowHeight * Double(processes.count)
    let height = Int((bottom + 54).rounded(.up))
    let labelWidth = Double("proc \(processes.count - 1)".count) * Figure.characterWidth
    let left = 14 + labelWidth + 8, right = w - 20
    let axis = Figure.linearTicks(0, total * 1000, target: max(3, Int((right - left) / 90)))
    func px(_ seconds: Double) -> Double { left + (seconds * 1000 - axis.lo) / (axis.hi - axis.lo) * (right - left) }
    let n = SVGWriter.number

    var out = SVGWriter()
    out.line("<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"\(width)\" height=\"\(height)\" "
      + "viewBox=\"0 0 \(width) \(height)\" font-family=\"DejaVu Sans, Helvetica, Arial, sans-serif\" font-size=\"12\">")
    if !title.isEmpty { out.line("<title>\(SVGWriter.escape(title))</title>") }
    out.line("<rect width=\"\(width)\" height=\"\(height)\" fill=\"#ffffff\"/>")
    out.line("<g stroke=\"#e4e4e4\" stroke-width=\"1\">")
    for v in axis.values { out.line("<line x1=\"\(n(px(v / 1000)))\" y1=\"\(n(top))\" x2=\"\(n(px(v / 1000)))\" y2=\"\(n(bottom))\"/>") }
    out.line("</g>")
    for (i, row) in processes.enumerated() {
      let y = top + rowHeight * Double(i)
      for kind in Segment.Kind.allCases {
        let (y0, h) = kind == .send ? (y + rowHeight - 8, 4.0) : (y + 4, rowHeight - 13)
        out.line("<g class=\"\(kind.rawValue)\" fill=\"\(PrefillTimeline.colours[kind] ?? "#000000")\">")
        for s in row where s.kind == kind && s.end > s.start {
          // Each segment keeps at least a third of a pixel, and touching ones a hairline gap between them.
          let x0 = px(s.start), x1 = px(s.end), gap = x1 - x0 > 2 ? 0.5 : 0
          out.line("<rect x=\"\(n(x0))\" y=\"\(n(y0))\" width=\"\(n(max(x1 - x0 - gap, 0.3)))\" height=\"\(n(h))\"/>")
        }
        out.line("</g>")
      }
    }
    out.line("<g stroke=\"#444444\" stroke-width=\"1\">")
    for v in axis.values { out.line("<line x1=\"\(n(px(v / 1000)))\" y1=\"\(n(bottom))\" x2=\"\(n(px(v / 1000)))\" y2=\"\(n(bottom + 5))\"/>") }
    out.line("<rect x=\"\(n(left))\" y=\"\(n(top))\" width=\"\(n(right - left))\" height=\"\(n(bottom - top))\" fill=\"none\"/>")
    out.line("</g>")
    out.line("<g fill=\"#333333\" font-size=\"11\">")
    for (v, label) in zip(axis.values, axis.labels) { out.text(label, x: px(v / 1000), y: bottom + 18, attributes: "text-anchor=\"middle\"") }
    for i in processes.indices {
      out.text("proc \(i)", x: left - 8, y: top + rowHeight * (Double(i) + 0.5) + 4, attributes: "text-anchor=\"end\"")
    }
    out.line("</g>")
    out.line("<g class=\"legend\" fill=\"#222222\">")
    var x = left
    for kind in Segment.Kind.allCases {
      out.line("<rect x=\"\(n(x))\" y=\"\(n(legendY - 9))\" width=\"12\" height=\"12\" fill=\"\(PrefillTimeline.colours[kind] ?? "#000000")\"/>")
      out.text(kind.rawValue, x: x + 17, y: legendY + 1)
      x += 17 + Double(kind.rawValue.count) * Figure.characterWidth + 18
    }
    out.line("</g>")
    out.line("<g fill=\"#222222\" text-anchor=\"middle\">")
    if !title.isEmpty {
      out.text(SVGWriter.fit(title, width: w - 20, characterWidth: 8.5), x: w / 2, y: 26, attributes: "font-size=\"15\"")
    }
    out.text("time (ms)", x: (left + right) / 2, y: bottom + 42)
    out.line("</g>")
    out.line("</svg>")
    return out.text
  }

  /// The timeline for the terminal: per process a bar of `columns` characters (█ compute, ░ wait, by what fills
  /// most of each column's time) and its totals in ms.
  ///
  ///     proc 0 │██████████████████  │ compute 9.1 ms, wait 0 ms, send 1.2 ms
  public func text(columns: Int = 48) throws -> String {
    let total = try checkedEnd(), columns = min(max(columns, 8), 500)
    let label = "proc \(processes.count - 1)".count
    var lines: [String] = []
    for (i, row) in processes.enumerated() {
      var busy = [Double](repeating: 0, count: columns), waiting = busy
      for s in row where s.kind != .send {
        for c in 0..<columns {
          let lo = total * Double(c) / Double(columns), hi = total * Double(c + 1) / Double(columns)
          let overlap = max(0, min(hi, s.end) - max(lo, s.start))
          if s.kind == .compute { busy[c] += overlap } else { waiting[c] += overlap }
        }
      }
      let width = total / Double(columns)
      let bar = (0..<columns).map { c -> Character in
        busy[c] + waiting[c] < width / 2 ? " " : busy[c] >= waiting[c] ? "█" : "░"
      }
      func ms(_ kind: Segment.Kind) -> String { String(format: "%.3g ms", seconds(kind, process: i) * 1000) }
      let name = "proc \(i)".padding(toLength: label, withPad: " ", startingAt: 0)
      lines.append("\(name) │\(String(bar))│ compute \(ms(.compute)), wait \(ms(.wait)), send \(ms(.send))")
    }
    lines.append(String(repeating: " ", count: label) + " 0" + String(repeating: " ", count: max(1, columns - 2))
      + Figure.compact(total * 1000) + " ms")
    return lines.joined(separator: "\n")
  }

  /// The end time, after checking there is something finite to draw.
  private func checkedEnd() throws -> Double {
    guard !processes.isEmpty, processes.count <= 1024 else {
      throw LatheError("timeline: a prefill timeline needs 1...1024 processes, got \(processes.count)")
    }
    for s in processes.joined() where !(s.start.isFinite && s.end.isFinite && s.start >= 0 && s.end >= s.start) {
      throw LatheError("timeline: a segment from \(s.start) to \(s.end) s is not a finite interval from time 0 on")
    }
    let end = self.end
    guard end > 0 else { throw LatheError("timeline: the prefill has no timed segments") }
    return end
  }
}
