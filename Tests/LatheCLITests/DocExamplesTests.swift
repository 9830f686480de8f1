// Runs the code examples of README.md and docs/ whose expected output is given, and checks that docs/language.md names every
// builtin and writes its labels as the registry has them. The convention is in CONTRIBUTING.md ("Examples in the
// docs"):
//
// - a fenced block with lines starting `lathe> ` is a REPL transcript: each prompt line (and its `  ...> `
//   continuations) is fed to the REPL, and the lines after it, up to the next prompt, are what the REPL shows;
// - in any other fenced block, a trailing `# → text` (and `# → text` lines right below it) is what the code up to
//   that line shows: what it printed, then the display form of its value; `# → error: message` is an error;
// - `…` in expected text stands for anything (timings); a block whose fence says `unchecked: reason` is not run.
//
// Blocks that load the real model (`load("smollm2")`) or whose fence says `release` run in
// DocExamplesReleaseTests, which scripts/test runs in the release pass.

import Foundation
import Testing
@testable import LatheCLI
import LatheBuiltins
import LatheLang
import LatheNotebook
import LatheTestSupport

/// One fenced code block of a Markdown file.
struct DocBlock: CustomStringConvertible, Sendable {
  let file: String          // relative to the package root
  let line: Int             // the line of the opening fence, from 1
  let info: String          // the fence's info string: "", "lathe", "text unchecked: needs Open MPI", ...
  let body: [String]

  var description: String { "\(file):\(line)" }

  static let marker = "# → "

  var isTranscript: Bool { body.contains { $0.hasPrefix("lathe> ") } }

  /// A transcript states output when some prompt is followed by a line that is not a prompt.
  var hasExpectations: Bool {
    if isTranscript {
      var afterPrompt = false
      for l in body {
        if l.hasPrefix("lathe> ") || l.hasPrefix("  ...> ") { afterPrompt = true; continue }
        if afterPrompt { return true }
      }
      return false
    }
    return body.contains { $0.contains(DocBlock.marker) || $0.trimmingCharacters(in: .whitespaces) == "# →" }
  }

  /// The reason given after `unchecked` in the fence, or nil when the block is to be run.
  var uncheckedReason: String? {
    guard let r = info.range(of: "unchecked") else { return nil }
    return info[r.upperBound...].trimmingCharacters(in: CharacterSet(charactersIn: " :"))
  }

  var isModelSized: Bool {
    info.split(separator: " ").contains("release") || body.contains { $0.contains("load(\"smollm2\")") }
  }

  /// Every fenced block of the Markdown files that hold examples: README.md, docs/*.md and docs/techniques/*.md.
  static func all() -> [DocBlock] {
    let root = TestPaths.packageRoot
    var files: [String] = ["README.md"]
    for folder in ["docs", "docs/techniques"] {
      let names = (try? FileManager.default.contentsOfDirectory(atPath: root.appendingPathComponent(folder).path)) ?? []
      files += names.filter { $0.hasSuffix(".md") }.sorted().map { "\(folder)/\($0)" }
    }
    return files.flatMap { file -> [DocBlock] in
      guard let text = try? String(contentsOf: root.appendingPathComponent(file), encoding: .utf8) else { return [] }
      return blocks(in: text, file: file)
    }
  }

  static func blocks(in text: String, file: String) -> [DocBlock] {
    var blocks: [DocBlock] = []
    var open: (line: Int, indent: Int, fence: String, info: String, body: [String])?
    for (i, raw) in text.components(separatedBy: "\n").enumerated() {
      let trimmed = raw.drop { $0 == " " }
      let indent = raw.count - trimmed.count
      if var o = open {
        if trimmed.hasPrefix(o.fence) && trimmed.trimmingCharacters(in: .whitespaces) == o.fence {
          blocks.append(DocBlock(file: file, line: o.line, info: o.info, body: o.body))
          open = nil
        } else {
          o.body.append(raw.count >= o.indent && raw.prefix(o.indent).allSatisfy({ $0 == " " }) ? String(raw.dropFirst(o.indent)) : raw)
          open = o
        }
      } else if trimmed.hasPrefix("```") {
        let fence = String(trimmed.prefix { $0 == "`" })
        open = (i + 1, indent, fence, trimmed.dropFirst(fence.count).trimmingCharacters(in: .whitespaces), [])
      }
    }
    return blocks
  }

