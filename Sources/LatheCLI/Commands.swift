// The `lathe` commands as functions (run a script, rerun and check, show, export, check), so tests can call them.

import Foundation
import LatheLang
import LatheModels
import LatheNotebook

public enum Commands {
  /// Cell tags with a meaning: an expected error, and outputs that differ run to run (timings) so `rerun --check`
  /// does not compare them.
  public static let raisesTag = "raises-exception"
  public static let volatileTag = "volatile"

  static func fail(_ message: String, _ display: SessionDisplay) -> Int32 {
    display.write("lathe: \(message)\n", error: true)
    return 2
  }

  /// The notebook a script records into by default: `x.lathe` → `x.lnb` beside it.
  public static func defaultNotebookPath(forScript path: String) -> String {
    let url = URL(fileURLWithPath: path)
    return url.deletingPathExtension().appendingPathExtension("lnb").path
  }

  /// The outcome of a cell that Ctrl-C stopped before it started.
  static func interruptedOutcome() -> CellOutcome {
    Interrupt.clear()
    return CellOutcome(status: .interrupted, result: nil, diagnostic: nil, wallSeconds: 0, runID: nil)
  }

  /// `lathe run script.lathe`: runs the percent-format cells in order into a notebook. Stops at the first error
  /// of a cell not tagged raises-exception, unless `keepGoing`. Exit status 0, 1 (a cell failed) or 2 (no run).
  public static func run(script path: String, notebook notebookPath: String? = nil, seed: UInt64 = 0,
                         keepGoing: Bool = false, display: SessionDisplay = TerminalDisplay()) -> Int32 {
    // Ctrl-C from the first instruction on: it stops the running cell, and the run ends cleanly (marked interrupted).
    Signals.installInterruptHandler()
    guard let data = FileManager.default.contents(atPath: path) else { return fail("cannot read \(path)", display) }
    guard let text = String(data: data, encoding: .utf8) else { return fail("\(path) is not UTF-8 text", display) }
    let cells = PercentScript.parse(text)
    let target = notebookPath ?? defaultNotebookPath(forScript: path)
    let notebook: Notebook
    do { notebook = try Notebook.open(path: target) } catch { return fail("\(error)", display) }
    defer { notebook.close() }
    let session: Session
    do {
      session = try Session(notebook: notebook, mode: .run, seed: seed, remark: path, display: display)
    } catch {
      return fail("cannot start a session: \(error)", display)
    }
    defer { session.close() }
    let name = URL(fileURLWithPath: path).lastPathComponent
    var failures = 0, reached = 0
    var ids = Set<String>()
    let started = DispatchTime.now().uptimeNanoseconds
    for (index, cell) in cells.enumerated() {
      reached = index + 1
      let id = "cell-\(index + 1)"
      ids.insert(id)
      do {
        try notebook.upsertCell(id: id, position: Double(cell.firstLine), kind: cell.kind, source: cell.source, tags: cell.tags)
      } catch {
        return fail("cannot record cell \(index + 1): \(error)", display)
      }
      guard cell.kind == .code, !cell.source.trimmingCharacters(in: .whitespacesAndNewlines).isEmpty else { continue }
      // A Ctrl-C between cells (or while the notebook opened) stops the run before the next cell starts.
      let outcome = Interrupt.isRequested ? interruptedOutcome()
        : session.execute(cell.source, cellID: id, name: name, firstLine: cell.firstLine, path: path)
      if outcome.status == .interrupted {
        display.write("interrupted\n", error: true)
        summary(ran: reached, of: cells.count, name: name, target: target, started: started, display)
        return 1
      }
      if let lost = outcome.recordingError {
        // The cell ran, but the notebook could not keep it (a full disk): a failure, and the run stops.
        failures += 1
        display.write("lathe: the notebook \(target) could not record cell \(index + 1) (\(lost)); stopping\n", error: true)
        break
      }
      if outcome.status == .error && !cell.tags.contains(raisesTag) {
        failures += 1
        if !keepGoing {
          display.write("lathe: stopped at the error in cell \(index + 1) (line \(cell.firstLine)); "
                        + "tag a cell raises-exception when the error is expected\n", error: true)
          break
        }
      }
    }
    // Cells of an earlier version of the script that are no longer in it.
    if let stale = try? notebook.cells().filter({ !ids.contains($0.id) }) {
      for cell in stale { try? notebook.deleteCell(id: cell.id) }
    }
    summary(ran: reached, of: cells.count, name: name, target: target, started: started, display)
    return failures == 0 ? 0 : 1
  }

