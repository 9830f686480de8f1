// Indexing and slicing of lists, strings, records and ranges, numpy-style (negative indices, a:b:c).

extension Value {
  /// Python's slice.indices: the positions a slice selects from `count` elements.
  static func sliceIndices(count: Int, _ start: Int?, _ stop: Int?, _ step: Int?) throws -> [Int] {
    let step = step ?? 1
    guard step != 0 else { throw LatheError("slice step cannot be zero") }
    func clamp(_ i: Int?, _ fallback: Int, low: Int, high: Int) -> Int {
      guard var i else { return fallback }
      if i < 0 { i = i < Int.min + count ? low : i + count }
      return max(low, min(high, i))
    }
    // first, last and the number of positions, computed without overflow for any step (Int.min included).
    let first: Int, n: Int
    if step > 0 {
      first = clamp(start, 0, low: 0, high: count)
      let end = max(first, clamp(stop, count, low: 0, high: count))
      n = end == first ? 0 : Int((UInt(end - first) - 1) / UInt(step) + 1)
    } else {
      first = clamp(start, count - 1, low: -1, high: count - 1)
      let end = stop == nil ? -1 : clamp(stop, -1, low: -1, high: count - 1)
      n = first <= end ? 0 : Int((UInt(first - end) - 1) / step.magnitude + 1)
    }
    guard n <= Limits.maxElements else {
      throw LatheError("slice of \(n) elements is too large to make a list (limit \(Limits.maxElements))", kind: .limit)
    }
    // Consecutive positions differ by step, and all lie in -1...count, so first + k·step cannot overflow for k < n.
    return (0..<n).map { first + $0 * step }
  }

  static func position(_ index: Value, count: Int, of what: String) throws -> Int {
    guard case .int(let i) = index else {
      throw LatheError("\(what) index must be an int, got \(index.typeName) \(index.repr)", kind: .type)
    }
    let p = i < 0 ? (i >= -count ? i + count : -1) : i
    guard p >= 0 && p < count else { throw LatheError("index \(i) is out of range for \(what) of \(count) element\(count == 1 ? "" : "s")") }
    return p
  }

  /// `self[items]`.
  public func index(_ items: [IndexValue]) throws -> Value {
    if case .host(let h) = self { return try h.index(items) }
    guard let first = items.first else { return self }
    let rest = Array(items.dropFirst())
    let value: Value
    switch (self, first) {
    case (.list(let xs), .single(let i)): value = xs[try Value.position(i, count: xs.count, of: "list")]
    case (.list(let xs), .slice(let a, let b, let c)):
      let picked = try Value.sliceIndices(count: xs.count, a, b, c).map { xs[$0] }
      if rest.isEmpty { return .list(picked) }
      return .list(try picked.map { try $0.index(rest) })    // xs[:, 0] picks column 0 of nested lists
    case (.string(let s), .single(let i)):
      let chars = Array(s)
      value = .string(String(chars[try Value.position(i, count: chars.count, of: "string")]))
    case (.string(let s), .slice(let a, let b, let c)):
      let chars = Array(s)
      value = .string(String(try Value.sliceIndices(count: chars.count, a, b, c).map { chars[$0] }))
    case (.record(let r), .single(.string(let key))):
      guard let v = r[key] else { throw LatheError(Value.missingField(key, in: r)) }
      value = v
    case (.range(let r), .single(let i)): value = .int(r.element(try Value.position(i, count: r.count, of: "range")))
    case (.range(let r), .slice(let a, let b, let c)):
      value = .list(try Value.sliceIndices(count: r.count, a, b, c).map { .int(r.element($0)) })
    case (_, .ellipsis): value = self
    case (.record, .single(let k)):
      throw LatheError("record fields are indexed by name strings, got \(k.typeName)", kind: .type)
    default:
      throw LatheError("\(typeName) cannot be indexed", kind: .type)
    }
    return rest.isEmpty ? value : try value.index(rest)
  }

  /// `self[items] = newValue`, in place.
  public mutating func setIndex(_ items: [IndexValue], to newValue: Value) throws {
    if case .host(let h) = self { self = try h.setIndex(items, to: newValue); return }
    guard let first = items.first else { self = newValue; return }
    let rest = Array(items.dropFirst())
    // The list or record is bound straight from `self` (no tuple holding a second reference) and `self` is set
    // to none, so its storage stays uniquely referenced: changed in place, never copied, and the element it
    // replaces is released without recursion (`Value.store`).
    switch first {
    case .single(let i):
      if case .list(var xs) = self {
        let p = try Value.position(i, count: xs.count, of: "list")
        self = .none
        if rest.isEmpty { Value.store(newValue, into: &xs[p]) } else {
          do { try xs[p].setIndex(rest, to: newValue) } catch { self = .list(xs); throw error }
        }
        self = .list(xs)
        return
      }
      if case .record(var r) = self, case .string(let key) = i {
        self = .none
        if rest.isEmpty { r[key] = newValue }
        else {
          guard var inner = r[key] else { self = .record(r); throw LatheError(Value.missingField(key, in: r)) }
          r[key] = Value.none                                // keep `inner` uniquely referenced
          do { try inner.setIndex(rest, to: newValue) } catch { r[key] = inner; self = .record(r); throw error }
          r[key] = inner
        }
        self = .record(r)
        return
      }
    case .slice(let a, let b, let c):
      if case .list(var xs) = self {
        guard rest.isEmpty else { throw LatheError("assignment through a slice takes one index") }
        guard case .list(let ys) = newValue else { throw LatheError("a slice is assigned a list, got \(newValue.typeName)", kind: .type) }
        let positions = try Value.sliceIndices(count: xs.count, a, b, c)
        self = .none
        if (c ?? 1) == 1 {
          let lo = positions.first ?? min(max(0, (a ?? 0) < 0 ? (a ?? 0) + xs.count : (a ?? 0)), xs.count)
          xs.replaceSubrange(lo..<(lo + positions.count), with: ys)
        } else {
          guard positions.count == ys.count else {
            self = .list(xs)
            throw LatheError("slice selects \(positions.count) elements but \(ys.count) were given")
          }
          for (p, y) in zip(positions, ys) { Value.store(y, into: &xs[p]) }
        }
        self = .list(xs)
        return
      }
    default: break
    }
    throw LatheError("\(typeName) does not support item assignment", kind: .type)
  }

  static func missingField(_ key: String, in r: Record) -> String {
    var message = "record has no field '\(key)'"
    if let near = Spelling.nearest(key, in: r.names) { message += "; did you mean '\(near)'?" }
    else if !r.names.isEmpty { message += " (fields: \(r.names.joined(separator: ", ")))" }
    return message
  }
}