  /// Blocks with expected output, split by the suite that runs them.
  static var debugSized: [DocBlock] { all().filter { $0.hasExpectations && !$0.isModelSized } }
  static var modelSized: [DocBlock] { all().filter { $0.hasExpectations && $0.isModelSized } }
}

/// Whether `actual` is `expected`, where each `…` in `expected` stands for any text (newlines included).
/// Trailing spaces of each line do not count.
func docOutputMatches(_ expected: String, _ actual: String) -> Bool {
  func norm(_ s: String) -> String {
    s.components(separatedBy: "\n").map { l in String(l.reversed().drop { $0 == " " }.reversed()) }
      .joined(separator: "\n").trimmingCharacters(in: .newlines)
  }
  let want = norm(expected), got = norm(actual)
  let pieces = want.components(separatedBy: "…")
  if pieces.count == 1 { return want == got }
  guard got.hasPrefix(pieces[0]) else { return false }
  var rest = got.dropFirst(pieces[0].count)
  for piece in pieces.dropFirst().dropLast() where !piece.isEmpty {
    guard let r = rest.range(of: piece) else { return false }
    rest = rest[r.upperBound...]
  }
  return rest.hasSuffix(pieces.last ?? "")
}

/// Collects what a session shows: ordinary output, and error output apart.
final class CapturedDisplay: SessionDisplay {
  var text = ""
  var errorText = ""
  func write(_ s: String, error: Bool) {
    text += s
    if error { errorText += s }
  }
  func take() -> String { defer { text = ""; errorText = "" }; return text }
}

enum DocExampleRunner {
  /// A session as `lathe` opens one, seed 0; a block that saves values records into an in-memory notebook (so
  /// `save`, `saved` and `load` work), the others run as `lathe --scratch` does (a notebook would hash every file
  /// a cell reads, the model's 92 MB included).
  static func session(_ display: CapturedDisplay, for block: DocBlock) throws -> Session {
    let needsNotebook = block.body.contains { $0.contains("save(") || $0.contains("saved(") }
    let session = try Session(notebook: needsNotebook ? try Notebook.open(path: ":memory:") : nil, mode: .repl, seed: 0,
                              display: display, loadPrelude: false)
    try session.interpreter.loadPrelude(from: TestPaths.packageRoot.appendingPathComponent("stdlib").path)
    return session
  }

  /// What did not hold when running `block`, one line per problem.
  static func problems(_ block: DocBlock) throws -> [String] {
    if let reason = block.uncheckedReason {
      return reason.isEmpty ? ["\(block): 'unchecked' needs a reason after it"] : []
    }
    return block.isTranscript ? try transcriptProblems(block) : try annotatedProblems(block)
  }

  static func transcriptProblems(_ block: DocBlock) throws -> [String] {
    let display = CapturedDisplay()
    let session = try session(display, for: block)
    defer { session.close() }
    let repl = REPL(session: session, historyPath: "/dev/null")
    var problems: [String] = []
    // (first line of the input, input lines, expected output lines)
    var steps: [(Int, [String], [String])] = []
    for (i, l) in block.body.enumerated() {
      if l.hasPrefix("lathe> ") { steps.append((block.line + 1 + i, [String(l.dropFirst(7))], [])) }
      else if l.hasPrefix("  ...> "), !steps.isEmpty, steps[steps.count - 1].2.isEmpty { steps[steps.count - 1].1.append(String(l.dropFirst(7))) }
      else if !steps.isEmpty { steps[steps.count - 1].2.append(l) }
      else if !l.trimmingCharacters(in: .whitespaces).isEmpty { problems.append("\(block.file):\(block.line + 1 + i): text before the first prompt") }
    }
    for (line, input, expected) in steps {
      for l in input { repl.handle(l) }
      let got = display.take()
      let want = expected.joined(separator: "\n")
      if !docOutputMatches(want, got) {
        problems.append("\(block.file):\(line): `\(input.joined(separator: "\n"))`\n  expected: \(want.debugDescription)\n  got:      \(got.debugDescription)")
      }
    }
    return problems
  }

