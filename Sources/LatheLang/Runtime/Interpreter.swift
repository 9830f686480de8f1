// The interpreter: one preallocated value stack, the global table, calls, interrupts and budgets.

import Foundation

typealias ExprCode = (UnsafeMutablePointer<Value>) throws -> Value
typealias StmtCode = (UnsafeMutablePointer<Value>) throws -> Flow

enum Flow { case normal, breakLoop, continueLoop, returned }

/// The process-wide interrupt flag: SIGINT sets it, long-running loops and builtins poll it.
public enum Interrupt {
  public static let flag: UnsafeMutablePointer<Int32> = {
    let p = UnsafeMutablePointer<Int32>.allocate(capacity: 1)
    p.initialize(to: 0)
    return p
  }()
  public static var isRequested: Bool { flag.pointee != 0 }
  public static func clear() { flag.pointee = 0 }
  /// Throws `interrupted` when Ctrl-C was pressed; for builtins that run long loops.
  public static func check() throws {
    if flag.pointee != 0 { flag.pointee = 0; throw LatheError("interrupted", kind: .interrupted) }
  }
  /// Whether an error of a layer below the language is its way of saying "stopped by Ctrl-C".
  public static func isInterruption(_ error: Error) -> Bool { (error as? InterruptionReporting)?.isInterruption ?? false }
}

/// An error type of a layer below the language (which cannot see LatheLang) that has an "interrupted" case: the
/// layer that knows both conforms it, and the interpreter reports such an error as an interruption.
public protocol InterruptionReporting: Error {
  var isInterruption: Bool { get }
}

/// Where a cell's printed text, results and displays go (the REPL's terminal, a notebook run).
public enum OutputKind: String { case stdout, stderr, result, display, warning, progress }

/// Storage for `save(name, value)` and `load(name)`: the open notebook.
public protocol ArtifactStore: AnyObject {
  func saveArtifact(name: String, kind: String, bytes: [UInt8], meta: String?) throws
  func loadArtifact(name: String) throws -> (kind: String, bytes: [UInt8])?
  /// Every saved value's newest version: name, kind, bytes and when it was saved (ms since 1970), by name.
  func savedArtifacts() throws -> [(name: String, kind: String, bytes: Int, savedAt: Int64)]
}

extension ArtifactStore {
  public func savedArtifacts() throws -> [(name: String, kind: String, bytes: Int, savedAt: Int64)] { [] }
}

/// Global variables by name, in stable slots that compiled code holds on to.
final class Globals {
  static let capacity = 1 << 16
  let values: UnsafeMutablePointer<Value>
  let defined: UnsafeMutablePointer<Bool>
  let mutable: UnsafeMutablePointer<Bool>
  var slots: [String: Int] = [:]
  var names: [String] = []

  init() {
    values = .allocate(capacity: Globals.capacity)
    values.initialize(repeating: .none, count: Globals.capacity)
    defined = .allocate(capacity: Globals.capacity)
    defined.initialize(repeating: false, count: Globals.capacity)
    mutable = .allocate(capacity: Globals.capacity)
    mutable.initialize(repeating: false, count: Globals.capacity)
  }

  deinit {
    values.deinitialize(count: Globals.capacity); values.deallocate()
    defined.deallocate(); mutable.deallocate()
  }

  func slot(_ name: String) throws -> Int {
    if let s = slots[name] { return s }
    guard names.count < Globals.capacity else { throw LatheError("too many global names (limit \(Globals.capacity))", kind: .limit) }
    let s = names.count
    names.append(name)
    slots[name] = s
    return s
  }

  func value(_ name: String) -> Value? {
    guard let s = slots[name], defined[s] else { return nil }
    return values[s]
  }

  var definedNames: [String] { names.enumerated().filter { defined[$0.offset] }.map(\.element) }
}

/// Runs Lathe code. One interpreter holds one session's variables; it is not thread-safe.
public final class Interpreter {
  static let stackCapacity = 1 << 18
  let stackBase: UnsafeMutablePointer<Value>
  let stackLimit: UnsafeMutablePointer<Value>
  var top: UnsafeMutablePointer<Value>
  var depth = 0
  /// Lathe calls nested deeper than this are an error, not a native stack overflow.
  public var maxCallDepth = 4000
  let globals = Globals()
  /// The flag Ctrl-C sets (the process-wide one unless a test gives its own).
  public let interrupt: UnsafeMutablePointer<Int32>
  /// Steps (loop iterations and calls) left before a budget error; `nil` budget means unlimited.
  /// Ticks (loop iterations and calls) left before the next `service`, which polls Ctrl-C and charges the budget.
  var steps = Interpreter.quantum
  /// Steps of the budget not yet charged (effectively unlimited without a budget).
  var budgetLeft = Int.max >> 1
  /// Ticks between polls: at well under a microsecond a tick, Ctrl-C is seen within about a millisecond.
  static let quantum = 1024
  public var stepBudget: Int? = nil

