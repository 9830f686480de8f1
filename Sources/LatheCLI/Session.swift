// A session: one interpreter and, when one is open, the notebook every cell is recorded into.

import Foundation
import LatheBuiltins
import LatheLang
import LatheNotebook

/// Where a session's visible output goes: the terminal (or a test's buffer).
public protocol SessionDisplay: AnyObject {
  func write(_ text: String, error: Bool)
}

/// Writes to the process's stdout and stderr, unbuffered, so progress shows as it happens.
public final class TerminalDisplay: SessionDisplay {
  public init() {}
  public func write(_ text: String, error: Bool) {
    let stream = error ? stderr : stdout
    fputs(text, stream)
    fflush(stream)
  }
}

/// What running one cell gave.
public struct CellOutcome {
  public var status: RunStatus
  /// The value of the cell's final expression. Held in a box that releases it without recursion
  /// (`Value.release`), so a list nested millions deep, returned by a cell, is freed safely on any thread.
  public var result: Value? {
    get { resultBox.value }
    set { resultBox = ResultBox(newValue) }
  }
  private var resultBox = ResultBox(nil)
  public var diagnostic: Diagnostic?
  public var wallSeconds: Double
  public var runID: Int64?
  /// The first error writing this cell to the notebook (beginning its run, an output, its end), when there was
  /// one: the cell ran, but the notebook does not hold all of it. `lathe run` counts it as a failure.
  public var recordingError: String?

  public init(status: RunStatus, result: Value?, diagnostic: Diagnostic?, wallSeconds: Double, runID: Int64?,
              recordingError: String? = nil) {
    self.status = status; self.diagnostic = diagnostic; self.wallSeconds = wallSeconds; self.runID = runID
    self.recordingError = recordingError
    self.result = result
  }
}

public final class Session {
  public let interpreter: Interpreter
  public let notebook: Notebook?
  public let sessionID: Int64?
  public let seed: UInt64
  public var display: SessionDisplay?
  /// Echo results (the REPL does; `lathe run` prints them too, as a notebook shows them).
  public var showResults = true
  private var seq = 0
  private var currentRun: Int64?
  /// The end of what the running cell wrote to stdout (at most `streamTailLimit` bytes): a value whose text was
  /// streamed there is not echoed again.
  private var streamTail = ""
  private static let streamTailLimit = 64 * 1024
  private var closed = false

  /// Opens a session; `notebook` nil runs without recording (a scratch session).
  public init(notebook: Notebook?, mode: SessionMode, seed: UInt64, remark: String? = nil,
              display: SessionDisplay? = TerminalDisplay(), loadPrelude: Bool = true) throws {
    // Past a file-size limit a write fails with EFBIG (an error the session reports) instead of SIGXFSZ killing it.
    signal(SIGXFSZ, SIG_IGN)
    self.notebook = notebook
    self.seed = seed
    self.display = display
    interpreter = Interpreter(registry: Builtins.standard(), seed: seed)
    if let notebook, !notebook.isReadOnly {
      let env = try notebook.recordEnvironment(MachineEnvironment.current())
      sessionID = try notebook.beginSession(mode: mode, seed: Int64(bitPattern: seed), environmentID: env, remark: remark)
      seq = try notebook.nextSeq(session: sessionID ?? 0) - 1
    } else {
      sessionID = nil
    }
    interpreter.artifactStore = NotebookArtifacts(session: self)
    interpreter.output = { [weak self] kind, text in self?.emit(kind, text) }
    interpreter.displayHandler = { [weak self] alternatives in self?.show(alternatives) }
    if loadPrelude, let stdlib = Prelude.stdlibDirectory() {
      try interpreter.loadPrelude(from: stdlib)
    }
  }

  deinit { close() }

  /// Marks the session closed and checkpoints the notebook; later calls do nothing.
  public func close() {
    guard !closed else { return }
    closed = true
    if let notebook, let sessionID, !notebook.isReadOnly { try? notebook.closeSession(sessionID) }
    interpreter.shutdown()
  }

