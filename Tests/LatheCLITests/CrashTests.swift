// A notebook loses nothing committed when its process is killed: SIGKILL a `lathe run` mid-cell, then check.

import Foundation
import Testing
import LatheTestSupport
import LatheNotebook

@Test func sigkillMidRunLosesNothingCommitted() throws {
  let dir = try TestPaths.temporaryDirectory("lathe-kill")
  let script = dir.appendingPathComponent("stream.lathe")
  try """
  # %%
  print("first cell done")
  # %%
  print("second cell done")
  # %%
  var i = 0
  while true {
    print("tick", i)
    i += 1
    sleep(0.01)
  }
  """.write(to: script, atomically: true, encoding: .utf8)
  let nbPath = dir.appendingPathComponent("stream.lnb").path
  for trial in 0..<5 {
    try? FileManager.default.removeItem(atPath: nbPath)
    let p = Process()
    p.executableURL = TestPaths.latheBinary
    p.arguments = ["run", script.path, "--notebook", nbPath]
    p.standardOutput = FileHandle.nullDevice
    p.standardError = FileHandle.nullDevice
    try p.run()
    // Kill at a different moment each trial, once the third cell has been streaming for a while.
    usleep(UInt32(400_000 + trial * 150_000))
    kill(p.processIdentifier, SIGKILL)
    p.waitUntilExit()

    let nb = try Notebook.open(path: nbPath)          // a writable open recovers the dead session
    #expect(try nb.check().isEmpty, "trial \(trial): check found problems")
    guard let session = try nb.sessions().first else { Issue.record("no session"); return }
    #expect(session.status == .crashed, "trial \(trial): the killed session is marked crashed")
    let runs = try nb.runs(session: session.id)
    #expect(runs.count == 3, "trial \(trial): \(runs.count) runs")
    #expect(runs.prefix(2).allSatisfy { $0.status == .ok }, "trial \(trial): finished runs stay ok")
    #expect(runs.first?.outputs.first?.text == "first cell done\n")
    #expect(runs.last?.status == .crashed)
    nb.close()
  }
}
