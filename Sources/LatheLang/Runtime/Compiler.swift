// The compiler: parse tree to closures over the value stack (engine-notes.md section 4), statements and scopes.

struct LocalVariable {
  var slot: Int
  var mutable: Bool
  var boxed: Bool
  var location: SourceLocation
}

/// One function being compiled (or the top level of a cell): its blocks of locals and the cells it captures.
final class Scope {
  let parent: Scope?
  let isTopLevel: Bool
  var blocks: [[String: LocalVariable]] = [[:]]
  var frameSize = 1                       // slot 0 holds the return value
  var captureSlots: [Int] = []
  var captureSources: [Int] = []
  var captureNames: [String: LocalVariable] = [:]
  /// Names declared here that a nested function mentions: they live in cells.
  let boxedNames: Set<String>
  var loopDepth = 0
  /// Slots of local functions declared ahead of their block (see `compileBlock`).
  var hoisted: Set<Int> = []

  init(parent: Scope?, isTopLevel: Bool, boxedNames: Set<String>) {
    self.parent = parent; self.isTopLevel = isTopLevel; self.boxedNames = boxedNames
  }

  func newSlot() -> Int { frameSize += 1; return frameSize - 1 }

  /// True when a declaration here is a global: the outermost block of a cell.
  var declaresGlobals: Bool { isTopLevel && blocks.count == 1 }
}

/// Compiled code in a class, so arrays of it hold plain references. A closure kept in an Array (or any generic
/// container) is stored at maximal abstraction and comes back wrapped in a reabstraction thunk on every call:
/// that cost a third of the time of fib(25) before these boxes.
final class StmtBox { let code: StmtCode; init(_ code: @escaping StmtCode) { self.code = code } }
final class ExprBox { let code: ExprCode; init(_ code: @escaping ExprCode) { self.code = code } }

struct CompiledProgram {
  let code: StmtCode
  let frameSize: Int
  let returnsValue: Bool
}

/// Compiled code holds the interpreter and its globals strongly (an `unowned(unsafe)` capture cost 15% of a call
/// in fib(25)). The globals hold functions whose code holds them: `Interpreter.shutdown()` breaks that cycle.
final class Compiler {
  unowned(unsafe) let interp: Interpreter
  let source: SourceInfo
  var scope: Scope

  init(interpreter: Interpreter, source: SourceInfo) {
    self.interp = interpreter
    self.source = source
    self.scope = Scope(parent: nil, isTopLevel: true, boxedNames: [])
  }

  func error(_ kind: Diagnostic.Kind, _ message: String, _ at: SourceLocation) -> Diagnostic {
    source.error(kind, message, at)
  }

  func compileProgram(_ statements: [Stmt]) throws -> CompiledProgram {
    scope = Scope(parent: nil, isTopLevel: true, boxedNames: NameAnalysis.boxedNames(parameters: [], body: statements))
    var codes: [StmtBox] = []
    var returnsValue = false
    for (i, statement) in statements.enumerated() {
      if i == statements.count - 1, case .expression(let e) = statement {
        // The value of a cell's last expression is its result, as in Jupyter.
        let value = try compileExpr(e)
        codes.append(StmtBox { fp in fp[0] = try value(fp); return .normal })
        returnsValue = true
      } else {
        codes.append(StmtBox(try compileStmt(statement)))
      }
    }
    return CompiledProgram(code: sequence(codes), frameSize: scope.frameSize, returnsValue: returnsValue)
  }

  /// Chains statements into one closure. Pairs nest instead of looping over an array: a closure called out of an
  /// array goes through a reabstraction thunk, which cost a third of a call in fib(25).
  func sequence(_ codes: [StmtBox]) -> StmtCode {
    switch codes.count {
    case 0: return { _ in .normal }
    case 1: return codes[0].code
    default:
      var chain = codes[codes.count - 1].code
      for box in codes.dropLast().reversed() {
        let first = box.code, rest = chain
        chain = { fp in
          let f = try first(fp)
          if f != .normal { return f }
          return try rest(fp)
        }
      }
      return chain
    }
  }

