// PtySession: runs the real `lathe` binary on a pseudo-terminal, types into it and waits for what it prints.

#if canImport(Glibc)
import Foundation
import Glibc
import LatheTestSupport

/// What went wrong while driving a session; the message carries the tail of the screen text.
struct PtyError: Error, CustomStringConvertible {
  var description: String
}

/// One `lathe` process whose stdin, stdout and stderr are the slave side of a pty (and its controlling terminal,
/// so a 0x03 byte typed into the master becomes SIGINT for it, as Ctrl-C in a terminal does).
///
/// Output is matched as *screen text*: ANSI escapes and bells removed, `\r\n` and a lone `\r` read as one `\n`.
/// Each `expect` searches only after the end of the previous match, so old output never satisfies a new wait.
///
///     let s = try PtySession(arguments: ["--scratch"])
///     try s.expect("lathe> ")
///     let shown = try s.enter("1 + 1")          // "1 + 1\n2\n"
final class PtySession {
  let pid: pid_t
  private let master: Int32
  private(set) var raw: [UInt8] = []
  /// Offset into `text` (in unicode scalars) where the next `expect` starts looking.
  private var consumed = 0
  private(set) var exitStatus: Int32? = nil

  static let prompt = "lathe> "
  static let continuationPrompt = "  ...> "

  /// The `lathe` built next to this test binary (same configuration), else `.build/debug/lathe`.
  static var binaryPath: String {
    if let override = ProcessInfo.processInfo.environment["LATHE_BINARY"] { return override }
    let testBinary = URL(fileURLWithPath: "/proc/self/exe").resolvingSymlinksInPath()
    var dir = testBinary.deletingLastPathComponent()
    // The test binary sits at <build>/debug/LathePackageTests.xctest (a file on Linux).
    if dir.pathExtension == "xctest" { dir = dir.deletingLastPathComponent() }
    let sibling = dir.appendingPathComponent("lathe").path
    if FileManager.default.isExecutableFile(atPath: sibling) { return sibling }
    return TestPaths.packageRoot.appendingPathComponent(".build/debug/lathe").path
  }