  /// Receives everything a cell prints or displays.
  public var output: (OutputKind, String) -> Void = { kind, text in
    if kind == .stderr { FileHandle.standardError.write(text.data(using: .utf8) ?? Data()) } else { print(text, terminator: "") }
  }
  public var artifactStore: ArtifactStore?
  /// Receives rich outputs (an SVG plot with its text rendering): the session stores every MIME alternative in the
  /// notebook and shows the text/plain one. Without a handler, the text/plain alternative is printed.
  public var displayHandler: (([(mime: String, text: String)]) -> Void)?

  /// Shows one output with several MIME alternatives, e.g. `[("image/svg+xml", svg), ("text/plain", braille)]`.
  public func display(_ alternatives: [(mime: String, text: String)]) {
    if let displayHandler { displayHandler(alternatives); return }
    if let plain = alternatives.first(where: { $0.mime == "text/plain" }) { output(.display, plain.text) }
  }
  /// Whether progress bars draw: only when output goes to a terminal.
  public var progressEnabled = false
  public let registry: BuiltinRegistry
  /// The session seed; `rand()` and later seeded builtins derive their streams from it.
  public private(set) var seed: UInt64
  var random: SplitMix64
  /// Directories searched by `import "path"` after the importing file's own directory.
  public var importPaths: [String] = []
  var imported: Set<String> = []
  /// Metrics and parameters a cell recorded with `metric(...)`/`param(...)`, taken by the notebook at the end of a run.
  public var pendingMetrics: [(key: String, step: Int, value: Double)] = []
  public var pendingParams: [(String, String)] = []
  /// Files a cell read (imports now; models and datasets later): the notebook records each with its hash.
  public var pendingInputs: [(role: String, path: String)] = []

  public init(registry: BuiltinRegistry = .core, seed: UInt64 = 0, interruptFlag: UnsafeMutablePointer<Int32> = Interrupt.flag) {
    self.registry = registry
    self.interrupt = interruptFlag
    self.seed = seed
    self.random = SplitMix64(seed: seed)
    stackBase = .allocate(capacity: Interpreter.stackCapacity)
    stackBase.initialize(repeating: .none, count: Interpreter.stackCapacity)
    stackLimit = stackBase + (Interpreter.stackCapacity - 1024)
    top = stackBase
    for builtin in registry.functions { define(builtin.name, .function(builtin), mutable: false) }
  }

  deinit {
    stackBase.deinitialize(count: Interpreter.stackCapacity)
    stackBase.deallocate()
  }

  /// Drops every global, breaking the cycle between the globals and the compiled functions stored in them (their
  /// code holds the interpreter): call it when a session ends, or the interpreter and its 6 MB stack stay in memory.
  /// The interpreter is empty afterwards (builtins included).
  /// The names the prelude defined (the REPL's `:vars` leaves them out, with the builtins).
  public private(set) var preludeNames: Set<String> = []

  public func shutdown() {
    // On a large stack: releasing a deeply nested value (a list 300,000 levels deep) recurses once per level.
    Interpreter.onLargeStack {
      for i in 0..<globals.names.count {
        var value = globals.values[i]
        globals.values[i] = .none
        globals.defined[i] = false
        Value.release(&value)
      }
      // Frame slots keep what the last frames held (a temporary copy of a deep list) until they are reused.
      for i in 0..<Interpreter.stackCapacity {
        if case .none = stackBase[i] { continue }
        var value = stackBase[i]
        stackBase[i] = .none
        Value.release(&value)
      }
    }
    pendingMetrics.removeAll()
    artifactStore = nil
  }

  /// Runs `body` on a thread with a 512 MiB stack (reserved address space, not memory) and waits for it.
  public static func onLargeStack(_ body: () -> Void) {
    final class Work: @unchecked Sendable { var body: (() -> Void)? }
    withoutActuallyEscaping(body) { body in
      let work = Work()
      work.body = body
      let done = DispatchSemaphore(value: 0)
      let thread = Thread {
        work.body?()
        work.body = nil                 // dropped before the caller's closure stops being valid
        done.signal()
      }
      thread.stackSize = 1 << 29
      thread.start()
      done.wait()
    }
  }

