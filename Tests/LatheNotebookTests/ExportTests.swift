// ExportTests: text, Markdown, HTML, ipynb (checked by nbformat when python3 has it) and percent-script output.
import Foundation
import Testing
@testable import LatheNotebook

@Suite struct ExportTests {
  private func sampleNotebook() throws -> Notebook {
    let notebook = try Notebook.open(path: ":memory:")
    try Fixtures.populate(notebook)
    return notebook
  }

  @Test func textShowsRunsInCellOrder() throws {
    let notebook = try sampleNotebook()
    let text = try NotebookRenderer(notebook).render(.text, options: RenderOptions(showMetrics: true))
    #expect(text.hasPrefix("== session 1 · run · closed"))
    let order = ["# Sample", "In [1]: x = ones([2, 3])", "        print(shape(x))", "[2, 3]",
                 "Out[1]: Tensor<f32>[2, 3]", "[ok · 1.50 ms]", "loss: 2 steps, first 2.5, last 1.25, min 1.25, max 2.5", "tok/s = 123",
                 "In [2]: plot(x)", "<plot 10x10>",
                 "## Notes", "In [3]: matmul", "error: matmul: shapes", "[error · 0.30 ms]"]
    var searchFrom = text.startIndex
    for piece in order {
      let found = try #require(text.range(of: piece, range: searchFrom..<text.endIndex), "missing or out of order: \(piece)")
      searchFrom = found.upperBound
    }
    let withoutMetrics = try NotebookRenderer(notebook).render(.text)
    #expect(!withoutMetrics.contains("loss"))
    let every = try NotebookRenderer(notebook).render(.text, options: RenderOptions(showMetrics: true, allMetrics: true))
    #expect(every.contains("loss[0] = 2.5\n  loss[1] = 1.25\n  tok/s[0] = 123\n"))
  }

  @Test func replSessionsRenderBySeqAndOneRunCanBePicked() throws {
    let notebook = try sampleNotebook()
    let repl = try Fixtures.populateREPL(notebook)
    let text = try NotebookRenderer(notebook).render(.text)
    #expect(text.contains("session \(repl) · repl"))
    let a = try #require(text.range(of: "In [1]: a = 1")), b = try #require(text.range(of: "In [3]: print(b)"))
    #expect(a.lowerBound < b.lowerBound)
    #expect(!text.contains("# Sample"), "REPL sessions have no cells")
    let older = try NotebookRenderer(notebook).render(.text, options: RenderOptions(session: 1))
    #expect(older.contains("# Sample"))
    let runID = try #require(try notebook.runs(session: 1).last?.id)
    let one = try NotebookRenderer(notebook).render(.text, options: RenderOptions(run: runID))
    #expect(one.contains("In [3]: matmul") && !one.contains("In [1]"))
    #expect(throws: NotebookError.self) { try NotebookRenderer(notebook).render(.text, options: RenderOptions(session: 99)) }
  }

  @Test func markdownFencesCodeAndOutputs() throws {
    let md = try NotebookRenderer(try sampleNotebook()).render(.md, options: RenderOptions(showMetrics: true))
    #expect(md.contains("```lathe\nx = ones([2, 3])\nprint(shape(x))\n```"))
    #expect(md.contains("```text\n[2, 3]\n```"))
    #expect(md.contains(Fixtures.cells[0].source))
    #expect(md.contains("![output](data:image/svg+xml;base64,"))
    #expect(md.contains("| metric | steps | first | last | min | max |"))
    #expect(md.contains("| loss | 2 | 2.5 | 1.25 | 1.25 | 2.5 |\n| tok/s | 1 | 123 | 123 | 123 | 123 |"))
    let every = try NotebookRenderer(try sampleNotebook()).render(.md, options: RenderOptions(showMetrics: true, allMetrics: true))
    #expect(every.contains("| loss | 1 | 1.25 |"))
    #expect(Markdown.fenced("a ``` b", info: "") == "````\na ``` b\n````")
  }

