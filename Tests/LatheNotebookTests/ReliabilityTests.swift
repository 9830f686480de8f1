// ReliabilityTests: foreign and corrupt files refused without changes, read-only opens that write nothing, one writer.
import CSQLite
import Foundation
import LatheLang
import Testing
@testable import LatheNotebook

@Suite struct ReliabilityTests {
  /// Opening `path` must throw an error whose description starts with `prefix`, and leave the file's bytes alone.
  private func expectRefused(_ path: String, readOnly: Bool, prefix: String) throws {
    let before = try Fixtures.sha256(of: path)
    do {
      _ = try Notebook.open(path: path, readOnly: readOnly)
      Issue.record("\(path) opened (readOnly: \(readOnly))")
    } catch let error as NotebookError {
      #expect(error.description.hasPrefix(prefix), "\(error)")
    }
    #expect(try Fixtures.sha256(of: path) == before)
  }

  @Test func foreignSQLiteFileIsRefused() throws {
    let path = try Fixtures.temporaryNotebookPath("other.db")
    let db = try Database(path: path)
    try db.executeScript("CREATE TABLE t(x INTEGER); INSERT INTO t VALUES (1); PRAGMA application_id = 1234;")
    db.close()
    try expectRefused(path, readOnly: false, prefix: "not a Lathe notebook")
    try expectRefused(path, readOnly: true, prefix: "not a Lathe notebook")

    // Our application_id but no Lathe schema: refused too.
    let impostor = try Fixtures.temporaryNotebookPath("impostor.lnb")
    let other = try Database(path: impostor)
    try other.executeScript("CREATE TABLE t(x); PRAGMA application_id = \(Schema.applicationID); PRAGMA user_version = 1;")
    other.close()
    try expectRefused(impostor, readOnly: false, prefix: "not a Lathe notebook")
    #expect(!Fixtures.exists(impostor + "-wal"))
  }

  @Test func randomBytesAreRefused() throws {
    var generator = SplitMix64(seed: 3)
    let path = try Fixtures.temporaryNotebookPath("random.lnb")
    try Fixtures.write((0..<4096).map { _ in UInt8.random(in: 0...255, using: &generator) }, to: path)
    try expectRefused(path, readOnly: false, prefix: "not a Lathe notebook")
    try expectRefused(path, readOnly: true, prefix: "not a Lathe notebook")
    // SQLite's magic string followed by garbage.
    try Fixtures.write(NotebookFile.magic + (0..<8192).map { _ in UInt8.random(in: 0...255, using: &generator) },
                       to: path)
    try expectRefused(path, readOnly: false, prefix: "no")
    try expectRefused(path, readOnly: true, prefix: "no")
    try Fixtures.write(Array(NotebookFile.magic[0..<7]), to: path)
    try expectRefused(path, readOnly: true, prefix: "notebook is corrupt")
  }

