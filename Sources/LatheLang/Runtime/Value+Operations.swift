// Printing, equality, arithmetic, comparison and indexing of values.

import Foundation

public enum Limits {
  /// The most elements one list, string repetition or range materialisation may hold: errors, not allocations.
  nonisolated(unsafe) public static var maxElements = 1 << 26
}

extension Value: CustomStringConvertible {
  /// How `print` shows a value: strings bare, everything else as `display`.
  public var description: String {
    if case .string(let s) = self { return s }
    return display
  }

  /// The exact form: strings quoted, every element of every list, floats in their shortest round-trip digits, so
  /// reading it back gives the same value (`repr(x)`).
  public var repr: String {
    var out = ""
    write(to: &out, depth: 0, summarise: false)
    return out
  }

  /// How the REPL and `print` show a value: as `repr`, except that long lists of numbers are summarised
  /// (`[2.31, 2.28, 2.26, … 444 values …, 0.15, 0.14, 0.14]`) and a record holding a table or other multi-line
  /// value puts one field on each line, the table under its name.
  public var display: String {
    var out = ""
    write(to: &out, depth: 0, summarise: true)
    return out
  }

  /// Lists of more numbers than this print summarised in `display`.
  static let summaryThreshold = 24

  private func write(to out: inout String, depth: Int, summarise: Bool) {
    if out.utf8.count > 100_000 { out += "..."; return }
    switch self {
    case .none: out += "none"
    case .bool(let b): out += b ? "true" : "false"
    case .int(let i): out += String(i)
    case .float(let d): out += Value.format(d)
    case .string(let s): out += Value.quote(s)
    case .list(let xs):
      if depth > 32 { out += "[...]"; return }
      if summarise, xs.count > Value.summaryThreshold, xs.allSatisfy({ $0.asDouble != nil }) {
        let edge = 3
        let shown = { (v: Value) -> String in
          if case .float(let d) = v, d.isFinite, d != d.rounded() { return String(format: "%.4g", d) }
          return v.repr
        }
        out += "[" + xs.prefix(edge).map(shown).joined(separator: ", ") + ", … \(xs.count - 2 * edge) values …, "
          + xs.suffix(edge).map(shown).joined(separator: ", ") + "]"
        return
      }
      out += "["
      for (i, x) in xs.enumerated() {
        if i > 0 { out += ", " }
        if i >= 1000 { out += "... \(xs.count - i) more"; break }
        x.write(to: &out, depth: depth + 1, summarise: summarise)
      }
      out += "]"
    case .record(let r):
      if depth > 32 { out += "{...}"; return }
      if r.fields.isEmpty { out += "{}"; return }
      let rendered = r.fields.map { f -> (String, String) in
        var v = ""
        f.value.write(to: &v, depth: depth + 1, summarise: summarise)
        return (Value.isPlainName(f.name) ? f.name : Value.quote(f.name), v)
      }
      let oneLine = "{" + rendered.map { "\($0.0): \($0.1)" }.joined(separator: ", ") + "}"
      guard summarise, oneLine.contains("\n") || oneLine.count > 120 else { out += oneLine; return }
      // One field a line; a multi-line value (a table) starts on the next line, indented under its name.
      out += "{" + rendered.map { name, v in
        v.contains("\n") ? name + ":\n" + v.split(separator: "\n", omittingEmptySubsequences: false).map { "   " + $0 }.joined(separator: "\n")
          : name + ": " + v
      }.joined(separator: "\n ") + "}"
    case .range(let r):
      if r.step == 1 { out += "\(r.start)..<\(r.end)" } else { out += "range(\(r.start), \(r.end), \(r.step))" }
    case .function(let f): out += f.signature
    case .host(let h): out += h.description
    }
  }

  /// `repr` cut to 40 characters, for error messages.
  public var brief: String {
    let r = repr
    return r.count > 40 ? String(r.prefix(37)) + "..." : r
  }

  static func isPlainName(_ s: String) -> Bool {
    guard let first = s.unicodeScalars.first, first == "_" || (first.isASCII && first.properties.isAlphabetic) else { return false }
    return s.unicodeScalars.allSatisfy { $0 == "_" || ($0.isASCII && ($0.properties.isAlphabetic || ("0"..."9").contains($0))) }
  }