  static func annotatedProblems(_ block: DocBlock) throws -> [String] {
    let display = CapturedDisplay()
    let session = try session(display, for: block)
    defer { session.close() }
    var problems: [String] = []
    var chunk: [String] = [], chunkLine = block.line + 1
    var cell: (source: [String], line: Int, expected: [String])?

    func run(_ source: [String], line: Int) -> (shown: String, diagnostic: Diagnostic?) {
      let outcome = session.execute(source.joined(separator: "\n"), name: "\(block.file)", firstLine: line)
      let errors = display.errorText
      var shown = display.take()
      if let d = outcome.diagnostic {
        shown = shown.replacingOccurrences(of: errors, with: "") + "error: " + d.message
      }
      return (shown, outcome.diagnostic)
    }
    func flush() {
      guard let c = cell else { return }
      cell = nil
      let (shown, _) = run(c.source, line: c.line)
      let want = c.expected.joined(separator: "\n")
      if !docOutputMatches(want, shown) {
        let last = c.source.last.map { $0.trimmingCharacters(in: .whitespaces) } ?? ""
        problems.append("\(block.file):\(c.line + c.source.count - 1): `\(last)`\n  expected: \(want.debugDescription)\n  got:      \(shown.debugDescription)")
      }
    }
    for (i, l) in block.body.enumerated() {
      let lineNumber = block.line + 1 + i
      let trimmed = l.trimmingCharacters(in: .whitespaces)
      if trimmed == "# →" || trimmed.hasPrefix(DocBlock.marker) {
        let text = trimmed == "# →" ? "" : String(trimmed.dropFirst(DocBlock.marker.count))
        if cell != nil { cell!.expected.append(text); continue }
        guard !chunk.isEmpty else { problems.append("\(block.file):\(lineNumber): `# →` with no code before it"); continue }
        cell = (chunk, chunkLine, [text])
        chunk = []; chunkLine = lineNumber + 1
        continue
      }
      flush()
      if let r = l.range(of: " " + DocBlock.marker) {
        let code = String(l[..<r.lowerBound])
        cell = (chunk + [code], chunkLine, [String(l[r.upperBound...])])
        chunk = []; chunkLine = lineNumber + 1
      } else {
        if chunk.isEmpty { chunkLine = lineNumber }
        chunk.append(l)
      }
    }
    flush()
    // Code after the last expectation still has to run without an error.
    if chunk.contains(where: { !$0.trimmingCharacters(in: .whitespaces).isEmpty && !$0.trimmingCharacters(in: .whitespaces).hasPrefix("#") }) {
      let (_, d) = run(chunk, line: chunkLine)
      if let d { problems.append("\(block.file):\(chunkLine): unexpected error: \(d.message)") }
    }
    return problems
  }
}

@Suite struct DocExamplesTests {
  @Test(arguments: DocBlock.debugSized)
  func docExampleShowsWhatItSays(_ block: DocBlock) throws {
    let problems = try DocExampleRunner.problems(block)
    #expect(problems.isEmpty, Comment(rawValue: problems.joined(separator: "\n")))
  }

