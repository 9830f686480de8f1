// Inputs that used to kill the process: each must leave it alive with exit status 0 (the REPL) or a located error.

import Foundation
import Testing
import LatheTestSupport
import LatheNotebook
import LatheModels

/// A list nested 300,000 deep is built, compared, printed (cut at 32 levels) and freed at exit without a stack
/// overflow: values are released on a thread with a large stack, and at exit level by level (5 million deep).
@Test(arguments: ["var x = []\nfor i in 0..<300000 { x = [x] }\nprint(1)\n",
                  "var x = {}\nfor i in 0..<300000 { x = {next: x} }\nprint(1)\n",
                  "var x = []\nfor i in 0..<300000 { x = [1, x] }\nlet y = x\nprint(x == y, len(repr(x)) > 0)\n",
                  // Past what any stack holds: freed level by level (Value.release).
                  "var x = []\nfor i in 0..<5000000 { x = [x] }\nprint(1)\n",
                  // 2^64 paths through 64 shared lists: each list is visited once.
                  "var x = [1]\nfor i in 0..<64 { x = [x, {a: x}] }\nprint(1)\n"])
func deeplyNestedValuesAreFreedWithoutOverflow(_ program: String) throws {
  let r = try TestPaths.runLathe(["--scratch"], input: program)
  #expect(r.status == 0, "\(r.err.suffix(1500))")
  #expect(r.out.hasPrefix("1") || r.out.hasPrefix("true"), "\(r.out)")
}

/// Runs lathe with `arguments` on `input` under a shell resource limit (`ulimit -f 64`, `ulimit -v 4194304`).
func runLatheUnder(limit: String, input: String, arguments: [String] = ["--scratch"], cwd: URL? = nil) throws
  -> (status: Int32, out: String, err: String) {
  let p = Process()
  p.executableURL = URL(fileURLWithPath: "/bin/bash")
  p.arguments = ["-c", "\(limit); exec \"$@\"", "lathe", TestPaths.latheBinary.path] + arguments
  if let cwd { p.currentDirectoryURL = cwd }
  let out = Pipe(), err = Pipe(), inp = Pipe()
  p.standardOutput = out; p.standardError = err; p.standardInput = inp
  try p.run()
  inp.fileHandleForWriting.write(Data(input.utf8))
  try? inp.fileHandleForWriting.close()
  let o = out.fileHandleForReading.readDataToEndOfFile(), e = err.fileHandleForReading.readDataToEndOfFile()
  p.waitUntilExit()
  return (p.terminationStatus, String(decoding: o, as: UTF8.self), String(decoding: e, as: UTF8.self))
}

/// Runs lathe under a file-size limit of `kib` KiB (RLIMIT_FSIZE).
func runLatheUnderFileSizeLimit(kib: Int, input: String, arguments: [String] = ["--scratch"], cwd: URL? = nil) throws
  -> (status: Int32, out: String, err: String) {
  try runLatheUnder(limit: "ulimit -f \(kib)", input: input, arguments: arguments, cwd: cwd)
}

/// A write that fails part-way (here: past a 64 KiB file-size limit) is an error the session survives, and the file
/// that was at the path before is still there, byte for byte, with no temporary file left beside it.
@Test(arguments: [["zeros(1024, 1024)"], ["randn(300, 300, seed: 1)"], ["ones(128, 1024)", "eye(2)"]])
func aFailedSaveLeavesTheOldFileIntact(tensors: [String]) throws {
  let dir = try TestPaths.temporaryDirectory("atomic-save")
  defer { try? FileManager.default.removeItem(at: dir) }
  let path = dir.appendingPathComponent("w.safetensors").path
  let first = try TestPaths.runLathe(["--scratch"], input: "savetensors(\"\(path)\", {w: eye(3)})\n")
  #expect(first.status == 0, "\(first.err)")
  let old = try Data(contentsOf: URL(fileURLWithPath: path))
  let record = tensors.enumerated().map { "t\($0.offset): \($0.element)" }.joined(separator: ", ")
  let r = try runLatheUnderFileSizeLimit(kib: 64, input: "savetensors(\"\(path)\", {\(record)})\nprint(\"alive\")\n")
  #expect(r.status < 128 && r.out.contains("alive"), "status \(r.status): \(r.err.suffix(1000))")   // no signal
  #expect(r.err.contains("savetensors: cannot write"), "\(r.err)")
  #expect(try Data(contentsOf: URL(fileURLWithPath: path)) == old)
  #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path) == ["w.safetensors"])
}

