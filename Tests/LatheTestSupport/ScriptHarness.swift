// Runs a .lathe script with `# expect:` and `# expect error:` lines and lists what did not hold.
//
// A script runs as a sequence of cells in one interpreter: each line carrying `# expect error:` is a cell of its
// own (so one file holds many error cases and shows the session survives each), and the lines between are cells.
// Printed lines must equal the `# expect:` texts in order; an error cell must fail at its own line with a message
// containing the expected text.

import Foundation
import LatheLang

public enum ScriptHarness {
  /// The `.lathe` files of a folder under the package root, sorted.
  public static func scripts(in folder: String) -> [URL] {
    let dir = TestPaths.packageRoot.appendingPathComponent(folder)
    let files = (try? FileManager.default.contentsOfDirectory(at: dir, includingPropertiesForKeys: nil)) ?? []
    return files.filter { $0.pathExtension == "lathe" }.sorted { $0.path < $1.path }
  }

  /// Problems found running `script` in `interp` (empty when every expectation holds).
  public static func problems(running script: URL, in interp: Interpreter) throws -> [String] {
    let name = script.lastPathComponent
    let text = try String(contentsOf: script, encoding: .utf8)
    let lines = text.components(separatedBy: "\n")
    final class Printed: @unchecked Sendable { var text = "" }
    let printed = Printed()
    interp.output = { kind, s in if kind == .stdout { printed.text += s } }
    var expected: [String] = []
    var problems: [String] = []

    func runCell(_ start: Int, _ end: Int) {
      guard start < end else { return }
      let source = lines[start..<end].joined(separator: "\n")
      do { _ = try interp.run(source, name: name, firstLine: start + 1) }
      catch { problems.append("line \(start + 1)-\(end): unexpected error: \(error)") }
    }

    var cellStart = 0
    for (i, line) in lines.enumerated() {
      if let r = line.range(of: "# expect: ") { expected.append(String(line[r.upperBound...])) }
      guard let r = line.range(of: "# expect error: ") else { continue }
      runCell(cellStart, i)
      let want = String(line[r.upperBound...])
      do {
        _ = try interp.run(line, name: name, firstLine: i + 1)
        problems.append("line \(i + 1): expected error containing \"\(want)\", but it ran")
      } catch let d as Diagnostic {
        if !d.message.contains(want) { problems.append("line \(i + 1): expected error containing \"\(want)\", got \"\(d.message)\"") }
        if d.location.line != i + 1 { problems.append("line \(i + 1): error located at \(d.location), not on this line: \(d.message)") }
        if d.location.column < 1 { problems.append("line \(i + 1): error has no column: \(d.message)") }
      } catch {
        problems.append("line \(i + 1): not a located diagnostic: \(error)")
      }
      cellStart = i + 1
    }
    runCell(cellStart, lines.count)
    let got = printed.text.split(separator: "\n", omittingEmptySubsequences: false).map(String.init)
      .dropLast(printed.text.hasSuffix("\n") ? 1 : 0)
    if Array(got) != expected {
      for (k, pair) in zip(got, expected).enumerated() where pair.0 != pair.1 {
        problems.append("output line \(k + 1): expected \"\(pair.1)\", got \"\(pair.0)\"")
        break
      }
      if got.count != expected.count { problems.append("printed \(got.count) lines, expected \(expected.count)") }
    }
    return problems
  }
}