  func compileBlock(_ statements: [Stmt]) throws -> StmtCode {
    scope.blocks.append([:])
    defer { scope.blocks.removeLast() }
    // Local functions are declared before the block runs, so functions of one block can call each other.
    var cellSlots: [Int] = []
    for case .function(let decl) in statements {
      guard let name = decl.name else { continue }
      let v = try declareLocal(name, mutable: false, at: decl.location)
      scope.hoisted.insert(v.slot)
      if v.boxed { cellSlots.append(v.slot) }
    }
    let body = sequence(try statements.map { StmtBox(try compileStmt($0)) })
    if cellSlots.isEmpty { return body }
    return { fp in
      for slot in cellSlots { fp[slot] = .host(Cell(.none)) }
      return try body(fp)
    }
  }

  // MARK: - Names

  enum Resolved {
    case local(LocalVariable)
    case global(Int)
  }

  func resolve(_ name: String) throws -> Resolved {
    if let v = lookup(name, in: scope) { return .local(v) }
    return .global(try globalSlot(name))
  }

  func globalSlot(_ name: String) throws -> Int {
    do { return try interp.globals.slot(name) } catch let e as LatheError { throw error(e.kind, e.message, .unknown) }
  }

  /// Finds a local of `scope` or of an enclosing function; the latter becomes a captured cell of each function between.
  private func lookup(_ name: String, in scope: Scope) -> LocalVariable? {
    for block in scope.blocks.reversed() { if let v = block[name] { return v } }
    if let v = scope.captureNames[name] { return v }
    guard let parent = scope.parent, let outer = lookup(name, in: parent), outer.boxed else { return nil }
    let v = LocalVariable(slot: scope.newSlot(), mutable: outer.mutable, boxed: true, location: outer.location)
    scope.captureSlots.append(v.slot)
    scope.captureSources.append(outer.slot)
    scope.captureNames[name] = v
    return v
  }

  func declareLocal(_ name: String, mutable: Bool, at: SourceLocation) throws -> LocalVariable {
    if let existing = scope.blocks[scope.blocks.count - 1][name] {
      throw error(.syntax, "'\(name)' is already declared in this block at \(existing.location)", at)
    }
    let v = LocalVariable(slot: scope.newSlot(), mutable: mutable, boxed: scope.boxedNames.contains(name), location: at)
    scope.blocks[scope.blocks.count - 1][name] = v
    return v
  }

  /// Code that stores a fresh value into a just-declared local (a new cell each time, when boxed).
  func initializer(_ v: LocalVariable, _ value: @escaping ExprCode) -> StmtCode {
    let slot = v.slot
    if v.boxed { return { fp in fp[slot] = .host(Cell(try value(fp))); return .normal } }
    return { fp in Value.store(try value(fp), into: &fp[slot]); return .normal }
  }

  // MARK: - Statements