/// tempfile(name) gives a path in a private folder (0700) of the process's own, which is gone when it exits.
@Test func tempfilesLiveInAPrivateFolderRemovedAtExit() throws {
  let r = try TestPaths.runLathe(["--scratch"], input: """
    let p = tempfile("w.safetensors")
    savetensors(p, {w: eye(2)})
    print(p)
    print(shape(loadtensors(p).w))
    tempfile("../escape")

    """)
  let lines = r.out.split(separator: "\n").map(String.init)
  #expect(lines.count == 2 && lines[1] == "[2, 2]", "\(r.out) \(r.err)")
  #expect(r.err.contains("tempfile: name must be a file name without '/'"), "\(r.err)")
  let folder = URL(fileURLWithPath: lines.first ?? "/").deletingLastPathComponent().path
  #expect(folder.contains("/lathe-") && !FileManager.default.fileExists(atPath: folder), "\(folder) is still there")
}

/// Under an address-space limit the memory budget shrinks to fit: allocations past it are clean errors, and the
/// system refusing one is an error too, not an abort.
@Test(arguments: ["zeros([30000, 30000])", "ones(20000, 20000) + ones(20000, 20000)", "randn(60000, 20000, seed: 0)",
                  "eye(40000)", "arange(0, 2000000000)", "full([3, 20000, 20000], 1.5)"])
func allocationsUnderAnAddressSpaceLimitAreErrors(_ cell: String) throws {
  let r = try runLatheUnder(limit: "ulimit -v 4194304", input: cell + "\nprint(\"alive\")\n")
  #expect(r.status < 128 && r.out.contains("alive"), "status \(r.status): \(r.err.suffix(800))")
  #expect(r.err.contains("memory budget"), "\(r.err)")
}

/// A notebook that cannot take a cell's output (its file may not grow past 256 KiB) is an error the user sees:
/// `lathe run` says so, stops and exits 1; what was committed before stays, and the file checks clean.
@Test(arguments: ["print(join(map(range(0, 20000), i => \"line of output \\(i)\"), \"\\n\"))",
                  "save(\"big\", zeros(300, 300))",
                  "for i in 0..<4000 { print(join(map(range(0, 100), j => \"x\"), \"\")) }"])
func aNotebookThatCannotRecordStopsTheRunVisibly(_ cell: String) throws {
  let dir = try TestPaths.temporaryDirectory("full-notebook")
  defer { try? FileManager.default.removeItem(at: dir) }
  try "# %%\nprint(\"small\")\n# %%\n\(cell)\n# %%\nprint(\"after\")\n"
    .write(to: dir.appendingPathComponent("s.lathe"), atomically: true, encoding: .utf8)
  let r = try runLatheUnderFileSizeLimit(kib: 256, input: "", arguments: ["run", "s.lathe", "--notebook", "nb.lnb"], cwd: dir)
  #expect(r.status == 1, "status \(r.status): \(r.err.suffix(600))")
  // The cell's outputs (notebook: could not record cell 2), or save's own write (the cell's error), fail visibly.
  #expect(r.err.contains("could not record cell 2") || (r.err.contains("s.lathe, 4:") && r.err.contains("disk I/O error")), "\(r.err)")
  #expect(!r.out.contains("after"), "the run went on after the notebook failed")
  let check = try TestPaths.runLathe(["check", "nb.lnb"], cwd: dir)
  #expect(check.status == 0, "\(check.out) \(check.err)")
  let show = try TestPaths.runLathe(["show", "nb.lnb"], cwd: dir)
  #expect(show.out.contains("small"), "\(show.out)")
}

