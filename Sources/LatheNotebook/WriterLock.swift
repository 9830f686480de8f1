// WriterLock: the single-writer rule, an exclusive non-blocking flock on the notebook file, plus file header checks.
import CSQLite
import Foundation
#if canImport(Glibc)
import Glibc
#endif

/// The exclusive `flock` a writable `Notebook` holds on its file for as long as it is open.
///
/// flock and SQLite's POSIX (fcntl) locks are independent on Linux. Closing any descriptor of a file drops all of
/// the process's POSIX locks on it, so this type never opens a descriptor for a file this process already holds
/// for writing (it checks an in-process registry of device and inode first), and it closes its own descriptor only
/// after the notebook's SQLite connection is closed.
final class WriterLock {
  private struct FileID: Hashable { var device: UInt64, inode: UInt64 }

  private static let registryLock = NSLock()
  nonisolated(unsafe) private static var heldInProcess: Set<FileID> = []

  private var descriptor: Int32
  private let id: FileID

  private init(descriptor: Int32, id: FileID) {
    self.descriptor = descriptor
    self.id = id
  }

  deinit { release() }

  /// The outcome of trying to take the lock.
  enum Attempt {
    case acquired(WriterLock)
    /// Another process holds it, or (`inProcess`) another `Notebook` in this process does.
    case busy(inProcess: Bool)
  }

  /// Whether this process already holds the writer lock on the file at `path`.
  static func isHeldInProcess(path: String) -> Bool {
    var info = stat()
    guard stat(path, &info) == 0 else { return false }
    let id = FileID(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    registryLock.lock(); defer { registryLock.unlock() }
    return heldInProcess.contains(id)
  }

  /// Tries to lock the open file `descriptor` (which the lock then owns and closes on release or failure).
  static func acquire(descriptor: Int32, path: String) throws -> Attempt {
    var info = stat()
    guard fstat(descriptor, &info) == 0 else {
      let code = errno
      Glibc.close(descriptor)
      throw NotebookError.io(path: path, operation: "fstat", errno: code)
    }
    let id = FileID(device: UInt64(info.st_dev), inode: UInt64(info.st_ino))
    registryLock.lock(); defer { registryLock.unlock() }
    if heldInProcess.contains(id) {
      // Unreachable when callers check isHeldInProcess first; do not close: that would drop POSIX locks.
      return .busy(inProcess: true)
    }
    guard flock(descriptor, LOCK_EX | LOCK_NB) == 0 else {
      let code = errno
      Glibc.close(descriptor)
      if code == EWOULDBLOCK || code == EAGAIN { return .busy(inProcess: false) }
      throw NotebookError.io(path: path, operation: "flock", errno: code)
    }
    heldInProcess.insert(id)
    return .acquired(WriterLock(descriptor: descriptor, id: id))
  }

  /// Unlocks and closes the descriptor. Idempotent. Call after closing the SQLite connection.
  func release() {
    guard descriptor >= 0 else { return }
    flock(descriptor, LOCK_UN)
    Glibc.close(descriptor)
    descriptor = -1
    WriterLock.registryLock.lock()
    WriterLock.heldInProcess.remove(id)
    WriterLock.registryLock.unlock()
  }

  /// Who holds the notebook for writing, from its newest `running` session, read through a read-only connection:
  /// "pid P on host H", or "another process" when that cannot be read.
  static func describeHolder(path: String) -> String {
    let uri = NotebookFile.uri(path: path, immutable: !NotebookFile.exists(path + "-wal"))
    guard let db = try? Database(path: uri, flags: SQLITE_OPEN_READONLY) else { return "another process" }
    defer { db.close() }
    try? db.setBusyTimeout(milliseconds: 1000)
    let sql = "SELECT pid, host FROM session WHERE status = 'running' ORDER BY session_id DESC LIMIT 1"
    guard let row = try? db.query(sql).first, row.count == 2, let pid = row[0].int64 else { return "another process" }
    return "pid \(pid) on host \(row[1].string ?? "unknown")"
  }
}

/// Checks on the notebook file made before SQLite opens it, so that a foreign file is never opened for writing.
enum NotebookFile {
  static let magic = Array("SQLite format 3\u{0}".utf8)

