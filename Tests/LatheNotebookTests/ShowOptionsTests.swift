// ShowOptionsTests: `lathe show --sessions`, metric series summarised, and streamed text joined in every format.
import Foundation
import Testing
@testable import LatheNotebook

@Suite struct ShowOptionsTests {
  @Test func sessionListCountsRunsAndErrors() throws {
    let notebook = try Notebook.open(path: ":memory:")
    try Fixtures.populate(notebook)
    try Fixtures.populateREPL(notebook)
    let counts = try notebook.sessionCounts()
    #expect(counts.map(\.runs) == [3, 3] && counts.map(\.errors) == [1, 0])
    let lines = try NotebookRenderer(notebook).renderSessionList().split(separator: "\n").map(String.init)
    #expect(lines.count == 3)
    #expect(lines[0].hasPrefix("session  kind  started") && lines[0].contains("seed  cells run  errors  status  remark"))
    let fields = lines.map { $0.split(separator: " ", omittingEmptySubsequences: true).map(String.init) }
    #expect(fields[1].first == "1" && fields[1][1] == "run" && fields[1].suffix(5) == ["42", "3", "1", "closed", "fixture"])
    #expect(fields[2].first == "2" && fields[2][1] == "repl" && fields[2].suffix(4) == ["7", "3", "0", "closed"])
    // Columns line up: each header word starts where its values do (numbers end where their header ends).
    let header = lines[0]
    for line in lines.dropFirst() {
      #expect(line.count >= header.range(of: "status")!.lowerBound.utf16Offset(in: header))
      let cellsEnd = header.range(of: "cells run")!.upperBound.utf16Offset(in: header)
      #expect(Array(line)[cellsEnd - 1] != " ", "\(line)")
    }
    let empty = try Notebook.open(path: ":memory:")
    #expect(try NotebookRenderer(empty).renderSessionList().contains("has no sessions"))
  }

  @Test func metricSeriesAreSummarised() {
    let steps = [3.0, .nan, 1.0, 2.0].enumerated().map { MetricRecord(key: "loss", step: $0.offset, value: $0.element) }
    let series = MetricSeries.summaries(steps + [MetricRecord(key: "ppl", step: 0, value: 33.0625123)])
    #expect(series.map(\.text) == ["loss: 4 steps, first 3, last 2, min 1, max 3", "ppl = 33.0625"])
    #expect(MetricSeries.summaries([]).isEmpty)
    let nan = MetricSeries.summaries([MetricRecord(key: "x", step: 0, value: .nan), MetricRecord(key: "x", step: 1, value: .nan)])
    #expect(nan.map(\.text) == ["x: 2 steps, first NaN, last NaN, min NaN, max NaN"])
  }

  /// A run whose text came in pieces, each written as its own output row, between two other outputs.
  static func streamedNotebook() throws -> Notebook {
    let notebook = try Notebook.open(path: ":memory:")
    notebook.flushInterval = .zero
    let env = try notebook.recordEnvironment(Fixtures.environment)
    let session = try notebook.beginSession(mode: .repl, seed: 1, environmentID: env, remark: nil)
    let run = try notebook.beginRun(session: session, seq: 1, cellID: nil, source: "chat(m, \"hi\")", seed: 1, threads: 1)
    try notebook.appendOutput(run: run, kind: .warning, text: "warning: slow\n")
    for piece in ["The", " capital", " of", " France", " is", " Paris", ".", "\n"] {
      try notebook.appendOutput(run: run, kind: .stdout, text: piece)
    }
    try notebook.appendOutput(run: run, kind: .stderr, text: "done\n")
    try notebook.finishRun(run, status: .ok, wallNs: 10, cpuNs: 10, peakRSS: nil)
    try notebook.closeSession(session)
    #expect(try notebook.run(id: run)?.outputs.count == 10, "each piece is its own row")
    return notebook
  }

  @Test func streamedPiecesAreJoinedInShowAndEveryExport() throws {
    let renderer = NotebookRenderer(try Self.streamedNotebook())
    let sentence = "The capital of France is Paris."
    let text = try renderer.render(.text)
    #expect(text.contains("\n" + sentence + "\ndone\n"), "\(text)")
    let md = try renderer.render(.md)
    #expect(md.contains("```text\n\(sentence)\n```"), "\(md)")
    #expect(md.components(separatedBy: "```text").count == 4, "warning, the stream and stderr: three blocks")
    let html = try renderer.render(.html)
    #expect(html.contains(sentence))
    let ipynb = try renderer.render(.ipynb)
    let json = try JSONSerialization.jsonObject(with: Data(ipynb.utf8)) as? [String: Any]
    let cells = try #require(json?["cells"] as? [[String: Any]])
    let outputs = try #require(cells.first?["outputs"] as? [[String: Any]])
    let streams = outputs.filter { $0["output_type"] as? String == "stream" && $0["name"] as? String == "stdout" }
    #expect(streams.count == 1)
    let streamed = (streams.first?["text"] as? [String])?.joined() ?? (streams.first?["text"] as? String)
    #expect(streamed == sentence + "\n")
  }
}
