// libFuzzer entry: parse, compile and run arbitrary bytes (with the tensor builtins) under step, depth, size budgets;
// or, with LATHE_FUZZ_TARGET=gguf, read them as GGUF files (GGUFFuzz.swift).
//
//   LATHE_FUZZ=1 swift build -c release --sanitize=fuzzer --scratch-path .build-fuzz --product lathe-fuzz
//   SWIFT_BACKTRACE=enable=no .build-fuzz/release/lathe-fuzz corpus/ -max_total_time=600
//   LATHE_FUZZ_TARGET=gguf SWIFT_BACKTRACE=enable=no .build-fuzz/release/lathe-fuzz gguf-corpus/ -max_total_time=600
// (or scripts/fuzz 600 [gguf]). Every input must end as a value or a located Diagnostic (a GGUF: a file whose tensors
// lie inside it, or a ModelFormatError); anything else (a trap, a hang) is a finding.

import Foundation
import LatheBuiltins
import LatheLang
import LatheTensor

nonisolated(unsafe) var interpreter: Interpreter? = nil
nonisolated(unsafe) var inputs = 0

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  if FuzzTarget.gguf { GGUFFuzz.run(UnsafeBufferPointer(start: data, count: size)); return 0 }
  let source = String(decoding: UnsafeBufferPointer(start: data, count: size), as: UTF8.self)
  // One interpreter for many inputs (globals carry over, which explores more states); renewed now and then.
  inputs += 1
  if interpreter == nil || inputs % 50 == 0 {
    interpreter?.shutdown()
    interpreter = FuzzTarget.makeInterpreter()
  }
  guard let interp = interpreter else { return 0 }
  do {
    _ = try interp.run(source, name: "fuzz")
  } catch let d as Diagnostic {
    // Located: every error names a line and column (a few runtime limits report 0:0 for the cell as a whole).
    precondition(d.location.line >= 0 && d.location.column >= 0, "diagnostic without a location: \(d)")
  } catch {
    preconditionFailure("an error that is not a Diagnostic escaped: \(error)")
  }
  return 0
}

/// Before the corpus is read: in GGUF mode, writes the seed file into `LATHE_FUZZ_SEED_DIR` when that is set.
@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutableRawPointer) -> CInt {
  if FuzzTarget.gguf { GGUFFuzz.prepare() }
  return 0
}

enum FuzzTarget {
  /// LATHE_FUZZ_TARGET=gguf fuzzes the GGUF reader instead of the language.
  static let gguf = ProcessInfo.processInfo.environment["LATHE_FUZZ_TARGET"] == "gguf"

  static func makeInterpreter() -> Interpreter {
    Limits.maxElements = 1 << 16            // lists of at most 65536 elements: 1.5 MiB each
    Memory.budget = 64 << 20                // all live tensors together: 64 MiB
    let registry = Builtins.standard()      // the language and the tensor builtins, as a session has them
    // Waiting proves nothing under a fuzzer; it would only look like a hang.
    registry.add("sleep", [ParameterSpec("seconds")], doc: "No-op under the fuzzer.", example: "") { _ in .none }
    let interp = Interpreter(registry: registry, seed: 1)
    interp.stepBudget = 100_000
    interp.maxCallDepth = 1_000
    interp.output = { _, _ in }
    return interp
  }
}