  /// Truncations and bit flips of a small notebook: each open either works (and every reader then returns or
  /// throws) or is refused with a notebook error, and a refused file keeps its bytes.
  @Test func corruptNotebooksNeverCrash() throws {
    let original = try Fixtures.temporaryNotebookPath("original.lnb")
    let writer = try Notebook.open(path: original)
    try Fixtures.populate(writer)
    try Fixtures.populateREPL(writer)
    try writer.putBlob([UInt8](repeating: 0x5A, count: 40_000))
    writer.close()
    let pristine = try Fixtures.bytes(of: original)
    #expect(pristine.count % 8192 == 0 && pristine.count >= 8 * 8192)
    let directory = (original as NSString).deletingLastPathComponent
    var generator = SplitMix64(seed: 2024)
    var opened = 0, refused = 0, healthy = 0, reasons: [String: Int] = [:]
    // LATHE_NOTEBOOK_CORRUPTION_TRIALS=2000 runs the longer campaign of design C.4 #6.
    let trials = ProcessInfo.processInfo.environment["LATHE_NOTEBOOK_CORRUPTION_TRIALS"].flatMap { Int($0) } ?? 200
    for trial in 0..<trials {
      var bytes = pristine
      if trial % 3 == 0 {
        let cut = trial % 2 == 0 ? 8192 * Int.random(in: 0..<(bytes.count / 8192), using: &generator)
                                 : Int.random(in: 1..<bytes.count, using: &generator)
        bytes.removeSubrange(cut...)
      } else {
        for _ in 0..<Int.random(in: 1...8, using: &generator) {
          // A quarter of the flips land in the first page: the header, the schema and the roots of its tables.
          let range = Int.random(in: 0..<4, using: &generator) == 0 ? 0..<8192 : 0..<bytes.count
          bytes[Int.random(in: range, using: &generator)] ^= UInt8(1 << Int.random(in: 0..<8, using: &generator))
        }
      }
      let path = "\(directory)/corrupt-\(trial).lnb"
      try Fixtures.write(bytes, to: path)
      let readOnly = trial % 2 == 1
      let before = SHA256.hex(bytes)
      do {
        let notebook = try Notebook.open(path: path, readOnly: readOnly)
        opened += 1
        let problems = (try? notebook.check()) ?? ["check threw"]
        if problems.isEmpty { healthy += 1 }
        for session in (try? notebook.sessions()) ?? [] { _ = try? notebook.runs(session: session.id) }
        _ = try? notebook.cells()
        _ = try? notebook.loadArtifact(name: "weights")
        for format in ExportFormat.allCases { _ = try? NotebookRenderer(notebook).render(format) }
        notebook.close()
        if readOnly { #expect(try Fixtures.sha256(of: path) == before, "trial \(trial): read-only open wrote") }
      } catch let error as NotebookError {
        refused += 1
        reasons[String(error.description.prefix(while: { $0 != ":" })), default: 0] += 1
        #expect(try Fixtures.sha256(of: path) == before, "trial \(trial): refused open changed the file")
        if case .sqlite = error {} else { continue }
        Issue.record("trial \(trial): a damaged file should be reported as such, got \(error)")
      }
      for suffix in ["", "-wal", "-shm"] { unlink(path + suffix) }
    }
    #expect(try Fixtures.sha256(of: original) == SHA256.hex(pristine))
    #expect(opened + refused == trials)
    #expect(refused > 0)
    print("corruption trials: \(opened) opened (\(healthy) with check() clean), \(refused) refused: \(reasons)")
  }

  @Test func readOnlyOpenChangesNothing() throws {
    let path = try Fixtures.temporaryNotebookPath()
    try Fixtures.populate(try Notebook.open(path: path))
    chmod(path, 0o444)
    defer { chmod(path, 0o644) }
    let before = try Fixtures.sha256(of: path)
    let notebook = try Notebook.open(path: path, readOnly: true)
    #expect(notebook.isReadOnly)
    let session = try #require(try notebook.latestSession())
    #expect(try notebook.runs(session: session.id).count == 3)
    for format in ExportFormat.allCases { _ = try NotebookRenderer(notebook).render(format) }
    #expect(try notebook.check() == [])
    #expect(!Fixtures.exists(path + "-wal") && !Fixtures.exists(path + "-shm"))
    notebook.close()
    #expect(try Fixtures.sha256(of: path) == before)
    #expect(!Fixtures.exists(path + "-wal") && !Fixtures.exists(path + "-shm"))
    if getuid() != 0 {  // root may write to a 0444 file, so only others get the refusal
      #expect(throws: NotebookError.self) { try Notebook.open(path: path) }
      #expect(try Fixtures.sha256(of: path) == before)
    }
  }

  @Test func readerSeesALiveWritersCommits() throws {
    let path = try Fixtures.temporaryNotebookPath()
    let writer = try Notebook.open(path: path)
    let env = try writer.recordEnvironment(Fixtures.environment)
    _ = try writer.beginSession(mode: .repl, seed: 0, environmentID: env, remark: nil)
    let reader = try Notebook.open(path: path, readOnly: true)
    #expect(try reader.sessions().map(\.status) == [.running])
    reader.close()
    writer.close()
  }

  @Test func secondWriterIsRefusedWithThePid() throws {
    let path = try Fixtures.temporaryNotebookPath()
    let first = try Notebook.open(path: path)
    let env = try first.recordEnvironment(Fixtures.environment)
    _ = try first.beginSession(mode: .repl, seed: 0, environmentID: env, remark: nil)
    do {
      _ = try Notebook.open(path: path)
      Issue.record("a second writer opened the notebook")
    } catch let error as NotebookError {
      #expect(error.description == "notebook \(path) is open for writing by pid \(getpid()) on host \(currentHostName())")
    }
    #expect(try Notebook.open(path: path, readOnly: true).sessions().count == 1, "readers are still welcome")
    first.close()
    let second = try Notebook.open(path: path)
    #expect(second.recoveredSessions.count == 1, "close() without closeSession leaves the session to recovery")
  }

  /// Another process holds the flock (python3's fcntl.flock), as a second `lathe` would.
  @Test func writerLockedByAnotherProcess() throws {
    let path = try Fixtures.temporaryNotebookPath()
    let writer = try Notebook.open(path: path)
    let env = try writer.recordEnvironment(Fixtures.environment)
    let session = try writer.beginSession(mode: .repl, seed: 0, environmentID: env, remark: nil)
    writer.abandonForTesting()

    let python = Process()
    python.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    python.arguments = ["python3", "-c", """
      import fcntl, sys
      f = open(sys.argv[1], 'rb'); fcntl.flock(f, fcntl.LOCK_EX | fcntl.LOCK_NB)
      print('locked', flush=True); sys.stdin.read()
      """, path]
    let output = Pipe(), input = Pipe()
    python.standardOutput = output
    python.standardInput = input
    do { try python.run() } catch {
      print("skipping writerLockedByAnotherProcess: python3 not available (\(error))")
      return
    }
    let line = String(decoding: output.fileHandleForReading.availableData, as: UTF8.self)
    guard line.hasPrefix("locked") else {
      python.terminate()
      print("skipping writerLockedByAnotherProcess: python3 could not lock (\(line))")
      return
    }
    #expect(throws: NotebookError.locked(path: path, holder: "pid \(getpid()) on host \(currentHostName())")) {
      try Notebook.open(path: path)
    }
    try input.fileHandleForWriting.close()
    python.waitUntilExit()
    let notebook = try Notebook.open(path: path)
    #expect(notebook.recoveredSessions == [session])
  }
}

