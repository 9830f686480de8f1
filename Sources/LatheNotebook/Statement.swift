// Statement: one prepared sqlite3_stmt, finalized in deinit; SQLValue, the five SQLite storage classes.
import CSQLite
import Foundation

/// One SQLite value. STRICT tables keep the declared type, so readers can expect the case they wrote.
public enum SQLValue: Equatable, CustomStringConvertible {
  case null
  case integer(Int64)
  case real(Double)
  case text(String)
  case blob([UInt8])

  public init(_ value: String?) { self = value.map { .text($0) } ?? .null }
  public init(_ value: Int64?) { self = value.map { .integer($0) } ?? .null }
  public init(_ value: Int?) { self = value.map { .integer(Int64($0)) } ?? .null }
  public init(_ value: Double?) { self = value.map { .real($0) } ?? .null }

  public var isNull: Bool { if case .null = self { return true } else { return false } }

  /// The integer, or nil for any other case.
  public var int64: Int64? { if case .integer(let value) = self { return value } else { return nil } }
  public var int: Int? { int64.flatMap { Int(exactly: $0) } }

  /// The real number; an integer is converted (SQLite stores integral REALs compactly).
  public var double: Double? {
    switch self {
    case .real(let value): return value
    case .integer(let value): return Double(value)
    default: return nil
    }
  }

  public var string: String? { if case .text(let value) = self { return value } else { return nil } }
  public var bytes: [UInt8]? { if case .blob(let value) = self { return value } else { return nil } }

  public var description: String {
    switch self {
    case .null: return "NULL"
    case .integer(let value): return String(value)
    case .real(let value): return String(value)
    case .text(let value): return value
    case .blob(let value): return "<\(value.count) bytes>"
    }
  }
}

/// A compiled statement. Holds its `Database` so the connection outlives it.
public final class Statement {
  public let database: Database
  public let sql: String
  private let handle: OpaquePointer

  init(database: Database, handle: OpaquePointer, sql: String) {
    self.database = database
    self.handle = handle
    self.sql = sql
  }

  deinit { sqlite3_finalize(handle) }

  /// A non-null pointer for empty texts (a null one would bind NULL).
  private static let emptyText: UnsafePointer<CChar> = {
    let pointer = UnsafeMutablePointer<CChar>.allocate(capacity: 1)
    pointer.initialize(to: 0)
    return UnsafePointer(pointer)
  }()

  /// Binds `values` to parameters 1...n, after resetting the statement.
  public func bind(_ values: [SQLValue]) throws {
    try reset()
    let rc = sqlite3_clear_bindings(handle)
    guard rc == SQLITE_OK else { throw database.error(rc, sql) }
    let expected = Int(sqlite3_bind_parameter_count(handle))
    guard values.count == expected else {
      throw NotebookError.sqlite(code: SQLITE_RANGE, message: "\(values.count) values for \(expected) parameters",
                                 sql: sql)
    }
    for (offset, value) in values.enumerated() {
      let index = Int32(offset + 1), code: Int32
      switch value {
      case .null: code = sqlite3_bind_null(handle, index)
      case .integer(let number): code = sqlite3_bind_int64(handle, index, number)
      case .real(let number): code = sqlite3_bind_double(handle, index, number)
      case .text(let string):
        // With an explicit byte count, so a text with NUL characters is stored whole.
        var text = string
        code = text.withUTF8 { utf8 in
          utf8.withMemoryRebound(to: CChar.self) { chars in
            sqlite3_bind_text64(handle, index, chars.baseAddress ?? Statement.emptyText, UInt64(chars.count),
                                sqliteTransient, UInt8(SQLITE_UTF8))
          }
        }
      case .blob(let bytes):
        code = bytes.withUnsafeBytes { raw in
          // A zero-length blob needs a non-null pointer, or SQLite binds NULL.
          sqlite3_bind_blob64(handle, index, raw.baseAddress ?? UnsafeRawPointer(bitPattern: 1), UInt64(raw.count),
                              sqliteTransient)
        }
      }
      guard code == SQLITE_OK else { throw database.error(code, sql) }
    }
  }

  /// Binds a byte range without copying it into an array first (chunk writes).
  public func bindBlob(_ index: Int32, _ bytes: UnsafeRawBufferPointer) throws {
    let rc = sqlite3_bind_blob64(handle, index, bytes.baseAddress ?? UnsafeRawPointer(bitPattern: 1),
                                 UInt64(bytes.count), sqliteTransient)
    guard rc == SQLITE_OK else { throw database.error(rc, sql) }
  }

  /// Advances one step: true when a row is ready, false when the statement is done.
  public func step() throws -> Bool {
    let rc = sqlite3_step(handle)
    switch rc {
    case SQLITE_ROW: return true
    case SQLITE_DONE: return false
    default:
      sqlite3_reset(handle)
      throw database.error(rc, sql)
    }
  }

  /// Makes the statement ready to run again (bindings are kept).
  public func reset() throws {
    // sqlite3_reset repeats the error of the last step, which step() has already thrown.
    _ = sqlite3_reset(handle)
  }

  public var columnCount: Int { Int(sqlite3_column_count(handle)) }

  /// Column `index` (0-based) of the current row.
  public func column(_ index: Int) -> SQLValue {
    let i = Int32(index)
    switch sqlite3_column_type(handle, i) {
    case SQLITE_INTEGER: return .integer(sqlite3_column_int64(handle, i))
    case SQLITE_FLOAT: return .real(sqlite3_column_double(handle, i))
    case SQLITE_TEXT:
      guard let text = sqlite3_column_text(handle, i) else { return .text("") }
      let count = Int(sqlite3_column_bytes(handle, i))
      return .text(String(decoding: UnsafeBufferPointer(start: text, count: count), as: UTF8.self))
    case SQLITE_BLOB:
      let count = Int(sqlite3_column_bytes(handle, i))
      guard count > 0, let pointer = sqlite3_column_blob(handle, i) else { return .blob([]) }
      return .blob(Array(UnsafeRawBufferPointer(start: pointer, count: count)))
    default: return .null
    }
  }

  /// Calls `body` with the bytes of blob column `index`, valid only during the call (no copy).
  public func withBlob<T>(_ index: Int, _ body: (UnsafeRawBufferPointer) throws -> T) rethrows -> T {
    let i = Int32(index)
    let pointer = sqlite3_column_blob(handle, i)
    let count = Int(sqlite3_column_bytes(handle, i))
    return try body(UnsafeRawBufferPointer(start: count > 0 ? pointer : nil, count: count > 0 ? count : 0))
  }

  /// All columns of the current row.
  public func row() -> [SQLValue] { (0..<columnCount).map(column) }
}
