// The language target: arbitrary bytes as a program, with the registry a session has, under step, depth, size and
// memory budgets. Builtins that write files or start processes are stubbed, as `sleep` is: a fuzzer proves nothing
// by filling a disk or spawning workers, and such effects would make a finding depend on what ran before.

import Foundation
import LatheBuiltins
import LatheLang
import LatheParallel
import LatheTensor

enum LanguageFuzz {
  nonisolated(unsafe) static var interpreter: Interpreter?
  nonisolated(unsafe) static var inputs = 0

  /// The rows replaced by no-ops: waiting, and every builtin that writes a file.
  static let stubbed = ["sleep", "savetensors", "savegguf", "save", "tempfile"]

  static func prepare() {
    Limits.maxElements = 1 << 16            // lists of at most 65536 elements: 1.5 MiB each
    Memory.budget = 64 << 20                // all live tensors together: 64 MiB
    WorkerPool.spawningAllowed = false      // parallel prefill ends in an error instead of starting workers
    _ = watchdog
  }

  /// A builtin's work (a training run, a compression) is one step of the step budget: an input still running after
  /// this many seconds is interrupted as Ctrl-C would, so every loop, kernel and training step stops it within a
  /// quarter second, as an `interrupted` error, well inside the fuzzer's 10 s limit (the seed notebooks train).
  static let secondsPerInput = 3.0
  private static let deadlineLock = NSLock()
  nonisolated(unsafe) private static var deadline = UInt64.max
  private static let watchdog: Thread = {
    let thread = Thread {
      while true {
        usleep(20_000)
        deadlineLock.lock()
        if DispatchTime.now().uptimeNanoseconds > deadline { Interrupt.flag.pointee = 1 }
        deadlineLock.unlock()
      }
    }
    thread.start()
    return thread
  }()

  static func setDeadline(_ value: UInt64) {
    deadlineLock.lock(); deadline = value; deadlineLock.unlock()
  }

  static func makeInterpreter() -> Interpreter {
    prepare()
    let registry = Builtins.standard()      // the language and the tensor builtins, as a session has them
    for name in stubbed {
      let parameters = registry.lookup(name)?.parameters ?? [ParameterSpec("x")]
      registry.add(name, parameters, doc: "A no-op under the fuzzer.", example: "") { _ in .none }
    }
    let interp = Interpreter(registry: registry, seed: 1)
    interp.stepBudget = 100_000
    interp.maxCallDepth = 1_000
    interp.output = { _, _ in }
    return interp
  }

  static func check(_ input: [UInt8]) throws {
    let source = String(decoding: input, as: UTF8.self)
    // One interpreter for many inputs (globals carry over, which explores more states); renewed now and then.
    inputs += 1
    if interpreter == nil || inputs % 50 == 0 {
      interpreter?.shutdown()
      interpreter = makeInterpreter()
    }
    guard let interp = interpreter else { return }
    setDeadline(DispatchTime.now().uptimeNanoseconds + UInt64(secondsPerInput * 1e9))
    defer { setDeadline(.max); Interrupt.clear() }
    do {
      _ = try interp.run(source, name: "fuzz")
    } catch let d as Diagnostic {
      // Located: every error names a line and column (a few runtime limits report 0:0 for the cell as a whole).
      guard d.location.line >= 0, d.location.column >= 0 else { throw FuzzFinding("a diagnostic without a location: \(d)") }
    } catch {
      throw FuzzFinding("an error that is not a Diagnostic escaped: \(error)")
    }
  }
}
