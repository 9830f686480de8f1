// Builtin rows for charts: plot, scatter, bar and curve display a figure (SVG in the notebook, braille on the terminal).

import LatheLang
import LatheTensor

enum PlotBuiltins {
  static func register(into r: BuiltinRegistry) {
    let options = [ParameterSpec("title", default: .string("")), ParameterSpec("xlabel", default: .string("")),
                   ParameterSpec("ylabel", default: .string("")), ParameterSpec("labels", default: Value.none),
                   ParameterSpec("logy", default: .bool(false))]
    r.add("plot", [ParameterSpec("x"), ParameterSpec("y", default: Value.none)] + options,
          doc: "Line plot: plot(ys) or plot(xs, ys); a list of lists or a 2-D tensor draws one line per row "
            + "(labels: their names). NaN points are skipped.",
          example: "plot([[1, 4, 9], [1, 2, 3]], title: \"growth\", labels: [\"square\", \"linear\"])") { c in
      try show(try chart(c, .line, name: "plot"), c)
    }
    r.add("scatter", [ParameterSpec("x"), ParameterSpec("y")] + options,
          doc: "Dots at (x, y); y may hold several series, like plot's.",
          example: "scatter([1, 2, 3, 4], [2.1, 3.9, 6.2, 7.8], title: \"fit\")") { c in
      try show(try chart(c, .scatter, name: "scatter"), c)
    }
    r.add("bar", [ParameterSpec("labels"), ParameterSpec("values")] + options.prefix(3),
          doc: "Bar chart: one bar per label.",
          example: "bar([\"f32\", \"q8_0\", \"q4_1\"], [4, 1.06, 0.63], title: \"bytes per weight\")") { c in
      let labels = try categoryNames(c[0])
      let values = try numbers(c[1], "values", "bar")
      let figure = Figure(.bar, series: [Figure.Series(name: "", ys: values)], categories: labels,
                          title: try c.string(2), xLabel: try c.string(3), yLabel: try c.string(4), name: "bar")
      return try show(figure, c)
    }
    r.add("curve", [ParameterSpec("values"), ParameterSpec("title", default: .string("loss")),
                    ParameterSpec("xlabel", default: .string("step")), ParameterSpec("ylabel", default: .string("")),
                    ParameterSpec("logy", default: .bool(false))],
          doc: "A training curve by step, from a list, a 1-D tensor, a record with a field `loss`, "
            + "or a list of records {step:, loss:}.",
          example: "curve([2.3, 1.4, 0.9, 0.7, 0.6])") { c in
      let (xs, ys) = try curveValues(c[0])
      let series = xs.map { Figure.Series(name: "loss", xs: $0, ys: ys) } ?? Figure.Series(name: "loss", ys: ys)
      var figure = Figure(.line, series: [series], title: try c.string(1), xLabel: try c.string(2),
                          yLabel: try c.string(3), logY: try c.bool(4), name: "curve")
      figure.yName = "values"
      return try show(figure, c)
    }
  }

  /// Shows a figure: the SVG for the notebook and its text form for the terminal. Returns none.
  static func show(_ figure: Figure, _ c: NativeCall) throws -> Value {
    let svg = try figure.svg(), text = try figure.text()
    c.interpreter.display([(mime: "image/svg+xml", text: svg), (mime: "text/plain", text: text + "\n")])
    return .none
  }

  /// plot and scatter: (x, y) or, for plot, (y) alone; then title, xlabel, ylabel, labels, logy.
  static func chart(_ c: NativeCall, _ kind: Figure.Kind, name: String) throws -> Figure {
    let xs: [Double]?, ys: [[Double]]
    if kind == .line, c.isNone(1) {
      xs = nil; ys = try seriesValues(c[0], "y", name)
    } else {
      xs = try numbers(c[0], "x", name); ys = try seriesValues(c[1], "y", name)
    }
    let names = try seriesNames(c[5], count: ys.count, name)
    let series = zip(names, ys).map { n, y in xs.map { Figure.Series(name: n, xs: $0, ys: y) } ?? Figure.Series(name: n, ys: y) }
    return Figure(kind, series: series, title: try c.string(2), xLabel: try c.string(3), yLabel: try c.string(4),
                  logY: try c.bool(6), name: name)
  }

  // MARK: - Converting arguments

  static func tooMany(_ name: String, _ what: String, _ n: Int) -> LatheError {
    LatheError("\(name): \(what) has \(n) values, more than the \(Figure.maxPoints) a plot takes", kind: .limit)
  }

