// NotebookFixtures: sample notebooks, a seeded random generator and file helpers shared by the notebook tests.
import CSQLite
import Foundation
import LatheTestSupport
@testable import LatheNotebook
import LatheLang   // SplitMix64: every corruption case can be replayed from its seed

enum Fixtures {
  /// `count` random bytes from SplitMix64 seeded with `seed`.
  static func randomBytes(_ count: Int, seed: UInt64) -> [UInt8] {
    var generator = SplitMix64(seed: seed)
    var bytes = [UInt8](repeating: 0, count: count)
    bytes.withUnsafeMutableBytes { raw in
      let words = raw.bindMemory(to: UInt64.self)
      for index in words.indices { words[index] = generator.next() }
      for index in words.count * 8..<count { raw[index] = UInt8(truncatingIfNeeded: generator.next()) }
    }
    return bytes
  }

  static let environment = EnvironmentInfo(
    latheVersion: "0.1.0-test", latheCommit: "abc123", buildConfig: "debug", swiftVersion: "6.3.1", os: "Linux",
    cpuModel: "test cpu", coreCount: 2, memoryBytes: 8 << 30, blas: "openblas", blasThreads: 1,
    lineEditor: "readline", extra: #"{"note":"fixture"}"#)

  static let svg = #"<svg xmlns="http://www.w3.org/2000/svg" width="10" height="10"><rect width="10" height="10"/></svg>"#

  /// The sources of the sample `run` session's cells, in position order.
  static let cells: [(id: String, kind: CellKind, source: String)] = [
    ("intro", .markdown, "# Sample\n\nA *markdown* cell with `code` and <b>tags</b>.\n\n- one\n- two"),
    ("load", .code, "x = ones([2, 3])\nprint(shape(x))"),
    ("plot", .code, "plot(x)"),
    ("notes", .markdown, "## Notes\n"),
    ("fail", .code, "matmul(zeros([2, 3]), ones([2]))"),
  ]

  /// A `run` session over `cells`, with outputs of every kind, metrics, params, inputs and an artifact.
  /// Returns the session id and the run ids in seq order.
  @discardableResult
  static func populate(_ notebook: Notebook) throws -> (session: Int64, runs: [Int64]) {
    notebook.flushInterval = .seconds(3600)
    let env = try notebook.recordEnvironment(environment)
    let session = try notebook.beginSession(mode: .run, seed: 42, environmentID: env, remark: "fixture")
    for (position, cell) in cells.enumerated() {
      try notebook.upsertCell(id: cell.id, position: Double(position), kind: cell.kind, source: cell.source)
    }
    var runs: [Int64] = []
    let load = try notebook.beginRun(session: session, seq: 1, cellID: "load", source: cells[1].source, seed: 42,
                                     threads: 2)
    try notebook.appendOutput(run: load, kind: .stdout, text: "[2, 3]\n")
    try notebook.appendOutput(run: load, kind: .result, text: "Tensor<f32>[2, 3]")
    try notebook.finishRun(load, status: .ok, wallNs: 1_500_000, cpuNs: 1_400_000, peakRSS: 10 << 20,
                           metrics: [("loss", 0, 2.5), ("loss", 1, 1.25), ("tok/s", 0, 123.0)],
                           params: [("bits", "4")], inputs: [("model", "file:///m.gguf", String(repeating: "a", count: 64), 99)])
    runs.append(load)
    let plot = try notebook.beginRun(session: session, seq: 2, cellID: "plot", source: cells[2].source, seed: 42,
                                     threads: 2)
    try notebook.appendDisplay(run: plot, alternatives: [("image/svg+xml", svg), ("text/plain", "<plot 10x10>")])
    try notebook.appendOutput(run: plot, kind: .stderr, text: "<script>alert(1)</script> & more\n")
    try notebook.saveArtifact(run: plot, name: "weights", kind: "tensor", bytes: Array(0..<200).map { UInt8($0) },
                              dtype: "f32", shape: [5, 10], meta: #"{"source":"fixture"}"#)
    try notebook.finishRun(plot, status: .ok, wallNs: 25_000_000, cpuNs: 20_000_000, peakRSS: nil)
    runs.append(plot)
    let fail = try notebook.beginRun(session: session, seq: 3, cellID: "fail", source: cells[4].source, seed: 42,
                                     threads: 2)
    try notebook.appendOutput(run: fail, kind: .error,
                              text: "cell 3, 1:1: error: matmul: shapes [2, 3] and [2] do not fit")
    try notebook.finishRun(fail, status: .error, wallNs: 300_000, cpuNs: 290_000, peakRSS: nil)
    runs.append(fail)
    try notebook.closeSession(session)
    return (session, runs)
  }

  /// A REPL session of three lines.
  @discardableResult
  static func populateREPL(_ notebook: Notebook) throws -> Int64 {
    let env = try notebook.recordEnvironment(environment)
    let session = try notebook.beginSession(mode: .repl, seed: 7, environmentID: env, remark: nil)
    for (offset, line) in ["a = 1", "b = a + 1", "print(b)"].enumerated() {
      let run = try notebook.beginRun(session: session, seq: offset + 1, cellID: nil, source: line, seed: 7, threads: 1)
      if offset == 2 { try notebook.appendOutput(run: run, kind: .stdout, text: "2\n") }
      try notebook.finishRun(run, status: .ok, wallNs: 1000, cpuNs: 1000, peakRSS: nil)
    }
    try notebook.closeSession(session)
    return session
  }

  /// A fresh path for a notebook in a new temporary directory.
  static func temporaryNotebookPath(_ name: String = "test.lnb") throws -> String {
    try TestPaths.temporaryDirectory("lathe-nb").appendingPathComponent(name).path
  }

  static func bytes(of path: String) throws -> [UInt8] { Array(try Data(contentsOf: URL(fileURLWithPath: path))) }

  static func write(_ bytes: [UInt8], to path: String) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
  }

  static func sha256(of path: String) throws -> String { SHA256.hex(try bytes(of: path)) }

  static func exists(_ path: String) -> Bool { FileManager.default.fileExists(atPath: path) }

  /// Rows in `table`, read through a separate read-only connection (sees only committed data).
  static func committedCount(_ table: String, path: String) throws -> Int {
    let db = try Database(path: NotebookFile.uri(path: path, immutable: false), flags: SQLITE_OPEN_READONLY)
    defer { db.close() }
    return try db.scalar("SELECT count(*) FROM \(table)")?.int ?? -1
  }
}
