// Which locals live in cells: those declared in a function and mentioned by a function nested in it.
//
// This over-approximates (any mention by name counts), which is always safe: a boxed local behaves the same.

enum NameAnalysis {
  static func boxedNames(parameters: [String], body: [Stmt]) -> Set<String> {
    var declared = Set(parameters)
    var mentionedInNested = Set<String>()
    for s in body { scan(s, declared: &declared, nested: &mentionedInNested) }
    return declared.intersection(mentionedInNested)
  }

  /// Whether `name` is mentioned anywhere in `body`, nested functions included.
  static func mentions(_ name: String, in body: [Stmt]) -> Bool {
    var names = Set<String>()
    for s in body { collect(s, &names) }
    return names.contains(name)
  }

  /// Collects names declared at any block depth of this function, and every name mentioned in nested functions.
  private static func scan(_ s: Stmt, declared: inout Set<String>, nested: inout Set<String>) {
    switch s {
    case .expression(let e): scan(e, &nested)
    case .declare(let name, _, let value, _): declared.insert(name); scan(value, &nested)
    case .assign(let target, _, let value, _): scan(target, &nested); scan(value, &nested)
    case .function(let decl):
      if let name = decl.name { declared.insert(name) }
      allNames(decl, into: &nested)
    case .ifElse(let c, let a, let b, _):
      scan(c, &nested)
      for x in a { scan(x, declared: &declared, nested: &nested) }
      for x in b ?? [] { scan(x, declared: &declared, nested: &nested) }
    case .whileLoop(let c, let body, _):
      scan(c, &nested)
      for x in body { scan(x, declared: &declared, nested: &nested) }
    case .forIn(let name, let seq, let body, _):
      declared.insert(name)
      scan(seq, &nested)
      for x in body { scan(x, declared: &declared, nested: &nested) }
    case .returnValue(let e, _): if let e { scan(e, &nested) }
    case .block(let body, _): for x in body { scan(x, declared: &declared, nested: &nested) }
    case .breakLoop, .continueLoop, .importFile: break
    }
  }

  /// Finds nested functions inside an expression of this function and records every name they mention.
  private static func scan(_ e: Expr, _ nested: inout Set<String>) {
    visit(e) { sub in
      if case .function(let decl) = sub { allNames(decl, into: &nested); return false }
      return true
    }
  }

  private static func allNames(_ decl: FunctionDecl, into names: inout Set<String>) {
    if let n = decl.name { names.insert(n) }
    for p in decl.parameters { if let d = p.defaultValue { collect(d, &names) } }
    for s in decl.body { collect(s, &names) }
  }

  private static func collect(_ s: Stmt, _ names: inout Set<String>) {
    switch s {
    case .expression(let e): collect(e, &names)
    case .declare(_, _, let v, _): collect(v, &names)
    case .assign(let t, _, let v, _): collect(t, &names); collect(v, &names)
    case .function(let d): allNames(d, into: &names)
    case .ifElse(let c, let a, let b, _):
      collect(c, &names); for x in a { collect(x, &names) }; for x in b ?? [] { collect(x, &names) }
    case .whileLoop(let c, let body, _): collect(c, &names); for x in body { collect(x, &names) }
    case .forIn(_, let seq, let body, _): collect(seq, &names); for x in body { collect(x, &names) }
    case .returnValue(let e, _): if let e { collect(e, &names) }
    case .block(let body, _): for x in body { collect(x, &names) }
    case .breakLoop, .continueLoop, .importFile: break
    }
  }

  private static func collect(_ e: Expr, _ names: inout Set<String>) {
    visit(e) { sub in
      if case .name(let n, _) = sub { names.insert(n) }
      if case .function(let d) = sub { allNames(d, into: &names); return false }
      return true
    }
  }

  /// Pre-order walk of an expression; `enter` returns false to skip a node's children.
  static func visit(_ e: Expr, _ enter: (Expr) -> Bool) {
    guard enter(e) else { return }
    switch e {
    case .integer, .float, .string, .bool, .none, .name, .function: break
    case .interpolated(let parts, _): for case .expr(let x) in parts { visit(x, enter) }
    case .list(let xs, _): for x in xs { visit(x, enter) }
    case .record(let fields, _): for f in fields { visit(f.1, enter) }
    case .unary(_, let x, _): visit(x, enter)
    case .binary(_, let a, let b, _), .logical(_, let a, let b, _), .range(let a, let b, _, _):
      visit(a, enter); visit(b, enter)
    case .ternary(let a, let b, let c, _): visit(a, enter); visit(b, enter); visit(c, enter)
    case .call(let f, let args, _): visit(f, enter); for a in args { visit(a.value, enter) }
    case .member(let b, _, _): visit(b, enter)
    case .index(let b, let items, _):
      visit(b, enter)
      for item in items {
        switch item {
        case .single(let x): visit(x, enter)
        case .slice(let a, let b, let c, _): for x in [a, b, c].compactMap({ $0 }) { visit(x, enter) }
        case .ellipsis: break
        }
      }
    }
  }
}
