// Notebook+Runs: the run write protocol (commit `running` at start, buffered outputs, one transaction at the end).
import Foundation

/// An output row waiting in the buffer.
struct PendingOutput {
  var runID: Int64
  var idx: Int
  var kind: OutputKind
  var mime: String
  var text: String
  var createdAt: Int64
  /// Stream pieces may absorb the next piece of the same stream; display alternatives may not.
  var mergeable: Bool
}

extension Notebook {
  /// Outputs whose UTF-8 text is larger than this go to a blob instead of `output.text`.
  public static let inlineOutputLimit = 64 * 1024

  /// Starts run `seq` of `session` with one commit of a `running` row, so a crash during the run stays visible.
  /// `cellID` is nil for a REPL line.
  public func beginRun(session: Int64, seq: Int, cellID: String?, source: String, seed: Int64,
                       threads: Int) throws -> Int64 {
    try requireWritable("begin a run")
    try db.execute("""
      INSERT INTO run(session_id, seq, cell_id, source, source_hash, status, started_at, seed, threads)
      VALUES (?, ?, ?, ?, ?, 'running', ?, ?, ?)
      """, [.integer(session), .integer(Int64(seq)), SQLValue(cellID), .text(source), .text(SHA256.hex(source)),
            .integer(unixMilliseconds()), .integer(seed), .integer(Int64(threads))])
    let id = db.lastInsertRowID
    nextOutputIndex[id] = 0
    return id
  }

  /// The next free `seq` of `session` (1 for a new session).
  public func nextSeq(session: Int64) throws -> Int {
    try db.scalar("SELECT coalesce(max(seq), 0) + 1 FROM run WHERE session_id = ?", [.integer(session)])?.int ?? 1
  }

  /// Buffers one output of `run`. Consecutive stdout (or stderr) pieces of one run merge into one row. The buffer
  /// is written as one transaction once `flushInterval` has passed since the last write or `flushThreshold`
  /// bytes are pending, and always by `finishRun`, `flushOutputs` and `closeSession`.
  public func appendOutput(run: Int64, kind: OutputKind, mime: String = "text/plain", text: String) throws {
    try requireWritable("append an output")
    let stream = kind == .stdout || kind == .stderr
    if stream, text.isEmpty { return }
    if stream, let last = pendingOutputs.last, last.mergeable, last.runID == run, last.kind == kind,
       last.mime == mime {
      pendingOutputs[pendingOutputs.count - 1].text += text
    } else {
      pendingOutputs.append(PendingOutput(runID: run, idx: try allocateOutputIndex(run: run), kind: kind, mime: mime,
                                          text: text, createdAt: unixMilliseconds(), mergeable: stream))
    }
    pendingBytes += text.utf8.count
    try flushIfDue()
  }

  /// Buffers one output with several MIME alternatives (say image/svg+xml and text/plain): one idx, one row each.
  public func appendDisplay(run: Int64, kind: OutputKind = .display,
                            alternatives: [(mime: String, text: String)]) throws {
    try requireWritable("append a display")
    guard !alternatives.isEmpty else { throw NotebookError.invalidArgument("a display needs at least one MIME type") }
    guard Set(alternatives.map(\.mime)).count == alternatives.count else {
      throw NotebookError.invalidArgument("a display lists a MIME type twice: \(alternatives.map(\.mime))")
    }
    let idx = try allocateOutputIndex(run: run), now = unixMilliseconds()
    for alternative in alternatives {
      pendingOutputs.append(PendingOutput(runID: run, idx: idx, kind: kind, mime: alternative.mime,
                                          text: alternative.text, createdAt: now, mergeable: false))
      pendingBytes += alternative.text.utf8.count
    }
    try flushIfDue()
  }

  /// Writes buffered outputs now, as one transaction (large ones go to blobs first).
  public func flushOutputs() throws {
    guard !pendingOutputs.isEmpty else {
      lastFlush = ContinuousClock.now
      return
    }
    try requireWritable("write outputs")
    let staged = try stagePendingBlobs()
    try db.transaction { try writePendingRows(staged) }
    clearPending()
  }

