// The compiler, continued: calls (positional fast path, labels, methods), assignment targets and members.

extension Compiler {
  /// List methods that change the list they are called on: `xs.append(4)` updates the variable `xs`.
  static let mutatingListMethods: Set<String> = ["append", "extend", "insert", "pop", "clear", "sort", "reverse"]

  func compileCall(_ callee: Expr, _ arguments: [Argument], _ at: SourceLocation) throws -> ExprCode {
    if case .member(let baseExpr, let name, let memberAt) = callee {
      return try compileMethodCall(baseExpr, name, arguments, at: memberAt)
    }
    let function = try compileExpr(callee)
    let codes = try arguments.map { ExprBox(try compileExpr($0.value)) }
    let labels = arguments.map(\.label)
    let interp = self.interp
    let source = self.source
    if labels.allSatisfy({ $0 == nil }) {
      let count = codes.count
      // A global callee (`fib(n - 1)`) is read straight from its slot.
      var globalCallee = -1
      if case .name(let name, _) = callee, case .global(let slot) = try resolve(name) { globalCallee = slot }
      // Everything the slow paths need lives in one object, so the closures below capture two or three things:
      // a closure's context is unpacked on every call, and a smaller one is cheaper.
      let site = CallSite(interp: interp, source: source, at: at, globalSlot: globalCallee, function: function,
                          codes: codes, labels: labels)
      // Direct path: a compiled function taking exactly these positionals gets them straight in its frame.
      // One closure per arity, with each argument's code in its own constant (no array of closures on this path).
      switch count {
      case 0:
        return { fp in
          let fn = try site.callee(fp)
          guard fn.directArity == 0 else { return try site.general(fn, fp) }
          let frame = interp.top
          guard frame + fn.frameSize < interp.stackLimit else { throw site.overflow() }
          return try interp.enter(fn, frame, at, source)
        }
      case 1:
        let a0 = codes[0].code
        // `f(n - 1)`: a local plus or minus an int constant is computed here, without calling its closure.
        if case .binary(let op, .name(let argName, _), .integer(let c, _), _) = arguments[0].value,
           op == .add || (op == .subtract && c != Int.min),
           case .local(let v) = try resolve(argName), !v.boxed {
          let slot = v.slot, delta = op == .add ? c : -c
          return { fp in
            let fn = try site.callee(fp)
            guard fn.directArity == 1 else { return try site.general(fn, fp) }
            let frame = interp.top
            guard frame + fn.frameSize < interp.stackLimit else { throw site.overflow() }
            let v0: Value
            if case .int(let x) = fp[slot], case (let r, false) = x.addingReportingOverflow(delta) { v0 = .int(r) }
            else { v0 = try a0(fp) }
            (frame + 1).initialize(to: v0)
            return try interp.enter(fn, frame, at, source)
          }
        }
        return { fp in
          let fn = try site.callee(fp)
          guard fn.directArity == 1 else { return try site.general(fn, fp) }
          let frame = interp.top
          guard frame + fn.frameSize < interp.stackLimit else { throw site.overflow() }
          let v0 = try a0(fp)
          (frame + 1).initialize(to: v0)        // slots above `top` always hold none: nothing to release
          return try interp.enter(fn, frame, at, source)
        }
      case 2:
        let a0 = codes[0].code, a1 = codes[1].code
        return { fp in
          let fn = try site.callee(fp)
          guard fn.directArity == 2 else { return try site.general(fn, fp) }
          let frame = interp.top
          guard frame + fn.frameSize < interp.stackLimit else { throw site.overflow() }
          let v0 = try a0(fp), v1 = try a1(fp)   // held here, so calls inside them may use the frame's space
          (frame + 1).initialize(to: v0)        // slots above `top` always hold none: nothing to release
          (frame + 2).initialize(to: v1)
          return try interp.enter(fn, frame, at, source)
        }
      default:
        return { fp in
          let fn = try site.callee(fp)
          guard fn.directArity == count else { return try site.general(fn, fp) }
          let frame = interp.top
          guard frame + fn.frameSize < interp.stackLimit else { throw site.overflow() }
          interp.top = frame + 1
          do {
            for c in codes {
              let v = try c.code(fp)
              interp.top.pointee = v
              interp.top += 1
            }
          } catch {
            frame.update(repeating: .none, count: interp.top - frame)
            interp.top = frame
            throw error
          }
          return try interp.enter(fn, frame, at, source)
        }
      }
    }
    return { fp in
      let f = try function(fp)
      guard case .function(let fn) = f else {
        throw source.error(.type, Compiler.notCallable(f), at)
      }
      var values: [Value] = []
      values.reserveCapacity(codes.count)
      for c in codes { values.append(try c.code(fp)) }
      return try interp.call(fn, values, labels: labels, at: at, source: source)
    }
  }