  func compileStmt(_ statement: Stmt) throws -> StmtCode {
    switch statement {
    case .expression(let e):
      let value = try compileExpr(e)
      return { fp in
        var result = try value(fp)
        Value.release(&result)
        return .normal
      }

    case .declare(let name, let mutable, let valueExpr, let at):
      let value = try compileExpr(valueExpr)
      if scope.declaresGlobals { return try defineGlobal(name, mutable: mutable, value) }
      return initializer(try declareLocal(name, mutable: mutable, at: at), value)

    case .function(let decl):
      let name = decl.name ?? "lambda"
      if scope.declaresGlobals {
        return try defineGlobal(name, mutable: true, try compileFunction(decl))
      }
      let v: LocalVariable
      if let existing = scope.blocks[scope.blocks.count - 1][name], scope.hoisted.contains(existing.slot) {
        v = existing
      } else {
        v = try declareLocal(name, mutable: false, at: decl.location)
      }
      let make = try compileFunction(decl, selfName: name)
      let slot = v.slot
      if v.boxed {
        // The cell was made when the block started, so local functions can call themselves and each other.
        return { fp in
          Compiler.cell(fp[slot]).value = try make(fp)
          return .normal
        }
      }
      return { fp in fp[slot] = try make(fp); return .normal }

    case .assign(let target, let op, let valueExpr, let at):
      return try compileAssignment(target, op, valueExpr, at)

    case .ifElse(let conditionExpr, let thenBody, let elseBody, let at):
      let condition = try compileCondition(conditionExpr, "if")
      let then = try compileBlock(thenBody)
      if let elseBody {
        let otherwise = try compileBlock(elseBody)
        return { fp in try condition(fp) ? try then(fp) : try otherwise(fp) }
      }
      _ = at
      // `if c { return e }`, the guard at the top of most recursive functions, in one closure.
      if thenBody.count == 1, case .returnValue(let valueExpr?, _) = thenBody[0] {
        // `if n < 2 { return n }` with a local against an int constant: one closure, no calls inside.
        if case .binary(let op, .name(let cname, _), .integer(let c, _), _) = conditionExpr,
           [.less, .lessEqual, .greater, .greaterEqual, .equal].contains(op),
           case .local(let cv) = try resolve(cname), !cv.boxed,
           case .name(let name, _) = valueExpr, case .local(let v) = try resolve(name), !v.boxed {
          let cslot = cv.slot, slot = v.slot
          return { fp in
            let holds: Bool
            if case .int(let x) = fp[cslot] {
              switch op {
              case .less: holds = x < c
              case .lessEqual: holds = x <= c
              case .greater: holds = x > c
              case .greaterEqual: holds = x >= c
              default: holds = x == c
              }
            } else {
              holds = try condition(fp)
            }
            if holds { fp[0] = fp[slot]; return .returned }
            return .normal
          }
        }
        if case .name(let name, _) = valueExpr, case .local(let v) = try resolve(name), !v.boxed {
          let slot = v.slot
          return { fp in
            if try condition(fp) { fp[0] = fp[slot]; return .returned }
            return .normal
          }
        }
        let value = try compileExpr(valueExpr)
        return { fp in
          if try condition(fp) { fp[0] = try value(fp); return .returned }
          return .normal
        }
      }
      return { fp in try condition(fp) ? try then(fp) : .normal }

    case .whileLoop(let conditionExpr, let bodyStmts, let at):
      let condition = try compileCondition(conditionExpr, "while")
      scope.loopDepth += 1
      let body = try compileBlock(bodyStmts)
      scope.loopDepth -= 1
      let interp = self.interp
    let source = self.source
      return { fp in
        while try condition(fp) {
          try interp.tick(at, source)
          let f = try body(fp)
          if f == .breakLoop { break }
          if f == .returned { return f }
        }
        return .normal
      }

    case .forIn(let name, let sequenceExpr, let bodyStmts, let at):
      return try compileFor(name, sequenceExpr, bodyStmts, at)

    case .returnValue(let valueExpr, let at):
      if scope.isTopLevel { throw error(.syntax, "'return' outside a function", at) }
      guard let valueExpr else { return { fp in fp[0] = .none; return .returned } }
      if case .name(let name, _) = valueExpr, case .local(let v) = try resolve(name), !v.boxed {
        let slot = v.slot
        return { fp in fp[0] = fp[slot]; return .returned }
      }
      // `return a + b`: the addition is done here, one closure fewer on the way out of every call.
      if case .binary(.add, let l, let r, let at) = valueExpr {
        let lhs = try compileExpr(l), rhs = try compileExpr(r)
        let source = self.source
        return { fp in
          let a = try lhs(fp), b = try rhs(fp)
          if case .int(let x) = a, case .int(let y) = b {
            let (sum, o) = x.addingReportingOverflow(y)
            if !o { fp[0] = .int(sum); return .returned }
          }
          do { fp[0] = try Value.binary(.add, a, b) } catch { throw source.locate(error, at) }
          return .returned
        }
      }
      let value = try compileExpr(valueExpr)
      return { fp in fp[0] = try value(fp); return .returned }

    case .breakLoop(let at):
      if scope.loopDepth == 0 { throw error(.syntax, "'break' outside a loop", at) }
      return { _ in .breakLoop }

    case .continueLoop(let at):
      if scope.loopDepth == 0 { throw error(.syntax, "'continue' outside a loop", at) }
      return { _ in .continueLoop }

    case .importFile(let path, let at):
      let interp = self.interp
    let source = self.source
      return { _ in
        do { try interp.importFile(path, from: source) } catch { throw source.locate(error, at) }
        return .normal
      }

    case .block(let statements, _):
      return try compileBlock(statements)
    }
  }

  func defineGlobal(_ name: String, mutable: Bool, _ value: @escaping ExprCode) throws -> StmtCode {
    let slot = try globalSlot(name)
    let globals = interp.globals
    return { fp in
      Value.store(try value(fp), into: &globals.values[slot])
      globals.defined[slot] = true
      globals.mutable[slot] = mutable
      return .normal
    }
  }

