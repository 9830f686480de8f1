// The core builtins: printing, conversion, math, strings, lists, records, randomness, errors, notebook values.

import Foundation

enum CoreBuiltins {
  static func register(into r: BuiltinRegistry) {
    registerBasics(r)
    registerMath(r)
    registerStrings(r)
    registerCollections(r)
    registerSession(r)
  }

  private static func registerBasics(_ r: BuiltinRegistry) {
    r.add("print", [ParameterSpec("values", variadic: true), ParameterSpec("sep", default: .string(" ")),
                    ParameterSpec("end", default: .string("\n"))],
          doc: "Prints values separated by `sep`, then `end`.", example: "print(\"loss\", 0.25, sep: \": \")") { c in
      let values = try c.list(0)
      let text = values.map(\.description).joined(separator: try c.string(1)) + (try c.string(2))
      c.interpreter.output(.stdout, text)
      return .none
    }
    r.add("len", [ParameterSpec("x")], doc: "Number of elements of a list, string, record or range.", example: "len([1, 2, 3])") { c in
      switch c[0] {
      case .list(let xs): return .int(xs.count)
      case .string(let s): return .int(s.count)
      case .record(let rec): return .int(rec.fields.count)
      case .range(let rg): return .int(rg.count)
      case .host(let h): if case .int(let n)? = try h.member("count") { return .int(n) }; fallthrough
      default: throw LatheError("len: \(c[0].typeName) has no length", kind: .type)
      }
    }
    r.add("type", [ParameterSpec("x")], doc: "The type name of a value.", example: "type(1.5)") { c in .string(c[0].typeName) }
    r.add("str", [ParameterSpec("x")], doc: "The value as printed by print().", example: "str(42)") { c in .string(c[0].description) }
    r.add("repr", [ParameterSpec("x")], doc: "The value as the REPL shows it (strings quoted).", example: "repr(\"a\")") { c in .string(c[0].repr) }
    r.add("int", [ParameterSpec("x")], doc: "Converts a number (truncating), bool or numeric string to an int.", example: "int(\"42\")") { c in
      switch c[0] {
      case .int: return c[0]
      case .bool(let b): return .int(b ? 1 : 0)
      case .float(let d):
        guard d.isFinite, d > -9.2e18, d < 9.2e18 else { throw LatheError("int: \(Value.format(d)) does not fit in an int") }
        return .int(Int(d))
      case .string(let s):
        guard let i = Int(s.trimmingCharacters(in: .whitespaces)) else { throw LatheError("int: \(Value.quote(s)) is not an integer") }
        return .int(i)
      default: throw LatheError("int: cannot convert \(c[0].typeName)", kind: .type)
      }
    }
    r.add("float", [ParameterSpec("x")], doc: "Converts a number or numeric string to a float.", example: "float(\"1e-3\")") { c in
      switch c[0] {
      case .int(let i): return .float(Double(i))
      case .float: return c[0]
      case .host(let h) where h.numericValue != nil: return .float(h.numericValue ?? 0)
      case .string(let s):
        guard let d = Double(s.trimmingCharacters(in: .whitespaces)) else { throw LatheError("float: \(Value.quote(s)) is not a number") }
        return .float(d)
      default: throw LatheError("float: cannot convert \(c[0].typeName)", kind: .type)
      }
    }
    r.add("bool", [ParameterSpec("x")], doc: "true for a nonzero number or a nonempty string, list or record.", example: "bool([])") { c in
      switch c[0] {
      case .bool: return c[0]
      case .none: return .bool(false)
      case .int(let i): return .bool(i != 0)
      case .float(let d): return .bool(d != 0)
      case .string(let s): return .bool(!s.isEmpty)
      case .list(let xs): return .bool(!xs.isEmpty)
      case .record(let rec): return .bool(!rec.fields.isEmpty)
      case .range(let rg): return .bool(rg.count > 0)
      default: return .bool(true)
      }
    }
    r.add("range", [ParameterSpec("start"), ParameterSpec("stop", default: Value.none), ParameterSpec("step", default: .int(1))],
          doc: "Integers from start up to stop (exclusive); range(n) is 0..<n.", example: "range(0, 10, 2)") { c in
      var start = try c.int(0), stop: Int
      if c.isNone(1) { stop = start; start = 0 } else { stop = try c.int(1) }
      let step = try c.int(2)
      guard step != 0 else { throw LatheError("range: step cannot be zero") }
      return .range(RangeValue(start: start, end: stop, step: step))
    }
    r.add("error", [ParameterSpec("message")], doc: "Stops the cell with an error carrying `message`.", example: "error(\"bad shape\")") { c in
      throw LatheError(c[0].description)
    }
    r.add("assert", [ParameterSpec("condition"), ParameterSpec("message", default: .string("assertion failed"))],
          doc: "Raises an error with `message` unless condition is true.", example: "assert(1 + 1 == 2)") { c in
      guard let holds = try c[0].conditionValue() else {
        throw LatheError("assert: the condition must be a bool, got \(c[0].typeName) \(c[0].brief)", kind: .type)
      }
      guard holds else { throw LatheError(c[1].description) }
      return .none
    }
    r.add("help", [ParameterSpec("f")],
          doc: "Prints the signature, doc and example of a function; given a string, searches every builtin's name and doc "
            + "(as ?word does).", example: "help(print)") { c in
      let text: String
      if case .string(let word) = c[0] {
        text = Help.query(word, interpreter: c.interpreter) ?? "no builtin's name or doc mentions '\(word)'"
      } else {
        text = Help.text(for: c[0], name: "value")
      }
      c.interpreter.output(.stdout, text + "\n")
      return .none
    }
    r.add("members", [ParameterSpec("x")],
          doc: "The names x.name reads: a value's members and fields (Tab after 'x.' offers the same).",
          example: "members({bits: 4, group: 64})") { c in
      .list(Members.names(of: c[0]).map { .string($0) })
    }
    r.add("saved", [], doc: "The values saved in the open notebook (newest version of each): name, kind, bytes.",
          example: "saved()") { c in
      guard let store = c.interpreter.artifactStore else { throw LatheError("saved: no notebook is open") }
      return .list(try store.savedArtifacts().map { a in
        .record(Record([("name", .string(a.name)), ("kind", .string(a.kind)), ("bytes", .int(a.bytes))]))
      })
    }
  }

