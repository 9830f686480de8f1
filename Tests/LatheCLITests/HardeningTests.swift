// Inputs that used to kill the process: each must leave it alive with exit status 0 (the REPL) or a located error.

import Foundation
import Testing
import LatheTestSupport

/// A list nested 300,000 deep is built, compared, printed (cut at 32 levels) and freed at exit without a stack
/// overflow: values are released on a thread with a large stack.
@Test(arguments: ["var x = []\nfor i in 0..<300000 { x = [x] }\nprint(1)\n",
                  "var x = {}\nfor i in 0..<300000 { x = {next: x} }\nprint(1)\n",
                  "var x = []\nfor i in 0..<300000 { x = [1, x] }\nlet y = x\nprint(x == y, len(repr(x)) > 0)\n"])
func deeplyNestedValuesAreFreedWithoutOverflow(_ program: String) throws {
  let r = try TestPaths.runLathe(["--scratch"], input: program)
  #expect(r.status == 0, "\(r.err.suffix(1500))")
  #expect(r.out.hasPrefix("1") || r.out.hasPrefix("true"), "\(r.out)")
}
