// NotebookTests: sessions, runs, outputs, metrics, blobs and artifacts round-trip; output buffering; recovery.
import Foundation
import LatheLang
import Testing
@testable import LatheNotebook

@Suite struct NotebookTests {
  @Test func sessionRoundTrip() throws {
    let path = try Fixtures.temporaryNotebookPath()
    let (sessionID, runIDs) = try Fixtures.populate(try Notebook.open(path: path))
    #expect(!Fixtures.exists(path + "-wal"), "a closed notebook is one file")

    let notebook = try Notebook.open(path: path, readOnly: true)
    let session = try #require(try notebook.latestSession(modes: [.run]))
    #expect(session.id == sessionID && session.status == .closed && session.seed == 42 && session.remark == "fixture")
    #expect(session.pid == Int64(getpid()) && session.endedAt != nil)
    #expect(try notebook.latestSession(modes: [.repl]) == nil)

    let runs = try notebook.runs(session: sessionID)
    #expect(runs.map(\.id) == runIDs)
    #expect(runs.map(\.status) == [.ok, .ok, .error])
    #expect(runs[0].cellID == "load" && runs[0].source == Fixtures.cells[1].source && runs[0].threads == 2)
    #expect(runs[0].wallNs == 1_500_000 && runs[0].peakRSS == 10 << 20)
    #expect(runs[0].outputs.map(\.kind) == [.stdout, .result])
    #expect(runs[0].outputs.map(\.idx) == [0, 1])
    // The display's two alternatives share idx 0; the stderr output after it is idx 1.
    #expect(runs[1].outputs.map(\.idx) == [0, 0, 1])
    #expect(runs[1].outputs.map(\.mime) == ["image/svg+xml", "text/plain", "text/plain"])
    #expect(runs[1].outputs[0].text == Fixtures.svg)
    #expect(runs[2].outputs.first?.text.contains("do not fit") == true)

    #expect(try notebook.metrics(run: runIDs[0]) == [
      MetricRecord(key: "loss", step: 0, value: 2.5), MetricRecord(key: "loss", step: 1, value: 1.25),
      MetricRecord(key: "tok/s", step: 0, value: 123)])
    #expect(try notebook.params(run: runIDs[0]).map { "\($0.key)=\($0.value)" } == ["bits=4"])
    #expect(try notebook.inputs(run: runIDs[0]).first?.size == 99)
    #expect(try notebook.cells().map(\.id) == Fixtures.cells.map(\.id))

    let artifact = try #require(try notebook.loadArtifact(name: "weights"))
    #expect(artifact.bytes == Array(0..<200).map { UInt8($0) } && artifact.kind == "tensor")
    #expect(try notebook.artifacts().first?.shape == "[5,10]")
    #expect(try notebook.artifactNames() == ["weights"])
    #expect(try notebook.check() == [])
  }

  @Test func largeBlobIsStoredInPartsAndHashesBack() throws {
    let path = try Fixtures.temporaryNotebookPath()
    let notebook = try Notebook.open(path: path)
    let bytes = Fixtures.randomBytes(17 * 1024 * 1024 + 12_345, seed: 17)
    try notebook.saveArtifact(run: nil, name: "big", kind: "model", bytes: bytes, dtype: nil, shape: nil, meta: nil)
    let hash = SHA256.hex(bytes)
    #expect(try notebook.db.scalar("SELECT codec FROM blob WHERE hash = ?", [.text(hash)]) == .text("parts"))
    let parts = try notebook.db.scalar("SELECT count(*) FROM blob WHERE codec = 'raw'")?.int ?? 0
    #expect(parts >= bytes.count / ContentParts.maximum && parts <= bytes.count / ContentParts.minimum + 1, "\(parts) parts")
    #expect(try notebook.db.scalar("SELECT count(*) FROM blob_chunk") == .integer(0))
    // Storing the same content again adds nothing.
    #expect(try notebook.putBlob(bytes) == hash)
    #expect(try notebook.db.scalar("SELECT count(*) FROM blob") == .integer(Int64(parts + 1)))
    notebook.close()

    let reader = try Notebook.open(path: path, readOnly: true)
    #expect(try reader.loadArtifact(name: "big")?.bytes == bytes)
    #expect(try reader.check() == [])
  }

  @Test func damagedPartIsReported() throws {
    let notebook = try Notebook.open(path: ":memory:")
    let bytes = Fixtures.randomBytes(Notebook.chunkThreshold + 1, seed: 3)
    let hash = try notebook.putBlob(bytes)
    let part = try #require(try notebook.db.scalar("SELECT hash FROM blob WHERE codec = 'raw' ORDER BY hash LIMIT 1")?.string)
    try notebook.db.execute("UPDATE blob SET content = zeroblob(size) WHERE hash = ?", [.text(part)])
    #expect(throws: NotebookError.self) { try notebook.getBlob(hash) }
    let problems = try notebook.check()
    #expect(problems.contains { $0.contains(hash) && $0.contains("part") && $0.contains("does not match") }, "\(problems)")
    #expect(problems.contains { $0.contains(part) && $0.contains("does not match its hash") }, "\(problems)")
    #expect(throws: NotebookError.self) { try notebook.getBlob(String(repeating: "f", count: 64)) }
    // A missing part is named.
    try notebook.db.execute("DELETE FROM blob WHERE hash = ?", [.text(part)])
    #expect(try notebook.check().contains { $0.contains(hash) && $0.contains("is missing") })
  }

  @Test func outputsAreBufferedMergedAndFlushed() throws {
    let path = try Fixtures.temporaryNotebookPath()
    let notebook = try Notebook.open(path: path)
    notebook.flushInterval = .seconds(3600)
    let env = try notebook.recordEnvironment(Fixtures.environment)
    let session = try notebook.beginSession(mode: .repl, seed: 1, environmentID: env, remark: nil)
    let run = try notebook.beginRun(session: session, seq: 1, cellID: nil, source: "loop()", seed: 1, threads: 1)
    #expect(try Fixtures.committedCount("run", path: path) == 1, "the running row is committed at once")

    for piece in ["a", "b", "c\n"] { try notebook.appendOutput(run: run, kind: .stdout, text: piece) }
    try notebook.appendOutput(run: run, kind: .stderr, text: "warn\n")
    try notebook.appendOutput(run: run, kind: .stdout, text: "d\n")
    #expect(try Fixtures.committedCount("output", path: path) == 0, "small outputs wait in the buffer")

    // 64 KiB pending forces a write; a piece larger than 64 KiB goes to a blob.
    let large = String(repeating: "x", count: 70_000)
    try notebook.appendOutput(run: run, kind: .result, text: large)
    #expect(try Fixtures.committedCount("output", path: path) == 4)

    try notebook.appendOutput(run: run, kind: .stdout, text: "tail\n")
    try notebook.finishRun(run, status: .ok, wallNs: 5, cpuNs: 5, peakRSS: nil, metrics: [("nan", 0, .nan)])
    #expect(try Fixtures.committedCount("output", path: path) == 5)

    let outputs = try #require(try notebook.run(id: run)).outputs
    #expect(outputs.map(\.text) == ["abc\n", "warn\n", "d\n", large, "tail\n"])
    #expect(outputs.map(\.idx) == [0, 1, 2, 3, 4])
    #expect(outputs[3].blobHash == SHA256.hex(large))
    #expect(outputs.filter { $0.blobHash != nil }.count == 1)
    #expect(try notebook.metrics(run: run).first?.value.isNaN == true)

    // With a zero interval every append is written at once.
    notebook.flushInterval = .zero
    let second = try notebook.beginRun(session: session, seq: 2, cellID: nil, source: "p()", seed: 1, threads: 1)
    try notebook.appendOutput(run: second, kind: .stdout, text: "now\n")
    #expect(try Fixtures.committedCount("output", path: path) == 6)
    try notebook.finishRun(second, status: .interrupted, wallNs: 1, cpuNs: 1, peakRSS: nil)
    try notebook.closeSession(session)
    #expect(try notebook.check() == [])
  }

  @Test func crashedSessionIsRecovered() throws {
    let path = try Fixtures.temporaryNotebookPath()
    let writer = try Notebook.open(path: path)
    let env = try writer.recordEnvironment(Fixtures.environment)
    let done = try writer.beginSession(mode: .repl, seed: 1, environmentID: env, remark: nil)
    try writer.closeSession(done)
    let session = try writer.beginSession(mode: .run, seed: 1, environmentID: env, remark: nil)
    let finished = try writer.beginRun(session: session, seq: 1, cellID: nil, source: "a = 1", seed: 1, threads: 1)
    try writer.finishRun(finished, status: .ok, wallNs: 1, cpuNs: 1, peakRSS: nil)
    let run = try writer.beginRun(session: session, seq: 2, cellID: nil, source: "train()", seed: 1, threads: 1)
    writer.flushInterval = .zero
    try writer.appendOutput(run: run, kind: .stdout, text: "step 1\n")
    writer.flushInterval = .seconds(3600)
    try writer.appendOutput(run: run, kind: .stdout, text: "step 2 (never flushed)\n")
    writer.abandonForTesting()
    #expect(Fixtures.exists(path + "-wal"), "the simulated crash leaves the WAL behind")

    let notebook = try Notebook.open(path: path)
    #expect(notebook.recoveredSessions == [session])
    let sessions = try notebook.sessions()
    #expect(sessions.map(\.status) == [.closed, .crashed])
    #expect(sessions[1].endedAt != nil)
    let runs = try notebook.runs(session: session)
    #expect(runs.map(\.status) == [.ok, .crashed])
    #expect(runs[1].endedAt != nil)
    #expect(runs[1].outputs.map(\.text) == ["step 1\n"])
    #expect(try notebook.check() == [])
  }

  @Test func writesAreRefusedWhenReadOnlyOrInvalid() throws {
    let path = try Fixtures.temporaryNotebookPath()
    try Fixtures.populate(try Notebook.open(path: path))
    let reader = try Notebook.open(path: path, readOnly: true)
    #expect(throws: NotebookError.self) { try reader.putBlob([1, 2, 3]) }
    #expect(throws: NotebookError.self) { try reader.beginSession(mode: .repl, seed: 0, environmentID: 1, remark: nil) }
    let writer = try Notebook.open(path: ":memory:")
    #expect(throws: NotebookError.self) { try writer.upsertCell(id: "", position: 0, kind: .code, source: "") }
    #expect(throws: NotebookError.self) { try writer.closeSession(12345) }
    #expect(throws: NotebookError.self) {
      try writer.finishRun(1, status: .running, wallNs: 0, cpuNs: 0, peakRSS: nil)
    }
    #expect(throws: NotebookError.self) { try writer.appendDisplay(run: 1, alternatives: [("a/b", "1"), ("a/b", "2")]) }
    writer.close()
    writer.close()
    #expect(throws: NotebookError.self) { try writer.putBlob([1]) }
  }
}

/// A large blob streams: `readBlob` hands it on part by part (no piece over the 512 KiB part limit), the pieces add
/// up to the blob and its hash, and `check()`, which streams the same way, finds nothing.
@Test(arguments: [16 * 1024 * 1024 + 1, 17 * 1024 * 1024 + 12_345, 24 * 1024 * 1024])
func largeBlobsStreamPartByPart(size: Int) throws {
  let notebook = try Notebook.open(path: ":memory:")
  let bytes = Fixtures.randomBytes(size, seed: UInt64(size))
  let hash = try notebook.putBlob(bytes)
  var pieces = 0, largest = 0, total = 0
  var hasher = SHA256()
  try notebook.readBlob(hash) { piece in
    pieces += 1; largest = max(largest, piece.count); total += piece.count
    hasher.update(piece)
  }
  #expect(pieces > 16 && largest <= 512 * 1024, "\(pieces) pieces, the largest \(largest) bytes")
  #expect(total == size && SHA256.hexString(hasher.finalize()) == hash)
  #expect(try notebook.check() == [])
  #expect(try notebook.getBlob(hash) == bytes)
}