  /// Ends `run` in one transaction: its last outputs, status and timings, metrics, params and inputs.
  public func finishRun(_ run: Int64, status: RunStatus, wallNs: Int64, cpuNs: Int64, peakRSS: Int64?,
                        metrics: [(key: String, step: Int, value: Double)] = [], params: [(String, String)] = [],
                        inputs: [(role: String, uri: String, sha256: String, size: Int64)] = []) throws {
    try requireWritable("finish a run")
    guard status != .running else { throw NotebookError.invalidArgument("finishRun needs a final status, not running") }
    let staged = try stagePendingBlobs()
    let now = unixMilliseconds()
    try db.transaction {
      try writePendingRows(staged)
      try db.execute("""
        UPDATE run SET status = ?, ended_at = ?, wall_ns = ?, cpu_ns = ?, peak_rss = ? WHERE run_id = ?
        """, [.text(status.rawValue), .integer(now), .integer(wallNs), .integer(cpuNs), SQLValue(peakRSS),
              .integer(run)])
      guard db.changes == 1 else { throw NotebookError.invalidArgument("no run \(run) in \(path)") }
      let metric = try db.prepare("INSERT OR REPLACE INTO metric(run_id, key, step, value, recorded_at) VALUES (?, ?, ?, ?, ?)")
      for item in metrics {
        try metric.bind([.integer(run), .text(item.key), .integer(Int64(item.step)), .real(item.value), .integer(now)])
        while try metric.step() {}
      }
      let param = try db.prepare("INSERT OR REPLACE INTO param(run_id, key, value) VALUES (?, ?, ?)")
      for (key, value) in params {
        try param.bind([.integer(run), .text(key), .text(value)])
        while try param.step() {}
      }
      let input = try db.prepare("INSERT OR REPLACE INTO input(run_id, role, uri, sha256, size) VALUES (?, ?, ?, ?, ?)")
      for item in inputs {
        try input.bind([.integer(run), .text(item.role), .text(item.uri), .text(item.sha256), .integer(item.size)])
        while try input.step() {}
      }
    }
    clearPending()
    nextOutputIndex[run] = nil
  }

  // MARK: buffer internals

  private func allocateOutputIndex(run: Int64) throws -> Int {
    let next: Int
    if let known = nextOutputIndex[run] {
      next = known
    } else {
      let stored = try db.scalar("SELECT coalesce(max(idx), -1) + 1 FROM output WHERE run_id = ?", [.integer(run)])
      next = max(stored?.int ?? 0, (pendingOutputs.filter { $0.runID == run }.map(\.idx).max() ?? -1) + 1)
    }
    nextOutputIndex[run] = next + 1
    return next
  }

  private func flushIfDue() throws {
    if pendingBytes >= flushThreshold || ContinuousClock.now - lastFlush >= flushInterval { try flushOutputs() }
  }

  private func clearPending() {
    pendingOutputs.removeAll(keepingCapacity: true)
    pendingBytes = 0
    lastFlush = ContinuousClock.now
  }

  /// Writes the chunks of pending outputs too large for `output.text` (outside any transaction: chunked blobs
  /// are written in bounded transactions of their own) and returns each one's blob, by position in the buffer.
  private func stagePendingBlobs() throws -> [Int: StagedBlob] {
    var staged: [Int: StagedBlob] = [:]
    for (position, output) in pendingOutputs.enumerated() where output.text.utf8.count > Notebook.inlineOutputLimit {
      staged[position] = try stageBlob(Array(output.text.utf8))
    }
    return staged
  }

  /// Inserts the buffered rows; call inside a transaction.
  private func writePendingRows(_ staged: [Int: StagedBlob]) throws {
    guard !pendingOutputs.isEmpty else { return }
    let insert = try db.prepare("""
      INSERT INTO output(run_id, idx, mime, kind, text, blob_hash, created_at) VALUES (?, ?, ?, ?, ?, ?, ?)
      """)
    for (position, output) in pendingOutputs.enumerated() {
      var text = SQLValue.text(output.text), hash = SQLValue.null
      if let blob = staged[position] {
        try insertBlobRow(blob)
        text = .null
        hash = .text(blob.hash)
      }
      try insert.bind([.integer(output.runID), .integer(Int64(output.idx)), .text(output.mime),
                       .text(output.kind.rawValue), text, hash, .integer(output.createdAt)])
      while try insert.step() {}
    }
  }
}
