// Export: NotebookRenderer picks a session's cells and runs in display order and renders them; the text format.
import Foundation

/// What `lathe show` and `lathe export --to` produce.
public enum ExportFormat: String, CaseIterable, Sendable {
  case text, md, html, ipynb, script

  /// The usual file extension (without dot).
  public var fileExtension: String {
    switch self {
    case .text: return "txt"
    case .md: return "md"
    case .html: return "html"
    case .ipynb: return "ipynb"
    case .script: return "lathe"
    }
  }
}

public struct RenderOptions: Sendable {
  /// The session to render; nil means the newest session (or the run's session when `run` is set).
  public var session: Int64?
  /// Render only this run.
  public var run: Int64?
  /// List each run's metrics (text and md; html and ipynb always include them): one line per series (count, first,
  /// last, min, max), or every step with `allMetrics`.
  public var showMetrics: Bool
  public var allMetrics: Bool

  public init(session: Int64? = nil, run: Int64? = nil, showMetrics: Bool = false, allMetrics: Bool = false) {
    self.session = session
    self.run = run
    self.showMetrics = showMetrics
    self.allMetrics = allMetrics
  }
}

/// One code cell as rendered: the source executed (or the cell's source when it did not run in this session).
struct CodeItem {
  var id: String
  var source: String
  var run: RunRecord?
  var metrics: [MetricRecord]
  /// The cell's tags (raises-exception, volatile), when the item comes from a cell.
  var tags: [String] = []
}

enum RenderItem {
  case code(CodeItem)
  /// A markdown or raw cell: it has a cell row and no run.
  case prose(CellRecord)
}

/// One output: its alternatives (several MIME types of one display) in stored order.
struct OutputGroup {
  var idx: Int
  var kind: OutputKind
  var alternatives: [OutputRecord]

  /// The text/plain alternative, if any.
  var plainText: String? { alternatives.first { $0.mime == "text/plain" }?.text }

  /// Outputs grouped by idx; consecutive stdout (or stderr) texts are joined into one group, so text streamed in
  /// many small pieces (generate, chat) reads as one block.
  static func grouping(_ outputs: [OutputRecord]) -> [OutputGroup] {
    var groups: [OutputGroup] = []
    for output in outputs {
      if let last = groups.last, last.idx == output.idx {
        groups[groups.count - 1].alternatives.append(output)
      } else if let last = groups.last, last.isStream, last.kind == output.kind, output.mime == "text/plain" {
        groups[groups.count - 1].alternatives[0].text += output.text
        groups[groups.count - 1].alternatives[0].blobHash = nil
      } else {
        groups.append(OutputGroup(idx: output.idx, kind: output.kind, alternatives: [output]))
      }
    }
    return groups
  }

  /// A stdout or stderr text: pieces of a stream, which join.
  var isStream: Bool {
    (kind == .stdout || kind == .stderr) && alternatives.count == 1 && alternatives[0].mime == "text/plain"
  }
}

/// Renders a notebook's session for `lathe show` and `lathe export`.
///
/// Order: for `run`/`rerun` sessions, every cell by position (markdown cells have a cell row and no run; a code
/// cell shows this session's newest run of it, or no outputs if it did not run), then runs without a cell by seq.
/// For `repl`/`kernel` sessions, runs by seq. With no session at all, the cells alone.
///
///     let html = try NotebookRenderer(notebook).render(.html)
public struct NotebookRenderer {
  public let notebook: Notebook

  public init(_ notebook: Notebook) { self.notebook = notebook }

  public func render(_ format: ExportFormat, options: RenderOptions = RenderOptions()) throws -> String {
    let (session, items) = try collect(options)
    switch format {
    case .text: return renderText(session: session, items: items, options: options)
    case .md: return renderMarkdown(session: session, items: items, options: options)
    case .html: return renderHTML(session: session, items: items)
    case .ipynb: return try renderIpynb(session: session, items: items)
    case .script: return renderScript(items: items)
    }
  }

