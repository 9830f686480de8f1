// Notebook: opening a .lnb file (checks, settings, migration, single-writer lock, crash recovery) and closing it.
import CSQLite
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// A Lathe notebook file (`*.lnb`): sessions, runs, outputs, metrics, cells, blobs and artifacts in one SQLite file.
/// Not thread-safe: use a notebook from one thread.
///
///     let notebook = try Notebook.open(path: "exp.lnb")
///     let session = try notebook.beginSession(mode: .repl, seed: 0, environmentID: env, remark: nil)
public final class Notebook {
  public let path: String
  public let isReadOnly: Bool
  /// The file's schema version (`PRAGMA user_version`); above `Schema.latestVersion` only when read-only.
  public let formatVersion: Int
  /// Sessions found `running` at open and marked `crashed` (their process had died: we hold the lock).
  public private(set) var recoveredSessions: [Int64] = []

  let db: Database
  private var lock: WriterLock?
  /// A private copy this read-only notebook was opened from (removed at close): see `openReadOnly`.
  private var snapshotFolder: String?

  // Output buffering (Notebook+Outputs.swift): rows not yet written, and when the buffer was last written.
  var pendingOutputs: [PendingOutput] = []
  var pendingBytes = 0
  var lastFlush = ContinuousClock.now
  var nextOutputIndex: [Int64: Int] = [:]
  /// Pending outputs are written once this much time has passed since the last write...
  public var flushInterval: Duration = .milliseconds(250)
  /// ...or once this many bytes are pending.
  public var flushThreshold = 64 * 1024

  private init(path: String, db: Database, readOnly: Bool, version: Int, lock: WriterLock?) {
    self.path = path
    self.db = db
    self.isReadOnly = readOnly
    self.formatVersion = version
    self.lock = lock
  }

  deinit { close() }

  /// Opens (or, when writable and missing, creates) the notebook at `path`. `":memory:"` gives a private
  /// in-memory notebook. Corrupt and foreign files are refused with a `NotebookError` and left unmodified.
  public static func open(path: String, readOnly: Bool = false) throws -> Notebook {
    if path == ":memory:" {
      guard !readOnly else { throw NotebookError.invalidArgument("an in-memory notebook cannot be read-only") }
      let db = try Database(path: ":memory:")
      try configure(db)
      try Schema.migrate(db, from: 0)
      return Notebook(path: path, db: db, readOnly: false, version: Schema.latestVersion, lock: nil)
    }
    return try readOnly ? openReadOnly(path: path) : openWritable(path: path)
  }

  /// `mode=ro`, plus `immutable=1` when there is no -wal file or the directory is not writable: then SQLite takes
  /// no locks and creates no -wal/-shm, so the file's bytes and its directory stay exactly as they were.
  private static func openReadOnly(path: String) throws -> Notebook {
    if let header = try NotebookFile.readHeader(path: path) {
      guard !header.isEmpty else { throw NotebookError.notANotebook(path: path, reason: "empty file") }
      do { try NotebookFile.checkHeader(header, path: path) } catch where NotebookFile.walMayHoldTheHeader(path: path) {}
    }
    let directory = (path as NSString).deletingLastPathComponent
    // A -wal file and no live writer: a writer crashed. Reading it in place would rebuild the -shm index, a write to
    // the folder; read a private copy of the file and its WAL instead (nothing committed is missed).
    if NotebookFile.exists(path + "-wal"), !WriterLock.isHeldInProcess(path: path), let copy = try snapshotWithoutWriter(path: path) {
      do {
        let db = try Database(path: NotebookFile.uri(path: copy.file, immutable: false), flags: SQLITE_OPEN_READONLY)
        try configure(db)
        let version = try validate(db, path: path)
        let notebook = Notebook(path: path, db: db, readOnly: true, version: version, lock: nil)
        notebook.snapshotFolder = copy.folder
        return notebook
      } catch {
        try? FileManager.default.removeItem(atPath: copy.folder)
        throw NotebookError.classify(error, path: path)
      }
    }
    let immutable = !NotebookFile.exists(path + "-wal") || access(directory.isEmpty ? "." : directory, W_OK) != 0
    do {
      let db = try Database(path: NotebookFile.uri(path: path, immutable: immutable), flags: SQLITE_OPEN_READONLY)
      try configure(db)
      let version = try validate(db, path: path)
      return Notebook(path: path, db: db, readOnly: true, version: version, lock: nil)
    } catch {
      throw NotebookError.classify(error, path: path)
    }
  }

