// End to end: `lathe run` a script into a notebook, then show, export, check and rerun --check it.

import Foundation
import Testing
import LatheTestSupport
import LatheNotebook
@testable import LatheCLI

@Suite(.serialized) struct CommandsTests {
  let dir: URL
  init() throws { dir = try TestPaths.temporaryDirectory("lathe-cmd") }

  func quickstartNotebook() throws -> String {
    let nb = dir.appendingPathComponent("quickstart.lnb").path
    let script = TestPaths.packageRoot.appendingPathComponent("notebooks/quickstart.lathe").path
    let r = try TestPaths.runLathe(["run", script, "--notebook", nb])
    #expect(r.status == 0, "lathe run failed: \(r.err)")
    #expect(r.out.contains("ticks: 13"))
    #expect(r.err.contains("error: index 3 is out of range for list of 3 elements"), "the expected error is shown")
    return nb
  }

  @Test func quickstartRunsShowsAndExports() throws {
    let nb = try quickstartNotebook()
    let show = try TestPaths.runLathe(["show", nb])
    #expect(show.status == 0)
    #expect(show.out.contains("ticks: 13"))
    #expect(show.out.contains("index 3 is out of range"))
    let html = dir.appendingPathComponent("q.html").path
    #expect(try TestPaths.runLathe(["export", nb, "--to", "html", "-o", html]).status == 0)
    let page = try String(contentsOfFile: html, encoding: .utf8)
    #expect(page.contains("<html") && page.contains("ticks: 13") && page.contains("out of range"))
    #expect(try TestPaths.runLathe(["check", nb]).out.contains("ok"))
  }

  @Test func ipynbExportIsValidNbformat() throws {
    let nb = try quickstartNotebook()
    let path = dir.appendingPathComponent("q.ipynb").path
    #expect(try TestPaths.runLathe(["export", nb, "--to", "ipynb", "-o", path]).status == 0)
    let json = try JSONSerialization.jsonObject(with: Data(contentsOf: URL(fileURLWithPath: path))) as? [String: Any]
    #expect(json?["nbformat"] as? Int == 4)
    let p = Process()
    p.executableURL = URL(fileURLWithPath: "/usr/bin/env")
    p.arguments = ["python3", "-c", "import nbformat, sys; nbformat.validate(nbformat.read(sys.argv[1], as_version=4)); print('valid')", path]
    let out = Pipe()
    p.standardOutput = out
    p.standardError = out
    try p.run()
    p.waitUntilExit()
    let text = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    if text.contains("No module named 'nbformat'") {
      print("nbformat is not installed (scripts/setup installs it): ipynb checked as JSON only")
    } else {
      #expect(p.terminationStatus == 0 && text.contains("valid"), "nbformat.validate: \(text)")
    }
  }

  @Test func rerunCheckPassesThenCatchesAChangedOutput() throws {
    let nb = try quickstartNotebook()
    let same = try TestPaths.runLathe(["rerun", nb, "--check"])
    #expect(same.status == 0, "rerun --check on an unchanged notebook: \(same.out) \(same.err)")
    // Change one recorded output of the original session, as if the code had printed something else.
    do {
      let db = try Database(path: nb)
      try db.execute("UPDATE output SET text = replace(text, 'ticks: 13', 'ticks: 14') WHERE text LIKE '%ticks: 13%' "
                     + "AND run_id IN (SELECT run_id FROM run WHERE session_id = 1)")
      db.close()
    }
    let changed = try TestPaths.runLathe(["rerun", nb, "--check"])
    #expect(changed.status == 1)
    #expect(changed.err.contains("was: ticks: 14") && changed.err.contains("now: ticks: 13"), "diff: \(changed.err)")
  }