  /// `x.name(args)`: a record's function field, a host object's method, a list's mutating method, or else the
  /// global function `name(x, args)` (so `t.reshape([2, 3])` is `reshape(t, [2, 3])`).
  func compileMethodCall(_ baseExpr: Expr, _ name: String, _ arguments: [Argument], at: SourceLocation) throws -> ExprCode {
    let codes = try arguments.map { ExprBox(try compileExpr($0.value)) }
    let labels = arguments.map(\.label)
    let interp = self.interp
    let source = self.source
    let globalSlot = try self.globalSlot(name)
    let globals = interp.globals

    func evaluateArguments(_ fp: UnsafeMutablePointer<Value>) throws -> [Value] {
      var values: [Value] = []
      values.reserveCapacity(codes.count)
      for c in codes { values.append(try c.code(fp)) }
      return values
    }
    /// Calls `receiver.name(values)` for a receiver that is not a list being mutated.
    func dispatch(_ receiver: Value, _ values: [Value]) throws -> Value {
      switch receiver {
      case .record(let r):
        if let field = r[name] {
          guard case .function(let fn) = field else {
            throw source.error(.type, "field '\(name)' is \(field.typeName), not a function", at)
          }
          return try interp.call(fn, values, labels: labels, at: at, source: source)
        }
      case .host(let h):
        let member: Value?
        do { member = try h.member(name) } catch { throw source.locate(error, at) }
        if case .function(let fn)? = member { return try interp.call(fn, values, labels: labels, at: at, source: source) }
      default: break
      }
      guard globals.defined[globalSlot], case .function(let fn) = globals.values[globalSlot] else {
        throw source.error(.unknownName, "\(receiver.typeName) has no method '\(name)'", at)
      }
      return try interp.call(fn, [receiver] + values, labels: [nil] + labels, at: at, source: source)
    }

    var constantError: Diagnostic? = nil
    if Compiler.mutatingListMethods.contains(name) {
      do {
        let target = try compileLValue(baseExpr, forMethod: name)
        // `xs.append(v)` on a local list, the most common line in a loop that builds a result: in place, no
        // argument array, no lookup by method name.
        if name == "append", arguments.count == 1, arguments[0].label == nil,
           case .name(let listName, _) = baseExpr, case .local(let v) = try resolve(listName), !v.boxed, v.mutable {
          let slot = v.slot
          let value = try compileExpr(arguments[0].value)
          return { fp in
            let item = try value(fp)
            if case .list(var xs) = fp[slot], xs.count < Limits.maxElements {
              fp[slot] = .none                    // xs is now the only reference: append does not copy
              xs.append(item)
              fp[slot] = .list(xs)
              return .none
            }
            var result = Value.none
            try target(fp) { receiver in result = try dispatch(receiver, [item]) }
            return result
          }
        }
        return { fp in
          let values = try evaluateArguments(fp)
          var result = Value.none
          try target(fp) { receiver in
            if case .list(var xs) = receiver {
              receiver = .none                    // keep the list uniquely referenced while it changes
              defer { receiver = .list(xs) }
              do { result = try ListMethods.apply(name, &xs, values, labels, interp) } catch { throw source.locate(error, at) }
            } else {
              result = try dispatch(receiver, values)
            }
          }
          return result
        }
      } catch let d as Diagnostic where d.kind == .type {
        constantError = d                         // `let xs = [1]; xs.append(2)` is an error, not a silent copy
      } catch {}
    }
    let base = try compileExpr(baseExpr)
    return { fp in
      let receiver = try base(fp)
      if let constantError, case .list = receiver { throw constantError }
      return try dispatch(receiver, try evaluateArguments(fp))
    }
  }