  public func reseed(_ seed: UInt64) { self.seed = seed; random = SplitMix64(seed: seed) }
  func nextRandom() -> UInt64 { random.next() }
  /// 64 bits from the session's seeded stream: seeds for builtins (rand, randn) that are not given one.
  public func randomBits() -> UInt64 { random.next() }

  // MARK: - Globals

  /// Defines or replaces a global variable.
  public func define(_ name: String, _ value: Value, mutable: Bool = true) {
    guard let s = try? globals.slot(name) else { return }
    Value.store(value, into: &globals.values[s])
    globals.defined[s] = true
    globals.mutable[s] = mutable
  }

  public func global(_ name: String) -> Value? { globals.value(name) }

  /// Names of defined globals (variables, functions, builtins), for completion.
  public var globalNames: [String] { globals.definedNames }

  // MARK: - Running code

  /// Parses, compiles and runs `source`; returns the value of a final expression statement, if any.
  ///
  /// Runs on a thread with a large stack, so deep but legal recursion never meets the native stack's end.
  public func run(_ source: String, name: String = "input", path: String? = nil, firstLine: Int = 1) throws -> Value? {
    final class Box: @unchecked Sendable { var result: Result<Value?, Error> = .success(nil) }
    let box = Box()
    let done = DispatchSemaphore(value: 0)
    let thread = Thread { [self] in
      box.result = Result { try self.runHere(source, name: name, path: path, firstLine: firstLine) }
      done.signal()
    }
    thread.stackSize = 1 << 29
    thread.start()
    done.wait()
    return try box.result.get()
  }

  /// As `run`, on the calling thread.
  public func runHere(_ source: String, name: String, path: String? = nil, firstLine: Int = 1) throws -> Value? {
    let info = SourceInfo(name: name, text: source, path: path, firstLine: firstLine)
    let statements: [Stmt]
    do { statements = try Parser.parse(source, start: SourceLocation(line: firstLine, column: 1)) }
    catch var d as Diagnostic { d.sourceName = name; d.sourceText = source; d.sourceFirstLine = firstLine; throw d }
    let compiler = Compiler(interpreter: self, source: info)
    let program = try compiler.compileProgram(statements)
    let fp = top
    guard fp + program.frameSize < stackLimit else { throw Diagnostic(.limit, "stack is full", at: .unknown, sourceName: name) }
    top = fp + program.frameSize
    budgetLeft = stepBudget ?? (Int.max >> 1)
    steps = min(Interpreter.quantum, budgetLeft)
    let savedDepth = depth
    defer {
      for i in 0..<program.frameSize { Value.release(&fp[i]) }
      top = fp
      depth = savedDepth
    }
    do {
      _ = try program.code(fp)
    } catch let e as LatheError {
      throw info.error(e.kind, e.message, .unknown)
    }
    return program.returnsValue ? fp[0] : nil
  }

  /// Throws `interrupted` when Ctrl-C was pressed: long-running builtins call this in their loops.
  public func checkInterrupt() throws {
    if interrupt.pointee != 0 { interrupt.pointee = 0; throw LatheError("interrupted", kind: .interrupted) }
  }

  /// Counts one step; every `quantum` steps, `service` checks the interrupt flag and the step budget.
  /// Ctrl-C is seen at every step (a loop whose body is one long builtin stops after that builtin, not 1024 later).
  @inline(__always) func tick(_ at: SourceLocation, _ source: SourceInfo) throws {
    steps &-= 1
    if steps < 0 || interrupt.pointee != 0 { try service(at, source) }
  }

  /// Every `quantum` ticks: Ctrl-C, then the step budget.
  @inline(never) func service(_ at: SourceLocation, _ source: SourceInfo) throws {
    if interrupt.pointee != 0 {
      interrupt.pointee = 0
      throw source.error(.interrupted, "interrupted", at)
    }
    guard steps < 0 else { return }
    let charged = min(Interpreter.quantum, budgetLeft)
    budgetLeft -= charged
    if stepBudget != nil && budgetLeft <= 0 {
      steps = Interpreter.quantum
      throw source.error(.limit, "step budget of \(stepBudget ?? 0) exhausted", at)
    }
    steps = min(Interpreter.quantum, budgetLeft)
  }

  // MARK: - Calls