/// After a writer crashed (its -wal left behind, un-checkpointed), a read-only open changes no byte of the folder
/// (SQLite would rebuild the -shm index in place: it reads a private copy instead) and still sees every commit.
@Test(arguments: [1, 3, 12])
func readOnlyOpenAfterACrashedWriterChangesNothing(runs: Int) throws {
  let path = try Fixtures.temporaryNotebookPath()
  let folder = (path as NSString).deletingLastPathComponent
  let writer = try Notebook.open(path: path)
  let env = try writer.recordEnvironment(Fixtures.environment)
  let session = try writer.beginSession(mode: .repl, seed: 0, environmentID: env, remark: nil)
  for i in 0..<runs {
    let run = try writer.beginRun(session: session, seq: i + 1, cellID: nil, source: "print(\(i))", seed: 0, threads: 1)
    try writer.appendOutput(run: run, kind: .stdout, text: "output \(i)\n")
    try writer.finishRun(run, status: .ok, wallNs: 1, cpuNs: 1, peakRSS: 1, metrics: [], params: [], inputs: [])
  }
  writer.abandonForTesting()
  #expect(Fixtures.exists(path + "-wal"))
  func snapshot() throws -> [String: String] {
    var out: [String: String] = [:]
    for name in try FileManager.default.contentsOfDirectory(atPath: folder) { out[name] = try Fixtures.sha256(of: folder + "/" + name) }
    return out
  }
  let before = try snapshot()
  let reader = try Notebook.open(path: path, readOnly: true)
  let seen = try reader.runs(session: session)
  #expect(seen.count == runs && seen.last?.outputs.last?.text == "output \(runs - 1)\n")
  reader.close()
  #expect(try snapshot() == before, "a read-only open changed the folder")
}
