// The REPL: readline editing and history, multi-line input, completion, `?name`, `:time`, Ctrl-C.

import Foundation
@preconcurrency import CReadline
import LatheLang
import LatheNotebook

/// State that readline's C callbacks reach: they cannot capture Swift context.
nonisolated(unsafe) private var acceptedLine: String? = nil
nonisolated(unsafe) private var reachedEOF = false
nonisolated(unsafe) private var completionInterpreter: Interpreter? = nil
nonisolated(unsafe) private var completionMatches: [String] = []
nonisolated(unsafe) private var completionIndex = 0

public final class REPL {
  public let session: Session
  let historyPath: String
  private var pending: [String] = []
  /// A complete input whose last statement is an `if` closed by a `}` at the start of its last line: it waits for
  /// one more line, in case that line starts with `else` and continues it.
  private var heldIf: String?
  private var quit = false
  /// Whether a cell ended in an error or was interrupted: a piped REPL then exits with status 1, as `lathe run` does.
  private(set) var failed = false
  let primaryPrompt = "lathe> "
  let continuationPrompt = "  ...> "

  public init(session: Session, historyPath: String? = nil) {
    self.session = session
    self.historyPath = historyPath ?? REPL.defaultHistoryPath()
  }

  public static func defaultHistoryPath() -> String {
    let env = ProcessInfo.processInfo.environment
    if let path = env["LATHE_HISTORY"] { return path }
    return (env["HOME"] ?? NSHomeDirectory()) + "/.lathe_history"
  }

  /// Reads and runs input until `:quit` or end of input; returns the exit status.
  public func run() -> Int32 {
    Signals.installInterruptHandler()
    if isatty(0) != 0 && isatty(1) != 0 {
      session.interpreter.progressEnabled = true
      return runInteractive()
    }
    while !quit, let line = readLine(strippingNewline: true) { handle(line) }
    runHeldIf()
    if !pending.isEmpty { submit(pending.joined(separator: "\n")); pending.removeAll() }
    return failed ? 1 : 0
  }

  // MARK: - Interactive (readline, callback interface so Ctrl-C at the prompt just clears the line)

  private func runInteractive() -> Int32 {
    rl_readline_name = UnsafePointer(strdup("lathe"))
    rl_catch_signals = 0
    // Every character that is not part of a word in Completion (letters, digits, '_', '.'): readline replaces
    // the text after the last of these, so with its defaults `1+tot<TAB>` became `total`, `f([1],re` `f(reverse:`.
    rl_completer_word_break_characters = UnsafePointer(strdup(" \t\n!\"#$%&'()*+,-/:;<=>?@[\\]^`{|}~"))
    completionInterpreter = session.interpreter
    rl_attempted_completion_function = { text, start, end in
      rl_attempted_completion_over = 1                       // never fall back to file names
      guard let interp = completionInterpreter, let buffer = rl_line_buffer else { return nil }
      let line = String(cString: buffer)
      completionMatches = Completion.candidates(line: line, cursor: Int(end), interpreter: interp)
      if completionMatches.count == 1, completionMatches[0].hasSuffix(":") { rl_completion_append_character = 32 }
      return rl_completion_matches(text) { _, state in
        if state == 0 { completionIndex = 0 }
        guard completionIndex < completionMatches.count else { return nil }
        completionIndex += 1
        return strdup(completionMatches[completionIndex - 1])
      }
    }
    stifle_history(10_000)
    if FileManager.default.fileExists(atPath: historyPath) { read_history(historyPath) }
    print("Lathe \(LatheVersion.version). :help for commands, ?name for help on a name, Ctrl-D to leave.")
    install(prompt: primaryPrompt)
    while !quit && !reachedEOF {
      // Checked on every pass, with poll waking every 50 ms: a SIGINT that lands while a key is being handled
      // (outside poll, so no EINTR) would otherwise wait for the next key.
      if Interrupt.isRequested { clearLineAfterInterrupt(); continue }
      var fds = pollfd(fd: 0, events: Int16(POLLIN), revents: 0)
      if poll(&fds, 1, 50) <= 0 { continue }               // timeout, or EINTR from Ctrl-C
      rl_callback_read_char()
      if let line = acceptedLine {
        acceptedLine = nil
        handle(line)
        if !quit { install(prompt: pending.isEmpty && heldIf == nil ? primaryPrompt : continuationPrompt) }
      }
    }
    rl_callback_handler_remove()
    if reachedEOF {
      print("")
      runHeldIf()                                          // Ctrl-D after an if block: it is complete, so it runs
    }
    return 0
  }

