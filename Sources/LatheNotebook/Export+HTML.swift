// Export+HTML: a session as one self-contained HTML page (escaped text, SVG as image data URIs, a small stylesheet).
import Foundation
import LatheLang

extension NotebookRenderer {
  func renderHTML(session: SessionRecord?, items: [RenderItem]) -> String {
    let title = (try? notebook.meta("title")) ?? nil
    let heading = title ?? (notebook.path as NSString).lastPathComponent
    var body = "<header><h1>\(HTML.escape(heading))</h1>"
    if let session { body += "<p class=\"session\">\(HTML.escape(Format.sessionSummary(session)))</p>" }
    body += "</header>\n"
    for item in items {
      switch item {
      case .prose(let cell) where cell.kind == .markdown:
        body += "<section class=\"cell markdown\">\n\(HTML.markdown(cell.source))</section>\n"
      case .prose(let cell):
        body += "<section class=\"cell raw\"><pre>\(HTML.escape(cell.source))</pre></section>\n"
      case .code(let code):
        body += htmlCode(code)
      }
    }
    return """
      <!DOCTYPE html>
      <html lang="en">
      <head>
      <meta charset="utf-8">
      <meta name="generator" content="lathe">
      <title>\(HTML.escape(heading))</title>
      <style>\(HTML.stylesheet)</style>
      </head>
      <body>
      \(body)</body>
      </html>

      """
  }

  private func htmlCode(_ code: CodeItem) -> String {
    let status = code.run?.status.rawValue ?? "not-run"
    var html = "<section class=\"cell code status-\(status)\" id=\"\(HTML.escape(code.id))\">\n"
    html += "<div class=\"prompt\">In [\(code.run.map { String($0.seq) } ?? "&nbsp;")]:</div>"
    html += "<pre class=\"source\">\(HTML.escape(code.source))</pre>\n"
    guard let run = code.run else { return html + "</section>\n" }
    html += "<div class=\"outputs\">\n"
    for group in OutputGroup.grouping(run.outputs) {
      if let svg = group.alternatives.first(where: { $0.mime == "image/svg+xml" }) {
        html += "<div class=\"output display\">\(HTML.svg(svg.text))</div>\n"
      } else if let image = group.alternatives.first(where: { $0.mime == "image/png" || $0.mime == "image/jpeg" }) {
        let payload = image.text.filter { !$0.isWhitespace }
        html += "<div class=\"output display\"><img alt=\"output\" src=\"data:\(HTML.escape(image.mime));base64,"
          + "\(HTML.escape(payload))\"></div>\n"
      } else {
        let text = group.plainText ?? group.alternatives[0].text
        let label = group.kind == .result ? "<span class=\"out\">Out[\(run.seq)]:</span> " : ""
        html += "<pre class=\"output \(group.kind.rawValue)\">\(label)\(HTML.escape(text))</pre>\n"
      }
    }
    html += "</div>\n<div class=\"run-info\">\(HTML.escape(Format.statusLine(run)))</div>\n"
    if !code.metrics.isEmpty {
      html += "<details class=\"metrics\"><summary>\(code.metrics.count) metrics</summary><table>"
      html += "<tr><th>metric</th><th>step</th><th>value</th></tr>"
      for metric in code.metrics {
        html += "<tr><td>\(HTML.escape(metric.key))</td><td>\(metric.step)</td>"
          + "<td>\(HTML.escape(Format.number(metric.value)))</td></tr>"
      }
      html += "</table></details>\n"
    }
    return html + "</section>\n"
  }
}

enum HTML {
  static let stylesheet = """
    body{font:15px/1.5 system-ui,sans-serif;max-width:60rem;margin:2rem auto;padding:0 1rem;color:#222}
    header h1{margin-bottom:0}.session{color:#666;margin-top:.2rem}
    .cell{margin:1rem 0}.code{border-left:3px solid #9ab;padding-left:.8rem}
    .status-error,.status-crashed{border-left-color:#c33}.status-interrupted,.status-running{border-left-color:#c90}
    .prompt,.run-info{color:#678;font:12px monospace}
    pre{margin:.3rem 0;padding:.5rem;overflow-x:auto;white-space:pre-wrap;font:13px/1.4 ui-monospace,monospace}
    pre.source{background:#f4f6f8}pre.output{background:#fff}pre.stderr,pre.warning{background:#fff8e6}
    pre.error{background:#fdecec;color:#900}.out{color:#a33}
    .display svg,.display img{max-width:100%;height:auto}
    table{border-collapse:collapse;font-size:13px}td,th{border:1px solid #ccd;padding:.1rem .5rem;text-align:right}
    """

  static func escape(_ text: String) -> String { Markup.escape(text) }

  /// An SVG output as an `<img>` data URI, always: a browser runs no script and follows no link in an image, so no
  /// markup of a notebook (which travels) is ever inlined. A filter that tried to tell safe SVG from unsafe missed
  /// `<svg/onload=...>` and entity-encoded `javascript:` links.
  static func svg(_ text: String) -> String {
    "<img alt=\"output\" src=\"data:image/svg+xml;base64,\(Data(text.utf8).base64EncodedString())\">"
  }

  /// A small Markdown subset as HTML: ATX headings, fenced code, bullet lists, paragraphs; everything escaped.
  static func markdown(_ source: String) -> String {
    var html = "", paragraph: [String] = [], list: [String] = [], code: [String]? = nil
    func flush() {
      if !paragraph.isEmpty { html += "<p>\(paragraph.map(escape).joined(separator: "\n"))</p>\n"; paragraph = [] }
      if !list.isEmpty { html += "<ul>" + list.map { "<li>\(escape($0))</li>" }.joined() + "</ul>\n"; list = [] }
    }
    for line in source.split(separator: "\n", omittingEmptySubsequences: false).map(String.init) {
      if var lines = code {
        if line.hasPrefix("```") { html += "<pre>\(escape(lines.joined(separator: "\n")))</pre>\n"; code = nil }
        else { lines.append(line); code = lines }
        continue
      }
      let trimmed = line.trimmingCharacters(in: .whitespaces)
      if trimmed.hasPrefix("```") { flush(); code = []; continue }
      if trimmed.isEmpty { flush(); continue }
      let hashes = trimmed.prefix { $0 == "#" }.count
      if (1...6).contains(hashes), trimmed.dropFirst(hashes).first == " " {
        flush()
        let level = min(hashes + 1, 6)  // the page's <h1> is the notebook title
        html += "<h\(level)>\(escape(String(trimmed.dropFirst(hashes + 1))))</h\(level)>\n"
      } else if trimmed.hasPrefix("- ") || trimmed.hasPrefix("* ") {
        if !paragraph.isEmpty { flush() }
        list.append(String(trimmed.dropFirst(2)))
      } else {
        if !list.isEmpty { flush() }
        paragraph.append(line)
      }
    }
    if let lines = code { html += "<pre>\(escape(lines.joined(separator: "\n")))</pre>\n" }
    flush()
    return html
  }
}