  /// Starts `lathe arguments...` in `directory` with TERM=xterm, the given extra environment and a 200×50 window.
  init(arguments: [String], directory: URL, environment: [String: String] = [:]) throws {
    let binary = PtySession.binaryPath
    guard FileManager.default.isExecutableFile(atPath: binary) else {
      throw PtyError(description: "no lathe binary at \(binary): run `swift build --build-tests` first")
    }
    var size = winsize(ws_row: 50, ws_col: 200, ws_xpixel: 0, ws_ypixel: 0)
    var masterFD: Int32 = -1, slaveFD: Int32 = -1
    guard openpty(&masterFD, &slaveFD, nil, nil, &size) == 0 else {
      throw PtyError(description: "openpty: \(String(cString: strerror(errno)))")
    }
    defer { close(slaveFD) }                               // the child opens its own copy by name
    _ = fcntl(masterFD, F_SETFD, FD_CLOEXEC)
    _ = fcntl(slaveFD, F_SETFD, FD_CLOEXEC)
    var nameBuffer = [CChar](repeating: 0, count: 256)
    guard ttyname_r(slaveFD, &nameBuffer, nameBuffer.count) == 0 else {
      close(masterFD)
      throw PtyError(description: "ttyname_r: \(String(cString: strerror(errno)))")
    }
    let slaveName = String(cString: nameBuffer)

    // setsid() runs before the file actions (glibc spawni.c), so opening the slave by name without O_NOCTTY
    // makes it the new session's controlling terminal, and the child's group its foreground group.
    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    let posixSpawnSetsid: Int16 = 0x80                     // glibc's POSIX_SPAWN_SETSID (spawn.h, _GNU_SOURCE only)
    var noSignals = sigset_t(), defaultSignals = sigset_t()
    sigemptyset(&noSignals)
    sigemptyset(&defaultSignals)
    sigaddset(&defaultSignals, SIGINT)
    sigaddset(&defaultSignals, SIGPIPE)
    posix_spawnattr_setsigmask(&attributes, &noSignals)
    posix_spawnattr_setsigdefault(&attributes, &defaultSignals)
    posix_spawnattr_setflags(&attributes, posixSpawnSetsid | Int16(POSIX_SPAWN_SETSIGMASK | POSIX_SPAWN_SETSIGDEF))
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    posix_spawn_file_actions_addopen(&actions, 0, slaveName, O_RDWR, 0)
    posix_spawn_file_actions_adddup2(&actions, 0, 1)
    posix_spawn_file_actions_adddup2(&actions, 0, 2)

    // Glibc's module lacks posix_spawn_file_actions_addchdir_np, so a shell changes directory and then execs:
    // the pid stays that of `lathe`, which kill() and waitpid() need.
    let argv = ["/bin/sh", "-c", "cd \"$0\" && exec \"$@\"", directory.path, binary] + arguments
    var env = ["TERM": "xterm", "INPUTRC": "/dev/null", "HOME": directory.path, "LANG": "C.UTF-8",
               "PATH": ProcessInfo.processInfo.environment["PATH"] ?? "/usr/bin:/bin"]
    env.merge(environment) { _, new in new }
    let envStrings = env.map { "\($0.key)=\($0.value)" }
    var cArgv = argv.map { strdup($0) } + [nil]
    var cEnv = envStrings.map { strdup($0) } + [nil]
    defer { (cArgv + cEnv).forEach { free($0) } }
    var child: pid_t = 0
    let rc = posix_spawn(&child, "/bin/sh", &actions, &attributes, &cArgv, &cEnv)
    guard rc == 0 else {
      close(masterFD)
      throw PtyError(description: "posix_spawn: \(String(cString: strerror(rc)))")
    }
    pid = child
    master = masterFD
  }

  deinit {
    if exitStatus == nil {
      kill(pid, SIGKILL)
      var status: Int32 = 0
      waitpid(pid, &status, 0)
    }
    close(master)
  }

  // MARK: - Typing

  func send(_ text: String) throws {
    var bytes = Array(text.utf8)[...]
    while !bytes.isEmpty {
      let n = bytes.withUnsafeBytes { write(master, $0.baseAddress, $0.count) }
      if n < 0 {
        if errno == EINTR { continue }
        throw PtyError(description: "write to pty: \(String(cString: strerror(errno)))")
      }
      bytes = bytes.dropFirst(n)
    }
  }

  /// Types `line` and Enter, then waits for the next primary prompt; returns what was shown in between
  /// (the echoed line included, the prompt left out).
  @discardableResult
  func enter(_ line: String, timeout: Double = 15) throws -> String {
    try send(line + "\r")
    let shown = try expect(PtySession.prompt, timeout: timeout)
    return String(shown.dropLast(PtySession.prompt.count))
  }

  // MARK: - Reading

  /// Everything shown so far, as screen text.
  var text: String { PtySession.screenText(raw) }

  /// Waits until `needle` appears after the previous match; returns the text from there up to and including it.
  @discardableResult
  func expect(_ needle: String, timeout: Double = 15) throws -> String {
    let deadline = Date().addingTimeInterval(timeout)
    while true {
      let scalars = Array(text.unicodeScalars)
      let rest = String(String.UnicodeScalarView(scalars[min(consumed, scalars.count)...]))
      if let range = rest.range(of: needle) {
        let shown = String(rest[..<range.upperBound])
        consumed += shown.unicodeScalars.count
        return shown
      }
      let left = deadline.timeIntervalSinceNow
      if left <= 0 || !readMore(timeout: left) {
        let tail = String(rest.suffix(1500))
        throw PtyError(description: "timed out after \(timeout) s waiting for \(needle.debugDescription); "
                       + "shown since the last match:\n\(tail)")
      }
    }
  }