  private static func registerMath(_ r: BuiltinRegistry) {
    func unary(_ name: String, _ doc: String, _ f: @escaping (Double) -> Double) {
      r.add(name, [ParameterSpec("x")], doc: doc, example: "\(name)(2.0)") { c in .float(f(try c.double(0))) }
    }
    unary("sqrt", "Square root.", { $0.squareRoot() })
    unary("exp", "e to the power x.", { Foundation.exp($0) })
    unary("log", "Natural logarithm.", { Foundation.log($0) })
    unary("log2", "Base-2 logarithm.", { Foundation.log2($0) })
    unary("sin", "Sine (radians).", { Foundation.sin($0) })
    unary("cos", "Cosine (radians).", { Foundation.cos($0) })
    unary("tanh", "Hyperbolic tangent.", { Foundation.tanh($0) })
    r.add("abs", [ParameterSpec("x")], doc: "Absolute value.", example: "abs(-3)") { c in
      if case .int(let i) = c[0] {
        guard i != Int.min else { throw LatheError("abs: integer overflow") }
        return .int(Swift.abs(i))
      }
      return .float(Swift.abs(try c.double(0)))
    }
    r.add("floor", [ParameterSpec("x")], doc: "Largest int not above x.", example: "floor(2.7)") { c in
      try toInt((try c.double(0)).rounded(.down), "floor")
    }
    r.add("ceil", [ParameterSpec("x")], doc: "Smallest int not below x.", example: "ceil(2.1)") { c in
      try toInt((try c.double(0)).rounded(.up), "ceil")
    }
    r.add("round", [ParameterSpec("x"), ParameterSpec("digits", default: Value.none)],
          doc: "Rounds half to even; to an int, or to `digits` decimals as a float.", example: "round(3.14159, digits: 2)") { c in
      let x = try c.double(0)
      if c.isNone(1) { return try toInt(x.rounded(.toNearestOrEven), "round") }
      let digits = try c.int(1)
      guard digits >= -308 && digits <= 308 else { throw LatheError("round: digits must be between -308 and 308") }
      let scale = pow(10.0, Double(digits))
      return .float((x * scale).rounded(.toNearestOrEven) / scale)
    }
    let reduceParameters = [ParameterSpec("axis", default: Value.none), ParameterSpec("keepdims", default: .bool(false))]
    r.add("min", [ParameterSpec("values", variadic: true)] + reduceParameters,
          doc: "Smallest of the arguments, of one list, or of a tensor (along an axis).", example: "min([3, 1, 2])") { c in
      if let reduced = try reduceHost(c, "min") { return reduced }
      try noAxis(c, "min")
      return try extreme(try c.list(0), less: true, "min")
    }
    r.add("max", [ParameterSpec("values", variadic: true)] + reduceParameters,
          doc: "Largest of the arguments, of one list, or of a tensor (along an axis).", example: "max(3, 1, 2)") { c in
      if let reduced = try reduceHost(c, "max") { return reduced }
      try noAxis(c, "max")
      return try extreme(try c.list(0), less: false, "max")
    }
    r.add("sum", [ParameterSpec("xs")] + reduceParameters + [ParameterSpec("start", default: .int(0))],
          doc: "Sum of a list's elements (start + ...), or of a tensor (along an axis).", example: "sum([1, 2, 3])") { c in
      if let reduced = try reduceHost(c, "sum") { return reduced }
      try noAxis(c, "sum")
      var total = c[3]
      for x in try c.list(0) { total = try Value.binary(.add, total, x) }
      return total
    }
    r.add("mean", [ParameterSpec("xs")] + reduceParameters,
          doc: "Arithmetic mean of a list's elements, or of a tensor (along an axis).", example: "mean([1, 2, 3, 4])") { c in
      if let reduced = try reduceHost(c, "mean") { return reduced }
      try noAxis(c, "mean")
      let xs = try c.list(0)
      guard !xs.isEmpty else { throw LatheError("mean: no values") }
      var total = Value.int(0)
      for x in xs { total = try Value.binary(.add, total, x) }
      return try Value.binary(.divide, total, .int(xs.count))
    }
    r.add("format", [ParameterSpec("x"), ParameterSpec("digits", default: .int(3))],
          doc: "A number with a fixed count of decimals, as a string.", example: "format(3.14159, digits: 2)") { c in
      let digits = try c.int(1)
      guard digits >= 0 && digits <= 30 else { throw LatheError("format: digits must be between 0 and 30") }
      return .string(String(format: "%.\(digits)f", try c.double(0)))
    }
  }

