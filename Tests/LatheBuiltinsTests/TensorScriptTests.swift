// Runs every .lathe script under Scripts/ with the tensor builtins, as a session has them.

import Foundation
import Testing
import LatheLang
import LatheBuiltins
import LatheTestSupport

struct TensorScript: CustomStringConvertible, Sendable {
  let url: URL
  var description: String { url.lastPathComponent }
  static var all: [TensorScript] { ScriptHarness.scripts(in: "Tests/LatheBuiltinsTests/Scripts").map(TensorScript.init) }

  /// Runs the script with the builtins a session has (seed 7) and expects every `# expect` line met.
  func expectMeetsExpectations() throws {
    let interp = Interpreter(registry: Builtins.standard(), seed: 7)
    try interp.loadPrelude(from: TestPaths.packageRoot.appendingPathComponent("stdlib").path)
    defer { interp.shutdown() }
    let problems = try ScriptHarness.problems(running: url, in: interp)
    #expect(problems.isEmpty, Comment(rawValue: "\(description):\n" + problems.joined(separator: "\n")))
  }
}

@Test(arguments: TensorScript.all)
func tensorScriptMeetsExpectations(_ script: TensorScript) throws {
  try script.expectMeetsExpectations()
}

/// The language-model scripts load the real SmolLM2 file and run it: model-sized, so scripts/test runs them in the
/// release pass.
@Suite struct ModelScriptReleaseTests {
  static var all: [TensorScript] { ScriptHarness.scripts(in: "Tests/LatheBuiltinsTests/ModelScripts").map(TensorScript.init) }

  @Test(arguments: ModelScriptReleaseTests.all)
  func modelScriptMeetsExpectations(_ script: TensorScript) throws {
    try script.expectMeetsExpectations()
  }
}
