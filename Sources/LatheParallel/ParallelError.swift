// What can go wrong in parallel prefill: a bad plan, a missing worker executable, a failed system call, a worker
// that died or reported an error, and a malformed frame on a control socket.

import Foundation

public enum ParallelError: Error, CustomStringConvertible, Equatable {
  /// The request itself is wrong (procs, chunk sizes, prompt length, model).
  case invalidPlan(String)
  /// The `lathe` executable the workers run is not where it was looked for.
  case workerExecutableMissing(path: String)
  /// A system call failed: its name, errno and what it was doing.
  case system(call: String, errno: Int32, context: String)
  /// A worker process ended in the middle of a request: "killed by signal 9 (SIGKILL)", "exited with status 1".
  case workerDied(worker: Int, pid: Int32, reason: String)
  /// A worker reported an error while it ran a request.
  case workerFailed(worker: Int, message: String)
  /// A frame on a control socket broke the protocol.
  case malformedFrame(String)
  /// mpirun or one of its ranks failed: what it said on standard error.
  case mpiFailed(String)

  public var description: String {
    switch self {
    case .invalidPlan(let reason): return "parallel prefill: \(reason)"
    case .workerExecutableMissing(let path):
      return "parallel prefill: the worker executable \(path) does not exist (build the lathe product, e.g. swift build, or set LATHE_WORKER_EXECUTABLE)"
    case .system(let call, let code, let context): return "parallel prefill: \(call) failed while \(context): \(String(cString: strerror(code))) (errno \(code))"
    case .workerDied(let worker, let pid, let reason): return "parallel prefill: worker \(worker) (pid \(pid)) \(reason); the pool starts new workers on the next call"
    case .workerFailed(let worker, let message): return "parallel prefill: worker \(worker): \(message)"
    case .malformedFrame(let reason): return "parallel prefill: malformed frame: \(reason)"
    case .mpiFailed(let message): return "parallel prefill over MPI: \(message)"
    }
  }

  /// `.system` for the current errno.
  static func posix(_ call: String, _ context: String) -> ParallelError { .system(call: call, errno: errno, context: context) }
}

/// The name of a signal number ("SIGKILL"), or "signal N".
func signalName(_ signal: Int32) -> String {
  let names: [Int32: String] = [SIGHUP: "SIGHUP", SIGINT: "SIGINT", SIGQUIT: "SIGQUIT", SIGILL: "SIGILL", SIGTRAP: "SIGTRAP",
                                SIGABRT: "SIGABRT", SIGBUS: "SIGBUS", SIGFPE: "SIGFPE", SIGKILL: "SIGKILL", SIGSEGV: "SIGSEGV",
                                SIGPIPE: "SIGPIPE", SIGALRM: "SIGALRM", SIGTERM: "SIGTERM", SIGUSR1: "SIGUSR1", SIGUSR2: "SIGUSR2"]
  return names[signal] ?? "signal \(signal)"
}

/// CLOCK_MONOTONIC in nanoseconds: one clock for the parent and every worker on the machine.
package func monotonicNanoseconds() -> UInt64 {
  var t = timespec()
  clock_gettime(CLOCK_MONOTONIC, &t)
  return UInt64(t.tv_sec) * 1_000_000_000 + UInt64(t.tv_nsec)
}
