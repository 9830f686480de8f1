// NotebookError: every failure of the notebook layer, each naming the file, the SQL or the value that went wrong.
import CSQLite
import Foundation

public enum NotebookError: Error, CustomStringConvertible, Equatable {
  /// An SQLite call failed: its (extended) result code, `sqlite3_errmsg`, and the SQL or C call it was about.
  case sqlite(code: Int32, message: String, sql: String)
  /// The file is an SQLite file that fails `quick_check` or cannot be read.
  case corrupt(path: String, reason: String)
  /// The file is not SQLite at all, or an SQLite file of another application.
  case notANotebook(path: String, reason: String)
  /// The file's schema version is newer than this build knows; it can only be opened read-only.
  case newerVersion(path: String, version: Int, supported: Int)
  /// Another writer holds the notebook; `holder` reads like "pid 123 on host box" or "another process".
  case locked(path: String, holder: String)
  /// A write was attempted on a notebook opened read-only.
  case readOnly(path: String, operation: String)
  /// A system call on the notebook file failed.
  case io(path: String, operation: String, errno: Int32)
  /// A stored blob is missing, or its content does not hash to its key.
  case badBlob(hash: String, reason: String)
  /// A caller passed a value the notebook cannot store.
  case invalidArgument(String)

  public var description: String {
    switch self {
    case .sqlite(let code, let message, let sql):
      return "sqlite error \(code) (\(String(cString: sqlite3_errstr(code)))): \(message), in: \(sql)"
    case .corrupt(let path, let reason): return "notebook is corrupt: \(path): \(reason)"
    case .notANotebook(let path, let reason): return "not a Lathe notebook: \(path): \(reason)"
    case .newerVersion(let path, let version, let supported):
      return "notebook \(path) has format version \(version), newer than this build's \(supported): "
        + "it can only be opened read-only (upgrade lathe to write to it)"
    case .locked(let path, let holder): return "notebook \(path) is open for writing by \(holder)"
    case .readOnly(let path, let operation): return "notebook \(path) is open read-only: cannot \(operation)"
    case .io(let path, let operation, let code):
      return "\(operation) \(path) failed: \(String(cString: strerror(code)))"
    case .badBlob(let hash, let reason): return "blob \(hash): \(reason)"
    case .invalidArgument(let message): return message
    }
  }

  /// The primary SQLite result code when this is an SQLite error.
  public var sqliteCode: Int32? {
    if case .sqlite(let code, _, _) = self { return code & 0xff }
    return nil
  }

  /// Whether this error says the file's bytes are damaged (SQLITE_CORRUPT or SQLITE_NOTADB).
  var meansDamagedFile: Bool {
    switch self {
    case .corrupt: return true
    case .sqlite: return sqliteCode == SQLITE_CORRUPT || sqliteCode == SQLITE_NOTADB
    default: return false
    }
  }

  /// SQLite errors that mean damaged bytes become `.corrupt` for `path`; others pass through.
  static func classify(_ error: Error, path: String) -> Error {
    guard let error = error as? NotebookError, case .sqlite(_, let message, _) = error, error.meansDamagedFile
    else { return error }
    return NotebookError.corrupt(path: path, reason: message)
  }
}

/// Decodes a stored enum value, or throws naming the column and the bad value (a damaged or foreign file).
func decodeEnum<E: RawRepresentable>(_ type: E.Type, _ value: SQLValue, column: String) throws -> E
where E.RawValue == String {
  guard let raw = value.string, let decoded = E(rawValue: raw) else {
    throw NotebookError.invalidArgument("unexpected value \(value) in column \(column)")
  }
  return decoded
}

/// Reads a required integer column, or throws naming it.
func requireInt64(_ value: SQLValue, column: String) throws -> Int64 {
  guard let number = value.int64 else {
    throw NotebookError.invalidArgument("expected an integer in column \(column), found \(value)")
  }
  return number
}

/// Reads a required text column, or throws naming it.
func requireString(_ value: SQLValue, column: String) throws -> String {
  guard let text = value.string else {
    throw NotebookError.invalidArgument("expected text in column \(column), found \(value)")
  }
  return text
}

/// Milliseconds since the Unix epoch, the unit of every `*_at` column.
func unixMilliseconds() -> Int64 { Int64((Date().timeIntervalSince1970 * 1000).rounded()) }

/// This machine's host name, or "unknown".
func currentHostName() -> String {
  var buffer = [CChar](repeating: 0, count: 256)
  guard gethostname(&buffer, buffer.count - 1) == 0 else { return "unknown" }
  return String(cString: buffer)
}