  private func emit(_ kind: LatheLang.OutputKind, _ text: String) {
    display?.write(text, error: kind == .stderr)
    if kind == .stdout {
      streamTail += text
      if streamTail.utf8.count > 2 * Session.streamTailLimit { streamTail = String(streamTail.suffix(Session.streamTailLimit)) }
    }
    guard let notebook, let run = currentRun else { return }
    let mapped: LatheNotebook.OutputKind
    switch kind {
    case .stdout: mapped = .stdout
    case .stderr: mapped = .stderr
    case .result: mapped = .result
    case .display: mapped = .display
    case .warning: mapped = .warning
    case .progress: return                                  // progress bars are for the terminal only
    }
    record { try notebook.appendOutput(run: run, kind: mapped, text: text) }
  }

  /// The first notebook write error of the running cell (reported once, on standard error).
  private var recordingError: String?

  /// Runs one notebook write; a failure is shown (once per cell) and kept for the cell's outcome, never dropped.
  private func record(_ write: () throws -> Void) {
    do { try write() } catch {
      guard recordingError == nil else { return }
      recordingError = "\(error)"
      display?.write("notebook: could not record cell \(seq): \(error)\n", error: true)
    }
  }

  /// A rich output: the text/plain alternative on the terminal, every alternative in the notebook.
  private func show(_ alternatives: [(mime: String, text: String)]) {
    if let plain = alternatives.first(where: { $0.mime == "text/plain" }) {
      display?.write(plain.text.hasSuffix("\n") ? plain.text : plain.text + "\n", error: false)
    }
    guard let notebook, let run = currentRun else { return }
    record { try notebook.appendDisplay(run: run, alternatives: alternatives) }
  }

  /// Runs one cell: records it as a run (source, seed, timings, outputs, status) and shows what it prints.
  /// `name` and `firstLine` place error locations ("quickstart.lathe, 12:5" or "cell 3, 1:7").
  @discardableResult
  public func execute(_ source: String, cellID: String? = nil, name: String? = nil, firstLine: Int = 1,
                      path: String? = nil) -> CellOutcome {
    seq += 1
    let cellName = name ?? "cell \(seq)"
    recordingError = nil
    if let notebook, let sessionID, !notebook.isReadOnly {
      record {
        currentRun = try notebook.beginRun(session: sessionID, seq: seq, cellID: cellID, source: source,
                                           seed: Int64(bitPattern: seed), threads: 1)
      }
    }
    interpreter.pendingMetrics.removeAll()
    interpreter.pendingParams.removeAll()
    interpreter.pendingInputs.removeAll()
    streamTail = ""
    Interrupt.clear()
    let usageBefore = Session.cpuNanoseconds()
    let start = DispatchTime.now().uptimeNanoseconds
    var outcome = CellOutcome(status: .ok, result: nil, diagnostic: nil, wallSeconds: 0, runID: currentRun)
    do {
      var result = try interpreter.run(source, name: cellName, path: path, firstLine: firstLine)
      defer { if var last = result { result = nil; Value.release(&last) } }
      if let value = result, showResults {
        if case .none = value {} else {
          outcome.result = value
          if !alreadyStreamed(value) {
            let text = value.display + "\n"
            display?.write(text, error: false)
            if let notebook, let run = currentRun { record { try notebook.appendOutput(run: run, kind: .result, text: text) } }
          }
        }
      }
    } catch let d as Diagnostic {
      outcome.status = d.kind == .interrupted ? .interrupted : .error
      outcome.diagnostic = d
      let text = d.rendered + "\n"
      // After Ctrl-C the terminal has echoed "^C" on the current line: start the message on a fresh one.
      display?.write((d.kind == .interrupted && isatty(2) != 0 ? "\n" : "") + text, error: true)
      if let notebook, let run = currentRun { record { try notebook.appendOutput(run: run, kind: .error, text: text) } }
    } catch {
      outcome.status = .error
      let text = "\(cellName): error: \(error)\n"
      display?.write(text, error: true)
      if let notebook, let run = currentRun { record { try notebook.appendOutput(run: run, kind: .error, text: text) } }
    }
    let wall = DispatchTime.now().uptimeNanoseconds - start
    outcome.wallSeconds = Double(wall) / 1e9
    if let notebook, let run = currentRun {
      record {
        try notebook.finishRun(run, status: outcome.status, wallNs: Int64(wall),
                               cpuNs: Session.cpuNanoseconds() - usageBefore, peakRSS: Session.peakRSS(),
                               metrics: interpreter.pendingMetrics, params: interpreter.pendingParams,
                               inputs: interpreter.pendingInputs.compactMap(Session.fileInput))
      }
    }
    currentRun = nil
    outcome.recordingError = recordingError
    return outcome
  }