  /// Calls a function value with evaluated arguments (for builtins such as `sorted(xs, key: f)`).
  public func call(_ value: Value, _ arguments: [Value], labels: [String?]? = nil) throws -> Value {
    guard case .function(let function) = value else {
      throw LatheError("\(value.typeName) is not callable", kind: .type)
    }
    return try call(function, arguments, labels: labels ?? Array(repeating: nil, count: arguments.count),
                    at: .unknown, source: SourceInfo.native)
  }

  func call(_ function: Function, _ arguments: [Value], labels: [String?], at: SourceLocation, source: SourceInfo) throws -> Value {
    let bound: [Value]
    do { bound = try function.bind(positional: arguments, labels: labels) }
    catch let e as LatheError { throw source.error(e.kind, e.message, at) }
    switch function.body {
    case .native(let implementation):
      var call = NativeCall(function: function, arguments: bound, interpreter: self)
      do { return try implementation(&call) }
      catch let e as LatheError { throw source.error(e.kind, e.message, at) }
      catch var d as Diagnostic {
        if d.location.line == 0 {
          // Raised by a builtin another builtin called for it (exp on a number): place it at this call.
          let located = source.error(d.kind, d.message, at)
          d.location = located.location; d.sourceName = located.sourceName
          d.sourceText = located.sourceText; d.sourceFirstLine = located.sourceFirstLine
          d.notes.removeAll { $0.1.line == 0 }
        } else if d.notes.count < 64 {
          d.notes.append(("in \(function.name), called", at))
        }
        throw d
      } catch {
        // A layer's own error (TensorError ...): its text, located; a kernel stopped by Ctrl-C is an interruption.
        throw source.error(Interrupt.isInterruption(error) ? .interrupted : .runtime, "\(error)", at)
      }
    case .compiled(let body):
      let fp = top
      guard fp + body.frameSize < stackLimit else {
        throw source.error(.limit, "stack overflow: calls are nested too deeply", at)
      }
      for (i, v) in bound.enumerated() { fp[1 + i] = v }
      top = fp + 1 + bound.count
      _ = body
      return try enter(function, fp, at, source)
    }
  }

  /// Runs a compiled function whose arguments are already in `fp[1...]`.
  @inline(__always)
  func enter(_ function: Function, _ fp: UnsafeMutablePointer<Value>,
             _ at: SourceLocation, _ source: SourceInfo) throws -> Value {
    depth += 1
    let size = function.frameSize
    top = fp + size
    defer {
      var i = 1
      while i < size { Value.release(&fp[i]); i += 1 }
      top = fp
      depth -= 1
    }
    if depth > maxCallDepth {
      throw source.error(.limit, "recursion is too deep (more than \(maxCallDepth) nested calls)", at)
    }
    try tick(at, source)
    if function.needsSetup, case .compiled(let body) = function.body {
      for slot in body.boxedParameterSlots { fp[slot] = .host(Cell(fp[slot])) }
      for (i, slot) in body.captureSlots.enumerated() { fp[slot] = .host(function.captures[i]) }
      if let me = body.selfSlot { fp[me.slot] = me.boxed ? .host(Cell(.function(function))) : .function(function) }
    }
    do {
      _ = try function.code(fp)
    } catch var d as Diagnostic {
      fp[0] = .none
      if d.notes.count < 64 { d.notes.append(("in \(function.name), called", at)) }
      throw d
    } catch {
      fp[0] = .none
      throw error
    }
    // Move the result out (no retain and release), leaving the slot empty for the next call.
    let result = fp.move()
    fp.initialize(to: .none)
    return result
  }
}

/// The name and text of a source, captured by compiled code so runtime errors point into it.
final class SourceInfo {
  let name: String
  let text: String
  let path: String?
  let firstLine: Int
  /// The text's lines, split once on first use (doc comments read them).
  lazy var lines: [Substring] = text.split(separator: "\n", omittingEmptySubsequences: false)
  init(name: String, text: String, path: String?, firstLine: Int = 1) {
    self.name = name; self.text = text; self.path = path; self.firstLine = firstLine
  }
  static let native = SourceInfo(name: "", text: "", path: nil)

  func error(_ kind: Diagnostic.Kind, _ message: String, _ at: SourceLocation) -> Diagnostic {
    var d = Diagnostic(kind, message, at: at, sourceName: name, sourceText: text.isEmpty ? nil : text)
    d.sourceFirstLine = firstLine
    return d
  }

  /// Locates any error thrown under `at`: a `LatheError` gains this location, a `Diagnostic` keeps its own.
  func locate(_ error: Error, _ at: SourceLocation) -> Error {
    switch error {
    case let d as Diagnostic: return d
    case let e as LatheError: return self.error(e.kind, e.message, at)
    default: return self.error(Interrupt.isInterruption(error) ? .interrupted : .runtime, "\(error)", at)
    }
  }
}