  /// `sum(t, axis: 1)` and friends on a host object that reduces itself: the one argument, with axis and keepdims.
  /// nil when the argument is not such an object (lists and numbers take the plain path).
  static func reduceHost(_ c: NativeCall, _ op: String) throws -> Value? {
    var target = c[0]
    if case .list(let xs) = c[0], c.function.parameters[0].variadic {
      guard xs.count == 1 else { return nil }
      target = xs[0]
    }
    guard case .host(let h) = target, let reducible = h as? ReducibleHostObject else { return nil }
    let axisIndex = c.function.parameters.firstIndex { $0.name == "axis" } ?? 1
    let axis: Int?
    switch c[axisIndex] {
    case .none: axis = nil
    case .int(let a): axis = a
    case let v: throw LatheError("\(op): axis must be an int or none, got \(v.typeName)", kind: .type)
    }
    return try reducible.reduced(op, axis: axis, keepdims: try c.bool(axisIndex + 1))
  }

  static func noAxis(_ c: NativeCall, _ op: String) throws {
    if !c.isNone(1) { throw LatheError("\(op): axis applies to tensors; a list has none", kind: .type) }
  }

  static func toInt(_ d: Double, _ op: String) throws -> Value {
    guard d.isFinite, d > -9.2e18, d < 9.2e18 else { throw LatheError("\(op): \(Value.format(d)) does not fit in an int") }
    return .int(Int(d))
  }

  static func extreme(_ values: [Value], less: Bool, _ name: String) throws -> Value {
    var items = values
    if items.count == 1 {
      if case .list(let xs) = items[0] { items = xs } else if case .range(let rg) = items[0] { items = try Value.materialize(rg) }
    }
    guard var best = items.first else { throw LatheError("\(name): no values") }
    for v in items.dropFirst() {
      let c = try Value.compare(v, best, less ? .less : .greater)
      if (less && c == -1) || (!less && c == 1) { best = v }
    }
    return best
  }