  /// When no process holds the notebook for writing (a shared flock is granted), copies the file and its -wal into
  /// a new private folder and returns them; nil when a writer is live (its -shm is its own to update). The shared
  /// lock is held during the copy, so no writer starts half-way through it.
  private static func snapshotWithoutWriter(path: String) throws -> (folder: String, file: String)? {
    let descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { return nil }
    defer { Glibc.close(descriptor) }
    guard flock(descriptor, LOCK_SH | LOCK_NB) == 0 else { return nil }
    defer { flock(descriptor, LOCK_UN) }
    let base = ProcessInfo.processInfo.environment["TMPDIR"].flatMap { $0.isEmpty ? nil : $0 } ?? "/tmp"
    var template = Array((base + "/lathe-notebook-XXXXXX").utf8CString)
    guard let made = mkdtemp(&template) else { throw NotebookError.io(path: path, operation: "mkdtemp", errno: errno) }
    let folder = String(cString: made), file = folder + "/notebook.lnb"
    do {
      try FileManager.default.copyItem(atPath: path, toPath: file)
      try FileManager.default.copyItem(atPath: path + "-wal", toPath: file + "-wal")
    } catch {
      try? FileManager.default.removeItem(atPath: folder)
      throw NotebookError.io(path: path, operation: "copy for a read-only open", errno: errno)
    }
    return (folder, file)
  }

  private static func openWritable(path: String) throws -> Notebook {
    if WriterLock.isHeldInProcess(path: path) {
      throw NotebookError.locked(path: path, holder: holderInProcess(path: path))
    }
    var created = false
    var descriptor = Glibc.open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    if descriptor >= 0 {
      created = true
    } else if errno == EEXIST {
      descriptor = Glibc.open(path, O_RDONLY | O_CLOEXEC)
    }
    guard descriptor >= 0 else { throw NotebookError.io(path: path, operation: "open", errno: errno) }
    let isNew: Bool
    do {
      let header = try NotebookFile.header(descriptor: descriptor, path: path)
      isNew = header.isEmpty
      if !isNew {
        do { try NotebookFile.checkHeader(header, path: path) } catch where NotebookFile.walMayHoldTheHeader(path: path) {}
      }
    } catch {
      Glibc.close(descriptor)
      throw error
    }
    guard case .acquired(let lock) = try WriterLock.acquire(descriptor: descriptor, path: path) else {
      throw NotebookError.locked(path: path, holder: WriterLock.describeHolder(path: path))
    }
    var db: Database?
    do {
      let version: Int
      if isNew {
        let fresh = try Database(path: path, flags: SQLITE_OPEN_READWRITE)
        db = fresh
        try configure(fresh)
        // Before the first write, and in rollback-journal mode, so that the page size sticks and application_id,
        // schema and user_version reach the main file in one atomic commit.
        try fresh.execute("PRAGMA page_size = 8192")
        version = 0
      } else {
        (db, version) = try openExisting(path: path)
      }
      guard let db else { throw NotebookError.invalidArgument("no connection to \(path)") }
      guard version <= Schema.latestVersion else {
        throw NotebookError.newerVersion(path: path, version: version, supported: Schema.latestVersion)
      }
      guard sqlite3_db_readonly(db.handle, "main") == 0 else {
        throw NotebookError.readOnly(path: path, operation: "open it for writing (open it read-only instead)")
      }
      try Schema.migrate(db, from: version)
      try applyWriterSettings(db, path: path)
      let notebook = Notebook(path: path, db: db, readOnly: false, version: Schema.latestVersion, lock: lock)
      try notebook.recoverCrashedSessions()
      return notebook
    } catch {
      // Leave the file as it was: no checkpoint on close, then drop the lock (and a file we just created).
      if let db, db.isOpen { try? db.configure(SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1) }
      db?.close()
      lock.release()
      if created { for suffix in ["", "-journal", "-wal", "-shm"] { unlink(path + suffix) } }
      throw NotebookError.classify(error, path: path)
    }
  }

  /// Validates an existing file, then opens the read-write connection. Without a -wal file the main file holds
  /// everything, so the check runs on an immutable read-only connection that cannot touch any file. With one
  /// (a crashed writer), the check needs the WAL: it runs on the writer connection, which must not checkpoint
  /// on close if the check fails.
  private static func openExisting(path: String) throws -> (Database, Int) {
    if !NotebookFile.exists(path + "-wal") {
      let probe = try Database(path: NotebookFile.uri(path: path, immutable: true), flags: SQLITE_OPEN_READONLY)
      try configure(probe)
      let version = try validate(probe, path: path)
      probe.close()
      let db = try Database(path: path, flags: SQLITE_OPEN_READWRITE)
      try configure(db)
      return (db, version)
    }
    let db = try Database(path: path, flags: SQLITE_OPEN_READWRITE)
    try db.configure(SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1)
    try configure(db)
    let version = try validate(db, path: path)
    try db.configure(SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 0)
    return (db, version)
  }