  /// The last line of `lathe run`: "ran 9 cells of x.lathe into x.lnb in 0.03s", or "ran 3 of 9 cells ..." when it
  /// stopped early (cells counted as in the script, markdown included).
  static func summary(ran: Int, of total: Int, name: String, target: String, started: UInt64, _ display: SessionDisplay) {
    let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
    let count = ran == total ? "\(total)" : "\(ran) of \(total)"
    display.write(String(format: "ran %@ cells of %@ into %@ in %.2fs\n", count, name, target, seconds), error: true)
  }

  /// `lathe rerun nb.lnb [--check] [--session N]`: runs the newest recorded session (or session `session`) again in
  /// a fresh interpreter with the same seed, recording a `rerun` session; with `check`, compares every output and
  /// prints a diff of mismatches.
  public static func rerun(notebook path: String, session sessionID: Int64? = nil, check: Bool, rtol: Double = 1e-5,
                           atol: Double = 1e-6, display: SessionDisplay = TerminalDisplay()) -> Int32 {
    Signals.installInterruptHandler()                      // as lathe run: Ctrl-C stops a cell, never the process
    let notebook: Notebook
    do { notebook = try Notebook.open(path: path) } catch { return fail("\(error)", display) }
    defer { notebook.close() }
    let original: SessionRecord
    let runs: [RunRecord]
    let cells: [String: CellRecord]
    do {
      let found = try sessionID.map { try notebook.session(id: $0) } ?? notebook.latestSession(modes: [.run, .repl, .kernel])
      guard let s = found else {
        let listed = (try? notebook.sessions().map { String($0.id) }) ?? []
        return fail(sessionID.map { "\(path) has no session \($0)"
                      + (listed.isEmpty ? "" : " (its sessions: \(listed.joined(separator: ", ")); lathe show --sessions lists them)") }
                    ?? "\(path) has no session to rerun", display)
      }
      original = s
      runs = try notebook.runs(session: s.id).sorted { $0.seq < $1.seq }
      cells = Dictionary(try notebook.cells().map { ($0.id, $0) }, uniquingKeysWith: { a, _ in a })
    } catch {
      return fail("\(error)", display)
    }
    let scriptName = original.remark.map { URL(fileURLWithPath: $0).lastPathComponent }
    let quiet = QuietDisplay()
    let session: Session
    do {
      session = try Session(notebook: notebook, mode: .rerun, seed: UInt64(bitPattern: original.seed ?? 0),
                            remark: "rerun of session \(original.id)", display: quiet)
    } catch {
      return fail("cannot start a session: \(error)", display)
    }
    defer { session.close() }
    var mismatches: [String] = []
    var compared = 0
    for run in runs where run.status != .running && run.status != .crashed {
      let cell = run.cellID.flatMap { cells[$0] }
      let name = (run.cellID != nil ? scriptName : nil) ?? "cell \(run.seq)"
      // Positions come from the file: a NaN or huge one (a damaged notebook) places errors at line 1.
      let line = cell.map { $0.position.isFinite && abs($0.position) < 1e9 ? Int($0.position) : 1 } ?? 1
      let outcome = Interrupt.isRequested ? interruptedOutcome()
        : session.execute(run.source, cellID: run.cellID, name: name, firstLine: line, path: original.remark)
      if outcome.status == .interrupted {
        display.write("interrupted\n", error: true)
        return 1
      }
      guard check else { continue }
      if cell?.tags.contains(volatileTag) == true { continue }
      compared += 1
      let fresh = (try? outcome.runID.flatMap { try notebook.run(id: $0) }?.outputs) ?? []
      let where_ = "run \(run.seq)" + (cell.map { " (\($0.id), line \(line))" } ?? "")
      if outcome.status != run.status {
        mismatches.append("\(where_): status was \(run.status.rawValue), now \(outcome.status.rawValue)")
      }
      mismatches += OutputComparison.differences(expected: run.outputs, actual: fresh, rtol: rtol, atol: atol)
        .map { "\(where_): \($0)" }
    }
    guard check else {
      display.write("reran \(runs.count) runs of session \(original.id) into \(path)\n", error: false)
      return 0
    }
    if mismatches.isEmpty {
      display.write("rerun --check: \(compared) runs of session \(original.id) reproduce every output "
                    + "(rtol \(rtol), atol \(atol))\n", error: false)
      return 0
    }
    display.write("rerun --check: \(mismatches.count) difference\(mismatches.count == 1 ? "" : "s")\n", error: true)
    for m in mismatches { display.write(m + "\n", error: true) }
    return 1
  }