  @Test func htmlIsEscapedAndSelfContained() throws {
    let html = try NotebookRenderer(try sampleNotebook()).render(.html)
    #expect(html.hasPrefix("<!DOCTYPE html>"))
    #expect(html.contains("&lt;script&gt;alert(1)&lt;/script&gt; &amp; more"))
    #expect(!html.contains("<script>"))
    #expect(!html.contains("<svg") && html.contains("src=\"data:image/svg+xml;base64,\(Data(Fixtures.svg.utf8).base64EncodedString())\""),
            "an SVG output is an image, never inline markup")
    #expect(html.contains("<h2>Sample</h2>") && html.contains("<li>one</li>"))
    #expect(html.contains("&lt;b&gt;tags&lt;/b&gt;"))
    #expect(html.contains("ok · 1.50 ms") && html.contains("status-error"))
    #expect(!html.contains("http://") || html.contains("xmlns=\"http://www.w3.org/2000/svg\""))
    let risky = HTML.svg("<svg onload=\"alert(1)\"></svg>")
    #expect(risky.hasPrefix("<img") && !risky.contains("onload"))
  }

  /// SVG that would run script or follow a javascript: link when inlined: each becomes an image data URI, in which a
  /// browser runs nothing, so none of its markup reaches the page.
  @Test(arguments: ["<svg/onload=alert(1)></svg>", "<svg\tonload=alert(1)>",
                    "<svg><a xlink:href=\"&#106;avascript:alert(1)\"><text>x</text></a></svg>",
                    "<svg><a href=\"jav&#x09;ascript:alert(1)\">x</a></svg>", "<SVG ONLOAD=alert(1)>",
                    "<?xml version=\"1.0\"?><svg><set attributeName=\"onmouseover\" to=\"alert(1)\"/></svg>"])
  func svgOutputsNeverInlineMarkup(_ svg: String) throws {
    let html = HTML.svg(svg)
    #expect(html == "<img alt=\"output\" src=\"data:image/svg+xml;base64,\(Data(svg.utf8).base64EncodedString())\">")
    #expect(!html.lowercased().contains("onload") && !html.contains("avascript") && !html.contains("<svg"))
  }

  @Test func ipynbIsValidNbformat() throws {
    let notebook = try sampleNotebook()
    try Fixtures.populateREPL(notebook)
    for session: Int64 in [1, 2] {
      let json = try NotebookRenderer(notebook).render(.ipynb, options: RenderOptions(session: session))
      let object = try #require(try JSONSerialization.jsonObject(with: Data(json.utf8)) as? [String: Any])
      #expect(object["nbformat"] as? Int == 4 && object["nbformat_minor"] as? Int == 5)
      let metadata = try #require(object["metadata"] as? [String: Any])
      #expect((metadata["kernelspec"] as? [String: Any])?["name"] as? String == "lathe")
      #expect((metadata["language_info"] as? [String: Any])?["name"] as? String == "lathe")
      let cells = try #require(object["cells"] as? [[String: Any]])
      let ids = cells.compactMap { $0["id"] as? String }
      #expect(ids.count == cells.count && Set(ids).count == ids.count)
      if session == 1 {
        #expect(cells.map { $0["cell_type"] as? String } == ["markdown", "code", "code", "markdown", "code"])
        let outputs = try #require(cells[2]["outputs"] as? [[String: Any]])
        #expect(outputs.map { $0["output_type"] as? String } == ["display_data", "stream"])
        #expect(cells[4]["execution_count"] as? Int == 3)
      }
      try validateWithNbformat(json, label: "session \(session)")
    }
  }

  /// Runs nbformat.validate when python3 can import nbformat; otherwise says so and skips.
  private func validateWithNbformat(_ json: String, label: String) throws {
    let file = try Fixtures.temporaryNotebookPath("export.ipynb")
    try json.write(toFile: file, atomically: true, encoding: .utf8)
    let python = Process()
    python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    python.arguments = ["python3", "-c", """
      import sys
      try:
          import nbformat
      except ImportError:
          print('no nbformat'); sys.exit(3)
      nbformat.validate(nbformat.reads(open(sys.argv[1]).read(), 4)); print('valid')
      """, file]
    let pipe = Pipe()
    python.standardOutput = pipe
    python.standardError = pipe
    do { try python.run() } catch {
      print("skipping nbformat validation: python3 not available")
      return
    }
    let output = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    python.waitUntilExit()
    if python.terminationStatus == 3 || output.contains("No module named") {
      print("skipping nbformat validation: python3 has no nbformat module")
      return
    }
    #expect(python.terminationStatus == 0, "nbformat rejected \(label): \(output)")
  }

  @Test func scriptRoundTripsCellSources() throws {
    let notebook = try sampleNotebook()
    let script = try NotebookRenderer(notebook).render(.script)
    #expect(script.hasPrefix("# %% [markdown]\n# # Sample\n#\n# A *markdown*"))
    let parsed = PercentScript.parse(script)
    #expect(parsed.map(\.kind) == Fixtures.cells.map(\.kind))
    #expect(parsed.map(\.source) == Fixtures.cells.map(\.source))
  }

  @Test(arguments: [
    [PercentScript.Cell(kind: .code, source: "")],
    [PercentScript.Cell(kind: .code, source: "a\n"), PercentScript.Cell(kind: .code, source: "\n\nb\n\n")],
    [PercentScript.Cell(kind: .markdown, source: "#\n\n  indented\n# %% not a header"),
     PercentScript.Cell(kind: .raw, source: "raw\n"), PercentScript.Cell(kind: .code, source: "x = 1")],
  ])
  func percentScriptRoundTrips(cells: [PercentScript.Cell]) {
    #expect(PercentScript.parse(PercentScript.render(cells)) == cells)
  }

  @Test func percentScriptReadsHandWrittenFiles() {
    let cells = PercentScript.parse("let a = 1\n\n# %% [markdown]\n# Title\n#\n# text\n\n# %%\nprint(a)\n")
    #expect(cells == [PercentScript.Cell(kind: .code, source: "let a = 1"),
                      PercentScript.Cell(kind: .markdown, source: "Title\n\ntext"),
                      PercentScript.Cell(kind: .code, source: "print(a)")])
    #expect(PercentScript.parse("") == [])
    // A CRLF file reads like an LF one; a lone "\r" in an LF file is content and survives.
    #expect(PercentScript.parse("# %%\r\na\r\n\r\n# %%\r\nb\r\n").map(\.source) == ["a", "b"])
    #expect(PercentScript.parse("# %%\na\r\nb\n").map(\.source) == ["a\r\nb"])
  }

  @Test func emptyNotebookRendersCells() throws {
    let notebook = try Notebook.open(path: ":memory:")
    try notebook.upsertCell(id: "only", position: 1, kind: .code, source: "1 + 1")
    let text = try NotebookRenderer(notebook).render(.text)
    #expect(text.contains("no sessions") && text.contains("In [ ]: 1 + 1"))
    try validateWithNbformat(try NotebookRenderer(notebook).render(.ipynb), label: "cells only")
  }
}
