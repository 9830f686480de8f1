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
  /// List each run's metrics (text and md; html and ipynb always include them).
  public var showMetrics: Bool

  public init(session: Int64? = nil, run: Int64? = nil, showMetrics: Bool = false) {
    self.session = session
    self.run = run
    self.showMetrics = showMetrics
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

  static func grouping(_ outputs: [OutputRecord]) -> [OutputGroup] {
    var groups: [OutputGroup] = []
    for output in outputs {
      if let last = groups.last, last.idx == output.idx {
        groups[groups.count - 1].alternatives.append(output)
      } else {
        groups.append(OutputGroup(idx: output.idx, kind: output.kind, alternatives: [output]))
      }
    }
    return groups
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
        if options.showMetrics {
          for metric in code.metrics { out += "  \(metric.key)[\(metric.step)] = \(Format.number(metric.value))\n" }
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
