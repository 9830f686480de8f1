// End-to-end REPL tests: the real `lathe` binary on a pseudo-terminal (readline, Tab, ?name, Ctrl-C, history).

#if canImport(Glibc)
import Foundation
import Glibc
import LatheTestSupport
import Testing

/// How a test delivers Ctrl-C: typed into the terminal (the line discipline sends SIGINT to the foreground
/// group), or sent straight to the process with kill().
enum InterruptRoute: String, CustomStringConvertible, CaseIterable {
  case typedControlC, killSIGINT
  var description: String { rawValue }
}

// Serialized: the Ctrl-C latency is measured, and parallel sessions would compete for the same 2 cores.
@Suite(.serialized)
final class ReplPtyTests {
  let directory: URL
  let historyFile: URL

  init() throws {
    directory = try TestPaths.temporaryDirectory("lathe-pty")
    historyFile = directory.appendingPathComponent("history")
  }

  deinit { try? FileManager.default.removeItem(at: directory) }   // each test's sessions have ended by now

  /// A scratch REPL (nothing recorded), started and showing its first prompt.
  func start(_ arguments: [String] = ["--scratch"]) throws -> PtySession {
    let session = try PtySession(arguments: arguments, directory: directory,
                                 environment: ["LATHE_HISTORY": historyFile.path])
    try session.expect(PtySession.prompt, timeout: 60)  // a debug build loading its prelude on a busy machine
    return session
  }

  func interrupt(_ session: PtySession, by route: InterruptRoute) throws {
    switch route {
    case .typedControlC: try session.send("\u{03}")
    case .killSIGINT: #expect(kill(session.pid, SIGINT) == 0)
    }
  }

  /// The non-blank lines shown for one input, after the (rest of the) echoed input line.
  func resultLines(_ shown: String) -> [String] {
    shown.split(separator: "\n", omittingEmptySubsequences: false).dropFirst().map(String.init)
      .filter { !$0.trimmingCharacters(in: .whitespaces).isEmpty }
  }

  // MARK: - Output

  @Test func cellOutputStartsOnItsOwnLineWithNoPromptBeforeIt() throws {
    let s = try start()
    let shown = try s.enter("1 + 1")
    #expect(resultLines(shown) == ["2"], "shown: \(shown.debugDescription)")
    // readline redraws its prompt after the line callback unless the callback removes the handler first;
    // the stray prompt then sat in front of the output ("lathe> " overwritten by "2" read "2athe>").
    #expect(!shown.contains("lathe>"), "a prompt was drawn before the output: \(shown.debugDescription)")
  }

  // MARK: - Completion

  @Test func tabCompletesBuiltinsMembersAndCallLabels() throws {
    let s = try start()

    try s.send("pri\t")
    try s.expect("print")
    let printed = try s.enter("(\"ok\")")
    #expect(resultLines(printed) == ["ok"], "shown: \(printed.debugDescription)")

    try s.enter("let cfg = {bits: 4, block: 8}")
    try s.send("cfg.bi\t")
    try s.expect("cfg.bits", timeout: 5)
    let member = try s.enter("")
    #expect(resultLines(member) == ["4"], "shown: \(member.debugDescription)")

    // `re` also starts replace, repr, return and reversed: the call's label must still win.
    try s.send("sorted([3, 1], re\t")
    let completed = try s.expect("reverse:", timeout: 5)
    #expect(completed.hasSuffix("sorted([3, 1], reverse:"), "shown: \(completed.debugDescription)")
    let sorted = try s.enter("true)")
    #expect(resultLines(sorted) == ["[3, 1]"], "shown: \(sorted.debugDescription)")
  }

  @Test func tabReplacesOnlyTheWordAfterPunctuation() throws {
    let s = try start()
    try s.enter("let total = 3")
    // Readline's default word breaks do not include '+', '[', ',' or ':', so it used to replace all of
    // `1+tot` with `total`, and `sorted([3,1],re` with `sorted(reverse: `.
    try s.send("1+tot\t")
    try s.expect("tal", timeout: 5)
    let sum = try s.enter("")
    #expect(resultLines(sum) == ["4"], "shown: \(sum.debugDescription)")

    try s.send("sorted([3,1],re\t")
    try s.expect("reverse:", timeout: 5)
    let sorted = try s.enter("true)")
    #expect(resultLines(sorted) == ["[3, 1]"], "shown: \(sorted.debugDescription)")

    try s.send(":he\t")
    try s.expect("lp", timeout: 5)
    let help = try s.enter("")
    #expect(help.contains(":time EXPR"), "shown: \(help.debugDescription)")
  }

  // MARK: - ?name

  @Test func questionMarkShowsSignatureAndExample() throws {
    let s = try start()
    let shown = try s.enter("?map")
    let lines = resultLines(shown).map { $0.trimmingCharacters(in: .whitespaces) }
    #expect(lines.first == "fn map(xs, f)", "shown: \(shown.debugDescription)")
    #expect(lines.contains { $0.hasPrefix("example: map(") }, "shown: \(shown.debugDescription)")
  }

  // MARK: - Multi-line input

  @Test func multiLineFunctionShowsContinuationPromptAndRuns() throws {
    let s = try start()
    try s.send("fn twice(a, b: 2) {\r")
    try s.expect("\n" + PtySession.continuationPrompt)
    try s.send("let r = a * b\r")
    try s.expect("\n" + PtySession.continuationPrompt)
    try s.send("return r\r")
    try s.expect("\n" + PtySession.continuationPrompt)
    let closed = try s.enter("}")
    #expect(resultLines(closed).isEmpty, "shown: \(closed.debugDescription)")
    let called = try s.enter("twice(21)")
    #expect(resultLines(called) == ["42"], "shown: \(called.debugDescription)")
  }