  var runID: Int64? { currentRun }

  /// Whether `value` opts out of the echo (a streamed generation) and this cell's stdout ends with its text: the
  /// value stays the cell's result, but is neither printed nor recorded twice. A later `g` on its own echoes it.
  private func alreadyStreamed(_ value: Value) -> Bool {
    guard case .host(let object) = value, !object.echoesAsValue else { return false }
    var tail = Substring(streamTail), text = Substring(object.description)
    while tail.last?.isNewline == true { tail = tail.dropLast() }
    while text.last?.isNewline == true { text = text.dropLast() }
    return tail.hasSuffix(text)
  }

  /// A file a run read, with its SHA-256 and size, for the notebook's `input` table (nil if it is gone).
  /// The file is hashed in 1 MiB pieces, never held whole (a model is 100 MB and more).
  static func fileInput(_ input: (role: String, path: String)) -> (role: String, uri: String, sha256: String, size: Int64)? {
    guard let handle = FileHandle(forReadingAtPath: input.path) else { return nil }
    defer { try? handle.close() }
    var hasher = SHA256(), size: Int64 = 0
    while true {
      let piece: Data?
      do { piece = try handle.read(upToCount: 1 << 20) } catch { return nil }
      guard let piece, !piece.isEmpty else { break }        // nil or empty: the end of the file
      piece.withUnsafeBytes { hasher.update($0) }
      size += Int64(piece.count)
    }
    return (input.role, URL(fileURLWithPath: input.path).absoluteString, SHA256.hexString(hasher.finalize()), size)
  }

  static func cpuNanoseconds() -> Int64 {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    let user = Int64(usage.ru_utime.tv_sec) * 1_000_000_000 + Int64(usage.ru_utime.tv_usec) * 1000
    let system = Int64(usage.ru_stime.tv_sec) * 1_000_000_000 + Int64(usage.ru_stime.tv_usec) * 1000
    return user + system
  }

  static func peakRSS() -> Int64 {
    var usage = rusage()
    getrusage(RUSAGE_SELF.rawValue, &usage)
    return Int64(usage.ru_maxrss) * 1024
  }
}

/// `save`/`load` in a session: artifacts of the open notebook, tied to the run that saved them.
final class NotebookArtifacts: ArtifactStore {
  weak var session: Session?
  init(session: Session) { self.session = session }

  func saveArtifact(name: String, kind: String, bytes: [UInt8], meta: String?) throws {
    guard let session, let notebook = session.notebook else { throw LatheError("save: no notebook is open") }
    guard !notebook.isReadOnly else { throw LatheError("save: the notebook is open read-only") }
    try notebook.saveArtifact(run: session.runID, name: name, kind: kind, bytes: bytes, dtype: nil, shape: nil, meta: meta)
  }

  func savedArtifacts() throws -> [(name: String, kind: String, bytes: Int, savedAt: Int64)] {
    guard let notebook = session?.notebook else { throw LatheError("saved: no notebook is open") }
    var newest: [String: ArtifactRecord] = [:]
    for a in try notebook.artifacts() { newest[a.name] = a }          // oldest first: the last one wins
    return newest.values.sorted { $0.name < $1.name }.map { ($0.name, $0.kind, Int($0.size), $0.createdAt) }
  }

  func loadArtifact(name: String) throws -> (kind: String, bytes: [UInt8])? {
    guard let notebook = session?.notebook else { throw LatheError("load: no notebook is open") }
    guard let a = try notebook.loadArtifact(name: name) else { return nil }
    return (a.kind, a.bytes)
  }
}

/// Owns a cell's result and releases it level by level when the last outcome holding it goes.
private final class ResultBox {
  var value: Value?
  init(_ value: Value?) { self.value = value }
  deinit { if var last = value { value = nil; Value.release(&last) } }
}
