// Notebook+Reading: runs with their outputs, metrics, params and inputs, as plain records.
import Foundation

extension Notebook {
  private static let runColumns = """
    run_id, session_id, seq, cell_id, source, status, started_at, ended_at, wall_ns, cpu_ns, peak_rss, seed, threads
    """

  private func run(row: [SQLValue]) throws -> RunRecord {
    RunRecord(id: try requireInt64(row[0], column: "run.run_id"),
              sessionID: try requireInt64(row[1], column: "run.session_id"),
              seq: Int(try requireInt64(row[2], column: "run.seq")), cellID: row[3].string,
              source: try requireString(row[4], column: "run.source"),
              status: try decodeEnum(RunStatus.self, row[5], column: "run.status"),
              startedAt: row[6].int64 ?? 0, endedAt: row[7].int64, wallNs: row[8].int64, cpuNs: row[9].int64,
              peakRSS: row[10].int64, seed: row[11].int64, threads: row[12].int, outputs: [])
  }

  /// The runs of `session` in `seq` order, each with its outputs.
  public func runs(session: Int64) throws -> [RunRecord] {
    try syncPendingOutputs()
    var runs = try db.query("SELECT \(Notebook.runColumns) FROM run WHERE session_id = ? ORDER BY seq",
                            [.integer(session)]).map(run(row:))
    let outputs = try outputRecords(
      where: "run_id IN (SELECT run_id FROM run WHERE session_id = ?)", [.integer(session)])
    for index in runs.indices { runs[index].outputs = outputs[runs[index].id] ?? [] }
    return runs
  }

  /// Run `id` with its outputs, or nil.
  public func run(id: Int64) throws -> RunRecord? {
    try syncPendingOutputs()
    guard var record = try db.query("SELECT \(Notebook.runColumns) FROM run WHERE run_id = ?", [.integer(id)])
      .first.map(run(row:)) else { return nil }
    record.outputs = try outputRecords(where: "run_id = ?", [.integer(id)])[id] ?? []
    return record
  }

  /// Outputs grouped by run, in (idx, insertion) order. Text kept in a blob is decoded as UTF-8; a blob that
  /// cannot be read becomes a visible "[output unavailable: ...]" text rather than failing the whole read.
  private func outputRecords(where filter: String, _ values: [SQLValue]) throws -> [Int64: [OutputRecord]] {
    let sql = "SELECT run_id, idx, kind, mime, text, blob_hash FROM output WHERE \(filter) ORDER BY run_id, idx, rowid"
    var grouped: [Int64: [OutputRecord]] = [:]
    for row in try db.query(sql, values) {
      let runID = try requireInt64(row[0], column: "output.run_id")
      var text = row[4].string ?? ""
      let hash = row[5].string
      if let hash {
        do { text = String(decoding: try getBlob(hash), as: UTF8.self) }
        catch { text = "[output unavailable: \(error)]" }
      }
      grouped[runID, default: []].append(OutputRecord(
        idx: Int(try requireInt64(row[1], column: "output.idx")),
        kind: try decodeEnum(OutputKind.self, row[2], column: "output.kind"),
        mime: row[3].string ?? "text/plain", text: text, blobHash: hash))
    }
    return grouped
  }

  /// The metrics of `run`, by key then step.
  public func metrics(run: Int64) throws -> [MetricRecord] {
    try db.query("SELECT key, step, value FROM metric WHERE run_id = ? ORDER BY key, step", [.integer(run)]).map { row in
      MetricRecord(key: try requireString(row[0], column: "metric.key"), step: row[1].int ?? 0,
                   value: row[2].double ?? .nan)
    }
  }

  /// The technique arguments recorded for `run`, by key.
  public func params(run: Int64) throws -> [(key: String, value: String)] {
    try db.query("SELECT key, value FROM param WHERE run_id = ? ORDER BY key", [.integer(run)]).map { row in
      (try requireString(row[0], column: "param.key"), try requireString(row[1], column: "param.value"))
    }
  }

  /// The files `run` read, by role then URI.
  public func inputs(run: Int64) throws -> [(role: String, uri: String, sha256: String?, size: Int64?)] {
    try db.query("SELECT role, uri, sha256, size FROM input WHERE run_id = ? ORDER BY role, uri",
                 [.integer(run)]).map { row in
      (try requireString(row[0], column: "input.role"), try requireString(row[1], column: "input.uri"),
       row[2].string, row[3].int64)
    }
  }

  /// Runs still marked `running` (in this process's own sessions while it writes; after a crash, none: open
  /// marks them `crashed`).
  public func runningRuns() throws -> [RunRecord] {
    try db.query("SELECT \(Notebook.runColumns) FROM run WHERE status = 'running' ORDER BY run_id").map(run(row:))
  }

  /// Counts of rows per table, for `lathe show` summaries and tests.
  public func tableCounts() throws -> [String: Int] {
    var counts: [String: Int] = [:]
    for table in ["session", "run", "output", "metric", "param", "input", "cell", "blob", "blob_chunk", "artifact",
                  "environment", "cache"] {
      counts[table] = try db.scalar("SELECT count(*) FROM \(table)")?.int ?? 0
    }
    return counts
  }
}
