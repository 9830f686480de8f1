// Notebook+Sessions: writing environments, sessions, cells and meta entries, and reading them back.
import CSQLite
import Foundation

extension Notebook {
  /// Stores `info` (with this SQLite's version) once, keyed by the SHA-256 of its canonical encoding, and returns
  /// its `env_id`; recording the same environment again returns the same id.
  ///
  ///     let env = try notebook.recordEnvironment(EnvironmentInfo(latheVersion: "0.1.0", os: "Linux"))
  public func recordEnvironment(_ info: EnvironmentInfo) throws -> Int64 {
    try requireWritable("record an environment")
    try requireJSON(info.extra, field: "environment extra")
    var info = info
    info.sqliteVersion = Database.libraryVersion
    let hash = SHA256.hex(info.canonicalEncoding)
    return try db.transaction {
      if let id = try db.scalar("SELECT env_id FROM environment WHERE env_hash = ?", [.text(hash)])?.int64 {
        return id
      }
      let placeholders = Array(repeating: "?", count: 14).joined(separator: ", ")
      try db.execute("INSERT INTO environment(env_hash, \(EnvironmentInfo.columnNames)) VALUES (\(placeholders))",
                     [.text(hash)] + info.columnValues)
      return db.lastInsertRowID
    }
  }

  /// The environment row `id`, or nil.
  public func environment(id: Int64) throws -> EnvironmentInfo? {
    let rows = try db.query("SELECT \(EnvironmentInfo.columnNames) FROM environment WHERE env_id = ?", [.integer(id)])
    return try rows.first.map(EnvironmentInfo.init(row:))
  }

  /// Starts a session: a `running` row with this process's pid and host, committed at once.
  public func beginSession(mode: SessionMode, seed: Int64, environmentID: Int64, remark: String?) throws -> Int64 {
    try requireWritable("begin a session")
    try db.execute("""
      INSERT INTO session(mode, status, started_at, env_id, pid, host, seed, remark)
      VALUES (?, 'running', ?, ?, ?, ?, ?, ?)
      """, [.text(mode.rawValue), .integer(unixMilliseconds()), .integer(environmentID), .integer(Int64(getpid())),
            .text(currentHostName()), .integer(seed), SQLValue(remark)])
    return db.lastInsertRowID
  }

  /// Ends a session: writes pending outputs, sets `closed` and `ended_at`, then checkpoints with TRUNCATE so the
  /// closed notebook is one self-contained file again.
  public func closeSession(_ id: Int64) throws {
    try requireWritable("close a session")
    try flushOutputs()
    try db.execute("UPDATE session SET status = 'closed', ended_at = ? WHERE session_id = ?",
                   [.integer(unixMilliseconds()), .integer(id)])
    guard db.changes == 1 else { throw NotebookError.invalidArgument("no session \(id) in \(path)") }
    try checkpoint()
  }

  /// `PRAGMA wal_checkpoint(TRUNCATE)`: copies the WAL into the main file and empties it. A checkpoint blocked
  /// by a reader is not an error (it completes later); an I/O failure is.
  public func checkpoint() throws {
    try requireWritable("checkpoint")
    _ = try db.query("PRAGMA wal_checkpoint(TRUNCATE)")
  }

  /// Inserts or replaces cell `id` (an nbformat-compatible id of 1 to 64 characters).
  /// `tags` are stored as a JSON array (nbformat's cell tags, e.g. "raises-exception", "volatile").
  public func upsertCell(id: String, position: Double, kind: CellKind, source: String, tags: [String] = []) throws {
    try requireWritable("write a cell")
    guard (1...64).contains(id.count) else {
      throw NotebookError.invalidArgument("cell id '\(id)' must have 1 to 64 characters")
    }
    let tagsJSON: SQLValue = tags.isEmpty ? .null : .text(Self.jsonArray(tags))
    try db.execute("""
      INSERT INTO cell(cell_id, position, kind, source, source_hash, tags, updated_at) VALUES (?, ?, ?, ?, ?, ?, ?)
      ON CONFLICT(cell_id) DO UPDATE SET position = excluded.position, kind = excluded.kind,
        source = excluded.source, source_hash = excluded.source_hash, tags = excluded.tags,
        updated_at = excluded.updated_at
      """, [.text(id), .real(position), .text(kind.rawValue), .text(source), .text(SHA256.hex(source)), tagsJSON,
            .integer(unixMilliseconds())])
  }

  static func jsonArray(_ strings: [String]) -> String {
    let data = (try? JSONSerialization.data(withJSONObject: strings)) ?? Data("[]".utf8)
    return String(decoding: data, as: UTF8.self)
  }

