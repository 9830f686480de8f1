// Methods that change a list in place: xs.append(v), xs.pop(), xs.sort(key: f) ...

enum ListMethods {
  static func apply(_ name: String, _ xs: inout [Value], _ args: [Value], _ labels: [String?], _ interp: Interpreter) throws -> Value {
    func expectArguments(_ names: [String], required: Int) throws -> [Value?] {
      var out = [Value?](repeating: nil, count: names.count)
      var p = 0
      for (v, label) in zip(args, labels) {
        if let label {
          guard let i = names.firstIndex(of: label) else {
            throw LatheError("list.\(name) has no parameter '\(label)'" + (names.isEmpty ? "" : " (parameters: \(names.joined(separator: ", ")))"), kind: .type)
          }
          out[i] = v
        } else {
          guard p < names.count else { throw LatheError("list.\(name) takes \(names.count) argument\(names.count == 1 ? "" : "s") but \(args.count) were given", kind: .type) }
          out[p] = v; p += 1
        }
      }
      for i in 0..<required where out[i] == nil { throw LatheError("list.\(name): missing argument '\(names[i])'", kind: .type) }
      return out
    }
    switch name {
    case "append":
      let a = try expectArguments(["value"], required: 1)
      guard xs.count < Limits.maxElements else { throw LatheError("append: list too long (limit \(Limits.maxElements))", kind: .limit) }
      xs.append(a[0] ?? .none)
      return .none
    case "extend":
      let a = try expectArguments(["items"], required: 1)
      let items: [Value]
      switch a[0] ?? .none {
      case .list(let ys): items = ys
      case .range(let r): items = try Value.materialize(r)
      case let v: throw LatheError("extend: needs a list, got \(v.typeName)", kind: .type)
      }
      guard xs.count + items.count <= Limits.maxElements else { throw LatheError("extend: list too long", kind: .limit) }
      xs.append(contentsOf: items)
      return .none
    case "insert":
      let a = try expectArguments(["index", "value"], required: 2)
      guard case .int(var i)? = a[0] else { throw LatheError("insert: index must be an int", kind: .type) }
      if i < 0 { i += xs.count }
      xs.insert(a[1] ?? .none, at: max(0, min(xs.count, i)))
      return .none
    case "pop":
      let a = try expectArguments(["index"], required: 0)
      guard !xs.isEmpty else { throw LatheError("pop: the list is empty") }
      let i = try Value.position(a[0] ?? .int(-1), count: xs.count, of: "list")
      return xs.remove(at: i)
    case "clear":
      _ = try expectArguments([], required: 0)
      var old = Value.list(xs)                      // the elements are released without recursion
      xs = []
      Value.release(&old)
      return .none
    case "reverse":
      _ = try expectArguments([], required: 0)
      xs.reverse()
      return .none
    case "sort":
      let a = try expectArguments(["key", "reverse"], required: 0)
      guard case .bool(let reverse) = a[1] ?? .bool(false) else { throw LatheError("sort: reverse must be a bool", kind: .type) }
      try sort(&xs, key: a[0] ?? .none, reverse: reverse, interp)
      return .none
    default:
      throw LatheError("list has no method '\(name)'", kind: .type)
    }
  }

  /// Stable merge sort by `key(x)` (or x), throwing on values that do not compare.
  static func sort(_ xs: inout [Value], key: Value, reverse: Bool, _ interp: Interpreter) throws {
    var keys: [Value]
    if case .none = key { keys = xs } else { keys = try xs.map { try interp.call(key, [$0]) } }
    var order = Array(xs.indices)
    var failure: Error? = nil
    order.sort { i, j in
      if failure != nil { return false }
      do {
        let c = try Value.compare(keys[i], keys[j], .less)
        if c == 0 || c == 2 { return i < j }       // stable; NaNs keep their places
        return reverse ? c == 1 : c == -1
      } catch { failure = error; return false }
    }
    if let failure { throw failure }
    xs = order.map { xs[$0] }
  }
}
