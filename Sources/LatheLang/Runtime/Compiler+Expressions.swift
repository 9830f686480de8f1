// The compiler, continued: expressions, with int fast paths for the operators loops and recursion use most.

import Foundation

extension Compiler {
  func compileExpr(_ expr: Expr) throws -> ExprCode {
    switch expr {
    case .integer(let v, _): let value = Value.int(v); return { _ in value }
    case .float(let v, _): let value = Value.float(v); return { _ in value }
    case .string(let s, _): let value = Value.string(s); return { _ in value }
    case .bool(let b, _): let value = Value.bool(b); return { _ in value }
    case .none: return { _ in .none }

    case .interpolated(let pieces, _):
      let parts: [Either] = try pieces.map {
        switch $0 {
        case .text(let t): return .text(t)
        case .expr(let e): return .code(try compileExpr(e))
        }
      }
      return { fp in
        var out = ""
        for part in parts {
          switch part {
          case .text(let t): out += t
          case .code(let c): out += try c(fp).description
          }
        }
        return .string(out)
      }

    case .name(let name, let at):
      return try compileName(name, at)

    case .list(let items, _):
      let codes = try items.map { ExprBox(try compileExpr($0)) }
      return { fp in
        var out: [Value] = []
        out.reserveCapacity(codes.count)
        for c in codes { out.append(try c.code(fp)) }
        return .list(out)
      }

    case .record(let fields, _):
      let codes = try fields.map { ($0.0, ExprBox(try compileExpr($0.1))) }
      return { fp in
        var r = Record()
        r.fields.reserveCapacity(codes.count)
        for (name, c) in codes { r.fields.append((name, try c.code(fp))) }
        return .record(r)
      }

    case .unary(let op, let operandExpr, let at):
      let operand = try compileExpr(operandExpr)
      let source = self.source
      return { fp in
        let v = try operand(fp)
        do { return try Value.unary(op, v) } catch { throw source.locate(error, at) }
      }

    case .binary(let op, let l, let r, let at):
      return try compileBinary(op, l, r, at)

    case .logical(let isAnd, let l, let r, let at):
      let lhs = try compileExpr(l), rhs = try compileExpr(r)
      let source = self.source, word = isAnd ? "&&" : "||"
      return { fp in
        func truth(_ v: Value, _ side: String) throws -> Bool {
          if case .bool(let x) = v { return x }
          let x: Bool?
          do { x = try v.conditionValue() } catch { throw source.locate(error, at) }
          guard let x else { throw source.error(.type, "'\(word)' needs bools, got \(v.typeName) on the \(side)", at) }
          return x
        }
        let x = try truth(try lhs(fp), "left")
        if isAnd ? !x : x { return .bool(x) }
        return .bool(try truth(try rhs(fp), "right"))
      }

    case .ternary(let c, let yes, let no, _):
      let condition = try compileCondition(c, "?:")
      let a = try compileExpr(yes), b = try compileExpr(no)
      return { fp in try condition(fp) ? try a(fp) : try b(fp) }

    case .range(let l, let r, let closed, let at):
      let lhs = try compileExpr(l), rhs = try compileExpr(r)
      let source = self.source
      return { fp in
        let a = try lhs(fp), b = try rhs(fp)
        guard case .int(let start) = a, case .int(var end) = b else {
          throw source.error(.type, "a range needs int bounds, got \(a.typeName) and \(b.typeName)", at)
        }
        if closed {
          guard end < Int.max else { throw source.error(.runtime, "range end overflows", at) }
          end += 1
        }
        return .range(RangeValue(start: start, end: end, step: 1))
      }

    case .call(let callee, let arguments, let at):
      return try compileCall(callee, arguments, at)

    case .member(let baseExpr, let name, let at):
      let base = try compileExpr(baseExpr)
      let source = self.source
      return { fp in
        let b = try base(fp)
        do { return try Members.get(b, name) } catch { throw source.locate(error, at) }
      }

    case .index(let baseExpr, let items, let at):
      let base = try compileExpr(baseExpr)
      let index = try compileIndexItems(items)
      let source = self.source
      if items.count == 1, case .single = items[0] {
        return { fp in
          let b = try base(fp)
          let i = try index(fp)
          if case .list(let xs) = b, case .single(.int(let k)) = i[0], k >= 0, k < xs.count { return xs[k] }
          do { return try b.index(i) } catch { throw source.locate(error, at) }
        }
      }
      return { fp in
        let b = try base(fp)
        let i = try index(fp)
        do { return try b.index(i) } catch { throw source.locate(error, at) }
      }

    case .function(let decl):
      return try compileFunction(decl)
    }
  }

  enum Either { case text(String), code(ExprCode) }

