// The scripts under MPIScripts/ run prefill over Open MPI ranks: they need mpirun and lathe-mpi (a build with
// LATHE_MPI=1) and the real model, so they run in the release pass only when LATHE_MPI=1 is set.

import Foundation
import Testing
import LatheTestSupport

@Suite(.enabled(if: ProcessInfo.processInfo.environment["LATHE_MPI"] == "1", "set LATHE_MPI=1 to build lathe-mpi and run the MPI scripts"))
struct MPIScriptReleaseTests {
  static var all: [TensorScript] { ScriptHarness.scripts(in: "Tests/LatheBuiltinsTests/MPIScripts").map(TensorScript.init) }

  @Test(arguments: MPIScriptReleaseTests.all)
  func mpiScriptMeetsExpectations(_ script: TensorScript) throws {
    try script.expectMeetsExpectations()
  }
}