  func collect(_ options: RenderOptions) throws -> (SessionRecord?, [RenderItem]) {
    var sessionID = options.session
    if sessionID == nil, let runID = options.run {
      guard let run = try notebook.run(id: runID) else { throw NotebookError.invalidArgument("no run \(runID)") }
      sessionID = run.sessionID
    }
    let session: SessionRecord?
    if let sessionID {
      guard let found = try notebook.session(id: sessionID) else {
        throw NotebookError.invalidArgument("no session \(sessionID) in \(notebook.path)")
      }
      session = found
    } else {
      session = try notebook.latestSession()
    }
    guard let session else {
      return (nil, try notebook.cells().map { cell in
        cell.kind == .code ? .code(CodeItem(id: cell.id, source: cell.source, run: nil, metrics: [], tags: cell.tags)) : .prose(cell)
      })
    }
    var runs = try notebook.runs(session: session.id)
    if let runID = options.run {
      runs = runs.filter { $0.id == runID }
      guard !runs.isEmpty else { throw NotebookError.invalidArgument("no run \(runID) in session \(session.id)") }
    }
    func item(_ run: RunRecord, id: String? = nil, tags: [String] = []) throws -> RenderItem {
      .code(CodeItem(id: id ?? "run-\(run.id)", source: run.source, run: run, metrics: try notebook.metrics(run: run.id),
                     tags: tags))
    }
    guard options.run == nil, session.mode == .run || session.mode == .rerun else {
      return (session, try runs.map { try item($0) })
    }
    var newestByCell: [String: RunRecord] = [:]
    for run in runs { if let cellID = run.cellID { newestByCell[cellID] = run } }
    var items: [RenderItem] = [], shown = Set<String>()
    for cell in try notebook.cells() {
      guard cell.kind == .code else { items.append(.prose(cell)); continue }
      shown.insert(cell.id)
      if let run = newestByCell[cell.id] {
        items.append(try item(run, id: cell.id, tags: cell.tags))
      } else {
        items.append(.code(CodeItem(id: cell.id, source: cell.source, run: nil, metrics: [], tags: cell.tags)))
      }
    }
    for run in runs where run.cellID.map({ !shown.contains($0) }) ?? true { items.append(try item(run)) }
    return (session, items)
  }

  // MARK: text (`lathe show`)

  /// `lathe show --sessions`: one line per session, oldest first, in aligned columns.
  public func renderSessionList() throws -> String {
    let rows = try notebook.sessionCounts().map { entry -> [String] in
      let s = entry.session
      return [String(s.id), s.mode.rawValue, Format.timestamp(s.startedAt), s.seed.map(String.init) ?? "-",
              String(entry.runs), String(entry.errors), s.status.rawValue, s.remark ?? ""]
    }
    guard !rows.isEmpty else { return "\(notebook.path) has no sessions\n" }
    let header = ["session", "kind", "started", "seed", "cells run", "errors", "status", "remark"]
    let widths = header.indices.map { column in ([header] + rows).map { $0[column].count }.max() ?? 0 }
    // Numbers right-aligned, words left-aligned; the last column is not padded.
    let numeric: Set<Int> = [0, 3, 4, 5]
    func line(_ cells: [String]) -> String {
      var text = cells.enumerated().map { column, text in
        let pad = String(repeating: " ", count: widths[column] - text.count)
        if column == cells.count - 1 { return text }
        return numeric.contains(column) ? pad + text : text + pad
      }.joined(separator: "  ")
      while text.last == " " { text.removeLast() }
      return text + "\n"
    }
    return ([header] + rows).map(line).joined()
  }


  func renderText(session: SessionRecord?, items: [RenderItem], options: RenderOptions) -> String {
    var out = ""
    if let session { out += "== " + Format.sessionSummary(session) + " ==\n" } else { out += "== no sessions ==\n" }
    for item in items {
      out += "\n"
      switch item {
      case .prose(let cell):
        out += Format.endingWithNewline(cell.source)
      case .code(let code):
        let prompt = "In [\(code.run.map { String($0.seq) } ?? " ")]: "
        let indent = String(repeating: " ", count: prompt.count)
        out += prompt + PercentScript.splitLines(code.source).joined(separator: "\n" + indent) + "\n"
        guard let run = code.run else { continue }
        for group in OutputGroup.grouping(run.outputs) { out += textOutput(group, seq: run.seq) }
        out += "[\(Format.statusLine(run))]\n"
        if options.showMetrics && options.allMetrics {
          for metric in code.metrics { out += "  \(metric.key)[\(metric.step)] = \(Format.number(metric.value))\n" }
        } else if options.showMetrics {
          for series in MetricSeries.summaries(code.metrics) { out += "  " + series.text + "\n" }
        }
      }
    }
    return out
  }