  /// Numbers from a list (none is a gap), a range or a 1-D tensor.
  static func numbers(_ v: Value, _ what: String, _ name: String) throws -> [Double] {
    switch v {
    case .list(let xs):
      guard xs.count <= Figure.maxPoints else { throw tooMany(name, what, xs.count) }
      return try xs.enumerated().map { i, e in
        switch e {
        case .int(let n): return Double(n)
        case .float(let d): return d
        case .none: return .nan
        default: throw LatheError("\(name): \(what) must hold numbers, got \(e.typeName) \(e.repr) at index \(i)", kind: .type)
        }
      }
    case .range(let r):
      guard r.count <= Figure.maxPoints else { throw tooMany(name, what, r.count) }
      return (0..<r.count).map { Double(r.element($0)) }
    case .host(let h):
      guard let t = h as? TensorValue else {
        throw LatheError("\(name): \(what) must be a list of numbers, a range or a tensor, got \(h.typeName)", kind: .type)
      }
      guard t.tensor.rank == 1 else {
        throw LatheError("\(name): \(what) must be a 1-D tensor, got shape \(t.tensor.shape)", kind: .type)
      }
      guard t.tensor.count <= Figure.maxPoints else { throw tooMany(name, what, t.tensor.count) }
      return t.tensor.scalars.map(Double.init)
    default:
      throw LatheError("\(name): \(what) must be a list of numbers, a range or a tensor, got \(v.typeName)", kind: .type)
    }
  }

  static func isSequence(_ v: Value) -> Bool {
    switch v {
    case .list, .range: return true
    case .host(let h): return h is TensorValue
    default: return false
    }
  }

  /// One series, or one per item of a list of lists (ranges, tensors), or one per row of a 2-D tensor.
  static func seriesValues(_ v: Value, _ what: String, _ name: String) throws -> [[Double]] {
    switch v {
    case .list(let items) where items.contains(where: isSequence):
      return try items.enumerated().map { i, item in
        guard isSequence(item) else {
          throw LatheError("\(name): \(what) mixes numbers and lists (item \(i) is \(item.typeName))", kind: .type)
        }
        return try numbers(item, "\(what)[\(i)]", name)
      }
    case .host(let h as TensorValue) where h.tensor.rank == 2:
      let t = h.tensor, rows = t.shape[0], width = t.shape[1]
      guard rows > 0 else { throw LatheError("\(name): \(what) is empty (shape \(t.shape))") }
      guard t.count <= Figure.maxPoints else { throw tooMany(name, what, t.count) }
      let flat = t.scalars
      return (0..<rows).map { r in flat[(r * width)..<((r + 1) * width)].map(Double.init) }
    default:
      return [try numbers(v, what, name)]
    }
  }

  /// `labels:`: none (unnamed), a string (one series) or a list with one name per series.
  static func seriesNames(_ v: Value, count: Int, _ name: String) throws -> [String] {
    switch v {
    case .none: return Array(repeating: "", count: count)
    case .string(let s) where count == 1: return [s]
    case .string: throw LatheError("\(name): labels has 1 name for \(count) series")
    case .list(let xs):
      guard xs.count == count else {
        throw LatheError("\(name): labels has \(xs.count) name\(xs.count == 1 ? "" : "s") for \(count) series")
      }
      return xs.map(\.description)
    default: throw LatheError("\(name): labels must be a list of names, got \(v.typeName)", kind: .type)
    }
  }

  /// Bar labels: a list of anything (shown as print shows it) or a range.
  static func categoryNames(_ v: Value) throws -> [String] {
    switch v {
    case .list(let xs):
      guard xs.count <= Figure.maxPoints else { throw tooMany("bar", "labels", xs.count) }
      return xs.map(\.description)
    case .range(let r):
      guard r.count <= Figure.maxPoints else { throw tooMany("bar", "labels", r.count) }
      return (0..<r.count).map { String(r.element($0)) }
    default: throw LatheError("bar: labels must be a list, got \(v.typeName)", kind: .type)
    }
  }

  /// curve's data: steps (when the data names them) and losses.
  static func curveValues(_ v: Value) throws -> (xs: [Double]?, ys: [Double]) {
    switch v {
    case .record(let record):
      guard let loss = record["loss"] else {
        throw LatheError("curve: the record has no field 'loss' (fields: \(record.names.joined(separator: ", ")))")
      }
      let ys = try numbers(loss, "loss", "curve")
      for field in ["step", "steps"] {
        if let steps = record[field], isSequence(steps) { return (try numbers(steps, field, "curve"), ys) }
      }
      return (nil, ys)
    case .list(let items) where items.contains(where: { if case .record = $0 { return true }; return false }):
      var xs: [Double] = [], ys: [Double] = []
      for (i, item) in items.enumerated() {
        guard case .record(let record) = item, let loss = record["loss"] else {
          throw LatheError("curve: values[\(i)] must be a record with a field 'loss', got \(item.typeName)", kind: .type)
        }
        ys.append(try scalar(loss, "values[\(i)].loss"))
        if let step = record["step"] { xs.append(try scalar(step, "values[\(i)].step")) }
      }
      return (xs.count == ys.count ? xs : nil, ys)
    default:
      return (nil, try numbers(v, "values", "curve"))
    }
  }

  /// One number: an int, a float, none (a gap) or a one-element tensor.
  static func scalar(_ v: Value, _ what: String) throws -> Double {
    switch v {
    case .int(let n): return Double(n)
    case .float(let d): return d
    case .none: return .nan
    case .host(let h as TensorValue) where h.tensor.count == 1: return Double(h.tensor.scalars[0])
    default: throw LatheError("curve: \(what) must be a number, got \(v.typeName)", kind: .type)
    }
  }
}
