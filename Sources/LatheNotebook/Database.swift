// Database: one sqlite3 connection, owned by one Swift object; every C return code is checked where the call is made.
import CSQLite
import Foundation

/// `SQLITE_TRANSIENT`: SQLite copies bound text and blobs before `sqlite3_bind_*` returns.
let sqliteTransient = unsafeBitCast(-1, to: sqlite3_destructor_type.self)

/// A thin owner of one `sqlite3*` handle. Not thread-safe: use each `Database` from one thread at a time.
///
///     let db = try Database(path: ":memory:")
///     try db.execute("CREATE TABLE t(x INTEGER) STRICT")
///     try db.execute("INSERT INTO t VALUES(?)", [.integer(1)])
public final class Database {
  /// The path or URI the connection was opened with (used in error messages).
  public let path: String
  private(set) var handle: OpaquePointer?

  /// Opens a connection with `sqlite3_open_v2`; `flags` are `SQLITE_OPEN_*` values (URI filenames are always allowed).
  public init(path: String, flags: Int32 = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE) throws {
    self.path = path
    var db: OpaquePointer?
    let rc = sqlite3_open_v2(path, &db, flags | SQLITE_OPEN_URI | SQLITE_OPEN_FULLMUTEX, nil)
    guard rc == SQLITE_OK, let db else {
      let message = db.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
      sqlite3_close_v2(db)
      throw NotebookError.sqlite(code: rc, message: message, sql: "open \(path)")
    }
    handle = db
    sqlite3_extended_result_codes(db, 1)
  }

  deinit { close() }

  /// Closes the connection; later calls throw. Idempotent. `sqlite3_close_v2` defers the close until every
  /// `Statement` is finalized, so statements still alive elsewhere stay safe.
  public func close() {
    if let handle { sqlite3_close_v2(handle) }
    handle = nil
  }

  public var isOpen: Bool { handle != nil }

  func openHandle(_ sql: String) throws -> OpaquePointer {
    guard let handle else { throw NotebookError.sqlite(code: SQLITE_MISUSE, message: "database is closed", sql: sql) }
    return handle
  }

  /// The error for return code `rc` from a call about `sql`, with `sqlite3_errmsg`.
  func error(_ rc: Int32, _ sql: String) -> NotebookError {
    let message = handle.map { String(cString: sqlite3_errmsg($0)) } ?? String(cString: sqlite3_errstr(rc))
    return .sqlite(code: rc, message: message, sql: sql)
  }

  /// Compiles one statement.
  public func prepare(_ sql: String) throws -> Statement {
    let db = try openHandle(sql)
    var statement: OpaquePointer?
    let rc = sqlite3_prepare_v2(db, sql, -1, &statement, nil)
    guard rc == SQLITE_OK, let statement else {
      sqlite3_finalize(statement)
      throw rc == SQLITE_OK ? NotebookError.sqlite(code: SQLITE_MISUSE, message: "empty statement", sql: sql)
                            : error(rc, sql)
    }
    return Statement(database: self, handle: statement, sql: sql)
  }

  /// Runs one statement with bound values, discarding any rows.
  public func execute(_ sql: String, _ values: [SQLValue] = []) throws {
    let statement = try prepare(sql)
    try statement.bind(values)
    while try statement.step() {}
  }

  /// Runs several `;`-separated statements without parameters (migrations, PRAGMAs).
  public func executeScript(_ sql: String) throws {
    let db = try openHandle(sql)
    var message: UnsafeMutablePointer<CChar>?
    let rc = sqlite3_exec(db, sql, nil, nil, &message)
    if rc != SQLITE_OK {
      let text = message.map { String(cString: $0) } ?? String(cString: sqlite3_errstr(rc))
      sqlite3_free(message)
      throw NotebookError.sqlite(code: rc, message: text, sql: sql)
    }
  }

  /// All rows of a query.
  public func query(_ sql: String, _ values: [SQLValue] = []) throws -> [[SQLValue]] {
    let statement = try prepare(sql)
    try statement.bind(values)
    var rows: [[SQLValue]] = []
    while try statement.step() { rows.append(statement.row()) }
    return rows
  }

  /// The first column of the first row, or nil when there is no row.
  public func scalar(_ sql: String, _ values: [SQLValue] = []) throws -> SQLValue? {
    let statement = try prepare(sql)
    try statement.bind(values)
    return try statement.step() ? statement.column(0) : nil
  }

  /// The rowid of the last successful INSERT on this connection.
  public var lastInsertRowID: Int64 { handle.map { sqlite3_last_insert_rowid($0) } ?? 0 }

  /// Rows changed by the last INSERT, UPDATE or DELETE.
  public var changes: Int { handle.map { Int(sqlite3_changes($0)) } ?? 0 }

  /// Whether no transaction is open.
  public var isAutocommit: Bool { handle.map { sqlite3_get_autocommit($0) != 0 } ?? true }

  /// Runs `body` in a `BEGIN IMMEDIATE` transaction: committed when it returns, rolled back when it throws.
  /// IMMEDIATE takes the write lock up front, so a read never has to upgrade to a write (no WAL deadlock).
  @discardableResult
  public func transaction<T>(_ body: () throws -> T) throws -> T {
    try execute("BEGIN IMMEDIATE")
    do {
      let result = try body()
      try execute("COMMIT")
      return result
    } catch {
      if let handle, sqlite3_get_autocommit(handle) == 0 { sqlite3_exec(handle, "ROLLBACK", nil, nil, nil) }
      throw error
    }
  }

  /// Sets an integer `sqlite3_db_config` option (such as `SQLITE_DBCONFIG_DEFENSIVE`).
  public func configure(_ option: Int32, _ value: Int32) throws {
    let db = try openHandle("sqlite3_db_config(\(option))")
    let rc = lathe_sqlite3_db_config_int(db, option, value)
    guard rc == SQLITE_OK else { throw error(rc, "sqlite3_db_config(\(option), \(value))") }
  }

  /// Sets the busy handler to wait up to `milliseconds` for a lock instead of failing with SQLITE_BUSY.
  public func setBusyTimeout(milliseconds: Int32) throws {
    let db = try openHandle("sqlite3_busy_timeout")
    let rc = sqlite3_busy_timeout(db, milliseconds)
    guard rc == SQLITE_OK else { throw error(rc, "sqlite3_busy_timeout(\(milliseconds))") }
  }

  /// The value of a PRAGMA that returns one row, as text (nil when it returns none).
  public func pragma(_ name: String) throws -> SQLValue? {
    try scalar("PRAGMA \(name)")
  }

  /// The version of the linked SQLite library, such as "3.40.1".
  public static var libraryVersion: String { String(cString: sqlite3_libversion()) }
}