  /// The convention is in use: examples with expected output exist, and none is excluded without a reason.
  @Test func examplesAreFoundAndExclusionsGiveReasons() {
    let blocks = DocBlock.all()
    #expect(blocks.filter(\.hasExpectations).count > 40)
    for b in blocks where b.uncheckedReason != nil {
      #expect(!(b.uncheckedReason ?? "").isEmpty, "\(b): 'unchecked' needs a reason")
    }
  }

  /// `docOutputMatches`: `…` stands for any text, trailing spaces do not count.
  @Test func ellipsisIsAWildcard() {
    #expect(docOutputMatches("time: … ms", "time: 0.127 ms"))
    #expect(docOutputMatches("a…c…e", "abcde"))
    #expect(!docOutputMatches("a…c", "abd"))
    #expect(docOutputMatches("x  \ny", "x\ny\n"))
    #expect(!docOutputMatches("12", "13"))
  }

  /// language.md names every builtin of the registry in backticks.
  @Test func languageReferenceNamesEveryBuiltin() throws {
    let text = try String(contentsOf: TestPaths.packageRoot.appendingPathComponent("docs/language.md"), encoding: .utf8)
    let missing = Builtins.standard().functions.map(\.name).filter { name in
      !text.contains("`\(name)(") && !text.contains("`\(name)`")
    }
    #expect(missing.isEmpty, "docs/language.md does not mention: \(missing.joined(separator: ", "))")
  }

  /// Every call of a builtin written in the docs (prose, tables and blocks that are not run), `name(a, label: v)`,
  /// uses labels the builtin has.
  @Test func docsUseTheBuiltinsLabels() throws {
    let registry = Builtins.standard()
    var bad: [String] = []
    let root = TestPaths.packageRoot
    // Blocks with expected output are checked by running them (and may misspell a label on purpose, to show
    // the error); everything else, prose and tables included, is checked here.
    let run = Dictionary(grouping: DocBlock.all().filter(\.hasExpectations), by: \.file)
    // docs/ARCHITECTURE.md writes Swift calls (`Trainer.train(model, images:, ...)`), not Lathe.
    for file in Set(DocBlock.all().map(\.file)).union(["docs/language.md"]).subtracting(["docs/ARCHITECTURE.md"]).sorted() {
      let text = try String(contentsOf: root.appendingPathComponent(file), encoding: .utf8)
      let skipped = Set((run[file] ?? []).flatMap { b in b.line...(b.line + b.body.count) })
      for (n, line) in text.components(separatedBy: "\n").enumerated() where !skipped.contains(n + 1) {
        for (name, labels) in labelledCalls(in: line) {
          guard let f = registry.lookup(name) else { continue }
          // `tensor(…, shape: [3], dtype: f32)` is how a tensor prints, not a call.
          if name == "tensor", Set(labels).isSubset(of: ["shape", "dtype"]) { continue }
          let params = Set(f.parameters.map(\.name))
          for label in labels where !params.contains(label) {
            bad.append("\(file):\(n + 1): \(name) has no parameter '\(label)' (\(f.signature))")
          }
        }
        // A table row that opens with a signature gives each default as the registry has it.
        guard line.hasPrefix("| `"), let (name, labels) = labelledCallsWithValues(in: line).first,
              line.hasPrefix("| `\(name)("), let f = registry.lookup(name) else { continue }
        // A bare word other than none, true or false is a placeholder (`length: n`, `stride: window`).
        func placeholder(_ v: String) -> Bool { v.allSatisfy(\.isLetter) && !["none", "true", "false"].contains(v) }
        for (label, value) in labels where !value.isEmpty && !placeholder(value) {
          guard let d = f.parameters.first(where: { $0.name == label })?.defaultValue else { continue }
          // Numbers compare by value (`1e-6` is `1e-06`, `0` is `0.0`).
          let sameNumber = Double(value) != nil && Double(value) == d.asDouble
          if value != d.repr && !sameNumber {
            bad.append("\(file):\(n + 1): \(name)'s \(label) defaults to \(d.repr), not \(value) (\(f.signature))")
          }
        }
      }
    }
    #expect(bad.isEmpty, Comment(rawValue: bad.joined(separator: "\n")))
  }