  private func install(prompt: String) {
    rl_callback_handler_install(prompt) { line in
      // Removed here, inside the callback: otherwise rl_callback_read_char redraws the prompt as soon as this
      // returns, and the cell's output is then printed over that stray prompt ("2athe> ").
      rl_callback_handler_remove()
      if let line {
        acceptedLine = String(cString: line)
        free(line)
      } else {
        reachedEOF = true
      }
    }
  }

  private func clearLineAfterInterrupt() {
    Interrupt.clear()
    pending.removeAll()
    heldIf = nil
    rl_free_line_state()
    rl_callback_sigcleanup()
    rl_replace_line("", 0)
    rl_callback_handler_remove()
    fputs("\n", stdout)
    fflush(stdout)
    install(prompt: primaryPrompt)
  }

  // MARK: - One line of input

  /// Handles one line: a command, a help request, or code (run once its brackets and strings are closed).
  func handle(_ line: String) {
    if let held = heldIf {
      heldIf = nil
      if REPL.startsWithElse(line) {
        pending = [held]
      } else {
        remember(held)
        submit(held)
        if line.trimmingCharacters(in: .whitespaces).isEmpty { return }
      }
    }
    if pending.isEmpty {
      let trimmed = line.trimmingCharacters(in: .whitespaces)
      if trimmed.isEmpty { return }
      if trimmed.hasPrefix(":") || trimmed.hasPrefix("?") {
        // Leaving is not remembered, so Up in the next session brings back the last real input.
        if ![":quit", ":q", ":exit"].contains(trimmed) { remember(trimmed) }
        command(trimmed)
        return
      }
    }
    pending.append(line)
    let source = pending.joined(separator: "\n")
    if pending.count < 1000 {
      // An `else` with no `if` before it is read up to the end of its block, so that it fails as one cell
      // instead of its body running as cells of their own.
      let orphanElse = REPL.startsWithElse(pending[0]) && Parser.needsMoreInput("if true {}\n" + source)
      if Parser.needsMoreInput(source) || orphanElse { return }
      if REPL.mayContinueWithElse(source) { pending.removeAll(); heldIf = source; return }
    }
    pending.removeAll()
    remember(source)
    submit(source)
  }

  private func runHeldIf() {
    guard let held = heldIf else { return }
    heldIf = nil
    remember(held)
    submit(held)
  }

  /// Whether `line` starts with the keyword `else` (not a name such as `elsewhere`).
  static func startsWithElse(_ line: String) -> Bool {
    let trimmed = line.drop { $0 == " " || $0 == "\t" }
    guard trimmed.hasPrefix("else") else { return false }
    guard let next = trimmed.dropFirst(4).first else { return true }
    return !(next.isLetter || next.isNumber || next == "_")
  }

  /// Whether `source` is complete, ends with an `if` (or `else if`) that has no `else`, and its last line starts
  /// with that `if`'s closing `}`: then an `else` on the next line belongs to it, as it would in a script.
  static func mayContinueWithElse(_ source: String) -> Bool {
    let lines = source.split(separator: "\n", omittingEmptySubsequences: false)
    guard lines.count > 1, let last = lines.last, last.drop(while: { $0 == " " || $0 == "\t" }).hasPrefix("}") else {
      return false
    }
    guard let statements = try? Parser.parse(source), var statement = statements.last else { return false }
    while case .ifElse(_, _, let otherwise, _) = statement {
      guard let otherwise else { return true }
      // `else if`: the chain continues in its only statement; a plain `else { }` ends it.
      guard otherwise.count == 1, let inner = otherwise.first, case .ifElse = inner else { return false }
      statement = inner
    }
    return false
  }

