// Every notebook script in notebooks/ parses, every function it calls exists (a builtin, the prelude, or defined in
// the script), and the fast ones run to the end through `lathe run`. The slow ones (SeedLM on the whole model,
// Fashion-MNIST, KV-Runahead at 4k tokens) are run by hand; their figures are in the docs.

import Foundation
import Testing
import LatheBuiltins
import LatheLang
import LatheTestSupport

struct NotebookScript: CustomStringConvertible, Sendable {
  let url: URL
  var description: String { url.lastPathComponent }
  static var all: [NotebookScript] {
    let dir = TestPaths.packageRoot.appendingPathComponent("notebooks")
    let names = (try? FileManager.default.contentsOfDirectory(atPath: dir.path)) ?? []
    return names.filter { $0.hasSuffix(".lathe") }.sorted().map { NotebookScript(url: dir.appendingPathComponent($0)) }
  }
  /// Notebooks quick enough for every test run (a debug build).
  static let fast: Set<String> = ["quickstart.lathe", "digits.lathe"]   // and quantize-by-hand.lathe, checked below
}

@Test func everyNotebookIsThere() {
  #expect(NotebookScript.all.count >= 6)
}

@Test(arguments: NotebookScript.all)
func notebookParsesAndCallsOnlyKnownFunctions(_ script: NotebookScript) throws {
  let text = try String(contentsOf: script.url, encoding: .utf8)
  _ = try Parser.parse(text)
  let interp = Interpreter(registry: Builtins.standard(), seed: 0)
  try interp.loadPrelude(from: TestPaths.packageRoot.appendingPathComponent("stdlib").path)
  defer { interp.shutdown() }
  // Names called as name(...), not as members (x.name(...)), minus what the script itself defines.
  var code = ""
  for line in text.split(separator: "\n", omittingEmptySubsequences: false) where !line.trimmingCharacters(in: .whitespaces).hasPrefix("#") {
    var inString = false, kept = ""
    for ch in line { if ch == "\"" { inString.toggle() } else if ch == "#" && !inString { break }; kept.append(inString ? " " : ch) }
    code += kept + "\n"
  }
  let defined = Set(matches(#"(?:fn|let|var)\s+([A-Za-z_][A-Za-z0-9_]*)"#, in: code))
  let called = Set(matches(#"(?<![.\w])([A-Za-z_][A-Za-z0-9_]*)\s*\("#, in: code))
  let keywords: Set<String> = ["if", "while", "for", "fn", "return", "in", "and", "or", "not"]
  for name in called.subtracting(defined).subtracting(keywords).sorted() {
    #expect(interp.global(name) != nil, "\(script): calls \(name)(...), which is not a builtin or a prelude function")
  }
}

@Test(arguments: NotebookScript.all.filter { NotebookScript.fast.contains($0.description) })
func fastNotebookRunsToTheEnd(_ script: NotebookScript) throws {
  let dir = try TestPaths.temporaryDirectory("notebook-run")
  defer { try? FileManager.default.removeItem(at: dir) }
  let r = try TestPaths.runLathe(["run", script.url.path, "--notebook", dir.appendingPathComponent("run.lnb").path],
                                 cwd: TestPaths.packageRoot)
  #expect(r.status == 0, "\(script): \(r.err.suffix(2000))")
}

/// The hand-written quantiser reproduces rtn(bits: 4, group: 64) bit for bit on SmolLM2's own ffn_down, pruning
/// removes half the weights, and the quantised layer's output error on real activations is the smaller of the two.
@Test func quantizeByHandAgreesWithRTN() throws {
  let dir = try TestPaths.temporaryDirectory("quantize-by-hand")
  defer { try? FileManager.default.removeItem(at: dir) }
  let script = TestPaths.packageRoot.appendingPathComponent("notebooks/quantize-by-hand.lathe")
  let r = try TestPaths.runLathe(["run", script.path, "--notebook", dir.appendingPathComponent("run.lnb").path], cwd: TestPaths.packageRoot)
  #expect(r.status == 0, "\(r.err.suffix(2000))")
  #expect(r.out.contains("agrees with rtn(bits: 4, group: 64): true true"), "\(r.out)")
  #expect(r.out.contains("pruned: 0.500 of the weights"), "\(r.out)")
  let errors = matches(#"rtn4: ([0-9.e-]+), pruned50: ([0-9.e-]+)"#, in: r.out, groups: 2).compactMap(Double.init)
  #expect(errors.count == 2 && errors[0] > 0 && errors[0] < errors[1] && errors[1] < 1, "\(r.out)")
}

private func matches(_ pattern: String, in text: String, groups: Int) -> [String] {
  guard let re = try? NSRegularExpression(pattern: pattern), let m = re.firstMatch(in: text, range: NSRange(text.startIndex..., in: text)) else { return [] }
  return (1...groups).compactMap { Range(m.range(at: $0), in: text).map { String(text[$0]) } }
}

private func matches(_ pattern: String, in text: String) -> [String] {
  guard let re = try? NSRegularExpression(pattern: pattern) else { return [] }
  return re.matches(in: text, range: NSRange(text.startIndex..., in: text)).compactMap { m in
    Range(m.range(at: 1), in: text).map { String(text[$0]) }
  }
}