  @Test func sessionsAreListedAndAnOlderOneReruns() throws {
    let nb = try quickstartNotebook()
    let repl = try TestPaths.runLathe(["repl", nb], input: "print(\"second\")\n1/0\n")
    #expect(repl.out.contains("second"))
    let list = try TestPaths.runLathe(["show", nb, "--sessions"])
    let lines = list.out.split(separator: "\n").map(String.init)
    #expect(list.status == 0 && lines.count == 3, "\(list.out)")
    #expect(lines.first?.contains("cells run  errors") == true)
    #expect(lines[1].contains(" run ") && lines[1].contains("quickstart.lathe"), "\(lines[1])")
    #expect(lines[2].contains(" repl ") && lines[2].split(separator: " ").suffix(3) == ["2", "1", "closed"], "\(lines[2])")
    // --session picks the older session; the newest (the REPL's) is what rerun takes by default.
    let older = try TestPaths.runLathe(["rerun", nb, "--session", "1", "--check"])
    #expect(older.status == 0 && older.out.contains("runs of session 1 reproduce"), "\(older.out) \(older.err)")
    let newest = try TestPaths.runLathe(["rerun", nb])
    #expect(newest.out.contains("reran 2 runs of session 2"), "\(newest.out) \(newest.err)")
    let missing = try TestPaths.runLathe(["rerun", nb, "--session", "42"])
    #expect(missing.status == 2 && missing.err.contains("has no session 42 (its sessions: 1, 2, 3, 4"), "\(missing.err)")
    let metrics = try TestPaths.runLathe(["show", nb, "--session", "1", "--metrics"])
    #expect(metrics.out.contains("  best = 0.97"), "\(metrics.out)")
    let every = try TestPaths.runLathe(["show", nb, "--session", "1", "--all"])
    #expect(every.out.contains("  best[0] = 0.97"), "\(every.out)")
  }

  @Test func pipedREPLExitsNonZeroAfterAnErrorAndRunCountsTheCellsThatRan() throws {
    let bad = try TestPaths.runLathe(["--scratch"], input: "x = 1/0\nprint(\"after\")\n")
    #expect(bad.status == 1 && bad.out.contains("after") && bad.err.contains("division by zero"), "\(bad)")
    let good = try TestPaths.runLathe(["--scratch"], input: "let x = 1\nprint(x + 1)\n")
    #expect(good.status == 0 && good.out.contains("2"), "\(good)")

    let script = dir.appendingPathComponent("stops.lathe").path
    try "# %%\nprint(1)\n\n# %% [markdown]\n# text\n\n# %%\n1/0\n\n# %%\nprint(3)\n".write(toFile: script, atomically: true, encoding: .utf8)
    let stopped = try TestPaths.runLathe(["run", script, "--notebook", dir.appendingPathComponent("stops.lnb").path])
    #expect(stopped.status == 1 && stopped.err.contains("ran 3 of 4 cells of stops.lathe into"), "\(stopped.err)")
    let all = try TestPaths.runLathe(["run", script, "--keep-going", "--notebook", dir.appendingPathComponent("all.lnb").path])
    #expect(all.status == 1 && all.err.contains("ran 4 cells of stops.lathe into"), "\(all.err)")
  }

  @Test func floatsWithinToleranceAgreeAndIntsMustMatch() {
    #expect(OutputComparison.compare("loss 0.1234567", "loss 0.1234568", rtol: 1e-5, atol: 1e-6) == nil)
    #expect(OutputComparison.compare("loss 0.12", "loss 0.13", rtol: 1e-5, atol: 1e-6) != nil)
    #expect(OutputComparison.compare("tokens [1, 2, 3]", "tokens [1, 2, 4]", rtol: 1, atol: 1) != nil)
    #expect(OutputComparison.compare("x1 = 2.0e-3", "x1 = 2.000001e-3", rtol: 1e-5, atol: 0) == nil)
  }

  @Test func streamedTextIsComparedWhateverItsChunks() {
    func out(_ idx: Int, _ kind: OutputKind, _ text: String) -> OutputRecord { OutputRecord(idx: idx, kind: kind, mime: "text/plain", text: text) }
    let was = [out(0, .stdout, "Once upon"), out(1, .stdout, " a time\n"), out(2, .result, "42")]
    let now = [out(0, .stdout, "Once"), out(1, .stdout, " upon a"), out(2, .stdout, " time\n"), out(3, .result, "42")]
    #expect(OutputComparison.differences(expected: was, actual: now, rtol: 1e-5, atol: 1e-6).isEmpty)
    let changed = [out(0, .stdout, "Once upon a dime\n"), out(1, .result, "42")]
    #expect(!OutputComparison.differences(expected: was, actual: changed, rtol: 1e-5, atol: 1e-6).isEmpty)
  }