/// SplitMix64: a small, fast, seedable generator; the stream depends only on the seed.
public struct SplitMix64: RandomNumberGenerator {
  public var state: UInt64
  public init(seed: UInt64) { state = seed }
  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}

extension Interpreter {
  /// Runs a script file into the global scope once; later imports of the same file do nothing.
  func importFile(_ path: String, from source: SourceInfo) throws {
    var candidates: [String] = []
    if path.hasPrefix("/") { candidates = [path] } else {
      if let from = source.path { candidates.append(URL(fileURLWithPath: from).deletingLastPathComponent().appendingPathComponent(path).path) }
      candidates += importPaths.map { URL(fileURLWithPath: $0).appendingPathComponent(path).path }
      candidates.append(URL(fileURLWithPath: FileManager.default.currentDirectoryPath).appendingPathComponent(path).path)
    }
    guard let found = candidates.first(where: { FileManager.default.isReadableFile(atPath: $0) }) else {
      throw LatheError("import: cannot find \(Value.quote(path)) (looked in: \(candidates.joined(separator: ", ")))")
    }
    let canonical = URL(fileURLWithPath: found).standardizedFileURL.resolvingSymlinksInPath().path
    if imported.contains(canonical) { return }
    // Only regular files of script size: `import "/dev/zero"` must not read forever.
    let attributes = try? FileManager.default.attributesOfItem(atPath: canonical)
    guard attributes?[.type] as? FileAttributeType == .typeRegular else { throw LatheError("import: \(found) is not a regular file") }
    guard let size = attributes?[.size] as? Int, size <= Lexer.maxSourceBytes else {
      throw LatheError("import: \(found) is larger than \(Lexer.maxSourceBytes) bytes")
    }
    imported.insert(canonical)
    pendingInputs.append((role: "import", path: canonical))
    guard let data = FileManager.default.contents(atPath: canonical) else { throw LatheError("import: cannot read \(found)") }
    guard let text = String(data: data, encoding: .utf8) else { throw LatheError("import: \(found) is not UTF-8 text") }
    _ = try runNested(text, name: path, path: found)
  }

  /// Runs source on the current thread above the current frames (for imports and the prelude).
  func runNested(_ source: String, name: String, path: String?) throws -> Value? {
    let savedSteps = steps, savedBudget = budgetLeft
    defer { steps = savedSteps; budgetLeft = savedBudget }
    return try runHere(source, name: name, path: path)
  }
}

/// Finds and loads stdlib/prelude.lathe.
public enum Prelude {
  /// The stdlib folder: `$LATHE_STDLIB`, else `stdlib/` beside the package that built the running binary
  /// (`.build/<config>/lathe` → `../../stdlib`), else `../share/lathe/stdlib` beside an installed binary.
  public static func stdlibDirectory() -> String? {
    let fm = FileManager.default
    if let env = ProcessInfo.processInfo.environment["LATHE_STDLIB"], fm.fileExists(atPath: env + "/prelude.lathe") { return env }
    let exe = URL(fileURLWithPath: CommandLine.arguments.first ?? "").resolvingSymlinksInPath().deletingLastPathComponent()
    var candidates: [URL] = []
    var dir = exe
    for _ in 0..<5 { candidates.append(dir.appendingPathComponent("stdlib")); dir = dir.deletingLastPathComponent() }
    candidates.append(exe.deletingLastPathComponent().appendingPathComponent("share/lathe/stdlib"))
    candidates.append(URL(fileURLWithPath: fm.currentDirectoryPath).appendingPathComponent("stdlib"))
    return candidates.first(where: { fm.fileExists(atPath: $0.appendingPathComponent("prelude.lathe").path) })?.path
  }
}

extension Interpreter {
  /// Runs the prelude into the globals and adds the stdlib folder to the import path.
  public func loadPrelude(from directory: String) throws {
    importPaths.append(directory)
    let path = directory + "/prelude.lathe"
    guard let data = FileManager.default.contents(atPath: path), let text = String(data: data, encoding: .utf8) else {
      throw LatheError("cannot read \(path)")
    }
    imported.insert(URL(fileURLWithPath: path).standardizedFileURL.resolvingSymlinksInPath().path)
    let before = Set(globalNames)
    _ = try run(text, name: "stdlib/prelude.lathe", path: path)
    preludeNames = Set(globalNames).subtracting(before)
  }
}
