// One worker as the parent sees it: the `lathe worker` process, spawned with posix_spawn, and the parent's end of
// its control socket. The child's end of a socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC) is dup2'd onto fd 3 by
// the spawn's file actions (the parent's end is never closed there: it can be the very fd dup2 reuses;
// engine-notes.md section 5), and every other descriptor from 4 up is closed in the child. A worker gets its own
// process group, so Ctrl-C at the terminal reaches the parent only (which stops a run by killing its workers).

import CLinux
import Foundation

final class WorkerProcess {
  /// The descriptor the worker reads its control socket from.
  static let controlFD: Int32 = 3
  let slot: Int
  let pid: pid_t
  let channel: Channel
  /// The model file the worker has loaded.
  var modelPath: String?
  private var reaped = false

  private init(slot: Int, pid: pid_t, channel: Channel) { self.slot = slot; self.pid = pid; self.channel = channel }

  /// The `lathe` executable to run: `$LATHE_WORKER_EXECUTABLE`, else `lathe` beside the running executable (so
  /// `swift test` runs the `.build/<config>/lathe` the same build made).
  static func executable() throws -> String {
    if let path = ProcessInfo.processInfo.environment["LATHE_WORKER_EXECUTABLE"], !path.isEmpty {
      guard access(path, X_OK) == 0 else { throw ParallelError.workerExecutableMissing(path: path) }
      return path
    }
    let me = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    let path = URL(fileURLWithPath: me).deletingLastPathComponent().appendingPathComponent("lathe").path
    guard access(path, X_OK) == 0 else { throw ParallelError.workerExecutableMissing(path: path) }
    return path
  }

  /// Starts `executable worker --parent <pid>` with its control socket on fd 3, one compute thread, and no Swift
  /// backtracer (a crash ends the worker at once). Runs on the spawning thread (see SpawnThread).
  static func spawn(slot: Int, executable: String, budget: Int) throws -> WorkerProcess {
    guard WorkerPool.spawningAllowed else { throw ParallelError.invalidPlan("worker processes are switched off in this process (the fuzzer's language target)") }
    return try SpawnThread.shared.perform { try spawnHere(slot: slot, executable: executable, budget: budget) }
  }

  private static func spawnHere(slot: Int, executable: String, budget: Int) throws -> WorkerProcess {
    var fds: [Int32] = [-1, -1]
    guard socketpair(AF_UNIX, Int32(SOCK_STREAM.rawValue) | Int32(SOCK_CLOEXEC.rawValue), 0, &fds) == 0 else {
      throw ParallelError.posix("socketpair", "creating worker \(slot)'s control socket")
    }
    let parentEnd = fds[0], childEnd = fds[1]
    defer { close(childEnd) }
    var actions = posix_spawn_file_actions_t()
    posix_spawn_file_actions_init(&actions)
    defer { posix_spawn_file_actions_destroy(&actions) }
    var code = posix_spawn_file_actions_adddup2(&actions, childEnd, controlFD)
    if code == 0 { code = posix_spawn_file_actions_addopen(&actions, 0, "/dev/null", O_RDONLY, 0) }
    if code == 0 { code = lathe_spawn_add_closefrom(&actions, controlFD + 1) }
    guard code == 0 else { close(parentEnd); throw ParallelError.system(call: "posix_spawn_file_actions", errno: code, context: "preparing worker \(slot)") }

    var attributes = posix_spawnattr_t()
    posix_spawnattr_init(&attributes)
    defer { posix_spawnattr_destroy(&attributes) }
    code = posix_spawnattr_setflags(&attributes, Int16(POSIX_SPAWN_SETPGROUP))
    if code == 0 { code = posix_spawnattr_setpgroup(&attributes, 0) }
    guard code == 0 else { close(parentEnd); throw ParallelError.system(call: "posix_spawnattr", errno: code, context: "preparing worker \(slot)") }

    var environment = ProcessInfo.processInfo.environment
    environment["LATHE_THREADS"] = "1"
    environment["OPENBLAS_NUM_THREADS"] = "1"
    environment["LATHE_PIN"] = "0"
    environment["SWIFT_BACKTRACE"] = "enable=no"
    environment["LATHE_MEMORY_BUDGET"] = String(budget)      // the worker's share of the session's budget
    let arguments = [executable, "worker", "--parent", String(getpid())]
    let argv = arguments.map { strdup($0) } + [nil]
    let envp = environment.map { strdup("\($0.key)=\($0.value)") } + [nil]
    defer { for p in argv + envp { free(p) } }
    var pid = pid_t()
    code = posix_spawn(&pid, executable, &actions, &attributes, argv, envp)
    guard code == 0 else { close(parentEnd); throw ParallelError.system(call: "posix_spawn", errno: code, context: "starting \(executable) as worker \(slot)") }
    return WorkerProcess(slot: slot, pid: pid, channel: Channel(fd: parentEnd))
  }