  private static func registerStrings(_ r: BuiltinRegistry) {
    r.add("join", [ParameterSpec("items"), ParameterSpec("sep", default: .string(""))],
          doc: "Joins printed items with a separator.", example: "join([\"a\", \"b\"], sep: \", \")") { c in
      .string(try c.list(0).map(\.description).joined(separator: try c.string(1)))
    }
    r.add("split", [ParameterSpec("s"), ParameterSpec("sep", default: Value.none)],
          doc: "Splits a string on `sep`, or on runs of whitespace.", example: "split(\"a,b\", sep: \",\")") { c in
      let s = try c.string(0)
      if c.isNone(1) { return .list(s.split(whereSeparator: { $0.isWhitespace }).map { .string(String($0)) }) }
      let sep = try c.string(1)
      guard !sep.isEmpty else { throw LatheError("split: separator cannot be empty") }
      return .list(s.components(separatedBy: sep).map { .string($0) })
    }
    r.add("upper", [ParameterSpec("s")], doc: "Upper-case copy.", example: "upper(\"q4\")") { c in .string(try c.string(0).uppercased()) }
    r.add("lower", [ParameterSpec("s")], doc: "Lower-case copy.", example: "lower(\"Q4\")") { c in .string(try c.string(0).lowercased()) }
    r.add("strip", [ParameterSpec("s")], doc: "Copy without leading and trailing whitespace.", example: "strip(\"  a \")") { c in
      .string(try c.string(0).trimmingCharacters(in: .whitespacesAndNewlines))
    }
    r.add("replace", [ParameterSpec("s"), ParameterSpec("old"), ParameterSpec("new")],
          doc: "Copy with every `old` replaced by `new`.", example: "replace(\"a-b\", \"-\", \"_\")") { c in
      let old = try c.string(1)
      guard !old.isEmpty else { throw LatheError("replace: 'old' cannot be empty") }
      return .string(try c.string(0).replacingOccurrences(of: old, with: try c.string(2)))
    }
    r.add("startswith", [ParameterSpec("s"), ParameterSpec("prefix")], doc: "Whether s starts with prefix.",
          example: "startswith(\"q4_1\", \"q4\")") { c in .bool(try c.string(0).hasPrefix(try c.string(1))) }
    r.add("endswith", [ParameterSpec("s"), ParameterSpec("suffix")], doc: "Whether s ends with suffix.",
          example: "endswith(\"m.gguf\", \".gguf\")") { c in .bool(try c.string(0).hasSuffix(try c.string(1))) }
  }

  private static func registerCollections(_ r: BuiltinRegistry) {
    r.add("append", [ParameterSpec("xs"), ParameterSpec("value")],
          doc: "A new list with value added at the end (xs.append(v) changes a variable in place).", example: "append([1], 2)") { c in
      var xs = try c.list(0)
      guard xs.count < Limits.maxElements else { throw LatheError("append: list too long", kind: .limit) }
      xs.append(c[1])
      return .list(xs)
    }
    r.add("sorted", [ParameterSpec("xs"), ParameterSpec("key", default: Value.none), ParameterSpec("reverse", default: .bool(false))],
          doc: "A sorted copy, optionally by key(x), stable.", example: "sorted([3, 1, 2], reverse: true)") { c in
      var xs = try c.list(0)
      try ListMethods.sort(&xs, key: c[1], reverse: try c.bool(2), c.interpreter)
      return .list(xs)
    }
    r.add("reversed", [ParameterSpec("xs")], doc: "A reversed copy of a list or string.", example: "reversed([1, 2, 3])") { c in
      if case .string(let s) = c[0] { return .string(String(s.reversed())) }
      return .list(try c.list(0).reversed())
    }
    r.add("list", [ParameterSpec("x")], doc: "A list of the elements of a range, string, list or record's field names.",
          example: "list(0..<3)") { c in
      switch c[0] {
      case .string(let s): return .list(s.map { .string(String($0)) })
      case .record(let rec): return .list(rec.names.map { .string($0) })
      default: return .list(try c.list(0))
      }
    }
    r.add("keys", [ParameterSpec("r")], doc: "Field names of a record, in order.", example: "keys({a: 1, b: 2})") { c in
      .list(try c.record(0).names.map { .string($0) })
    }
    r.add("values", [ParameterSpec("r")], doc: "Field values of a record, in order.", example: "values({a: 1, b: 2})") { c in
      .list(try c.record(0).fields.map(\.value))
    }
    r.add("get", [ParameterSpec("r"), ParameterSpec("name"), ParameterSpec("default", default: Value.none)],
          doc: "A record's field, or `default` when it has none.", example: "get({a: 1}, \"b\", default: 0)") { c in
      try c.record(0)[try c.string(1)] ?? c[2]
    }
    r.add("with", [ParameterSpec("r"), ParameterSpec("name"), ParameterSpec("value")],
          doc: "A copy of a record with one field set.", example: "with({bits: 4}, \"bits\", 3)") { c in
      var rec = try c.record(0)
      rec[try c.string(1)] = c[2]
      return .record(rec)
    }
  }

