// Malformed and hostile input: each is a located error, never a crash, and the session stays usable.

import Foundation
import Testing
@testable import LatheLang
import LatheTestSupport

/// Twenty-plus distinct kinds of bad input, each with a part of the message it must produce.
let malformedInputs: [(source: String, message: String)] = [
  ("print(1 +", "expected an expression"),
  ("let = 3", "expected a name after 'let'"),
  ("let x 3", "expected '='"),
  ("fn f(a, a) { }", "parameter 'a' appears twice"),
  ("f(a: 1, 2)", "positional argument cannot follow"),
  ("[1, 2", "expected ']' to close '['"),
  ("{a: 1, a: 2}", "field 'a' appears twice"),
  ("1 2", "expected a new line or ';'"),
  (")", "no matching opening bracket"),
  ("\"abc", "unterminated string"),
  ("\"\\q\"", "unknown escape"),
  ("\"\\u{110000}\"", "malformed unicode escape"),
  ("99999999999999999999999", "integer literal is too large"),
  ("5abc", "malformed number"),
  ("x = = 1", "expected an expression"),
  ("3 = 4", "cannot assign to this expression"),
  ("if true print(1)", "expected '{' to start the 'if' body"),
  ("for in [1] { }", "expected a loop variable"),
  ("break", "'break' outside a loop"),
  ("return 1", "'return' outside a function"),
  ("`", "unexpected character"),
  ("x[]", "expected an index"),
  (String(repeating: "(", count: 100_000) + "1" + String(repeating: ")", count: 100_000), "nested too deeply"),
  (String(repeating: "[", count: 5_000), "nested too deeply"),
  (String(repeating: "-", count: 10_000) + "1", "nested too deeply"),
  ((0..<300).reduce("1") { inner, _ in "\"\\(" + inner + ")\"" }, "nested too deeply"),
  ("let s = \"" + String(repeating: "a", count: 1_000_000) + "\" + ", "expected an expression"),
  ("1" + String(repeating: "0", count: 10_000_000), "integer literal is too large"),
]

@Test func everyMalformedInputIsALocatedError() throws {
  let interp = Interpreter()
  var kinds = Set<String>()
  for (source, message) in malformedInputs {
    do {
      _ = try interp.run(source, name: "bad")
      Issue.record("ran without error: \(source.prefix(60))")
    } catch let d as Diagnostic {
      #expect(d.message.contains(message), "\(source.prefix(40)): got \(d.message)")
      #expect(d.location.line >= 1 && d.location.column >= 1, "\(source.prefix(40)): not located: \(d)")
      #expect(d.rendered.contains("bad, \(d.location.line):\(d.location.column): error:"))
      kinds.insert(message)
    }
  }
  #expect(kinds.count >= 20, "distinct malformed inputs: \(kinds.count)")
  // The session is still usable after all of them.
  #expect(try interp.run("1 + 1", name: "ok").map { Value.equal($0, .int(2)) } == true)
}

@Test func runtimeLimitsAreErrorsNotCrashes() throws {
  let interp = Interpreter()
  let cases: [(String, String)] = [
    ("fn f(n) { return f(n + 1) }; f(0)", "recursion is too deep"),
    ("[0] * 1000000000000", "too large"),
    ("\"ab\" * 100000000000", "too large"),
    ("9223372036854775807 * 2", "integer overflow"),
    ("-9223372036854775807 - 2", "integer overflow"),
    ("abs(-9223372036854775807 - 1)", "integer overflow"),
    ("int(1e300)", "does not fit"),
    ("list(0..<100000000000)", "too large"),
    ("import \"/dev/zero\"", "not a regular file"),
    ("import \"no/such/file.lathe\"", "cannot find"),
    ("range(0, 10, 0)", "step cannot be zero"),
    ("round(1.5, digits: 1000)", "digits must be between"),
    ("load(\"x\")", "no notebook is open"),
    ("save(\"f\", print)", "no notebook is open"),
  ]
  for (source, message) in cases {
    do {
      _ = try interp.run(source, name: "limit")
      Issue.record("ran without error: \(source)")
    } catch let d as Diagnostic {
      #expect(d.message.contains(message), "\(source): got \(d.message)")
    }
  }
  interp.stepBudget = 10_000
  #expect(throws: Diagnostic.self) { try interp.run("while true { }", name: "budget") }
}

@Test func interruptStopsALoopAndKeepsVariables() throws {
  // Its own flag: the process-wide one would also stop tests running beside this one.
  let flag = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
  flag.initialize(to: 0)
  defer { flag.deallocate() }
  let interp = Interpreter(interruptFlag: flag)
  _ = try interp.run("var i = 0\nlet keep = 42", name: "setup")
  nonisolated(unsafe) let shared = flag
  DispatchQueue.global().asyncAfter(deadline: .now() + 0.2) { shared.pointee = 1 }
  let start = Date()
  do {
    _ = try interp.run("while true { i += 1 }", name: "loop")
    Issue.record("the loop ended by itself")
  } catch let d as Diagnostic {
    #expect(d.kind == .interrupted)
  }
  #expect(Date().timeIntervalSince(start) < 2)
  #expect(try interp.run("keep", name: "after").map { Value.equal($0, .int(42)) } == true)
  if case .int(let i)? = try interp.run("i", name: "after") { #expect(i > 0) } else { Issue.record("i lost") }
}

@Test func progressBarRedrawsAtMostTenTimesASecond() throws {
  let interp = Interpreter()
  interp.progressEnabled = true
  var draws = 0
  interp.output = { kind, text in if kind == .progress && text.hasPrefix("\r") { draws += 1 } }
  let bar = Progress(interp, total: 1_000_000, label: "work")
  let start = Date()
  for _ in 0..<1_000_000 { try bar.advance() }
  bar.finish()
  let seconds = Date().timeIntervalSince(start)
  #expect(Double(draws) <= seconds * 10 + 3, "\(draws) draws in \(seconds)s")
  #expect(bar.line(now: DispatchTime.now().uptimeNanoseconds).contains("1000000/1000000"))
  interp.progressEnabled = false
  draws = 0
  let quiet = Progress(interp, total: 10, label: "q")
  for _ in 0..<10 { try quiet.advance() }
  #expect(draws == 0, "no bar when output is not a terminal")
}

@Test func unfinishedInputAsksForMoreLines() {
  for source in ["f(a: 1,", "fn f(x) {", "[1, 2,", "{bits: 4,", "\"abc", "1 +", "x = \\"] {
    #expect(Parser.needsMoreInput(source), "\(source) should continue")
  }
  for source in ["f(a: 1)", "1 + 2", ")", "let = 3"] { #expect(!Parser.needsMoreInput(source), "\(source) is complete or wrong") }
}
