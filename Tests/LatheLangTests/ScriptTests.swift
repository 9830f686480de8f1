// Runs every .lathe script under Scripts/ through the language alone (core builtins and the prelude).

import Foundation
import Testing
@testable import LatheLang
import LatheTestSupport

struct ScriptCase: CustomStringConvertible, Sendable {
  let url: URL
  var description: String { url.lastPathComponent }
  static var all: [ScriptCase] { ScriptHarness.scripts(in: "Tests/LatheLangTests/Scripts").map(ScriptCase.init) }
}

func makeInterpreter() throws -> Interpreter {
  let interp = Interpreter(seed: 42)
  try interp.loadPrelude(from: TestPaths.packageRoot.appendingPathComponent("stdlib").path)
  return interp
}

@Test(arguments: ScriptCase.all)
func scriptMeetsExpectations(_ script: ScriptCase) throws {
  let interp = try makeInterpreter()
  defer { interp.shutdown() }
  let problems = try ScriptHarness.problems(running: script.url, in: interp)
  #expect(problems.isEmpty, Comment(rawValue: "\(script.description):\n" + problems.joined(separator: "\n")))
}