/// SIGINT during `lathe run` and `lathe rerun` stops the cell, ends the command with status 1 (not a signal's 130),
/// and the notebook records the run as interrupted.
@Test(arguments: [false, true])
func runAndRerunStopCleanlyOnSIGINT(rerun: Bool) throws {
  let dir = try TestPaths.temporaryDirectory("sigint")
  defer { try? FileManager.default.removeItem(at: dir) }
  let script = dir.appendingPathComponent("s.lathe"), notebook = dir.appendingPathComponent("s.lnb")
  try "# %%\nlet n = 1\n# %%\nsleep(rerun_seconds)\n# %%\nprint(\"after\")\n"
    .replacingOccurrences(of: "rerun_seconds", with: rerun ? "1.5" : "20")
    .write(to: script, atomically: true, encoding: .utf8)
  if rerun {
    let first = try TestPaths.runLathe(["run", script.path, "--notebook", notebook.path])
    #expect(first.status == 0, "\(first.err)")
    try "# %%\nlet n = 1\n# %%\nsleep(20)\n# %%\nprint(\"after\")\n".write(to: script, atomically: true, encoding: .utf8)
  }
  let p = Process()
  p.executableURL = TestPaths.latheBinary
  p.arguments = rerun ? ["rerun", notebook.path] : ["run", script.path, "--notebook", notebook.path]
  let out = Pipe(), err = Pipe()
  p.standardOutput = out; p.standardError = err
  try p.run()
  Thread.sleep(forTimeInterval: rerun ? 0.8 : 1.0)
  kill(p.processIdentifier, SIGINT)
  let e = String(decoding: err.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
  let o = String(decoding: out.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
  p.waitUntilExit()
  #expect(p.terminationReason == .exit && p.terminationStatus == 1, "status \(p.terminationStatus): \(e)")
  #expect(e.contains("interrupted") && !o.contains("after"), "\(o) \(e)")
  let show = try TestPaths.runLathe(["show", notebook.path])
  #expect(show.out.contains("interrupted"), "\(show.out)")
}

/// A file a cell reads is hashed in pieces, never held whole: the recorded SHA-256 and size of an input (empty,
/// A file a cell reads is hashed in pieces, never held whole: the recorded SHA-256 and size of an input (a few
/// bytes, just over one 1 MiB piece, and 3 MiB) are those of the file.
@Test(arguments: [(1, 1), (512, 512), (1000, 800)])
func inputsAreHashedInPieces(rows: Int, cols: Int) throws {
  let dir = try TestPaths.temporaryDirectory("inputs")
  defer { try? FileManager.default.removeItem(at: dir) }
  let tensors = dir.appendingPathComponent("w.safetensors").path
  let script = dir.appendingPathComponent("s.lathe")
  try "# %%\nsavetensors(\"\(tensors)\", {w: randn(\(rows), \(cols), seed: 3)})\n# %%\nprint(shape(loadtensors(\"\(tensors)\").w))\n"
    .write(to: script, atomically: true, encoding: .utf8)
  let nbPath = dir.appendingPathComponent("s.lnb").path
  let r = try TestPaths.runLathe(["run", script.path, "--notebook", nbPath])
  #expect(r.status == 0 && r.out.contains("[\(rows), \(cols)]"), "\(r.err)")
  let nb = try Notebook.open(path: nbPath, readOnly: true)
  defer { nb.close() }
  let inputs = try nb.runs(session: 1).flatMap { try nb.inputs(run: $0.id) }
  let input = try #require(inputs.first { $0.role == "tensors" }, "\(inputs)")
  let bytes = [UInt8](try Data(contentsOf: URL(fileURLWithPath: tensors)))
  #expect(bytes.count > rows * cols * 4 && input.size == Int64(bytes.count) && input.sha256 == SHA256.hex(bytes))
}

/// GGUF metadata is held to the memory budget in total, not only array by array: many arrays just under the
/// per-array limit make a loading error, never an exhausted machine.
@Test(arguments: [20, 60, 200])
func ggufMetadataArraysCountAgainstTheBudgetTogether(arrays: Int) throws {
  let dir = try TestPaths.temporaryDirectory("gguf-metadata")
  defer { try? FileManager.default.removeItem(at: dir) }
  var w = GGUFWriter()
  w.set("general.architecture", .string("llama"))
  for i in 0..<arrays { w.set("junk.\(i)", .array([GGUFValue](repeating: .uint8(7), count: 100_000))) }
  let path = dir.appendingPathComponent("junk.gguf").path
  try w.write(to: path)
  let r = try TestPaths.runLathe(["--scratch"], input: "load(\"\(path)\")\nprint(\"alive\")\n",
                                 environment: ["LATHE_MEMORY_BUDGET": String(64 << 20)])
  #expect(r.out.contains("alive") && r.status < 128, "\(r.err.suffix(500))")
  #expect(r.err.contains("gguf metadata") && r.err.contains("memory budget"), "\(r.err.suffix(500))")
}

/// `lathe export` writes through a temporary file and a rename: an export that cannot be written whole (past a
/// 64 KiB file-size limit) is an error, and the older export at the path is still there, with nothing beside it.
@Test(arguments: ["html", "md", "ipynb"])
func aFailedExportLeavesTheOldFileIntact(format: String) throws {
  let dir = try TestPaths.temporaryDirectory("atomic-export")
  defer { try? FileManager.default.removeItem(at: dir) }
  try "# %%\nprint(join(map(range(0, 20000), i => \"line \\(i)\"), \"\\n\"))\n"
    .write(to: dir.appendingPathComponent("s.lathe"), atomically: true, encoding: .utf8)
  let run = try TestPaths.runLathe(["run", "s.lathe", "--notebook", "s.lnb"], cwd: dir)
  #expect(run.status == 0, "\(run.err)")
  let old = Data("an older export".utf8)
  try old.write(to: dir.appendingPathComponent("out"))
  let r = try runLatheUnderFileSizeLimit(kib: 64, input: "", arguments: ["export", "s.lnb", "--to", format, "-o", "out"], cwd: dir)
  #expect(r.status != 0 && r.status < 128, "status \(r.status): \(r.err)")
  #expect(try Data(contentsOf: dir.appendingPathComponent("out")) == old)
  #expect(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted() == ["out", "s.lathe", "s.lnb"])
}

/// The notebook on a small tmpfs that fills up (C.4 row 9's "tiny tmpfs"): `lathe run` shows the error and exits 1,
/// no later cell runs, the file checks clean, and once space is freed the next run into the same notebook succeeds
/// and both sessions are there. The tmpfs is mounted in a mount namespace of its own (`unshare -m`; `-rm` when not
/// root), so nothing outside the test sees it.
@Test(arguments: ["print(join(map(range(0, 20000), i => \"line of output \\(i)\"), \"\\n\"))",
                  "save(\"big\", randn(400, 400, seed: 1))",
                  "for i in 0..<6000 { print(join(map(range(0, 100), j => \"x\"), \"\")) }"])
func aNotebookOnAFullTmpfsFailsVisiblyAndRecovers(_ cell: String) throws {
  let dir = try TestPaths.temporaryDirectory("full-tmpfs")
  defer { try? FileManager.default.removeItem(at: dir) }
  let mountPoint = dir.appendingPathComponent("mnt"), logs = dir.appendingPathComponent("logs")
  try FileManager.default.createDirectory(at: mountPoint, withIntermediateDirectories: true)
  try FileManager.default.createDirectory(at: logs, withIntermediateDirectories: true)
  try "# %%\nprint(\"small\")\n# %%\n\(cell)\n# %%\nprint(\"after\")\n".write(to: dir.appendingPathComponent("s.lathe"), atomically: true, encoding: .utf8)
  try "# %%\nprint(\"again\")\n".write(to: dir.appendingPathComponent("t.lathe"), atomically: true, encoding: .utf8)
  let script = """
    mount -t tmpfs -o size=512k tmpfs "$M" || { echo mount=failed > "$O/status"; exit 0; }
    cd "$M" && dd if=/dev/zero of=filler bs=1k count=64 2>/dev/null
    "$L" run "$D/s.lathe" --notebook nb.lnb > "$O/run.out" 2> "$O/run.err"; echo "run=$?" > "$O/status"
    "$L" check nb.lnb > "$O/check.out" 2>&1; echo "check=$?" >> "$O/status"
    rm filler
    "$L" run "$D/t.lathe" --notebook nb.lnb > "$O/again.out" 2>&1; echo "again=$?" >> "$O/status"
    "$L" show nb.lnb --sessions > "$O/show.out" 2>&1
    """
  let p = Process()
  p.executableURL = URL(fileURLWithPath: "/usr/bin/unshare")
  p.arguments = (geteuid() == 0 ? ["-m"] : ["-rm"]) + ["/bin/sh", "-c", script]
  p.environment = ["M": mountPoint.path, "O": logs.path, "D": dir.path, "L": TestPaths.latheBinary.path, "PATH": "/usr/bin:/bin"]
  try p.run()
  p.waitUntilExit()
  func read(_ name: String) -> String { (try? String(contentsOf: logs.appendingPathComponent(name), encoding: .utf8)) ?? "" }
  let status = read("status")
  #expect(p.terminationStatus == 0 && !status.contains("mount=failed"), "the test tmpfs could not be mounted: \(status)")
  #expect(status.contains("run=1"), "\(status) \(read("run.err").suffix(600))")
  #expect(read("run.err").contains("could not record cell 2") || read("run.err").contains("disk is full")
          || read("run.err").contains("database or disk is full"), "\(read("run.err").suffix(800))")
  #expect(!read("run.out").contains("after"), "the run went on after the notebook failed")
  #expect(status.contains("check=0"), "\(status) \(read("check.out"))")
  #expect(status.contains("again=0"), "\(status) \(read("again.out"))")
  #expect(read("show.out").contains("session 2") || read("show.out").components(separatedBy: "\n").filter { $0.contains("run") }.count >= 2,
          "\(read("show.out"))")
}