  /// Shortest round-trip form, always with a '.' or exponent so floats read back as floats.
  public static func format(_ d: Double) -> String {
    if d.isNaN { return "nan" }
    if d.isInfinite { return d < 0 ? "-inf" : "inf" }
    return d.description
  }

  public static func quote(_ s: String) -> String {
    var out = "\""
    for scalar in s.unicodeScalars {
      switch scalar {
      case "\"": out += "\\\""
      case "\\": out += "\\\\"
      case "\n": out += "\\n"
      case "\t": out += "\\t"
      case "\r": out += "\\r"
      default:
        if scalar.value < 0x20 || scalar.value == 0x7F { out += "\\u{\(String(scalar.value, radix: 16))}" }
        else { out.unicodeScalars.append(scalar) }
      }
    }
    return out + "\""
  }

  static func materialize(_ r: RangeValue) throws -> [Value] {
    let n = r.count
    guard n <= Limits.maxElements else { throw LatheError("range of \(n) elements is too large to make a list (limit \(Limits.maxElements))", kind: .limit) }
    var out: [Value] = []
    out.reserveCapacity(n)
    for i in 0..<n { out.append(.int(r.element(i))) }
    return out
  }
}

extension Value {
  /// Structural equality; ints and floats compare by value. Nested lists and records are walked with an explicit
  /// stack, so a list nested a million deep compares without touching the call stack's depth.
  public static func equal(_ a: Value, _ b: Value) -> Bool {
    switch (a, b) {
    case (.list, .list), (.record, .record): break
    default: return shallowEqual(a, b)           // no stack to allocate for scalars, strings and host values
    }
    var pending: [(Value, Value)] = [(a, b)]
    while let (x, y) = pending.popLast() {
      switch (x, y) {
      case (.list(let p), .list(let q)):
        guard p.count == q.count else { return false }
        for i in stride(from: p.count - 1, through: 0, by: -1) { pending.append((p[i], q[i])) }
      case (.record(let p), .record(let q)):
        guard p.fields.count == q.fields.count else { return false }
        for f in p.fields.reversed() {
          guard let other = q[f.name] else { return false }
          pending.append((f.value, other))
        }
      default:
        if !shallowEqual(x, y) { return false }
      }
    }
    return true
  }

  /// Equality of two values that are not both lists or both records.
  private static func shallowEqual(_ a: Value, _ b: Value) -> Bool {
    switch (a, b) {
    case (.none, .none): return true
    case (.bool(let x), .bool(let y)): return x == y
    case (.int(let x), .int(let y)): return x == y
    case (.float(let x), .float(let y)): return x == y
    case (.int(let x), .float(let y)): return Double(x) == y
    case (.float(let x), .int(let y)): return x == Double(y)
    case (.string(let x), .string(let y)): return x == y
    case (.range(let x), .range(let y)): return x.start == y.start && x.end == y.end && x.step == y.step
    case (.function(let x), .function(let y)): return x === y
    case (.host(let x), .host(let y)): return x.isEqual(to: y)
    default: return false
    }
  }

  /// `<`-style ordering of numbers, strings and lists of them (lexicographic, walked with an explicit stack);
  /// other pairs are a type error.
  static func compare(_ a: Value, _ b: Value, _ op: BinaryOperator) throws -> Int {
    guard case .list(let first) = a, case .list(let second) = b else { return try compareScalars(a, b, op) }
    var stack: [(x: [Value], y: [Value], i: Int)] = [(first, second, 0)]
    while let (x, y, i) = stack.last {
      if i == Swift.min(x.count, y.count) {
        stack.removeLast()
        if x.count != y.count { return x.count < y.count ? -1 : 1 }
        continue
      }
      stack[stack.count - 1].i += 1
      if case .list(let p) = x[i], case .list(let q) = y[i] { stack.append((p, q, 0)); continue }
      let c = try compareScalars(x[i], y[i], op)
      if c != 0 { return c }
    }
    return 0
  }

