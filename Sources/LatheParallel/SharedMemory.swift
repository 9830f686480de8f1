// Shared memory for the workers: a private folder (mode 0700) under /dev/shm, or under $TMPDIR where there is no
// /dev/shm, named lathe-<uid>-<pid>, holding files (mode 0600) that the parent and its workers map MAP_SHARED. The
// folder goes when the pool shuts down, and at normal exit; one left by a process that was killed is removed by the
// next one that makes a folder.

import Foundation

final class SharedFolder {
  let path: String
  private var removed = false

  init() throws {
    let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : (ProcessInfo.processInfo.environment["TMPDIR"] ?? "/tmp")
    var path = "\(base)/lathe-\(getuid())-\(getpid())"
    var n = 0
    // mkdir fails on an existing name, so a stale folder (a reused pid) is never shared: take the next free name.
    while mkdir(path, 0o700) != 0 {
      guard errno == EEXIST, n < 100 else { throw ParallelError.posix("mkdir", "creating the shared-memory folder \(path)") }
      n += 1
      path = "\(base)/lathe-\(getuid())-\(getpid())-\(n)"
    }
    guard chmod(path, 0o700) == 0 else { throw ParallelError.posix("chmod", "making \(path) private") }
    self.path = path
    SharedFolder.register(path)
    SharedFolder.removeStale(in: base)
  }

  /// Removes this user's folders whose process no longer exists (killed, so its exit handler never ran).
  static func removeStale(in base: String) {
    let prefix = "lathe-\(getuid())-"
    for name in (try? FileManager.default.contentsOfDirectory(atPath: base)) ?? [] where name.hasPrefix(prefix) {
      guard let pid = Int32(name.dropFirst(prefix.count).prefix { $0.isNumber }), pid != getpid() else { continue }
      // Only a real directory of this user's (lstat: a symlink named like one of ours is not followed).
      var info = stat()
      guard lstat("\(base)/\(name)", &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR, info.st_uid == getuid() else { continue }
      if kill(pid, 0) != 0 && errno == ESRCH { removeTree("\(base)/\(name)") }
    }
  }

  deinit { remove() }

  /// Deletes the folder and its files.
  func remove() {
    guard !removed else { return }
    removed = true
    SharedFolder.removeTree(path)
    SharedFolder.unregister(path)
  }

  // Folders still to remove at exit (atexit runs a C function: no captures, so a static list).
  nonisolated(unsafe) private static var live: Set<String> = []
  nonisolated(unsafe) private static var registeredAtExit = false
  private static let lock = NSLock()

  private static func register(_ path: String) {
    lock.lock(); defer { lock.unlock() }
    live.insert(path)
    if !registeredAtExit {
      registeredAtExit = true
      atexit { SharedFolder.removeAll() }
    }
  }
  private static func unregister(_ path: String) { lock.lock(); live.remove(path); lock.unlock() }
  private static func removeAll() {
    lock.lock(); let paths = live; live = []; lock.unlock()
    for p in paths { removeTree(p) }
  }
  /// Removes a folder of ours and the plain files in it. The folder is opened without following a symlink
  /// (O_NOFOLLOW) and must be a directory owned by this user; its entries are unlinked relative to that open folder
  /// (unlinkat), so a symlink planted under /dev/shm in the folder's place, or inside it, never leads the removal to
  /// another folder's files. Subfolders and foreign files are left.
  static func removeTree(_ path: String) {
    let fd = open(path, O_RDONLY | O_DIRECTORY | O_NOFOLLOW | O_CLOEXEC)
    guard fd >= 0 else { return }
    var info = stat()
    guard fstat(fd, &info) == 0, (info.st_mode & S_IFMT) == S_IFDIR, info.st_uid == getuid(), let dir = fdopendir(fd) else {
      close(fd)
      return
    }
    defer { closedir(dir) }                                // closes fd too
    var names: [String] = []
    while let entry = readdir(dir) {
      let name = withUnsafePointer(to: entry.pointee.d_name) { $0.withMemoryRebound(to: CChar.self, capacity: 256) { String(cString: $0) } }
      if name != "." && name != ".." { names.append(name) }
    }
    for name in names {
      var entry = stat()
      guard fstatat(fd, name, &entry, AT_SYMLINK_NOFOLLOW) == 0 else { continue }
      let kind = entry.st_mode & S_IFMT
      if kind == S_IFREG || kind == S_IFLNK { unlinkat(fd, name, 0) }   // a link itself goes, never its target
    }
    rmdir(path)
  }
}

/// A file mapped MAP_SHARED: created by the parent (mode 0600), opened by workers by path.
final class SharedRegion {
  let path: String
  let byteCount: Int
  let base: UnsafeMutableRawPointer

  /// Creates the file (it must not exist) and maps it.
  init(creating path: String, byteCount: Int) throws {
    let fd = open(path, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0o600)
    guard fd >= 0 else { throw ParallelError.posix("open", "creating \(path)") }
    defer { close(fd) }
    guard fchmod(fd, 0o600) == 0 else { throw ParallelError.posix("fchmod", "making \(path) private") }
    guard ftruncate(fd, off_t(byteCount)) == 0 else { unlink(path); throw ParallelError.posix("ftruncate", "sizing \(path) to \(byteCount) bytes") }
    guard let p = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
      unlink(path); throw ParallelError.posix("mmap", "mapping \(path)")
    }
    self.path = path; self.byteCount = byteCount; base = p
  }

  /// Maps an existing file, which must hold at least `byteCount` bytes.
  init(opening path: String, byteCount: Int) throws {
    let fd = open(path, O_RDWR | O_CLOEXEC)
    guard fd >= 0 else { throw ParallelError.posix("open", "opening the shared region \(path)") }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else { throw ParallelError.posix("fstat", "sizing \(path)") }
    guard Int(info.st_size) >= byteCount, byteCount > 0 else {
      throw ParallelError.invalidPlan("the shared region \(path) holds \(info.st_size) bytes, the request needs \(byteCount)")
    }
    guard let p = mmap(nil, byteCount, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0), p != MAP_FAILED else {
      throw ParallelError.posix("mmap", "mapping \(path)")
    }
    self.path = path; self.byteCount = byteCount; base = p
  }

  deinit { munmap(base, byteCount) }

  /// Deletes the file (the mapping stays valid until released).
  func unlinkFile() { unlink(path) }
}
