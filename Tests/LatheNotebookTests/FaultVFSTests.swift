// Simulated power loss and I/O errors under the notebook (design C.4 rows 8 and 9), through the fault VFS of
// Tests/CFaultVFS, which wraps SQLite's default VFS and acts only on files under an armed folder.
//  - Power loss: the workload (runs with outputs, each committed by finishRun) loses power after write N, at
//    random N; every write since the last sync is kept, undone or garbled. The file must then open (recovery),
//    check clean, and hold every run whose finishRun returned, with all its outputs.
//  - I/O errors: write or sync N fails (disk full or I/O error), once or from then on. Each failure is a thrown
//    error; once the fault is gone ("space freed") the same notebook object records a new run; the file checks
//    clean, every acknowledged run is whole, and no run reads `ok` with less than its outputs.

import CFaultVFS
import CSQLite
import Foundation
import LatheTestSupport
import Testing
@testable import LatheNotebook

@Suite(.serialized) struct FaultVFSTests {
  static let runs = 12

  /// The output of run `i`: several lines, so that a run's outputs span pages.
  static func text(_ i: Int) -> String { (0..<40).map { "run \(i) line \($0) " + String(repeating: "x", count: $0 % 17) }.joined(separator: "\n") }

  /// One run of the workload; returns normally only when finishRun committed it.
  static func record(_ i: Int, in notebook: Notebook, session: Int64) throws {
    let run = try notebook.beginRun(session: session, seq: i + 1, cellID: nil, source: "cell \(i)", seed: 1, threads: 1)
    try notebook.appendOutput(run: run, kind: .stdout, text: text(i))
    try notebook.finishRun(run, status: .ok, wallNs: 1000, cpuNs: 900, peakRSS: nil, metrics: [("loss", 0, Double(i))])
  }

  /// A notebook with its environment and an open session, written before any fault is armed.
  static func base(in dir: URL) throws -> (path: String, session: Int64) {
    let path = dir.appendingPathComponent("base.lnb").path
    let notebook = try Notebook.open(path: path)
    notebook.flushInterval = .seconds(3600)
    let env = try notebook.recordEnvironment(EnvironmentInfo(latheVersion: "fault", os: "Linux"))
    let session = try notebook.beginSession(mode: .run, seed: 1, environmentID: env, remark: "fault")
    try notebook.checkpoint()
    notebook.close()
    return (path, session)
  }

  static func copy(_ from: String, to: String) throws {
    for suffix in ["", "-wal", "-shm"] { unlink(to + suffix) }
    try FileManager.default.copyItem(atPath: from, toPath: to)
  }

  /// Every acknowledged run is there with its whole output, and no run is `ok` with less.
  static func verify(_ path: String, acknowledged: Set<Int>, _ context: String) throws {
    let notebook = try Notebook.open(path: path)
    defer { notebook.close() }
    #expect(try notebook.check() == [], "\(context)")
    var found: [Int: RunRecord] = [:]
    for session in try notebook.sessions() {
      for run in try notebook.runs(session: session.id) {
        guard run.source.hasPrefix("cell "), let i = Int(run.source.dropFirst(5)) else { continue }
        found[i] = run
        if run.status == .ok {
          #expect(run.outputs.map(\.text).joined() == text(i), "\(context): run \(i) is ok with partial output")
        }
      }
    }
    for i in acknowledged {
      #expect(found[i]?.status == .ok, "\(context): acknowledged run \(i) is \(found[i].map { "\($0.status)" } ?? "missing")")
    }
  }

  /// Writes and syncs the workload's runs make on a fresh copy of `base` (its close not included).
  static func count(base: String, dir: URL) throws -> (writes: Int, syncs: Int) {
    let path = dir.appendingPathComponent("count.lnb").path
    try copy(base, to: path)
    fault_vfs_count_under(path)
    defer { fault_vfs_disarm() }
    let notebook = try Notebook.open(path: path)
    notebook.flushInterval = .seconds(3600)
    let session = try notebook.sessions()[0].id
    for i in 0..<runs { try record(i, in: notebook, session: session) }
    let counts = (fault_vfs_writes(), fault_vfs_syncs())      // before close: the trials close after the fault is gone
    notebook.close()
    return counts
  }