  /// Why the worker ended, once its socket gave EOF: waits up to a second for it to exit, then kills it.
  func exitReason() -> String {
    var status: Int32 = 0
    for _ in 0..<100 {
      let r = waitpid(pid, &status, WNOHANG)
      if r == pid { reaped = true; return WorkerProcess.describe(status) }
      if r < 0 { reaped = true; return "ended (its exit status is unknown)" }
      usleep(10_000)
    }
    kill(pid, SIGKILL)
    if waitpid(pid, &status, 0) == pid { reaped = true }
    return "closed its socket and was killed"
  }

  static func describe(_ status: Int32) -> String {
    let signal = status & 0x7f
    if signal == 0 { return "exited with status \((status >> 8) & 0xff)" }
    return "was killed by signal \(signal) (\(signalName(signal)))"
  }

  /// Kills the worker (if it still runs) and reaps it.
  func terminate() {
    guard !reaped else { return }
    kill(pid, SIGKILL)
    var status: Int32 = 0
    while waitpid(pid, &status, 0) < 0 && errno == EINTR {}
    reaped = true
  }

  /// Lets the worker end by itself (EOF on its socket), waiting up to `seconds`, then kills it.
  func finish(within seconds: Double) {
    guard !reaped else { return }
    shutdown(channel.fd, Int32(SHUT_RDWR))
    var status: Int32 = 0
    let deadline = monotonicNanoseconds() + UInt64(seconds * 1e9)
    while monotonicNanoseconds() < deadline {
      if waitpid(pid, &status, WNOHANG) != 0 { reaped = true; return }
      usleep(2_000)
    }
    terminate()
  }

  deinit { terminate() }
}

/// The one thread that spawns workers. A worker asks for SIGKILL when the thread that created it exits
/// (PR_SET_PDEATHSIG follows the thread, not the process), so it must not be a pool thread that may retire.
final class SpawnThread: @unchecked Sendable {
  static let shared = SpawnThread()
  private let condition = NSCondition()
  private var job: (() -> Void)?

  private init() {
    let thread = Thread { [unowned self] in self.loop() }
    thread.name = "lathe-spawn"
    thread.start()
  }

  private func loop() {
    while true {
      condition.lock()
      while job == nil { condition.wait() }
      let work = job!
      job = nil
      condition.unlock()
      work()
      condition.lock(); condition.broadcast(); condition.unlock()
    }
  }

  /// Runs `body` on the spawning thread and returns its result.
  func perform<T>(_ body: @escaping () throws -> T) throws -> T {
    var result: Result<T, Error>?
    condition.lock()
    while job != nil { condition.wait() }
    job = { let r = Result { try body() }; self.condition.lock(); result = r; self.condition.unlock() }
    condition.broadcast()
    while result == nil { condition.wait() }
    condition.unlock()
    return try result!.get()
  }
}