  /// Types each line, expecting the continuation prompt after every one.
  func typeContinued(_ s: PtySession, _ lines: [String]) throws {
    for line in lines {
      try s.send(line + "\r")
      try s.expect("\n" + PtySession.continuationPrompt)
    }
  }

  @Test func elseOnItsOwnLineContinuesTheIfBlockAbove() throws {
    let s = try start()
    try s.enter("let x = -1")
    // After the if block's closing brace the REPL waits one more line, in case it starts with `else`.
    try typeContinued(s, ["if x > 0 {", "print(\"positive\")", "}", "else {", "print(\"negative\")"])
    let ran = try s.enter("}")
    #expect(resultLines(ran) == ["negative"], "shown: \(ran.debugDescription)")

    // Any other line runs the held if first, then itself; a blank line just runs it.
    try typeContinued(s, ["if x < 0 {", "print(\"held\")", "}"])
    let next = try s.enter("print(\"after\")")
    #expect(resultLines(next) == ["held", "after"], "shown: \(next.debugDescription)")
    try typeContinued(s, ["if x < 0 {", "print(\"blank\")", "}"])
    let blank = try s.enter("")
    #expect(resultLines(blank) == ["blank"], "shown: \(blank.debugDescription)")

    // An else with no if before it fails as one cell: its body does not run on its own.
    try typeContinued(s, ["else {", "print(\"orphan\")"])
    let orphan = try s.enter("}")
    #expect(orphan.contains("found 'else'") && !orphan.contains("\norphan"), "shown: \(orphan.debugDescription)")
    // A one-line if runs at once.
    let oneLine = try s.enter("if x < 0 { print(\"now\") }")
    #expect(resultLines(oneLine) == ["now"], "shown: \(oneLine.debugDescription)")
    // Ctrl-D after an if block runs it before leaving.
    try typeContinued(s, ["if x < 0 {", "print(\"at the end\")", "}"])
    try s.send("\u{04}")
    try s.expect("at the end")
  }

  // MARK: - Ctrl-C

  @Test(arguments: InterruptRoute.allCases)
  func interruptStopsRunningCellAndKeepsVariables(route: InterruptRoute) throws {
    let s = try start()
    try s.enter("var i = 0")
    try s.enter("let keep = 42")
    try s.send("while true { i += 1 }\r")
    try s.expect("while true { i += 1 }\n")
    // Give the loop time to start (and i time to grow): nothing more is printed while it runs.
    s.settle(for: 0.5)

    let sent = DispatchTime.now().uptimeNanoseconds
    try interrupt(s, by: route)
    let report = try s.expect(PtySession.prompt, timeout: 10)
    let latency = Double(DispatchTime.now().uptimeNanoseconds - sent) / 1e6
    print("Ctrl-C (\(route)) to prompt: \(String(format: "%.1f", latency)) ms")
    #expect(report.contains("interrupted"), "shown: \(report.debugDescription)")
    #expect(latency < 1000, "the prompt came back \(latency) ms after the interrupt")

    #expect(resultLines(try s.enter("keep")) == ["42"])
    let count = resultLines(try s.enter("i"))
    print("i after the interrupt: \(count)")
    #expect(count.count == 1 && (Int(count[0]) ?? 0) > 0, "i after the interrupt: \(count)")
  }

  @Test(arguments: InterruptRoute.allCases)
  func interruptAtPromptClearsTheLine(route: InterruptRoute) throws {
    let s = try start()
    try s.send("1 +")
    // Interrupt at once: the REPL may still be handling the last key, outside poll (this used to hang).
    try s.expect("1 +")
    try interrupt(s, by: route)
    try s.expect("\n" + PtySession.prompt, timeout: 5)
    let shown = try s.enter("1 + 1")
    #expect(resultLines(shown) == ["2"], "shown: \(shown.debugDescription)")
  }

  @Test func interruptDuringSleepReturnsQuickly() throws {
    let s = try start()
    try s.send("sleep(30)\r")
    try s.expect("sleep(30)\n")
    s.settle(for: 0.3)
    let sent = Date()
    try s.send("\u{03}")
    let report = try s.expect(PtySession.prompt, timeout: 10)
    #expect(report.contains("interrupted"), "shown: \(report.debugDescription)")
    #expect(Date().timeIntervalSince(sent) < 1)
  }

  // MARK: - Leaving and history

  @Test func controlDAtEmptyPromptExitsCleanly() throws {
    let s = try start()
    try s.send("\u{04}")
    #expect(try s.waitForExit() == 0)
  }

  @Test func historySurvivesRestartAndUpArrowRerunsIt() throws {
    let notebook = directory.appendingPathComponent("history-test.lnb").path
    do {
      let first = try start([notebook])
      try first.enter("let h = 7")
      try first.send(":quit\r")
      #expect(try first.waitForExit() == 0)
    }
    let saved = try String(contentsOf: historyFile, encoding: .utf8)
    #expect(saved.split(separator: "\n").contains("let h = 7"), "history file: \(saved.debugDescription)")

    let second = try start([notebook])
    try second.send("\u{1B}[A")
    try second.expect("let h = 7", timeout: 5)
    let rerun = try second.enter("")
    #expect(!rerun.contains("error"), "shown: \(rerun.debugDescription)")
    let shown = try second.enter("h")
    #expect(resultLines(shown) == ["7"], "shown: \(shown.debugDescription)")
  }
}
#endif