  private static func registerSession(_ r: BuiltinRegistry) {
    r.add("clock", doc: "Seconds on a monotonic clock, for timing.", example: "let t = clock()") { _ in
      .float(Double(DispatchTime.now().uptimeNanoseconds) / 1e9)
    }
    r.add("seed", doc: "The session's random seed.", example: "seed()") { c in .int(Int(truncatingIfNeeded: c.interpreter.seed)) }
    r.add("rand", doc: "A uniform float in [0, 1) from the session's seeded stream.", example: "rand()") { c in
      .float(Double(c.interpreter.nextRandom() >> 11) * 0x1p-53)
    }
    r.add("randint", [ParameterSpec("low"), ParameterSpec("high")],
          doc: "A uniform int in [low, high) from the session's seeded stream.", example: "randint(0, 10)") { c in
      let lo = try c.int(0), hi = try c.int(1)
      guard lo < hi else { throw LatheError("randint: low (\(lo)) must be below high (\(hi))") }
      let (span, o) = hi.subtractingReportingOverflow(lo)
      guard !o else { throw LatheError("randint: range too large") }
      return .int(lo + Int(c.interpreter.nextRandom() % UInt64(span)))
    }
    r.add("sleep", [ParameterSpec("seconds")], doc: "Waits, waking early if interrupted (Ctrl-C).", example: "sleep(0.5)") { c in
      let seconds = try c.double(0)
      guard seconds.isFinite, seconds >= 0 else { throw LatheError("sleep: seconds must be a finite number >= 0") }
      let end = DispatchTime.now().uptimeNanoseconds + UInt64(min(seconds, 1e9) * 1e9)
      while DispatchTime.now().uptimeNanoseconds < end {
        try c.interpreter.checkInterrupt()
        usleep(10_000)
      }
      return .none
    }
    r.add("metric", [ParameterSpec("key"), ParameterSpec("value"), ParameterSpec("step", default: .int(0))],
          doc: "Records a number in the notebook's metrics for this run.", example: "metric(\"loss\", 0.31, step: 10)") { c in
      c.interpreter.pendingMetrics.append((try c.string(0), try c.int(2), try c.double(1)))
      return .none
    }
    r.add("param", [ParameterSpec("key"), ParameterSpec("value")],
          doc: "Records a parameter of this run in the notebook.", example: "param(\"bits\", 4)") { c in
      c.interpreter.pendingParams.append((try c.string(0), c[1].description))
      return .none
    }
    r.add("save", [ParameterSpec("name"), ParameterSpec("value")],
          doc: "Stores a value in the open notebook under `name`.", example: "save(\"config\", {bits: 4})") { c in
      guard let store = c.interpreter.artifactStore else { throw LatheError("save: no notebook is open") }
      let name = try c.string(0)
      guard !name.isEmpty, name.count <= 200 else { throw LatheError("save: name must have 1 to 200 characters") }
      let bytes = try ValueCodec.encode(c[1])
      try store.saveArtifact(name: name, kind: ValueCodec.artifactKind(c[1]), bytes: bytes, meta: nil)
      return .none
    }
    r.add("load", [ParameterSpec("name")],
          doc: "A value stored with save(name, value), from this or an earlier session.", example: "load(\"config\")") { c in
      let name = try c.string(0)
      guard let store = c.interpreter.artifactStore else { throw LatheError("load: no notebook is open") }
      guard let artifact = try store.loadArtifact(name: name) else { throw LatheError("load: nothing saved under \(Value.quote(name))") }
      return try ValueCodec.decode(artifact.bytes, registry: c.interpreter.registry)
    }
  }
}