  static func exists(_ path: String) -> Bool { access(path, F_OK) == 0 }

  /// A `file:` URI for `path` with `mode=ro`, plus `immutable=1` when asked (no locks, no -wal/-shm files).
  static func uri(path: String, immutable: Bool) -> String {
    var allowed = CharacterSet.alphanumerics
    allowed.insert(charactersIn: "/-._~")
    let encoded = path.addingPercentEncoding(withAllowedCharacters: allowed) ?? path
    return "file:\(encoded)?mode=ro" + (immutable ? "&immutable=1" : "")
  }

  /// Reads up to the first 100 bytes (the SQLite header) through `descriptor`.
  static func header(descriptor: Int32, path: String) throws -> [UInt8] {
    var bytes = [UInt8](repeating: 0, count: 100)
    let count = bytes.withUnsafeMutableBytes { pread(descriptor, $0.baseAddress, 100, 0) }
    guard count >= 0 else { throw NotebookError.io(path: path, operation: "read", errno: errno) }
    return Array(bytes[0..<count])
  }

  /// Throws unless `header` starts like a Lathe notebook: SQLite's magic string and application_id "LATH"
  /// (bytes 68-71, big-endian; the notebook is created in rollback mode so the main file always holds it).
  static func checkHeader(_ header: [UInt8], path: String) throws {
    guard header.count >= magic.count, Array(header[0..<magic.count]) == magic else {
      if !header.isEmpty, header.count < magic.count, Array(magic[0..<header.count]) == header {
        throw NotebookError.corrupt(path: path, reason: "file is truncated to \(header.count) bytes")
      }
      throw NotebookError.notANotebook(path: path, reason: "not an SQLite database file")
    }
    guard header.count == 100 else {
      throw NotebookError.corrupt(path: path, reason: "file is truncated to \(header.count) bytes")
    }
    let id = header[68..<72].reduce(UInt32(0)) { $0 << 8 | UInt32($1) }
    guard id == UInt32(bitPattern: Schema.applicationID) else {
      throw NotebookError.notANotebook(
        path: path, reason: "SQLite file with application_id 0x\(String(id, radix: 16, uppercase: true)), "
          + "expected 0x4C415448 (LATH)")
    }
  }

  /// Whether `path-wal` starts with a WAL header (magic 0x377F0682 or 0x377F0683). After a power loss during a
  /// checkpoint, the main file's first page may be torn while the WAL still holds it whole: SQLite reads page 1
  /// from the WAL, so the raw header check gives way to `validate` (application_id through SQLite) then.
  static func walMayHoldTheHeader(path: String) -> Bool {
    let descriptor = open(path + "-wal", O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { return false }
    defer { Glibc.close(descriptor) }
    var magic = [UInt8](repeating: 0, count: 4)
    guard magic.withUnsafeMutableBytes({ pread(descriptor, $0.baseAddress, 4, 0) }) == 4 else { return false }
    return magic[0..<3] == [0x37, 0x7F, 0x06] && (magic[3] == 0x82 || magic[3] == 0x83)
  }

  /// Reads the header of the file at `path` (read-only opens). Skipped (nil) when this process holds the file for
  /// writing, since closing a descriptor would drop that connection's POSIX locks.
  static func readHeader(path: String) throws -> [UInt8]? {
    if WriterLock.isHeldInProcess(path: path) { return nil }
    let descriptor = open(path, O_RDONLY | O_CLOEXEC)
    guard descriptor >= 0 else { throw NotebookError.io(path: path, operation: "open", errno: errno) }
    defer { Glibc.close(descriptor) }
    return try header(descriptor: descriptor, path: path)
  }
}