  private static func compareScalars(_ a: Value, _ b: Value, _ op: BinaryOperator) throws -> Int {
    switch (a, b) {
    case (.int(let x), .int(let y)): return x < y ? -1 : (x > y ? 1 : 0)
    case (.int, .float), (.float, .int), (.float, .float):
      let x = a.asDouble ?? 0, y = b.asDouble ?? 0
      if x.isNaN || y.isNaN { return 2 }   // unordered: every comparison false
      return x < y ? -1 : (x > y ? 1 : 0)
    case (.string(let x), .string(let y)): return x < y ? -1 : (x > y ? 1 : 0)
    default:
      throw LatheError("cannot compare \(a.typeName) and \(b.typeName) with '\(op.rawValue)'", kind: .type)
    }
  }

  public var asDouble: Double? {
    switch self {
    case .int(let i): return Double(i)
    case .float(let d): return d
    default: return nil
    }
  }

  /// Every binary operator; the evaluator's int fast paths come first and call this for everything else.
  public static func binary(_ op: BinaryOperator, _ a: Value, _ b: Value) throws -> Value {
    if case .host(let h) = a, let r = try h.binary(op, b, hostOnLeft: true) { return r }
    if case .host(let h) = b, let r = try h.binary(op, a, hostOnLeft: false) { return r }
    switch op {
    case .equal: return .bool(equal(a, b))
    case .notEqual: return .bool(!equal(a, b))
    case .less: let c = try compare(a, b, op); return .bool(c == -1)
    case .lessEqual: let c = try compare(a, b, op); return .bool(c == -1 || c == 0)
    case .greater: let c = try compare(a, b, op); return .bool(c == 1)
    case .greaterEqual: let c = try compare(a, b, op); return .bool(c == 1 || c == 0)
    case .contains: return .bool(try contains(b, a))
    case .matmul:
      throw LatheError("'@' is matrix multiplication: it needs tensors, got \(a.typeName) and \(b.typeName)", kind: .type)
    default: break
    }
    switch (a, b) {
    case (.int(let x), .int(let y)): return try intArithmetic(op, x, y)
    case (.int, .float), (.float, .int), (.float, .float):
      return try floatArithmetic(op, a.asDouble ?? 0, b.asDouble ?? 0)
    case (.string(let x), .string(let y)) where op == .add:
      guard x.utf8.count + y.utf8.count <= Limits.maxElements else { throw LatheError("string too long", kind: .limit) }
      return .string(x + y)
    case (.string(let s), .int(let n)) where op == .multiply: return .string(try repeatString(s, n))
    case (.int(let n), .string(let s)) where op == .multiply: return .string(try repeatString(s, n))
    case (.list(let x), .list(let y)) where op == .add:
      guard x.count + y.count <= Limits.maxElements else { throw LatheError("list too long", kind: .limit) }
      return .list(x + y)
    case (.list(let x), .int(let n)) where op == .multiply: return .list(try repeatList(x, n))
    case (.int(let n), .list(let x)) where op == .multiply: return .list(try repeatList(x, n))
    case (.record(var x), .record(let y)) where op == .add:
      for f in y.fields { x[f.name] = f.value }     // right side wins, like a dictionary merge
      return .record(x)
    default:
      if op == .matmul {
        throw LatheError("'@' is matrix multiplication: it needs tensors, got \(a.typeName) and \(b.typeName)", kind: .type)
      }
      throw LatheError("cannot apply '\(op.rawValue)' to \(a.typeName) and \(b.typeName)", kind: .type)
    }
  }

  static func intArithmetic(_ op: BinaryOperator, _ x: Int, _ y: Int) throws -> Value {
    func overflow() -> LatheError { LatheError("integer overflow in \(x) \(op.rawValue) \(y)") }
    switch op {
    case .add: let (r, o) = x.addingReportingOverflow(y); if o { throw overflow() }; return .int(r)
    case .subtract: let (r, o) = x.subtractingReportingOverflow(y); if o { throw overflow() }; return .int(r)
    case .multiply: let (r, o) = x.multipliedReportingOverflow(by: y); if o { throw overflow() }; return .int(r)
    case .divide:
      guard y != 0 else { throw LatheError("division by zero in \(x) / \(y)") }
      return .float(Double(x) / Double(y))
    case .floorDivide:
      guard y != 0 else { throw LatheError("division by zero in \(x) // \(y)") }
      let (q, o) = x.dividedReportingOverflow(by: y)
      if o { throw overflow() }
      return .int((x % y != 0 && (x < 0) != (y < 0)) ? q - 1 : q)
    case .modulo:
      guard y != 0 else { throw LatheError("division by zero in \(x) % \(y)") }
      let (r, o) = x.remainderReportingOverflow(dividingBy: y)
      if o { return .int(0) }
      return .int(r != 0 && (r < 0) != (y < 0) ? r + y : r)
    case .power:
      if y < 0 { return .float(pow(Double(x), Double(y))) }
      var result = 1, base = x, e = y
      while e > 0 {
        if e & 1 == 1 { let (r, o) = result.multipliedReportingOverflow(by: base); if o { throw overflow() }; result = r }
        e >>= 1
        if e > 0 { let (b, o) = base.multipliedReportingOverflow(by: base); if o { throw overflow() }; base = b }
      }
      return .int(result)
    default: throw LatheError("cannot apply '\(op.rawValue)' to int and int", kind: .type)
    }
  }