  func compileName(_ name: String, _ at: SourceLocation) throws -> ExprCode {
    switch try resolve(name) {
    case .local(let v):
      let slot = v.slot
      if v.boxed { return { fp in Compiler.cell(fp[slot]).value } }
      return { fp in fp[slot] }
    case .global(let slot):
      let globals = interp.globals
      let values = globals.values, defined = globals.defined
      let source = self.source
      return { _ in
        guard defined[slot] else { throw Compiler.unknownName(name, globals, source, at) }
        return values[slot]
      }
    }
  }

  static func unknownName(_ name: String, _ globals: Globals, _ source: SourceInfo, _ at: SourceLocation) -> Diagnostic {
    var message = "unknown name '\(name)'"
    if let near = Spelling.nearest(name, in: globals.definedNames) { message += "; did you mean '\(near)'?" }
    return source.error(.unknownName, message, at)
  }

  @inline(__always) static func cell(_ v: Value) -> Cell {
    guard case .host(let h) = v else { return Cell(.none) }   // unreachable: boxed slots always hold cells
    return unsafeDowncast(h as AnyObject, to: Cell.self)
  }

  func compileIndexItems(_ items: [IndexItem]) throws -> (UnsafeMutablePointer<Value>) throws -> [IndexValue] {
    enum Part { case single(ExprCode), slice(ExprCode?, ExprCode?, ExprCode?, SourceLocation), ellipsis }
    let parts: [Part] = try items.map {
      switch $0 {
      case .single(let e): return .single(try compileExpr(e))
      case .slice(let a, let b, let c, let at):
        return .slice(try a.map(compileExpr), try b.map(compileExpr), try c.map(compileExpr), at)
      case .ellipsis: return .ellipsis
      }
    }
    let source = self.source
    return { fp in
      var out: [IndexValue] = []
      out.reserveCapacity(parts.count)
      for part in parts {
        switch part {
        case .single(let c): out.append(.single(try c(fp)))
        case .ellipsis: out.append(.ellipsis)
        case .slice(let a, let b, let c, let at):
          func bound(_ code: ExprCode?) throws -> Int? {
            guard let code else { return nil }
            switch try code(fp) {
            case .int(let i): return i
            case .none: return nil
            case let v: throw source.error(.type, "slice bounds must be ints, got \(v.typeName)", at)
            }
          }
          out.append(.slice(try bound(a), try bound(b), try bound(c)))
        }
      }
      return out
    }
  }

  // MARK: - Operators

  func compileBinary(_ op: BinaryOperator, _ l: Expr, _ r: Expr, _ at: SourceLocation) throws -> ExprCode {
    let source = self.source
    // Operand specialisation: a local and an int constant (`n - 1`, `i < 10`) skip one closure call.
    if case .name(let name, _) = l, case .local(let v) = try resolve(name), !v.boxed, case .integer(let c, _) = r {
      let slot = v.slot
      let constant = Value.int(c)
      switch op {
      case .add:
        return { fp in
          if case .int(let x) = fp[slot] { let (s, o) = x.addingReportingOverflow(c); if !o { return .int(s) } }
          do { return try Value.binary(op, fp[slot], constant) } catch { throw source.locate(error, at) }
        }
      case .subtract:
        return { fp in
          if case .int(let x) = fp[slot] { let (s, o) = x.subtractingReportingOverflow(c); if !o { return .int(s) } }
          do { return try Value.binary(op, fp[slot], constant) } catch { throw source.locate(error, at) }
        }
      case .less:
        return { fp in
          if case .int(let x) = fp[slot] { return .bool(x < c) }
          do { return try Value.binary(op, fp[slot], constant) } catch { throw source.locate(error, at) }
        }
      default: break
      }
    }
    let lhs = try compileExpr(l), rhs = try compileExpr(r)
    switch op {
    case .add:
      return { fp in
        let a = try lhs(fp), b = try rhs(fp)
        if case .int(let x) = a, case .int(let y) = b { let (s, o) = x.addingReportingOverflow(y); if !o { return .int(s) } }
        if case .float(let x) = a, case .float(let y) = b { return .float(x + y) }
        do { return try Value.binary(op, a, b) } catch { throw source.locate(error, at) }
      }
    case .subtract:
      return { fp in
        let a = try lhs(fp), b = try rhs(fp)
        if case .int(let x) = a, case .int(let y) = b { let (s, o) = x.subtractingReportingOverflow(y); if !o { return .int(s) } }
        do { return try Value.binary(op, a, b) } catch { throw source.locate(error, at) }
      }
    case .multiply:
      return { fp in
        let a = try lhs(fp), b = try rhs(fp)
        if case .int(let x) = a, case .int(let y) = b { let (s, o) = x.multipliedReportingOverflow(by: y); if !o { return .int(s) } }
        if case .float(let x) = a, case .float(let y) = b { return .float(x * y) }
        do { return try Value.binary(op, a, b) } catch { throw source.locate(error, at) }
      }
    case .less, .lessEqual, .greater, .greaterEqual:
      return { fp in
        let a = try lhs(fp), b = try rhs(fp)
        if case .int(let x) = a, case .int(let y) = b {
          switch op {
          case .less: return .bool(x < y)
          case .lessEqual: return .bool(x <= y)
          case .greater: return .bool(x > y)
          default: return .bool(x >= y)
          }
        }
        do { return try Value.binary(op, a, b) } catch { throw source.locate(error, at) }
      }
    case .equal:
      return { fp in
        let a = try lhs(fp), b = try rhs(fp)
        if case .int(let x) = a, case .int(let y) = b { return .bool(x == y) }
        do { return try Value.binary(op, a, b) } catch { throw source.locate(error, at) }
      }
    default:
      return { fp in
        let a = try lhs(fp), b = try rhs(fp)
        do { return try Value.binary(op, a, b) } catch { throw source.locate(error, at) }
      }
    }
  }

