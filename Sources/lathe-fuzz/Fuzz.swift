// libFuzzer entry for every target of LatheFuzzing (FuzzTarget): LATHE_FUZZ_TARGET names it (default `lang`), and
// LATHE_FUZZ_SEED_DIR, when set, receives the target's seed files before the corpus is read.
//
//   LATHE_FUZZ=1 swift build -c release --sanitize=fuzzer --scratch-path .build-fuzz --product lathe-fuzz
//   LATHE_FUZZ_TARGET=model SWIFT_BACKTRACE=enable=no .build-fuzz/release/lathe-fuzz corpus/ -max_total_time=600
// (or scripts/fuzz 600 model). A FuzzFinding, a trap or a hang is a finding; libFuzzer keeps the input.

import Foundation
import LatheFuzzing

nonisolated(unsafe) var target = FuzzTarget.lang

@_cdecl("LLVMFuzzerInitialize")
public func initialize(_ argc: UnsafeMutablePointer<CInt>, _ argv: UnsafeMutableRawPointer) -> CInt {
  let name = ProcessInfo.processInfo.environment["LATHE_FUZZ_TARGET"] ?? "lang"
  guard let chosen = FuzzTarget(rawValue: name) else {
    fputs("lathe-fuzz: no target '\(name)' (targets: \(FuzzTarget.allCases.map(\.rawValue).joined(separator: ", ")))\n", stderr)
    exit(2)
  }
  target = chosen
  target.prepare()
  if let directory = ProcessInfo.processInfo.environment["LATHE_FUZZ_SEED_DIR"] {
    do { try target.writeSeeds(into: directory) } catch {
      fputs("lathe-fuzz: cannot write the seeds into \(directory): \(error)\n", stderr)
      exit(2)
    }
  }
  return 0
}

@_cdecl("LLVMFuzzerTestOneInput")
public func fuzz(_ data: UnsafePointer<UInt8>, _ size: Int) -> CInt {
  do { try target.check(Array(UnsafeBufferPointer(start: data, count: size))) } catch {
    preconditionFailure("\(target.rawValue): \(error)")
  }
  return 0
}
