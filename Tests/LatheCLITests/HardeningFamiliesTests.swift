// More inputs for each family of the hardening cases: deep values compared, ordered, encoded and released in the
// middle of a session; SIGINT from the first instruction of `lathe run`; damaged cell positions in a notebook that
// `lathe rerun` reads; savegguf through a temporary file; model loading and logits(all:) under the memory budget.
// Each ends in a located error or an answer, with an exit status below 128.

import Foundation
import Testing
import LatheTestSupport
import LatheNotebook

/// Ordering and equality walk nested lists with an explicit stack; a deep value dropped mid-session (reassigned)
/// is released without recursion; `save` refuses a value nested past 200 levels with an error.
@Test(arguments: [
  ("var x = []\nvar y = []\nfor i in 0..<300000 { x = [x]\n y = [y] }\nprint(x == y, x < y, x <= y, x != y)\n", "true false true false"),
  ("var x = [1]\nvar y = [2]\nfor i in 0..<2000000 { x = [x]\n y = [y] }\nprint(x < y, x > y, x == y)\n", "true false false"),
  ("var x = []\nfor i in 0..<2000000 { x = [x] }\nx = 0\nprint(\"dropped\", x)\n", "dropped 0"),
  ("var x = {}\nfor i in 0..<2000000 { x = {next: x} }\nx = [1]\nlet y = x\nprint(\"dropped\", y)\n", "dropped [1]"),
  ("var x = []\nfor i in 0..<1000000 { x = [x] }\nvar y = []\nfor i in 0..<1000000 { y = [y] }\ny = [y, 1]\nprint(x == y, x < y)\n", "false true"),
  // Past what the 512 MiB interpreter stack holds (about 2.5 million levels): every way a variable, an element,
  // a field, a frame or a cell's result lets go of a value frees it level by level (Value.release).
  ("var x = []\nfor i in 0..<5000000 { x = [x] }\nx = 0\nprint(\"dropped\", x)\n", "dropped 0"),
  ("var x = [[]]\nfor i in 0..<5000000 { x[0] = [x[0]] }\nx[0] = 0\nprint(\"element\", x)\n", "element [0]"),
  ("var r = {a: []}\nfor i in 0..<5000000 { r.a = [r.a] }\nr.a = 0\nprint(\"field\", r)\n", "field {a: 0}"),
  ("var x = []\nfor i in 0..<5000000 { x = [x] }\nvar l = [x, 1]\nx = 0\nl.clear()\nprint(\"clear\", l)\n", "clear []"),
  ("fn h() { var x = []\nfor i in 0..<5000000 { x = [x] }\nreturn 1 }\nprint(\"frame\", h())\n", "frame 1"),
  ("fn g() { var x = {}\nfor i in 0..<5000000 { x = {next: x} }\nreturn x }\ng()\nprint(\"result\")\n", "result"),
  // Only what is freed is walked: stepping down a 2-million-link list drops one shared link per step (linear).
  ("var x = []\nfor i in 0..<2000000 { x = [x, i] }\nvar p = x\nvar n = 0\nwhile len(p) > 0 { p = p[0]\n n += 1 }\nx = 0\np = 0\nprint(\"walked\", n)\n", "walked 2000000"),
])
func deepValuesCompareOrderAndReleaseMidSession(program: String, expected: String) throws {
  let r = try TestPaths.runLathe(["--scratch"], input: program)
  #expect(r.status == 0, "status \(r.status): \(r.err.suffix(1500))")
  #expect(r.out.contains(expected), "\(r.out.suffix(400))")
}

/// Encoding (save) refuses deep values with an error the run reports; the run exits 1, not by a signal.
@Test(arguments: [250, 10_000, 1_000_000])
func deepValuesAreRefusedBySave(depth: Int) throws {
  let dir = try TestPaths.temporaryDirectory("deep-save")
  defer { try? FileManager.default.removeItem(at: dir) }
  try "# %%\nvar x = []\nfor i in 0..<\(depth) { x = [x] }\n# %%\nsave(\"x\", x)\n# %%\nprint(\"after\")\n"
    .write(to: dir.appendingPathComponent("s.lathe"), atomically: true, encoding: .utf8)
  let r = try TestPaths.runLathe(["run", "s.lathe", "--notebook", "s.lnb"], cwd: dir)
  #expect(r.status == 1, "status \(r.status): \(r.err.suffix(800))")
  #expect(r.err.contains("nested too deeply"), "\(r.err.suffix(800))")
}

