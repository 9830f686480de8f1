// Every input the fuzzer ever crashed on is replayed by plain `swift test`, with the fuzzer's registry and budgets.

import Foundation
import Testing
import LatheBuiltins
import LatheLang
import LatheTestSupport

@Test func fuzzRegressionsReplayWithoutCrashing() throws {
  let dir = TestPaths.packageRoot.appendingPathComponent("Tests/LatheLangTests/FuzzRegressions")
  let files = (try? FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)) ?? []
  let interp = Interpreter(registry: Builtins.standard(), seed: 1)
  interp.stepBudget = 100_000
  interp.maxCallDepth = 1_000
  interp.output = { _, _ in }
  defer { interp.shutdown() }
  var replayed = 0
  for file in files where file.lastPathComponent != ".keep" {
    let source = String(decoding: try Data(contentsOf: file), as: UTF8.self)
    do { _ = try interp.run(source, name: file.lastPathComponent) } catch is Diagnostic {}
    replayed += 1
  }
  #expect(replayed == files.filter { $0.lastPathComponent != ".keep" }.count)
}