  /// Each `name(` in a line with the labels written at the top level of its argument list.
  func labelledCalls(in line: String) -> [(String, [String])] {
    labelledCallsWithValues(in: line).map { ($0.0, $0.1.map(\.label)) }
  }

  /// Each `name(` in a line with its top-level labels and the text written after each label.
  func labelledCallsWithValues(in line: String) -> [(String, [(label: String, value: String)])] {
    let chars = Array(line)
    var calls: [(String, [(label: String, value: String)])] = []
    var i = 0
    while i < chars.count {
      guard chars[i] == "(", i > 0, chars[i - 1].isLetter || chars[i - 1].isNumber || chars[i - 1] == "_" else { i += 1; continue }
      var s = i - 1
      while s > 0, chars[s - 1].isLetter || chars[s - 1].isNumber || chars[s - 1] == "_" { s -= 1 }
      let name = String(chars[s..<i])
      // `fn name(` declares a function of the example's own.
      let before = String(chars[..<s]).trimmingCharacters(in: .whitespaces)
      if before.hasSuffix("fn") { i += 1; continue }
      // `xs.sort(key:)` and the other list methods change a list in place: not the builtins of that name.
      if s > 0, chars[s - 1] == ".", ["append", "extend", "insert", "pop", "clear", "sort", "reverse"].contains(name) { i += 1; continue }
      // `Trainer.train(...)` is Swift API (docs/ARCHITECTURE.md), not a builtin.
      if s > 1, chars[s - 1] == "." {
        var r = s - 1
        while r > 0, chars[r - 1].isLetter || chars[r - 1].isNumber || chars[r - 1] == "_" { r -= 1 }
        if r < s - 1, chars[r].isUppercase { i += 1; continue }
      }
      var depth = 0, j = i + 1, labels: [(label: String, value: String)] = [], inString = false, tokenStart = true
      var valueStart: Int?
      func closeValue(_ end: Int) {
        if let v = valueStart, !labels.isEmpty { labels[labels.count - 1].value = String(chars[v..<end]).trimmingCharacters(in: .whitespaces) }
        valueStart = nil
      }
      while j < chars.count {
        let c = chars[j]
        if inString { if c == "\\" { j += 2; continue }; if c == "\"" { inString = false }; j += 1; continue }
        if c == "\"" { inString = true }
        else if "([{".contains(c) { depth += 1 }
        else if ")]}".contains(c) { if depth == 0 { closeValue(j); break }; depth -= 1 }
        else if c == "," && depth == 0 { closeValue(j); tokenStart = true; j += 1; continue }
        else if depth == 0, tokenStart, c.isLetter {
          var k = j
          while k < chars.count, chars[k].isLetter || chars[k].isNumber || chars[k] == "_" { k += 1 }
          if k < chars.count, chars[k] == ":", k + 1 >= chars.count || chars[k + 1] != ":" {
            labels.append((String(chars[j..<k]), "")); valueStart = k + 1
          }
          tokenStart = false; j = k; continue
        }
        if c != " " { tokenStart = false }
        j += 1
      }
      calls.append((name, labels))
      i += 1
    }
    return calls
  }
}

/// The examples that load SmolLM2: model-sized, so scripts/test runs them in the release pass.
@Suite(.serialized) struct DocExamplesReleaseTests {
  static let modelPath = TestPaths.packageRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path

  @Test(.enabled(if: FileManager.default.fileExists(atPath: modelPath), "needs models/SmolLM2-135M-Instruct.Q4_1.gguf (scripts/setup)"),
        arguments: DocBlock.modelSized)
  func modelDocExampleShowsWhatItSays(_ block: DocBlock) throws {
    let problems = try DocExampleRunner.problems(block)
    #expect(problems.isEmpty, Comment(rawValue: problems.joined(separator: "\n")))
  }
}