  static func notCallable(_ f: Value) -> String {
    if case .none = f { return "none is not callable" }
    return "\(f.typeName) \(f.brief) is not callable"
  }

  // MARK: - Assignment

  typealias LValueCode = (UnsafeMutablePointer<Value>, (inout Value) throws -> Void) throws -> Void

  func compileAssignment(_ target: Expr, _ op: BinaryOperator?, _ valueExpr: Expr, _ at: SourceLocation) throws -> StmtCode {
    let value = try compileExpr(valueExpr)
    let source = self.source
    // Fast paths for plain locals: `x = e`, `x += e`.
    if case .name(let name, let nameAt) = target, case .local(let v) = try resolve(name), !v.boxed {
      guard v.mutable else { throw constantError(name, v.location, nameAt) }
      let slot = v.slot
      guard let op else { return { fp in Value.store(try value(fp), into: &fp[slot]); return .normal } }
      if op == .add {
        return { fp in
          let r = try value(fp)
          if case .int(let x) = fp[slot], case .int(let y) = r {
            let (s, o) = x.addingReportingOverflow(y)
            if !o { fp[slot] = .int(s); return .normal }
          }
          do { Value.store(try Value.binary(.add, fp[slot], r), into: &fp[slot]) } catch { throw source.locate(error, at) }
          return .normal
        }
      }
      return { fp in
        let r = try value(fp)
        do { Value.store(try Value.binary(op, fp[slot], r), into: &fp[slot]) } catch { throw source.locate(error, at) }
        return .normal
      }
    }
    let lvalue = try compileLValue(target, forMethod: nil)
    return { fp in
      let r = try value(fp)
      try lvalue(fp) { current in
        if let op {
          do { Value.store(try Value.binary(op, current, r), into: &current) } catch { throw source.locate(error, at) }
        } else {
          Value.store(r, into: &current)
        }
      }
      return .normal
    }
  }

  func constantError(_ name: String, _ declared: SourceLocation, _ at: SourceLocation) -> Diagnostic {
    error(.type, "cannot assign to '\(name)': it is a constant (declared at \(declared)); declare it with 'var' to change it", at)
  }

  /// Code that hands the current value of `target` to a modifier and stores what the modifier leaves.
  func compileLValue(_ target: Expr, forMethod method: String?) throws -> LValueCode {
    let source = self.source
    switch target {
    case .name(let name, let at):
      switch try resolve(name) {
      case .local(let v):
        guard v.mutable else { throw constantError(name, v.location, at) }
        let slot = v.slot
        if v.boxed {
          return { fp, modify in
            let cell = Compiler.cell(fp[slot])
            var current = cell.value
            cell.value = .none
            defer { cell.value = current }
            try modify(&current)
          }
        }
        return { fp, modify in
          var current = fp[slot]
          fp[slot] = .none
          defer { fp[slot] = current }
          try modify(&current)
        }
      case .global(let slot):
        let globals = interp.globals
        let message = "cannot assign to '\(name)': it is a constant; use 'var' to change it"
        if globals.defined[slot] && !globals.mutable[slot] && method == nil { throw error(.type, message, at) }
        return { fp, modify in
          guard globals.defined[slot] else { throw Compiler.unknownName(name, globals, source, at) }
          guard globals.mutable[slot] else {
            // A method call on a constant may still be fine (a record's function field); changing a list is not.
            var copy = globals.values[slot]
            if method == nil { throw source.error(.type, message, at) }
            if case .list = copy { throw source.error(.type, message, at) }
            try modify(&copy)
            return
          }
          var current = globals.values[slot]
          globals.values[slot] = .none
          defer { globals.values[slot] = current }
          try modify(&current)
        }
      }
    case .member(let baseExpr, let name, let at):
      let base = try compileLValue(baseExpr, forMethod: method)
      return { fp, modify in
        try base(fp) { container in
          guard case .record(var r) = container else {
            throw source.error(.type, "cannot set member '\(name)' of \(container.typeName)", at)
          }
          let position = r.fields.firstIndex(where: { $0.name == name })
          if position == nil && method != nil { throw source.error(.runtime, Value.missingField(name, in: r), at) }
          // `r` alone holds the record, and `field` alone the field's value (moved out, none in its place), so
          // both change in place and the value the assignment replaces is released without recursion.
          container = Value.none
          var field = Value.none                        // assignment may add a field
          if let position { swap(&field, &r.fields[position].value) }
          defer { r[name] = field; container = .record(r) }
          try modify(&field)
        }
      }
    case .index(let baseExpr, let items, let at):
      let base = try compileLValue(baseExpr, forMethod: method)
      let index = try compileIndexItems(items)
      return { fp, modify in
        let i = try index(fp)
        try base(fp) { container in
          do {
            // `r["new"] = v` adds a field, as `r.new = v` does.
            var element: Value
            if method == nil, case .record(let r) = container, i.count == 1, case .single(.string(let key)) = i[0], r[key] == nil {
              element = .none
            } else {
              element = try container.index(i)
            }
            try modify(&element)
            try container.setIndex(i, to: element)
          } catch { throw source.locate(error, at) }
        }
      }
    default:
      throw error(.syntax, "cannot assign to this expression", target.location)
    }
  }
}

