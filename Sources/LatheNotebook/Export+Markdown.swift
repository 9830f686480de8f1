// Export+Markdown: a session as Markdown (code fenced as ```lathe, outputs fenced, markdown cells verbatim) and
// as a percent-format script.
import Foundation

extension NotebookRenderer {
  func renderMarkdown(session: SessionRecord?, items: [RenderItem], options: RenderOptions) -> String {
    var blocks: [String] = []
    if let session { blocks.append("<!-- lathe notebook \(notebook.path): \(Format.sessionSummary(session)) -->") }
    for item in items {
      switch item {
      case .prose(let cell) where cell.kind == .markdown:
        blocks.append(cell.source)
      case .prose(let cell):
        blocks.append(Markdown.fenced(cell.source, info: "text"))
      case .code(let code):
        blocks.append(Markdown.fenced(code.source, info: "lathe"))
        guard let run = code.run else { continue }
        for group in OutputGroup.grouping(run.outputs) { blocks.append(markdownOutput(group)) }
        blocks.append("*In [\(run.seq)] · \(Format.statusLine(run))*")
        if options.showMetrics, options.allMetrics, !code.metrics.isEmpty {
          var table = "| metric | step | value |\n|---|---:|---:|"
          for metric in code.metrics {
            table += "\n| \(Markdown.cell(metric.key)) | \(metric.step) | \(Format.number(metric.value)) |"
          }
          blocks.append(table)
        } else if options.showMetrics, !code.metrics.isEmpty {
          var table = "| metric | steps | first | last | min | max |\n|---|---:|---:|---:|---:|---:|"
          for s in MetricSeries.summaries(code.metrics) {
            table += "\n| \(Markdown.cell(s.key)) | \(s.count) | " + [s.first, s.last, s.min, s.max].map(MetricSeries.number).joined(separator: " | ") + " |"
          }
          blocks.append(table)
        }
      }
    }
    return blocks.joined(separator: "\n\n") + "\n"
  }

  private func markdownOutput(_ group: OutputGroup) -> String {
    if let image = group.alternatives.first(where: { $0.mime == "image/svg+xml" }) {
      return "![output](data:image/svg+xml;base64,\(Data(image.text.utf8).base64EncodedString()))"
    }
    if let image = group.alternatives.first(where: { $0.mime == "image/png" || $0.mime == "image/jpeg" }) {
      // Stored as base64 text, as in nbformat.
      let payload = image.text.filter { !$0.isWhitespace }
      return "![output](data:\(image.mime);base64,\(payload))"
    }
    if let markdown = group.alternatives.first(where: { $0.mime == "text/markdown" }) { return markdown.text }
    let text = group.plainText ?? group.alternatives[0].text
    return Markdown.fenced(text, info: group.kind == .error ? "text error" : "text")
  }

  func renderScript(items: [RenderItem]) -> String {
    PercentScript.render(items.map { item -> PercentScript.Cell in
      switch item {
      case .code(let code): return PercentScript.Cell(kind: .code, source: code.source, tags: code.tags)
      case .prose(let cell): return PercentScript.Cell(kind: cell.kind, source: cell.source, tags: cell.tags)
      }
    })
  }
}

enum Markdown {
  /// `text` in a fence of backticks longer than any run of backticks inside it.
  static func fenced(_ text: String, info: String) -> String {
    var longest = 0, current = 0
    for character in text {
      if character == "`" { current += 1; longest = max(longest, current) } else { current = 0 }
    }
    let fence = String(repeating: "`", count: max(3, longest + 1))
    var body = text
    if body.unicodeScalars.last == "\n" { body.unicodeScalars.removeLast() }
    return "\(fence)\(info)\n\(body)\n\(fence)"
  }

  /// Text safe inside a table cell.
  static func cell(_ text: String) -> String {
    text.replacingOccurrences(of: "|", with: "\\|").replacingOccurrences(of: "\n", with: " ")
  }
}