  /// `lathe show nb.lnb`: the newest session (or `session`, or one run) as text; with `sessions`, the list of
  /// sessions instead. Metrics are summarised per series unless `allMetrics`.
  public static func show(notebook path: String, run: Int64? = nil, session: Int64? = nil, metrics: Bool = false,
                          allMetrics: Bool = false, sessions: Bool = false,
                          display: SessionDisplay = TerminalDisplay()) -> Int32 {
    guard sessions else {
      return export(notebook: path, format: .text, output: nil, run: run, session: session, metrics: metrics || allMetrics,
                    allMetrics: allMetrics, display: display)
    }
    do {
      let notebook = try Notebook.open(path: path, readOnly: true)
      defer { notebook.close() }
      display.write(try NotebookRenderer(notebook).renderSessionList(), error: false)
      return 0
    } catch {
      return fail("\(error)", display)
    }
  }

  /// `lathe export nb.lnb --to md|html|ipynb|script [-o FILE]`.
  public static func export(notebook path: String, format: ExportFormat, output: String?, run: Int64? = nil,
                            session: Int64? = nil, metrics: Bool = false, allMetrics: Bool = false,
                            display: SessionDisplay = TerminalDisplay()) -> Int32 {
    do {
      let notebook = try Notebook.open(path: path, readOnly: true)
      defer { notebook.close() }
      let options = RenderOptions(session: session, run: run, showMetrics: metrics, allMetrics: allMetrics)
      let text = try NotebookRenderer(notebook).render(format, options: options)
      if let output {
        // A temporary file in the same folder, synced and renamed: a failed export leaves an older one intact.
        try AtomicFile.write(Array(text.utf8), to: output)
      } else {
        display.write(text.hasSuffix("\n") ? text : text + "\n", error: false)
      }
      return 0
    } catch {
      return fail("\(error)", display)
    }
  }

  /// `lathe check nb.lnb`: integrity, foreign keys and blob hashes.
  public static func check(notebook path: String, display: SessionDisplay = TerminalDisplay()) -> Int32 {
    do {
      let notebook = try Notebook.open(path: path, readOnly: true)
      defer { notebook.close() }
      let problems = try notebook.check()
      if problems.isEmpty {
        display.write("\(path): ok\n", error: false)
        return 0
      }
      for p in problems { display.write("\(path): \(p)\n", error: true) }
      return 1
    } catch {
      return fail("\(error)", display)
    }
  }
}

/// Collects nothing: a rerun compares what the notebook recorded.
final class QuietDisplay: SessionDisplay {
  func write(_ text: String, error: Bool) {}
}