  @Test func powerLossLosesNoAcknowledgedRunAndCorruptsNothing() throws {
    try #require(fault_vfs_install() == SQLITE_OK)
    let dir = try TestPaths.temporaryDirectory("power-loss")
    defer { try? FileManager.default.removeItem(at: dir) }
    let (base, session) = try Self.base(in: dir)
    let total = try Self.count(base: base, dir: dir).writes
    try #require(total > 20, "the workload made only \(total) writes")
    let trials = Int(ProcessInfo.processInfo.environment["LATHE_POWER_LOSS_TRIALS"] ?? "") ?? 200
    var crashes = 0
    for trial in 0..<trials {
      let path = dir.appendingPathComponent("t.lnb").path
      try Self.copy(base, to: path)
      let n = 1 + (trial * 7919) % total
      fault_vfs_crash_at(path, n, UInt64(trial) &* 0x9E37_79B9_7F4A_7C15 &+ 1)
      var acknowledged = Set<Int>()
      if let notebook = try? Notebook.open(path: path) {
        notebook.flushInterval = .seconds(3600)
        for i in 0..<Self.runs {
          do { try Self.record(i, in: notebook, session: session); acknowledged.insert(i) } catch { break }
        }
        notebook.close()
      }
      crashes += Int(fault_vfs_crashed())
      fault_vfs_disarm()
      unlink(path + "-shm")            // shared memory does not survive a power loss
      try Self.verify(path, acknowledged: acknowledged, "power lost after write \(n) of \(total) (trial \(trial))")
    }
    #expect(crashes >= trials * 9 / 10, "power failed in only \(crashes) of \(trials) trials")
  }

  @Test(arguments: [(sync: false, full: true), (sync: false, full: false), (sync: true, full: false)])
  func ioErrorsAreErrorsAndTheSessionRecovers(sync: Bool, full: Bool) throws {
    try #require(fault_vfs_install() == SQLITE_OK)
    let dir = try TestPaths.temporaryDirectory("io-error")
    defer { try? FileManager.default.removeItem(at: dir) }
    let (base, session) = try Self.base(in: dir)
    let counted = try Self.count(base: base, dir: dir)
    let total = sync ? counted.syncs : counted.writes
    try #require(total > 5, "the workload made only \(total) \(sync ? "syncs" : "writes")")
    var injections = 0, cases = 0
    defer { #expect(injections >= cases * 9 / 10, "a fault was injected in only \(injections) of \(cases) cases") }
    for n in stride(from: 1, through: total, by: max(1, total / 40)) {
      for persistent in [false, true] {
        let path = dir.appendingPathComponent("t.lnb").path
        try Self.copy(base, to: path)
        fault_vfs_fail_at(path, n, sync ? 1 : 0, full ? 1 : 0, persistent ? 1 : 0)
        cases += 1
        let context = "\(sync ? "sync" : "write") \(n) of \(total) fails\(persistent ? " from then on" : " once")\(full ? " (disk full)" : "")"
        var acknowledged = Set<Int>(), errors = 0
        let notebook: Notebook
        do { notebook = try Notebook.open(path: path) } catch {
          fault_vfs_disarm()
          try Self.verify(path, acknowledged: [], context)
          continue
        }
        notebook.flushInterval = .seconds(3600)
        for i in 0..<Self.runs {
          do { try Self.record(i, in: notebook, session: session); acknowledged.insert(i) } catch { errors += 1 }
        }
        let injected = fault_vfs_injected() != 0
        injections += injected ? 1 : 0
        fault_vfs_disarm()           // the space is freed
        #expect(!injected || errors > 0, "\(context): the failure was not reported")
        // The session is alive: the same notebook records the next run.
        do { try Self.record(99, in: notebook, session: session); acknowledged.insert(99) } catch {
          Issue.record("\(context): after the fault was gone, a run could not be recorded: \(error)")
        }
        notebook.close()
        try Self.verify(path, acknowledged: acknowledged, context)
      }
    }
  }
}