/// Percent-format scripts (`.lathe` files): `# %%` opens a code cell, `# %% [markdown]` a markdown cell whose lines
/// are commented with `# ` (an empty line as `#`). A blank line separates cells. `parse(render(cells))` gives the
/// same kinds and sources back, unless a code line itself starts with `# %%` (that line would open a new cell).
public enum PercentScript {
  public struct Cell: Equatable, Sendable {
    public var kind: CellKind
    public var source: String
    /// The script line of the cell's first source line (1-based), so errors point into the script.
    public var firstLine: Int
    /// Tags from the header, as jupytext writes them: `# %% tags=["raises-exception"]`.
    public var tags: [String]
    public init(kind: CellKind, source: String, firstLine: Int = 1, tags: [String] = []) {
      self.kind = kind
      self.source = source
      self.firstLine = firstLine
      self.tags = tags
    }
    public static func == (a: Cell, b: Cell) -> Bool { a.kind == b.kind && a.source == b.source && a.tags == b.tags }
  }

  public static func render(_ cells: [Cell]) -> String {
    var lines: [String] = []
    for (index, cell) in cells.enumerated() {
      let sourceLines = splitLines(cell.source)
      switch cell.kind {
      case .code:
        lines.append(cell.tags.isEmpty ? "# %%" : "# %% tags=[" + cell.tags.map { "\"\($0)\"" }.joined(separator: ", ") + "]")
        lines += sourceLines
      case .markdown, .raw:
        lines.append("# %% [\(cell.kind.rawValue)]")
        lines += sourceLines.map { $0.isEmpty ? "#" : "# " + $0 }
      }
      if index < cells.count - 1 { lines.append("") }
    }
    return lines.isEmpty ? "" : lines.joined(separator: "\n") + "\n"
  }

  /// Splits a script into cells. Text before the first `# %%` line becomes a code cell unless it is blank.
  /// A file whose every line ends in CRLF is read as if it ended in LF; otherwise "\r" is kept as content.
  public static func parse(_ text: String) -> [Cell] {
    var body = text
    let newlines = body.unicodeScalars.filter { $0 == "\n" }.count
    if newlines > 0, body.components(separatedBy: "\r\n").count - 1 == newlines {
      body = body.replacingOccurrences(of: "\r\n", with: "\n")
    }
    if body.unicodeScalars.last == "\n" { body.unicodeScalars.removeLast() }
    let lines = body.isEmpty ? [] : splitLines(body)
    var groups: [(kind: CellKind, lines: [String], firstLine: Int, tags: [String])] = []
    var current: (kind: CellKind, lines: [String], firstLine: Int, tags: [String])? = nil
    for (number, line) in lines.enumerated() {
      if let kind = header(line) {
        if let current { groups.append(current) }
        current = (kind, [], number + 2, tags(line))
      } else if current != nil {
        current?.lines.append(line)
      } else {
        current = (.code, [line], number + 1, [])
        if line.trimmingCharacters(in: .whitespaces).isEmpty { current = nil }
      }
    }
    if let current { groups.append(current) }
    return groups.enumerated().map { index, group in
      var lines = group.lines
      // The blank line that separates a cell from the next header is not part of the cell.
      if index < groups.count - 1, lines.last == "" { lines.removeLast() }
      if group.kind != .code {
        lines = lines.map { line in
          if line == "#" { return "" }
          return line.hasPrefix("# ") ? String(line.dropFirst(2)) : line
        }
      }
      return Cell(kind: group.kind, source: lines.joined(separator: "\n"), firstLine: group.firstLine, tags: group.tags)
    }
  }

  /// Lines split at each "\n" scalar (Swift's Character view treats "\r\n" as one character).
  static func splitLines(_ text: String) -> [String] {
    text.unicodeScalars.split(separator: "\n", omittingEmptySubsequences: false).map { String(String.UnicodeScalarView($0)) }
  }

  /// The tags of a header line: the strings inside `tags=[...]`.
  static func tags(_ line: String) -> [String] {
    guard let start = line.range(of: "tags=["), let end = line[start.upperBound...].firstIndex(of: "]") else { return [] }
    return line[start.upperBound..<end].split(separator: ",").map {
      $0.trimmingCharacters(in: .whitespaces).trimmingCharacters(in: CharacterSet(charactersIn: "\"'"))
    }.filter { !$0.isEmpty }
  }

  /// The kind of cell a header line opens, or nil when the line is not a header.
  static func header(_ line: String) -> CellKind? {
    guard line.hasPrefix("# %%") else { return nil }
    let rest = line.dropFirst(4).trimmingCharacters(in: .whitespaces)
    if rest.hasPrefix("[markdown]") || rest.hasPrefix("[md]") { return .markdown }
    if rest.hasPrefix("[raw]") { return .raw }
    return .code
  }
}