/// SIGINT that arrives while `lathe run` is still starting (opening the notebook, starting the session, or early in
/// its first cell) ends it with an exit status, never by the signal: the handler is installed by the command's first
/// instruction. (A signal before the process reaches `main` takes the default action: no program can catch it.)
@Test(arguments: [0.1, 0.2, 0.35])
func sigintAtStartEndsRunWithAStatus(delay: Double) throws {
  let dir = try TestPaths.temporaryDirectory("sigint-start")
  defer { try? FileManager.default.removeItem(at: dir) }
  try "# %%\nvar n = 0\nwhile n < 100000000 { n = n + 1 }\n# %%\nprint(\"after\")\n"
    .write(to: dir.appendingPathComponent("s.lathe"), atomically: true, encoding: .utf8)
  let p = Process()
  p.executableURL = TestPaths.latheBinary
  p.arguments = ["run", "s.lathe", "--notebook", "s.lnb"]
  p.currentDirectoryURL = dir
  p.standardOutput = FileHandle.nullDevice
  p.standardError = FileHandle.nullDevice
  try p.run()
  if delay > 0 { Thread.sleep(forTimeInterval: delay) }
  kill(p.processIdentifier, SIGINT)
  p.waitUntilExit()
  #expect(p.terminationReason == .exit, "lathe run ended by signal \(p.terminationStatus)")
  #expect(p.terminationStatus != 0 && p.terminationStatus < 128, "status \(p.terminationStatus)")
}

/// Cell positions read back from a damaged notebook (NaN is stored as NULL by SQLite, so: infinities and values
/// past Int's range) place errors at line 1 and do not trap `lathe rerun` or `lathe show`.
@Test(arguments: ["9e999", "-9e999", "1e300", "-9.3e18"])
func damagedCellPositionsDoNotTrapRerun(position: String) throws {
  let dir = try TestPaths.temporaryDirectory("positions")
  defer { try? FileManager.default.removeItem(at: dir) }
  try "# %%\nprint(1)\n# %%\nprint(2 + \"x\")\n".write(to: dir.appendingPathComponent("s.lathe"), atomically: true, encoding: .utf8)
  let first = try TestPaths.runLathe(["run", "s.lathe", "--notebook", "s.lnb"], cwd: dir)
  #expect(first.status == 1, "\(first.err)")
  let db = try Database(path: dir.appendingPathComponent("s.lnb").path)
  try db.execute("UPDATE cell SET position = \(position)")
  db.close()
  let rerun = try TestPaths.runLathe(["rerun", "s.lnb"], cwd: dir)
  #expect(rerun.status < 128, "rerun ended by a signal: \(rerun.status) \(rerun.err.suffix(600))")
  #expect(rerun.err.contains("line 1") || rerun.err.contains("1:") || rerun.status <= 1, "\(rerun.err.suffix(600))")
  let show = try TestPaths.runLathe(["show", "s.lnb"], cwd: dir)
  #expect(show.status == 0, "\(show.err.suffix(600))")
}

/// Loading a model, and `logits(all:)` over a long text, under a small memory budget (LATHE_MEMORY_BUDGET) are
/// errors naming the budget before the memory is taken; the session goes on.
@Test(.enabled(if: FileManager.default.fileExists(atPath: ModelVariantsReleaseTests.model), "models/ has no SmolLM2 file: run scripts/setup"),
      arguments: [("4000000", "load(\"M\")"), ("60000000", "load(\"M\")"),
                  ("400000000", "let m = load(\"M\")\nlogits(m, join(map(range(0, 600), i => \"word \\(i)\"), \" \"), all: true)")])
func modelsAndLogitsStayInsideTheMemoryBudget(budget: String, cell: String) throws {
  let program = cell.replacingOccurrences(of: "\"M\"", with: "\"\(ModelVariantsReleaseTests.model)\"") + "\nprint(\"alive\")\n"
  let r = try TestPaths.runLathe(["--scratch"], input: program, environment: ["LATHE_MEMORY_BUDGET": budget])
  // Piped input that met an error exits 1, after running every line.
  #expect(r.status == 1 && r.out.contains("alive"), "status \(r.status): \(r.err.suffix(800))")
  #expect(r.err.contains("memory budget"), "\(r.err.suffix(800))")
}

/// savegguf writes through a temporary file and a rename: past a 64 KiB file-size limit it fails with an error,
/// the older file stays byte for byte, and no temporary file is left.
@Test(.enabled(if: FileManager.default.fileExists(atPath: ModelVariantsReleaseTests.model), "models/ has no SmolLM2 file: run scripts/setup"),
      arguments: ["", ", type: \"q8_0\"", ", type: \"f16\""])
func aFailedSaveggufLeavesTheOldFileIntact(type: String) throws {
  let dir = try TestPaths.temporaryDirectory("atomic-gguf")
  defer { try? FileManager.default.removeItem(at: dir) }
  let path = dir.appendingPathComponent("m.gguf").path
  let old = Data("an older file".utf8)
  try old.write(to: URL(fileURLWithPath: path))
  let program = "let m = load(\"\(ModelVariantsReleaseTests.model)\")\nsavegguf(m, \"\(path)\"\(type))\nprint(\"alive\")\n"
  let r = try runLatheUnderFileSizeLimit(kib: 64, input: program)
  #expect(r.status < 128 && r.out.contains("alive"), "status \(r.status): \(r.err.suffix(800))")
  #expect(r.err.contains("savegguf"), "\(r.err.suffix(800))")
  #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == old)
  #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["m.gguf"])
}