  private func textOutput(_ group: OutputGroup, seq: Int) -> String {
    guard let text = group.plainText ?? group.alternatives.first(where: { $0.mime.hasPrefix("text/") })?.text else {
      let first = group.alternatives[0]
      return "[\(first.mime) output, \(first.text.utf8.count) bytes]\n"
    }
    switch group.kind {
    case .result: return "Out[\(seq)]: " + Format.endingWithNewline(text)
    case .warning where !text.hasPrefix("warning"): return "warning: " + Format.endingWithNewline(text)
    default: return Format.endingWithNewline(text)
    }
  }
}

/// One metric's steps in a run, summarised: `loss: 450 steps, first 2.31, last 0.14, min 0.12, max 2.45`.
struct MetricSeries {
  var key: String
  var count: Int
  var first: Double, last: Double, min: Double, max: Double

  /// One series per key, in the order of `metrics` (by key, then step). NaN steps count, but do not set min or max.
  static func summaries(_ metrics: [MetricRecord]) -> [MetricSeries] {
    var series: [MetricSeries] = []
    for metric in metrics {
      let v = metric.value
      if var s = series.last, s.key == metric.key {
        s.count += 1
        s.last = v
        if !v.isNaN { s.min = s.min.isNaN ? v : Swift.min(s.min, v); s.max = s.max.isNaN ? v : Swift.max(s.max, v) }
        series[series.count - 1] = s
      } else {
        series.append(MetricSeries(key: metric.key, count: 1, first: v, last: v, min: v, max: v))
      }
    }
    return series
  }

  /// `key = value` for a single step, else the summary.
  var text: String {
    guard count > 1 else { return "\(key) = \(Self.number(first))" }
    return "\(key): \(count) steps, first \(Self.number(first)), last \(Self.number(last)), "
      + "min \(Self.number(min)), max \(Self.number(max))"
  }

  /// Six significant digits (a summary is for reading; `--all` lists the exact values).
  static func number(_ value: Double) -> String {
    value.isNaN || (value == value.rounded() && abs(value) < 1e15) ? Format.number(value) : String(format: "%.6g", value)
  }
}

/// Small formatting helpers shared by the renderers.
enum Format {
  static func endingWithNewline(_ text: String) -> String { text.utf8.last == UInt8(ascii: "\n") ? text : text + "\n" }

  /// "2025-06-01 10:00:00 UTC" from Unix milliseconds.
  static func timestamp(_ milliseconds: Int64) -> String {
    let formatter = DateFormatter()
    formatter.locale = Locale(identifier: "en_US_POSIX")
    formatter.timeZone = TimeZone(identifier: "UTC")
    formatter.dateFormat = "yyyy-MM-dd HH:mm:ss 'UTC'"
    return formatter.string(from: Date(timeIntervalSince1970: Double(milliseconds) / 1000))
  }

  /// "0.42 ms", "12.3 ms", "4.56 s", "2 min 3 s".
  static func duration(nanoseconds: Int64) -> String {
    let ms = Double(nanoseconds) / 1e6
    if ms < 10 { return String(format: "%.2f ms", ms) }
    if ms < 1000 { return String(format: "%.1f ms", ms) }
    if ms < 60_000 { return String(format: "%.2f s", ms / 1000) }
    let seconds = Int(ms / 1000)
    return "\(seconds / 60) min \(seconds % 60) s"
  }

  static func number(_ value: Double) -> String {
    value.isNaN ? "NaN" : (value == value.rounded() && abs(value) < 1e15 ? String(Int64(value)) : String(value))
  }

  /// "ok · 1.23 ms", or just the status when no time was recorded.
  static func statusLine(_ run: RunRecord) -> String {
    run.wallNs.map { "\(run.status.rawValue) · \(duration(nanoseconds: $0))" } ?? run.status.rawValue
  }

  static func sessionSummary(_ session: SessionRecord) -> String {
    var parts = ["session \(session.id)", session.mode.rawValue, session.status.rawValue,
                 "started \(timestamp(session.startedAt))"]
    if let seed = session.seed { parts.append("seed \(seed)") }
    if let pid = session.pid { parts.append("pid \(pid) on \(session.host ?? "unknown host")") }
    if let remark = session.remark, !remark.isEmpty { parts.append(remark) }
    return parts.joined(separator: " · ")
  }
}