  func compileCondition(_ e: Expr, _ what: String) throws -> (UnsafeMutablePointer<Value>) throws -> Bool {
    // `i < n` on two ints is the hot condition of most loops: test it without building a bool value.
    if case .binary(let op, let l, let r, let at) = e, [.less, .lessEqual, .greater, .greaterEqual].contains(op) {
      let source = self.source
      // A local against an int constant (`n < 2`): no closure calls at all on the int path.
      if case .name(let name, _) = l, case .local(let v) = try resolve(name), !v.boxed, case .integer(let c, _) = r {
        let slot = v.slot
        return { fp in
          if case .int(let x) = fp[slot] {
            switch op {
            case .less: return x < c
            case .lessEqual: return x <= c
            case .greater: return x > c
            default: return x >= c
            }
          }
          do {
            guard let result = try Value.binary(op, fp[slot], .int(c)).conditionValue() else {
              throw LatheError("the '\(what)' condition must be a bool", kind: .type)
            }
            return result
          } catch { throw source.locate(error, at) }
        }
      }
      let lhs = try compileExpr(l), rhs = try compileExpr(r)
      return { fp in
        let a = try lhs(fp), b = try rhs(fp)
        if case .int(let x) = a, case .int(let y) = b {
          switch op {
          case .less: return x < y
          case .lessEqual: return x <= y
          case .greater: return x > y
          default: return x >= y
          }
        }
        do {
          guard let result = try Value.binary(op, a, b).conditionValue() else {
            throw LatheError("the '\(what)' condition must be a bool", kind: .type)
          }
          return result
        } catch { throw source.locate(error, at) }
      }
    }
    let value = try compileExpr(e)
    let source = self.source, at = e.location
    return { fp in
      let v = try value(fp)
      if case .bool(let b) = v { return b }
      let condition: Bool?
      do { condition = try v.conditionValue() } catch { throw source.locate(error, at) }
      guard let condition else {
        throw source.error(.type, "the '\(what)' condition must be a bool, got \(v.typeName) \(v.brief)", at)
      }
      return condition
    }
  }

  func compileFor(_ name: String, _ sequenceExpr: Expr, _ bodyStmts: [Stmt], _ at: SourceLocation) throws -> StmtCode {
    let sequence = try compileExpr(sequenceExpr)
    scope.blocks.append([:])
    let v = try declareLocal(name, mutable: false, at: at)
    scope.loopDepth += 1
    let body = try compileBlock(bodyStmts)
    scope.loopDepth -= 1
    scope.blocks.removeLast()
    let slot = v.slot, boxed = v.boxed
    let interp = self.interp
    let source = self.source
    @inline(__always) func bind(_ fp: UnsafeMutablePointer<Value>, _ value: Value) {
      fp[slot] = boxed ? .host(Cell(value)) : value
    }
    return { fp in
      let seq = try sequence(fp)
      // Ranges count without making a list; every other sequence becomes its list of elements first.
      if case .range(let r) = seq {
        var i = r.start
        for _ in 0..<r.count {
          try interp.tick(at, source)
          bind(fp, .int(i))
          i &+= r.step
          let f = try body(fp)
          if f == .breakLoop { break }
          if f == .returned { return f }
        }
        return .normal
      }
      let items: [Value]
      switch seq {
      case .list(let xs): items = xs
      case .string(let s): items = s.map { .string(String($0)) }
      case .record(let r): items = r.fields.map { .string($0.name) }
      case .host(let h):
        do { items = try HostIteration.elements(of: h) } catch { throw source.locate(error, sequenceExpr.location) }
      default:
        throw source.error(.type, "cannot iterate over \(seq.typeName) \(seq.repr); 'for' takes a list, range, string or record", sequenceExpr.location)
      }
      for x in items {
        try interp.tick(at, source)
        bind(fp, x)
        let f = try body(fp)
        if f == .breakLoop { break }
        if f == .returned { return f }
      }
      return .normal
    }
  }
}

/// Host objects that can be iterated (a dataset's batches, a tensor's rows) conform to this.
public protocol IterableHostObject: HostObject {
  func elements() throws -> [Value]
}

enum HostIteration {
  static func elements(of h: any HostObject) throws -> [Value] {
    guard let iterable = h as? IterableHostObject else { throw LatheError("cannot iterate over \(h.typeName)", kind: .type) }
    return try iterable.elements()
  }
}