  static func decodeTags(_ value: SQLValue) -> [String] {
    guard let text = value.string, let data = text.data(using: .utf8),
          let array = try? JSONSerialization.jsonObject(with: data) as? [Any] else { return [] }
    return array.compactMap { $0 as? String }
  }

  /// Deletes cell `id`; runs that executed it keep their source and get a NULL `cell_id`.
  public func deleteCell(id: String) throws {
    try requireWritable("delete a cell")
    try db.execute("DELETE FROM cell WHERE cell_id = ?", [.text(id)])
  }

  /// All cells, in position order.
  public func cells() throws -> [CellRecord] {
    try db.query("SELECT cell_id, position, kind, source, updated_at, tags FROM cell ORDER BY position, cell_id").map { row in
      CellRecord(id: try requireString(row[0], column: "cell.cell_id"), position: row[1].double ?? 0,
                 kind: try decodeEnum(CellKind.self, row[2], column: "cell.kind"),
                 source: try requireString(row[3], column: "cell.source"), updatedAt: row[4].int64 ?? 0,
                 tags: Self.decodeTags(row[5]))
    }
  }

  /// Throws unless `text` is nil or valid JSON (by SQLite's `json_valid`, which the schema cannot call itself:
  /// with trusted_schema=OFF SQLite refuses it in CHECK constraints).
  func requireJSON(_ text: String?, field: String) throws {
    guard let text else { return }
    guard try db.scalar("SELECT json_valid(?)", [.text(text)]) == .integer(1) else {
      throw NotebookError.invalidArgument("\(field) is not valid JSON: \(text.prefix(80))")
    }
  }

  /// Sets a `meta` entry (such as "title").
  public func setMeta(_ key: String, _ value: String) throws {
    try requireWritable("set meta")
    try db.execute("INSERT INTO meta(key, value) VALUES (?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value",
                   [.text(key), .text(value)])
  }

  public func meta(_ key: String) throws -> String? {
    try db.scalar("SELECT value FROM meta WHERE key = ?", [.text(key)])?.string
  }

  private static let sessionColumns =
    "session_id, mode, status, started_at, ended_at, env_id, pid, host, seed, remark"

  private func session(row: [SQLValue]) throws -> SessionRecord {
    SessionRecord(id: try requireInt64(row[0], column: "session.session_id"),
                  mode: try decodeEnum(SessionMode.self, row[1], column: "session.mode"),
                  status: try decodeEnum(SessionStatus.self, row[2], column: "session.status"),
                  startedAt: row[3].int64 ?? 0, endedAt: row[4].int64,
                  environmentID: try requireInt64(row[5], column: "session.env_id"),
                  pid: row[6].int64, host: row[7].string, seed: row[8].int64, remark: row[9].string)
  }

  /// All sessions, oldest first.
  public func sessions() throws -> [SessionRecord] {
    try db.query("SELECT \(Notebook.sessionColumns) FROM session ORDER BY session_id").map(session(row:))
  }

  /// Every session, oldest first, with how many runs it recorded and how many of them ended in an error.
  public func sessionCounts() throws -> [(session: SessionRecord, runs: Int, errors: Int)] {
    try syncPendingOutputs()
    let columns = Notebook.sessionColumns.split(separator: ",").map { "s." + $0.trimmingCharacters(in: .whitespaces) }
    let sql = """
      SELECT \(columns.joined(separator: ", ")), count(r.run_id), coalesce(sum(r.status = 'error'), 0)
      FROM session s LEFT JOIN run r ON r.session_id = s.session_id GROUP BY s.session_id ORDER BY s.session_id
      """
    return try db.query(sql).map { row in (try session(row: row), row[10].int ?? 0, row[11].int ?? 0) }
  }

  public func session(id: Int64) throws -> SessionRecord? {
    try db.query("SELECT \(Notebook.sessionColumns) FROM session WHERE session_id = ?", [.integer(id)])
      .first.map(session(row:))
  }

  /// The newest session whose mode is in `modes` (any mode when `modes` is empty), or nil.
  public func latestSession(modes: [SessionMode] = []) throws -> SessionRecord? {
    let filter = modes.isEmpty ? "" : "WHERE mode IN (\(modes.map { _ in "?" }.joined(separator: ", ")))"
    let sql = "SELECT \(Notebook.sessionColumns) FROM session \(filter) ORDER BY session_id DESC LIMIT 1"
    return try db.query(sql, modes.map { .text($0.rawValue) }).first.map(session(row:))
  }
}