  // MARK: - Functions

  /// `selfName`: a local function's own name. Its body then reaches itself through a slot filled at each call
  /// instead of capturing the cell it is stored in: that capture would be a reference cycle (cell → function →
  /// cell) and leak the function on every call of the function that declares it.
  func compileFunction(_ decl: FunctionDecl, selfName: String? = nil) throws -> ExprCode {
    let defaults: [ExprBox?] = try decl.parameters.map { p in try p.defaultValue.map { ExprBox(try compileExpr($0)) } }
    let inner = Scope(parent: scope, isTopLevel: false,
                      boxedNames: NameAnalysis.boxedNames(parameters: decl.parameters.map(\.name) + (selfName.map { [$0] } ?? []),
                                                          body: decl.body))
    var boxedParameters: [Int] = []
    for p in decl.parameters {
      let v = LocalVariable(slot: inner.newSlot(), mutable: true, boxed: inner.boxedNames.contains(p.name), location: p.location)
      inner.blocks[0][p.name] = v
      if v.boxed { boxedParameters.append(v.slot) }
    }
    var selfSlot: (slot: Int, boxed: Bool)? = nil
    if let selfName, inner.blocks[0][selfName] == nil, NameAnalysis.mentions(selfName, in: decl.body) {
      let v = LocalVariable(slot: inner.newSlot(), mutable: false, boxed: inner.boxedNames.contains(selfName),
                            location: decl.location)
      inner.blocks[0][selfName] = v
      selfSlot = (v.slot, v.boxed)
    }
    let outer = scope
    scope = inner
    defer { scope = outer }
    let code = try compileBlock(decl.body)
    let name = decl.name ?? "lambda"
    let body = CompiledBody(frameSize: inner.frameSize, captureSlots: inner.captureSlots,
                            boxedParameterSlots: boxedParameters, selfSlot: selfSlot, code: code, sourceName: source.name)
    let sources = inner.captureSources
    let names = decl.parameters.map(\.name)
    let (doc, example) = decl.name == nil ? ("", "") : docComment(above: decl.location.line)
    if defaults.allSatisfy({ $0 == nil }) {
      let specs = names.map { ParameterSpec($0) }
      return { fp in
        .function(Function(name: name, parameters: specs, body: body, captures: sources.map { Compiler.cell(fp[$0]) },
                           doc: doc, example: example))
      }
    }
    return { fp in
      var specs: [ParameterSpec] = []
      for (n, d) in zip(names, defaults) { specs.append(ParameterSpec(n, default: try d.map { try $0.code(fp) })) }
      return .function(Function(name: name, parameters: specs, body: body, captures: sources.map { Compiler.cell(fp[$0]) },
                                doc: doc, example: example))
    }
  }

  /// The `#` comment lines right above line `line`: the doc, and an `# example:` line if there is one.
  func docComment(above line: Int) -> (String, String) {
    let lines = source.lines
    var i = line - source.firstLine - 1
    // Quick test on bytes first: most functions have no comment above them.
    guard i >= 0, i < lines.count, lines[i].utf8.contains(UInt8(ascii: "#")) else { return ("", "") }
    var docLines: [String] = [], example = ""
    while i >= 0 && i < lines.count {
      let text = lines[i].trimmingCharacters(in: .whitespaces)
      guard text.hasPrefix("#") else { break }
      let body = text.dropFirst().trimmingCharacters(in: .whitespaces)
      if body.hasPrefix("example:") { example = body.dropFirst("example:".count).trimmingCharacters(in: .whitespaces) }
      else { docLines.insert(body, at: 0) }
      i -= 1
    }
    return (docLines.joined(separator: " "), example)
  }
}