  @Test func savedValuesComeBackInALaterSession() throws {
    let nb = dir.appendingPathComponent("saved.lnb").path
    let first = try TestPaths.runLathe(["repl", nb], input: "save(\"cfg\", {bits: 4, xs: [1.5, none]})\n")
    #expect(first.status == 0, "\(first.err)")
    let second = try TestPaths.runLathe(["repl", nb], input: "load(\"cfg\")\nload(\"nope\")\n")
    #expect(second.out.contains("{bits: 4, xs: [1.5, none]}"))
    #expect(second.err.contains("nothing saved under \"nope\""))
  }

  @Test func aSavedModelStateLoadsIntoANewModelInALaterSession() throws {
    let nb = dir.appendingPathComponent("model.lnb").path
    #expect(try TestPaths.runLathe(["repl", nb], input: "save(\"m\", mlp([4, 3], seed: 2))\n").status == 0)
    let later = try TestPaths.runLathe(["repl", nb], input: "let m2 = mlp([4, 3], seed: 9)\nloadstate(m2, load(\"m\"))\n"
      + "tolist(state(m2)[\"1.weight\"]) == tolist(state(mlp([4, 3], seed: 2))[\"1.weight\"])\n")
    #expect(later.out.contains("true"), "\(later.out) \(later.err)")
    // The saved architecture comes back too: load gives a model that computes what the saved one did.
    let cnn = "sequential([conv(1, 2, kernel: 3, padding: 1, seed: 4), act(), maxpool(2), flatten(), linear(8, 3, seed: 5)])"
    #expect(try TestPaths.runLathe(["repl", nb], input: "save(\"cnn\", \(cnn))\n").status == 0)
    let back = try TestPaths.runLathe(["repl", nb], input: "let c = load(\"cnn\")\nprint(c)\n"
      + "tolist(c.forward(ones([1, 1, 4, 4]))) == tolist(\(cnn).forward(ones([1, 1, 4, 4])))\n")
    #expect(back.out.contains("Conv2d(1 → 2, 3×3, padding 1)") && back.out.contains("true"), "\(back.out) \(back.err)")
  }

  @Test func aScriptErrorStopsTheRunWithItsLine() throws {
    let script = dir.appendingPathComponent("bad.lathe")
    try "# %%\nlet a = 1\n\n# %%\nprint(a)\nprint(b)\n\n# %%\nprint(\"never\")\n".write(to: script, atomically: true, encoding: .utf8)
    let r = try TestPaths.runLathe(["run", script.path])
    #expect(r.status == 1)
    #expect(r.err.contains("bad.lathe, 6:7: error: unknown name 'b'"), "\(r.err)")
    #expect(!r.out.contains("never"))
  }

  @Test func importedFilesAreRecordedAsInputsWithTheirHash() throws {
    let lib = dir.appendingPathComponent("lib.lathe")
    try "fn triple(x) { return 3 * x }\n".write(to: lib, atomically: true, encoding: .utf8)
    let script = dir.appendingPathComponent("uses.lathe")
    try "# %%\nimport \"lib.lathe\"\nprint(triple(14))\n".write(to: script, atomically: true, encoding: .utf8)
    let nbPath = dir.appendingPathComponent("uses.lnb").path
    let r = try TestPaths.runLathe(["run", script.path, "--notebook", nbPath])
    #expect(r.status == 0 && r.out.contains("42"), "\(r.err)")
    let nb = try Notebook.open(path: nbPath, readOnly: true)
    defer { nb.close() }
    let run = try #require(try nb.runs(session: 1).first)
    let inputs = try nb.inputs(run: run.id)
    #expect(inputs.count == 1)
    #expect(inputs.first?.role == "import" && inputs.first?.uri.hasSuffix("lib.lathe") == true)
    #expect(inputs.first?.sha256 == SHA256.hex("fn triple(x) { return 3 * x }\n"))
  }

  @Test func corruptAndForeignFilesAreRefused() throws {
    let junk = dir.appendingPathComponent("junk.lnb")
    try Data((0..<5000).map { UInt8(truncatingIfNeeded: $0 &* 31) }).write(to: junk)
    let r = try TestPaths.runLathe(["show", junk.path])
    #expect(r.status == 2)
    #expect(r.err.contains("lathe:"), "\(r.err)")
    let r2 = try TestPaths.runLathe(["repl", junk.path], input: "1\n")
    #expect(r2.status == 2)
  }
}