  static func floatArithmetic(_ op: BinaryOperator, _ x: Double, _ y: Double) throws -> Value {
    switch op {
    case .add: return .float(x + y)
    case .subtract: return .float(x - y)
    case .multiply: return .float(x * y)
    case .divide:
      guard y != 0 else { throw LatheError("division by zero in \(format(x)) / \(format(y))") }
      return .float(x / y)
    case .floorDivide:
      guard y != 0 else { throw LatheError("division by zero in \(format(x)) // \(format(y))") }
      return .float((x / y).rounded(.down))
    case .modulo:
      guard y != 0 else { throw LatheError("division by zero in \(format(x)) % \(format(y))") }
      let r = fmod(x, y)
      return .float(r != 0 && (r < 0) != (y < 0) ? r + y : r)
    case .power: return .float(pow(x, y))
    default: throw LatheError("cannot apply '\(op.rawValue)' to float and float", kind: .type)
    }
  }

  static func repeatString(_ s: String, _ n: Int) throws -> String {
    guard n > 0 else { return "" }
    let (total, o) = s.utf8.count.multipliedReportingOverflow(by: n)
    guard !o, total <= Limits.maxElements else { throw LatheError("string repetition of \(n) copies is too large (limit \(Limits.maxElements) bytes)", kind: .limit) }
    return String(repeating: s, count: n)
  }

  static func repeatList(_ xs: [Value], _ n: Int) throws -> [Value] {
    guard n > 0 else { return [] }
    let (total, o) = xs.count.multipliedReportingOverflow(by: n)
    guard !o, total <= Limits.maxElements else { throw LatheError("list repetition of \(n) copies is too large (limit \(Limits.maxElements) elements)", kind: .limit) }
    var out: [Value] = []
    out.reserveCapacity(total)
    for _ in 0..<n { out.append(contentsOf: xs) }
    return out
  }

  static func contains(_ container: Value, _ item: Value) throws -> Bool {
    switch container {
    case .list(let xs): return xs.contains { equal($0, item) }
    case .string(let s):
      guard case .string(let sub) = item else { throw LatheError("'in' on a string needs a string on the left, got \(item.typeName)", kind: .type) }
      return sub.isEmpty || s.contains(sub)
    case .record(let r):
      guard case .string(let key) = item else { throw LatheError("'in' on a record needs a field name string, got \(item.typeName)", kind: .type) }
      return r[key] != nil
    case .range(let r):
      guard case .int(let i) = item else { return false }
      return r.contains(i)
    default: throw LatheError("'in' needs a list, string, record or range on the right, got \(container.typeName)", kind: .type)
    }
  }

  static func unary(_ op: UnaryOperator, _ v: Value) throws -> Value {
    if case .host(let h) = v, let r = try h.unary(op) { return r }
    switch (op, v) {
    case (.negate, .int(let i)):
      guard i != Int.min else { throw LatheError("integer overflow in -(\(i))") }
      return .int(-i)
    case (.negate, .float(let d)): return .float(-d)
    case (.plus, .int), (.plus, .float): return v
    case (.not, .bool(let b)): return .bool(!b)
    case (.not, _):
      if let b = try v.conditionValue() { return .bool(!b) }
      throw LatheError("'!' needs a bool, got \(v.typeName)", kind: .type)
    default: throw LatheError("cannot apply unary '\(op.rawValue)' to \(v.typeName)", kind: .type)
    }
  }
}