  /// Reads whatever arrives within `timeout` seconds; false when nothing came (or the child closed the pty).
  @discardableResult
  func readMore(timeout: Double) -> Bool {
    var fds = pollfd(fd: master, events: Int16(POLLIN), revents: 0)
    let ready = poll(&fds, 1, Int32(max(1, min(timeout, 3600) * 1000)))
    guard ready > 0 else { return false }
    var buffer = [UInt8](repeating: 0, count: 4096)
    let n = read(master, &buffer, buffer.count)
    guard n > 0 else { return false }                     // EIO: every slave descriptor is closed
    raw.append(contentsOf: buffer[..<n])
    return true
  }

  /// Keeps reading for `seconds`, however much or little arrives.
  func settle(for seconds: Double) {
    let deadline = Date().addingTimeInterval(seconds)
    while deadline.timeIntervalSinceNow > 0 { readMore(timeout: deadline.timeIntervalSinceNow) }
  }

  /// Waits for the process to end, reading its output meanwhile; returns its exit status (128+n for signal n).
  func waitForExit(timeout: Double = 15) throws -> Int32 {
    let deadline = Date().addingTimeInterval(timeout)
    while Date() < deadline {
      var status: Int32 = 0
      let done = waitpid(pid, &status, WNOHANG)
      if done == pid {
        let code = (status & 0x7f) == 0 ? (status >> 8) & 0xff : 128 + (status & 0x7f)
        exitStatus = code
        return code
      }
      if !readMore(timeout: 0.05) { usleep(10_000) }
    }
    throw PtyError(description: "lathe did not exit within \(timeout) s; shown:\n\(text.suffix(1500))")
  }

  // MARK: - Screen text

  /// `bytes` as text with escape sequences and bells removed and line ends made `\n`. An escape sequence or
  /// UTF-8 character cut off at the end is left out, so text grows only at its end as bytes arrive.
  static func screenText(_ bytes: [UInt8]) -> String {
    var out: [UInt8] = []
    out.reserveCapacity(bytes.count)
    var i = 0
    let n = bytes.count
    scan: while i < n {
      let b = bytes[i]
      switch b {
      case 0x1B:                                          // ESC
        guard i + 1 < n else { break scan }
        let kind = bytes[i + 1]
        if kind == UInt8(ascii: "[") {                    // CSI: parameters and intermediates, then a final byte
          var j = i + 2
          while j < n, !(0x40...0x7E).contains(bytes[j]) { j += 1 }
          guard j < n else { break scan }
          i = j + 1
        } else if kind == UInt8(ascii: "]") {             // OSC: up to BEL or ESC \
          var j = i + 2
          while j < n, bytes[j] != 0x07, bytes[j] != 0x1B { j += 1 }
          guard j < n else { break scan }
          i = bytes[j] == 0x07 ? j + 1 : j + 2
        } else if kind == UInt8(ascii: "(") || kind == UInt8(ascii: ")") {
          i += 3                                          // character set selection
        } else {
          i += 2                                          // ESC =, ESC >, ESC 7, ...
        }
      case 0x07:
        i += 1
      case 0x0D:                                          // CR, alone or before LF: one line break
        guard i + 1 < n else { break scan }
        out.append(0x0A)
        i += bytes[i + 1] == 0x0A ? 2 : 1
      default:
        out.append(b)
        i += 1
      }
    }
    // Leave out a UTF-8 character whose last bytes have not arrived yet.
    var lead = out.count - 1
    while lead >= 0, out.count - lead <= 4, out[lead] & 0xC0 == 0x80 { lead -= 1 }
    if lead >= 0, out[lead] >= 0xC0 {
      let length = out[lead] >= 0xF0 ? 4 : out[lead] >= 0xE0 ? 3 : 2
      if out.count - lead < length { out.removeSubrange(lead...) }
    }
    return String(decoding: out, as: UTF8.self)
  }
}
#endif