/// Members read with `x.name`: record fields, host members, and `count` of lists, strings and ranges.
public enum Members {
  /// The names `x.name` reads on `value` (and the list methods on a list), for `members(x)` and Tab.
  public static func names(of value: Value) -> [String] {
    switch value {
    case .record(let r): return r.names
    case .host(let h): return h.memberNames
    case .list: return ["count"] + Compiler.mutatingListMethods.sorted()
    case .string, .range: return ["count"]
    case .function: return ["name"]
    default: return []
    }
  }

  static func get(_ value: Value, _ name: String) throws -> Value {
    switch value {
    case .record(let r):
      guard let v = r[name] else { throw LatheError(Value.missingField(name, in: r)) }
      return v
    case .host(let h):
      if let v = try h.member(name) { return v }
      var message = "\(h.typeName) has no member '\(name)'"
      if let near = Spelling.nearest(name, in: h.memberNames) { message += "; did you mean '\(near)'?" }
      throw LatheError(message)
    case .list(let xs) where name == "count": return .int(xs.count)
    case .string(let s) where name == "count": return .int(s.count)
    case .range(let r) where name == "count": return .int(r.count)
    case .function(let f) where name == "name": return .string(f.name)
    default:
      throw LatheError("\(value.typeName) has no member '\(name)'", kind: .type)
    }
  }
}

/// One positional call site: what its slow paths need (binding, errors, the callee when it is not a global).
final class CallSite {
  unowned(unsafe) let interp: Interpreter
  let source: SourceInfo
  let at: SourceLocation
  let globalSlot: Int
  let globals: Globals
  let function: ExprCode
  let codes: [ExprBox]
  let labels: [String?]

  init(interp: Interpreter, source: SourceInfo, at: SourceLocation, globalSlot: Int, function: @escaping ExprCode,
       codes: [ExprBox], labels: [String?]) {
    self.interp = interp; self.source = source; self.at = at; self.globalSlot = globalSlot
    self.globals = interp.globals; self.function = function; self.codes = codes; self.labels = labels
  }

  @inline(__always) func callee(_ fp: UnsafeMutablePointer<Value>) throws -> Function {
    if globalSlot >= 0, globals.defined[globalSlot], case .function(let fn) = globals.values[globalSlot] { return fn }
    return try calleeSlow(fp)
  }

  @inline(never) func calleeSlow(_ fp: UnsafeMutablePointer<Value>) throws -> Function {
    let f = try function(fp)
    guard case .function(let fn) = f else {
      throw source.error(.type, Compiler.notCallable(f), at)
    }
    return fn
  }

  /// Any positional call that cannot take the direct path: bind, then call.
  @inline(never) func general(_ fn: Function, _ fp: UnsafeMutablePointer<Value>) throws -> Value {
    var values: [Value] = []
    values.reserveCapacity(codes.count)
    for c in codes { values.append(try c.code(fp)) }
    return try interp.call(fn, values, labels: labels, at: at, source: source)
  }

  @inline(never) func overflow() -> Diagnostic {
    source.error(.limit, "stack overflow: calls are nested too deeply", at)
  }
}
