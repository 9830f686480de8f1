// The notebook target: an input is a notebook file, as given and as byte edits of a seed notebook (a session of
// cells with outputs of every kind, a display, metrics, params, inputs, an artifact and a blob in parts). Opened
// read-only, the file must read, check and export without one byte of it or its folder changing; opened for
// writing (recovery, migration), it must open or be refused with a NotebookError.

import Foundation
import LatheNotebook

enum NotebookFuzz {
  static var path: String { Scratch.folder + "/fuzz.lnb" }

  static func prepare() { _ = Scratch.folder }

  static func seed() throws -> [UInt8] {
    let file = Scratch.folder + "/seed.lnb"
    defer { for suffix in ["", "-wal", "-shm"] { unlink(file + suffix) } }
    do {
      let notebook = try Notebook.open(path: file)
      let env = try notebook.recordEnvironment(EnvironmentInfo(latheVersion: "fuzz", os: "Linux", coreCount: 2))
      let session = try notebook.beginSession(mode: .run, seed: 42, environmentID: env, remark: "seed")
      try notebook.upsertCell(id: "intro", position: 0, kind: .markdown, source: "# Seed\n<b>tags</b>")
      try notebook.upsertCell(id: "load", position: 1, kind: .code, source: "x = ones([2, 3])\nprint(shape(x))", tags: ["volatile"])
      let run = try notebook.beginRun(session: session, seq: 1, cellID: "load", source: "x = ones([2, 3])\nprint(shape(x))", seed: 42, threads: 2)
      try notebook.appendOutput(run: run, kind: .stdout, text: "[2, 3]\n")
      try notebook.appendDisplay(run: run, alternatives: [("image/svg+xml", "<svg xmlns=\"http://www.w3.org/2000/svg\"/>"), ("text/plain", "<plot>")])
      try notebook.appendOutput(run: run, kind: .error, text: "cell 1, 1:1: error: no")
      _ = try notebook.putBlob(Array(repeating: 7, count: 5000) + Array(0..<200))
      try notebook.saveArtifact(run: run, name: "w", kind: "tensor", bytes: Array(0..<64), dtype: "f32", shape: [4, 4], meta: nil)
      try notebook.finishRun(run, status: .ok, wallNs: 1000, cpuNs: 900, peakRSS: 1 << 20, metrics: [("loss", 0, 2.5)],
                             params: [("bits", "4")], inputs: [("model", "file:///m.gguf", String(repeating: "a", count: 64), 9)])
      try notebook.closeSession(session)
      try notebook.checkpoint()
      notebook.close()
    }
    return FileManager.default.contents(atPath: file).map { [UInt8]($0) } ?? []
  }

  nonisolated(unsafe) static var seedBytes: [UInt8]?

  static func check(_ input: [UInt8]) throws {
    try open(input)
    if seedBytes == nil { seedBytes = (try? seed()) ?? [] }
    if let seedBytes, !seedBytes.isEmpty { try open(SeedEdits.apply(input, to: seedBytes, positionBytes: 3)) }
  }

  static func open(_ bytes: [UInt8]) throws {
    let file = path
    for suffix in ["", "-wal", "-shm", "-journal"] { unlink(file + suffix) }
    defer { for suffix in ["", "-wal", "-shm", "-journal"] { unlink(file + suffix) } }
    guard FileManager.default.createFile(atPath: file, contents: Data(bytes)) else { return }
    do {
      let notebook = try Notebook.open(path: file, readOnly: true)
      read(notebook)
      notebook.close()
    } catch is NotebookError {
    } catch {
      throw FuzzFinding("a read-only open threw an error that is not a NotebookError: \(error)")
    }
    let after = FileManager.default.contents(atPath: file).map { [UInt8]($0) }
    guard after == bytes else { throw FuzzFinding("a read-only open changed the file") }
    for suffix in ["-wal", "-shm", "-journal"] where FileManager.default.fileExists(atPath: file + suffix) {
      throw FuzzFinding("a read-only open created \(suffix)")
    }
    do {
      let notebook = try Notebook.open(path: file)
      read(notebook)
      notebook.close()
    } catch is NotebookError {
    } catch {
      throw FuzzFinding("an open for writing threw an error that is not a NotebookError: \(error)")
    }
  }

  /// Every view `lathe show` and `lathe export` give; each may fail on a damaged file, none may trap.
  static func read(_ notebook: Notebook) {
    _ = try? notebook.check()
    _ = try? notebook.cells()
    _ = try? notebook.sessionCounts()
    _ = try? notebook.runningRuns()
    _ = try? notebook.tableCounts()
    _ = try? notebook.artifacts()
    for session in (try? notebook.sessions()) ?? [] {
      for run in (try? notebook.runs(session: session.id)) ?? [] {
        _ = try? notebook.metrics(run: run.id)
        _ = try? notebook.params(run: run.id)
        _ = try? notebook.inputs(run: run.id)
      }
    }
    for artifact in (try? notebook.artifacts()) ?? [] { _ = try? notebook.loadArtifact(name: artifact.name) }
    let renderer = NotebookRenderer(notebook)
    for format in ExportFormat.allCases { _ = try? renderer.render(format, options: RenderOptions(showMetrics: true, allMetrics: true)) }
    _ = try? renderer.renderSessionList()
  }
}
