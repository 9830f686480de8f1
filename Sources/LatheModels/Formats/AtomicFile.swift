// Writing a file so that a failure part-way (a full disk, a file-size limit, a crash) leaves the old file as it
// was: the bytes go to a new file in the same folder, which is flushed to disk and then renamed over the target.

import Foundation

public enum AtomicFile {
  /// A file-size limit (RLIMIT_FSIZE) makes an oversized write fail with EFBIG instead of killing the process.
  private static let ignoreFileSizeSignal: Void = { signal(SIGXFSZ, SIG_IGN); return () }()

  /// Writes `path` through `body`, which gets the new file to write to; the old file (if any) is replaced only
  /// when everything was written, flushed and synced. Errors name the path and the system's reason.
  public static func write(to path: String, _ body: (UnsafeMutablePointer<FILE>) throws -> Void) throws {
    _ = ignoreFileSizeSignal
    let url = URL(fileURLWithPath: path)
    let folder = url.deletingLastPathComponent().path
    let temporary = folder + "/." + url.lastPathComponent + ".\(getpid()).\(UInt32.random(in: 0...UInt32.max)).tmp"
    func failure(_ what: String) -> Error {
      ModelFormatError.notFound(path: path, field: "file", reason: "\(what) (\(String(cString: strerror(errno))))")
    }
    let fd = open(temporary, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0o644)
    guard fd >= 0, let file = fdopen(fd, "wb") else {
      if fd >= 0 { close(fd) }
      throw failure("cannot be created")
    }
    var done = false
    defer {
      if !done { fclose(file); unlink(temporary) }
    }
    try body(file)
    guard fflush(file) == 0 else { throw failure("write failed") }
    guard fsync(fileno(file)) == 0 else { throw failure("cannot be synced to disk") }
    done = true
    guard fclose(file) == 0 else { unlink(temporary); throw failure("cannot be closed") }
    guard rename(temporary, path) == 0 else { unlink(temporary); throw failure("cannot replace the old file") }
    // The rename itself reaches the disk with the folder's entry.
    let dir = open(folder.isEmpty ? "." : folder, O_RDONLY | O_DIRECTORY | O_CLOEXEC)
    if dir >= 0 { fsync(dir); close(dir) }
  }

  /// Writes `bytes` to `path` atomically (see `write(to:_:)`).
  public static func write(_ bytes: [UInt8], to path: String) throws {
    try write(to: path) { file in try put(bytes, to: file, path: path) }
  }

  /// fwrite of all of `bytes`, or an error naming the path.
  public static func put(_ bytes: [UInt8], to file: UnsafeMutablePointer<FILE>, path: String) throws {
    try bytes.withUnsafeBytes { try put($0, to: file, path: path) }
  }

  /// fwrite of all of `bytes` (memory the caller holds, written without a copy), or an error naming the path.
  public static func put(_ bytes: UnsafeRawBufferPointer, to file: UnsafeMutablePointer<FILE>, path: String) throws {
    guard !bytes.isEmpty else { return }
    let written = fwrite(bytes.baseAddress, 1, bytes.count, file)
    guard written == bytes.count else {
      throw ModelFormatError.notFound(path: path, field: "file", reason: "write failed (\(String(cString: strerror(errno))))")
    }
  }
}

/// What a file is on disk: device, inode, size and modification time. A file saved over the same path (renamed
/// into place, or rewritten) has another identity, so a cache keyed by it never serves the old contents.
public struct FileIdentity: Equatable, Sendable, CustomStringConvertible {
  public let device: UInt64, inode: UInt64, size: Int64, modified: Int64
  public static func of(path: String) -> FileIdentity? {
    var s = stat()
    guard stat(path, &s) == 0 else { return nil }
    return FileIdentity(device: UInt64(s.st_dev), inode: UInt64(s.st_ino), size: Int64(s.st_size),
                        modified: Int64(s.st_mtim.tv_sec) * 1_000_000_000 + Int64(s.st_mtim.tv_nsec))
  }
  public var description: String { "\(device):\(inode):\(size):\(modified)" }
}