  /// Per-connection settings for files of uncertain origin (SQLite's security advice), set on every connection.
  private static func configure(_ db: Database) throws {
    try db.configure(SQLITE_DBCONFIG_DEFENSIVE, 1)
    try db.setBusyTimeout(milliseconds: 5000)
    // foreign_keys must be set outside a transaction: inside one it is a no-op.
    try db.executeScript("""
      PRAGMA trusted_schema = OFF; PRAGMA cell_size_check = ON; PRAGMA mmap_size = 0; PRAGMA foreign_keys = ON;
      """)
  }

  /// Settings of the writer: WAL (persistent in the file), synchronous FULL, a bounded -wal file.
  private static func applyWriterSettings(_ db: Database, path: String) throws {
    let mode = try db.pragma("journal_mode = WAL")?.string
    guard mode == "wal" else {
      throw NotebookError.invalidArgument("could not switch \(path) to WAL mode (journal_mode is \(mode ?? "?"))")
    }
    try db.executeScript("PRAGMA synchronous = FULL; PRAGMA journal_size_limit = 67108864;")
  }

  /// `quick_check`, then application_id, schema version and `meta.format`; returns the schema version.
  private static func validate(_ db: Database, path: String) throws -> Int {
    let problems = try db.query("PRAGMA quick_check(20)").compactMap { $0.first?.string }
    guard problems == ["ok"] else {
      throw NotebookError.corrupt(path: path, reason: problems.prefix(5).joined(separator: "; "))
    }
    let id = try db.pragma("application_id")?.int64 ?? 0
    guard id == Int64(Schema.applicationID) else {
      throw NotebookError.notANotebook(path: path, reason: "application_id is \(id), expected \(Schema.applicationID)")
    }
    let version = try db.pragma("user_version")?.int ?? 0
    guard version > 0 else { throw NotebookError.notANotebook(path: path, reason: "no Lathe schema (user_version 0)") }
    let format: String?
    do {
      format = try db.scalar("SELECT value FROM meta WHERE key = 'format'")?.string
    } catch let error as NotebookError where !error.meansDamagedFile {
      throw NotebookError.notANotebook(path: path, reason: "no meta table (\(error))")
    }
    guard format == Schema.format else {
      throw NotebookError.notANotebook(path: path, reason: "meta.format is \(format ?? "missing")")
    }
    return version
  }

  /// The holder when this process itself has the notebook open for writing: its running session if any, else us.
  private static func holderInProcess(path: String) -> String {
    let described = WriterLock.describeHolder(path: path)
    return described == "another process" ? "pid \(getpid()) on host \(currentHostName())" : described
  }

  /// We hold the writer lock, so any `running` session's process is gone: mark it and its running runs crashed.
  private func recoverCrashedSessions() throws {
    let now = unixMilliseconds()
    recoveredSessions = try db.transaction {
      let ids = try db.query("SELECT session_id FROM session WHERE status = 'running' ORDER BY session_id")
        .compactMap { $0.first?.int64 }
      let orphanRun = try db.scalar("SELECT 1 FROM run WHERE status = 'running' LIMIT 1")
      guard !ids.isEmpty || orphanRun != nil else { return ids }
      try db.execute("UPDATE run SET status = 'crashed', ended_at = coalesce(ended_at, ?) WHERE status = 'running'",
                     [.integer(now)])
      try db.execute("UPDATE session SET status = 'crashed', ended_at = coalesce(ended_at, ?) WHERE status = 'running'",
                     [.integer(now)])
      return ids
    }
  }

  /// Throws unless the notebook is writable.
  func requireWritable(_ operation: String) throws {
    guard !isReadOnly else { throw NotebookError.readOnly(path: path, operation: operation) }
    guard db.isOpen else { throw NotebookError.invalidArgument("notebook \(path) is closed: cannot \(operation)") }
  }

  /// Writes pending outputs (best effort), closes the connection (SQLite checkpoints the WAL when it is the last
  /// one) and releases the writer lock. Idempotent. Call `flushOutputs()` first to see write errors.
  public func close() {
    if db.isOpen, !isReadOnly { try? flushOutputs() }
    db.close()
    lock?.release()
    lock = nil
    if let folder = snapshotFolder {
      snapshotFolder = nil
      try? FileManager.default.removeItem(atPath: folder)
    }
  }

  public var isOpen: Bool { db.isOpen }

  /// Testing: drop the connection and the lock like a killed process would, leaving sessions `running`,
  /// unflushed outputs unwritten and the -wal file un-checkpointed.
  func abandonForTesting() {
    if db.isOpen { try? db.configure(SQLITE_DBCONFIG_NO_CKPT_ON_CLOSE, 1) }
    pendingOutputs = []
    db.close()
    lock?.release()
    lock = nil
    if let folder = snapshotFolder {
      snapshotFolder = nil
      try? FileManager.default.removeItem(atPath: folder)
    }
  }
}