  private func submit(_ source: String) {
    let outcome = session.execute(source)
    if outcome.status == .error || outcome.status == .interrupted || outcome.recordingError != nil { failed = true }
  }

  private func remember(_ entry: String) {
    guard isatty(0) != 0 else { return }
    add_history(entry)
    if !FileManager.default.fileExists(atPath: historyPath) { write_history(historyPath) } else { append_history(1, historyPath) }
    history_truncate_file(historyPath, 10_000)
  }

  private func command(_ text: String) {
    let out = session.display
    if text.hasPrefix("?") {
      let name = text.dropFirst().trimmingCharacters(in: .whitespaces)
      if let help = Help.query(name, interpreter: session.interpreter) {
        out?.write(help + "\n", error: false)
      } else {
        out?.write("?\(name): no such name, and no builtin's doc mentions it\n", error: true)
      }
      return
    }
    let parts = text.split(separator: " ", maxSplits: 1).map(String.init)
    switch parts[0] {
    case ":quit", ":q", ":exit": quit = true
    case ":help", ":h":
      out?.write("""
      :help              this list
      :time EXPR         run EXPR and print its wall time
      :history           the input history (kept in \(historyPath))
      :vars              your variables: values, or the type, shape or size and technique of tensors and models
      :quit              leave (Ctrl-D too)
      ?name              signature, defaults, doc and example of a builtin or function
      Tab completes names, members after '.', and a call's labelled arguments; Ctrl-C interrupts a running cell.

      """, error: false)
    case ":time":
      guard parts.count > 1 else { out?.write(":time needs an expression\n", error: true); return }
      let outcome = session.execute(parts[1])
      out?.write(String(format: "time: %.3f ms\n", outcome.wallSeconds * 1000), error: false)
    case ":history":
      let base = Int(lathe_history_base()), count = Int(lathe_history_length())
      for i in 0..<count {
        if let entry = history_get(Int32(base + i)), let line = entry.pointee.line {
          out?.write(String(format: "%5d  ", base + i) + String(cString: line) + "\n", error: false)
        }
      }
    case ":vars":
      let interp = session.interpreter
      let hidden = Set(interp.registry.functions.map(\.name)).union(interp.preludeNames)
      for name in interp.globalNames.sorted() where !hidden.contains(name) {
        guard let v = interp.global(name) else { continue }
        if case .host(let object) = v {
          out?.write("\(name): \(object.summary)\n", error: false)
        } else {
          out?.write("\(name) = \(v.brief)\n", error: false)
        }
      }
    default:
      out?.write("unknown command \(parts[0]); :help lists them\n", error: true)
    }
  }
}

/// Ctrl-C sets the interpreter's interrupt flag; nothing else happens in the handler.
public enum Signals {
  public static func installInterruptHandler() {
    _ = Interrupt.flag                                   // initialise before a signal can arrive
    var action = sigaction()
    action.__sigaction_handler.sa_handler = { _ in Interrupt.flag.pointee = 1 }
    sigemptyset(&action.sa_mask)
    action.sa_flags = 0                                  // no SA_RESTART: poll() returns EINTR at the prompt
    sigaction(SIGINT, &action, nil)
    // A parent may have started us with SIGINT blocked (the mask survives exec): then Ctrl-C would stay pending
    // forever. Unblock it on this thread, which the interpreter's threads are started from.
    var set = sigset_t()
    sigemptyset(&set)
    sigaddset(&set, SIGINT)
    pthread_sigmask(SIG_UNBLOCK, &set, nil)
  }
}
