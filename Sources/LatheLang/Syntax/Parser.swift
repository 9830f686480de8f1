// The parser: tokens to statements, by recursive descent with one function per precedence level.

public struct Parser {
  private var tokens: [Token]
  private var position = 0
  private var depth = 0
  /// Nesting deeper than this is a `.limit` error, so hostile input cannot exhaust the native stack.
  public static let maxDepth = 200

  public init(tokens: [Token]) { self.tokens = tokens }

  /// Parses a whole program (a cell, a script, an imported file).
  public static func parse(_ source: String, start: SourceLocation = SourceLocation(line: 1, column: 1)) throws -> [Stmt] {
    var parser = Parser(tokens: try Lexer.tokenize(source, start: start))
    return try parser.parseProgram()
  }

  // MARK: - Token helpers

  private var current: Token { tokens[position] }
  private var kind: TokenKind { tokens[position].kind }
  private func peekKind(_ offset: Int) -> TokenKind {
    let i = position + offset
    return i < tokens.count ? tokens[i].kind : .end
  }
  private mutating func advance() { if position < tokens.count - 1 { position += 1 } }

  private func isSymbol(_ s: Symbol) -> Bool { kind == .symbol(s) }
  private func isKeyword(_ k: Keyword) -> Bool { kind == .keyword(k) }

  private mutating func match(_ s: Symbol) -> Bool {
    if isSymbol(s) { advance(); return true }
    return false
  }

  private mutating func skipNewlines() { while kind == .newline { advance() } }

  private func error(_ message: String, at location: SourceLocation? = nil) -> Diagnostic {
    if kind == .end { return Diagnostic(.unexpectedEnd, message + ", found end of input", at: location ?? current.location) }
    return Diagnostic(.syntax, message + ", found \(describe(current))", at: location ?? current.location)
  }

  private func describe(_ token: Token) -> String {
    switch token.kind {
    case .identifier(let n): return "name '\(n)'"
    case .string: return "a string"
    case .integer, .float: return "number \(token.text)"
    case .newline: return "end of line"
    case .end: return "end of input"
    default: return "'\(token.text)'"
    }
  }

  private mutating func expect(_ s: Symbol, _ what: String) throws {
    guard match(s) else { throw error("expected '\(s.rawValue)' \(what)") }
  }

  /// Consumes `s`, the closer of `opener` at `openedAt`; the error names both ends.
  private mutating func close(_ s: Symbol, opener: Symbol, openedAt: SourceLocation) throws {
    guard match(s) else {
      throw error("expected '\(s.rawValue)' to close '\(opener.rawValue)' at \(openedAt)")
    }
  }

  private mutating func identifier(_ what: String) throws -> String {
    guard case .identifier(let name) = kind else { throw error("expected \(what)") }
    advance()
    return name
  }

  private mutating func nest() throws {
    depth += 1
    if depth > Parser.maxDepth {
      throw Diagnostic(.limit, "code is nested too deeply (more than \(Parser.maxDepth) levels)", at: current.location)
    }
  }

  // MARK: - Statements

  public mutating func parseProgram() throws -> [Stmt] {
    var statements: [Stmt] = []
    skipSeparators()
    while kind != .end {
      if isSymbol(.rightBrace) || isSymbol(.rightParen) || isSymbol(.rightBracket) {
        throw Diagnostic(.syntax, "unexpected '\(current.text)' with no matching opening bracket", at: current.location)
      }
      statements.append(try statement())
      try endOfStatement()
    }
    return statements
  }

  private mutating func skipSeparators() { while kind == .newline || isSymbol(.semicolon) { advance() } }

  private mutating func endOfStatement() throws {
    if kind == .newline || isSymbol(.semicolon) { skipSeparators(); return }
    if kind == .end || isSymbol(.rightBrace) { return }
    // A statement that ends with a block may be followed by another on the same line: `if a { b } return c`.
    if position > 0, tokens[position - 1].kind == .symbol(.rightBrace) { return }
    throw error("expected a new line or ';' after the statement")
  }

  private mutating func block(_ what: String) throws -> [Stmt] {
    let openedAt = current.location
    guard match(.leftBrace) else { throw error("expected '{' to start \(what)") }
    try nest(); defer { depth -= 1 }
    var statements: [Stmt] = []
    skipSeparators()
    while !isSymbol(.rightBrace) {
      if kind == .end { throw Diagnostic(.unexpectedEnd, "expected '}' to close '{' at \(openedAt)", at: current.location) }
      statements.append(try statement())
      try endOfStatement()
    }
    advance()
    return statements
  }

  private mutating func statement() throws -> Stmt {
    let location = current.location
    switch kind {
    case .keyword(.let), .keyword(.var):
      let mutable = isKeyword(.var)
      advance()
      let name = try identifier("a name after '\(mutable ? "var" : "let")'")
      guard match(.equal) else { throw error("expected '=' after 'let \(name)' (every variable starts with a value)") }
      skipNewlines()
      return .declare(name: name, mutable: mutable, value: try expression(), location)
    case .keyword(.fn) where { if case .identifier = peekKind(1) { return true }; return false }():
      advance()
      let name = try identifier("a function name")
      return .function(try functionRest(name: name, location: location))
    case .keyword(.if):
      return try ifStatement()
    case .keyword(.while):
      advance()
      let condition = try expression()
      return .whileLoop(condition: condition, body: try block("the loop body"), location)
    case .keyword(.for):
      advance()
      let name = try identifier("a loop variable after 'for'")
      guard isKeyword(.in) else { throw error("expected 'in' after 'for \(name)'") }
      advance()
      let sequence = try expression()
      return .forIn(name: name, sequence: sequence, body: try block("the loop body"), location)
    case .keyword(.return):
      advance()
      if kind == .newline || kind == .end || isSymbol(.rightBrace) || isSymbol(.semicolon) { return .returnValue(nil, location) }
      return .returnValue(try expression(), location)
    case .keyword(.break): advance(); return .breakLoop(location)
    case .keyword(.continue): advance(); return .continueLoop(location)
    case .keyword(.import):
      advance()
      guard case .string(let pieces) = kind, pieces.count == 1, case .text(let path) = pieces[0] else {
        throw error("expected a plain string path after 'import'")
      }
      advance()
      return .importFile(path, location)
    default:
      let target = try expression()
      let assignOps: [Symbol: BinaryOperator?] = [.equal: nil, .plusEqual: .add, .minusEqual: .subtract,
                                                  .starEqual: .multiply, .slashEqual: .divide, .percentEqual: .modulo]
      if case .symbol(let s) = kind, let op = assignOps[s] {
        let at = current.location
        advance()
        skipNewlines()
        switch target {
        case .name, .member, .index: break
        default: throw Diagnostic(.syntax, "cannot assign to this expression; assign to a name, a member or an index", at: target.location)
        }
        return .assign(target: target, op: op, value: try expression(), at)
      }
      return .expression(target)
    }
  }

  private mutating func ifStatement() throws -> Stmt {
    let location = current.location
    advance()  // if
    let condition = try expression()
    let then = try block("the 'if' body")
    var otherwise: [Stmt]? = nil
    // `else` may follow on the next line.
    var look = position
    while tokens[look].kind == .newline && look < tokens.count - 1 { look += 1 }
    if tokens[look].kind == .keyword(.else) {
      position = look
      advance()
      if isKeyword(.if) {
        try nest(); defer { depth -= 1 }
        otherwise = [try ifStatement()]
      } else {
        otherwise = try block("the 'else' body")
      }
    }
    return .ifElse(condition: condition, then: then, otherwise: otherwise, location)
  }

  private mutating func functionRest(name: String?, location: SourceLocation) throws -> FunctionDecl {
    let openedAt = current.location
    guard match(.leftParen) else { throw error("expected '(' to start the parameter list") }
    var parameters: [Parameter] = []
    var seenDefault = false
    while !isSymbol(.rightParen) {
      let at = current.location
      let pname = try identifier("a parameter name")
      if parameters.contains(where: { $0.name == pname }) {
        throw Diagnostic(.syntax, "parameter '\(pname)' appears twice", at: at)
      }
      var defaultValue: Expr? = nil
      if match(.colon) || match(.equal) {
        defaultValue = try expression()
        seenDefault = true
      } else if seenDefault {
        throw Diagnostic(.syntax, "parameter '\(pname)' needs a default: it follows a parameter that has one", at: at)
      }
      parameters.append(Parameter(name: pname, defaultValue: defaultValue, location: at))
      if !match(.comma) { break }
    }
    try close(.rightParen, opener: .leftParen, openedAt: openedAt)
    let body = try block("the function body")
    return FunctionDecl(name: name, parameters: parameters, body: body, location: location, isExpressionBody: false)
  }

  // MARK: - Expressions, lowest precedence first

  public mutating func expression() throws -> Expr {
    try nest(); defer { depth -= 1 }
    return try pipe()
  }

  /// `x |> f(a)` means `f(x, a)`; `x |> f` means `f(x)`.
  private mutating func pipe() throws -> Expr {
    var left = try ternary()
    while continuesWith(.pipeForward) {
      let at = current.location
      advance()
      skipNewlines()
      let right = try ternary()
      if case .call(let callee, let arguments, let l) = right {
        left = .call(callee, [Argument(label: nil, value: left, location: left.location)] + arguments, l)
      } else {
        left = .call(right, [Argument(label: nil, value: left, location: left.location)], at)
      }
    }
    return left
  }

  /// True when the current token is `s`, or a line break followed by `s` (a chain continued on the next line).
  private mutating func continuesWith(_ s: Symbol) -> Bool {
    if isSymbol(s) { return true }
    guard kind == .newline else { return false }
    var look = position
    while tokens[look].kind == .newline && look < tokens.count - 1 { look += 1 }
    if tokens[look].kind == .symbol(s) { position = look; return true }
    return false
  }

  private mutating func ternary() throws -> Expr {
    let condition = try logicalOr()
    guard isSymbol(.question) else { return condition }
    let at = current.location
    advance(); skipNewlines()
    let yes = try ternary()
    skipNewlines()
    guard match(.colon) else { throw error("expected ':' in the conditional expression started by '?' at \(at)") }
    skipNewlines()
    let no = try ternary()
    return .ternary(condition, yes, no, at)
  }

  private mutating func logicalOr() throws -> Expr {
    var left = try logicalAnd()
    while isSymbol(.pipePipe) || isKeyword(.or) {
      let at = current.location
      advance(); skipNewlines()
      left = .logical(isAnd: false, left, try logicalAnd(), at)
    }
    return left
  }

  private mutating func logicalAnd() throws -> Expr {
    var left = try comparison()
    while isSymbol(.ampAmp) || isKeyword(.and) {
      let at = current.location
      advance(); skipNewlines()
      left = .logical(isAnd: true, left, try comparison(), at)
    }
    return left
  }

  private mutating func comparison() throws -> Expr {
    var left = try range()
    while true {
      let op: BinaryOperator
      switch kind {
      case .symbol(.equalEqual): op = .equal
      case .symbol(.bangEqual): op = .notEqual
      case .symbol(.less): op = .less
      case .symbol(.lessEqual): op = .lessEqual
      case .symbol(.greater): op = .greater
      case .symbol(.greaterEqual): op = .greaterEqual
      case .keyword(.in): op = .contains
      default: return left
      }
      let at = current.location
      advance(); skipNewlines()
      left = .binary(op, left, try range(), at)
    }
  }

  private mutating func range() throws -> Expr {
    let left = try additive()
    if isSymbol(.halfOpen) || isSymbol(.ellipsis) {
      let closed = isSymbol(.ellipsis)
      let at = current.location
      advance(); skipNewlines()
      return .range(left, try additive(), closed: closed, at)
    }
    return left
  }

  private mutating func additive() throws -> Expr {
    var left = try multiplicative()
    while isSymbol(.plus) || isSymbol(.minus) {
      let op: BinaryOperator = isSymbol(.plus) ? .add : .subtract
      let at = current.location
      advance(); skipNewlines()
      left = .binary(op, left, try multiplicative(), at)
    }
    return left
  }

  private mutating func multiplicative() throws -> Expr {
    var left = try unary()
    while true {
      let op: BinaryOperator
      switch kind {
      case .symbol(.star): op = .multiply
      case .symbol(.slash): op = .divide
      case .symbol(.slashSlash): op = .floorDivide
      case .symbol(.percent): op = .modulo
      case .symbol(.at): op = .matmul
      default: return left
      }
      let at = current.location
      advance(); skipNewlines()
      left = .binary(op, left, try unary(), at)
    }
  }

  private mutating func unary() throws -> Expr {
    let at = current.location
    let op: UnaryOperator
    switch kind {
    case .symbol(.minus): op = .negate
    case .symbol(.plus): op = .plus
    case .symbol(.bang), .keyword(.not): op = .not
    default: return try power()
    }
    advance()
    try nest(); defer { depth -= 1 }
    let operand = try unary()
    // Fold negative literals so that `-9223372036854775808`-style edge cases and constants stay constants.
    if op == .negate, case .float(let v, _) = operand { return .float(-v, at) }
    if op == .negate, case .integer(let v, _) = operand, v != Int.min { return .integer(-v, at) }
    return .unary(op, operand, at)
  }

  /// `**` binds tighter than unary minus on its left and is right-associative: `-2 ** 2` is -4.
  private mutating func power() throws -> Expr {
    let base = try postfix()
    if isSymbol(.starStar) {
      let at = current.location
      advance(); skipNewlines()
      try nest(); defer { depth -= 1 }
      return .binary(.power, base, try unary(), at)
    }
    return base
  }

  private mutating func postfix() throws -> Expr {
    var expr = try primary()
    var links = 0
    while true {
      links += 1
      if links > 10_000 { throw Diagnostic(.limit, "expression chain is too long", at: current.location) }
      if isSymbol(.leftParen) && !current.startsLine {
        let openedAt = current.location
        advance()
        expr = .call(expr, try arguments(openedAt: openedAt), openedAt)
      } else if isSymbol(.leftBracket) && !current.startsLine {
        let openedAt = current.location
        advance()
        expr = .index(expr, try indexItems(openedAt: openedAt), openedAt)
      } else if continuesWith(.dot) {
        let at = current.location
        advance()
        if case .integer(let n) = kind {  // `t.0` reads element 0 of a list
          advance()
          expr = .index(expr, [.single(.integer(n, at))], at)
          continue
        }
        let name: String
        if case .keyword(let k) = kind { name = k.rawValue; advance() } else { name = try identifier("a member name after '.'") }
        expr = .member(expr, name, at)
      } else {
        return expr
      }
    }
  }

  private mutating func arguments(openedAt: SourceLocation) throws -> [Argument] {
    var args: [Argument] = []
    while !isSymbol(.rightParen) {
      if kind == .end { throw Diagnostic(.unexpectedEnd, "expected ')' to close '(' at \(openedAt)", at: current.location) }
      let at = current.location
      var label: String? = nil
      if case .identifier(let name) = kind, peekKind(1) == .symbol(.colon) {
        label = name
        advance(); advance()
        if args.contains(where: { $0.label == name }) {
          throw Diagnostic(.syntax, "argument '\(name):' is given twice", at: at)
        }
      } else if args.contains(where: { $0.label != nil }) {
        throw Diagnostic(.syntax, "a positional argument cannot follow a labelled one", at: at)
      }
      args.append(Argument(label: label, value: try expression(), location: at))
      if !match(.comma) { break }
    }
    try close(.rightParen, opener: .leftParen, openedAt: openedAt)
    return args
  }

  private mutating func indexItems(openedAt: SourceLocation) throws -> [IndexItem] {
    var items: [IndexItem] = []
    if isSymbol(.rightBracket) { throw error("expected an index inside '[ ]'") }
    repeat {
      let at = current.location
      if isSymbol(.ellipsis) {
        advance()
        items.append(.ellipsis(at))
        continue
      }
      var start: Expr? = nil
      if !isSymbol(.colon) { start = try expression() }
      if match(.colon) {
        var stop: Expr? = nil, step: Expr? = nil
        if !isSymbol(.colon) && !isSymbol(.comma) && !isSymbol(.rightBracket) { stop = try expression() }
        if match(.colon), !isSymbol(.comma) && !isSymbol(.rightBracket) { step = try expression() }
        items.append(.slice(start, stop, step, at))
      } else if let start {
        items.append(.single(start))
      }
    } while match(.comma) && !isSymbol(.rightBracket)
    if items.isEmpty { throw error("expected an index inside '[ ]'") }
    try close(.rightBracket, opener: .leftBracket, openedAt: openedAt)
    return items
  }

  private mutating func primary() throws -> Expr {
    let token = current
    let at = token.location
    switch token.kind {
    case .integer(let v): advance(); return .integer(v, at)
    case .float(let v): advance(); return .float(v, at)
    case .keyword(.true): advance(); return .bool(true, at)
    case .keyword(.false): advance(); return .bool(false, at)
    case .keyword(.none): advance(); return .none(at)
    case .string(let pieces):
      advance()
      return try stringLiteral(pieces, at: at)
    case .identifier(let name):
      if peekKind(1) == .symbol(.fatArrow) {
        advance(); advance()
        return try lambdaBody([Parameter(name: name, defaultValue: nil, location: at)], at: at)
      }
      advance()
      return .name(name, at)
    case .keyword(.fn):
      advance()
      return .function(try functionRest(name: nil, location: at))
    case .symbol(.leftParen):
      if let params = try lambdaParameters() { return try lambdaBody(params, at: at) }
      advance()
      let inner = try expression()
      try close(.rightParen, opener: .leftParen, openedAt: at)
      return inner
    case .symbol(.leftBracket):
      advance()
      var items: [Expr] = []
      skipNewlines()
      while !isSymbol(.rightBracket) {
        items.append(try expression())
        if !match(.comma) { break }
      }
      try close(.rightBracket, opener: .leftBracket, openedAt: at)
      return .list(items, at)
    case .symbol(.leftBrace):
      advance()
      var fields: [(String, Expr)] = []
      skipNewlines()
      while !isSymbol(.rightBrace) {
        let keyAt = current.location
        let key: String
        switch kind {
        case .identifier(let n): key = n; advance()
        case .keyword(let k): key = k.rawValue; advance()
        case .string(let pieces):
          guard pieces.count == 1, case .text(let t) = pieces[0] else { throw error("expected a plain string as a record key") }
          key = t; advance()
        default: throw error("expected a field name in the record started at \(at)")
        }
        if fields.contains(where: { $0.0 == key }) { throw Diagnostic(.syntax, "field '\(key)' appears twice in the record", at: keyAt) }
        guard match(.colon) else { throw error("expected ':' after the field name '\(key)'") }
        skipNewlines()
        fields.append((key, try expression()))
        skipNewlines()
        if !match(.comma) { break }
        skipNewlines()
      }
      skipNewlines()
      try close(.rightBrace, opener: .leftBrace, openedAt: at)
      return .record(fields, at)
    default:
      throw error("expected an expression")
    }
  }

  /// If the tokens at a '(' form `(a, b: 1) =>`, consumes them and returns the parameters.
  private mutating func lambdaParameters() throws -> [Parameter]? {
    var look = position + 1
    var level = 1
    while look < tokens.count {
      switch tokens[look].kind {
      case .symbol(.leftParen): level += 1
      case .symbol(.rightParen): level -= 1
      case .end: return nil
      default: break
      }
      if level == 0 { break }
      look += 1
    }
    guard look + 1 < tokens.count, tokens[look + 1].kind == .symbol(.fatArrow) else { return nil }
    let openedAt = current.location
    advance()
    var params: [Parameter] = []
    while !isSymbol(.rightParen) {
      let at = current.location
      let name = try identifier("a parameter name in the lambda")
      var defaultValue: Expr? = nil
      if match(.colon) || match(.equal) { defaultValue = try expression() }
      params.append(Parameter(name: name, defaultValue: defaultValue, location: at))
      if !match(.comma) { break }
    }
    try close(.rightParen, opener: .leftParen, openedAt: openedAt)
    try expect(.fatArrow, "after the lambda's parameters")
    return params
  }

  private mutating func lambdaBody(_ params: [Parameter], at: SourceLocation) throws -> Expr {
    skipNewlines()
    let body = try expression()
    return .function(FunctionDecl(name: nil, parameters: params, body: [.returnValue(body, body.location)],
                                  location: at, isExpressionBody: true))
  }

  private func stringLiteral(_ pieces: [StringPiece], at: SourceLocation) throws -> Expr {
    if pieces.count == 1, case .text(let t) = pieces[0] { return .string(t, at) }
    var parts: [InterpolatedPiece] = []
    for piece in pieces {
      switch piece {
      case .text(let t): parts.append(.text(t))
      case .interpolation(let source, let start):
        var inner = Parser(tokens: try Lexer.tokenize(source, start: start))
        inner.depth = depth
        inner.skipNewlines()
        if inner.kind == .end { throw Diagnostic(.syntax, "empty interpolation '\\()' in string", at: start) }
        let expr = try inner.expression()
        inner.skipNewlines()
        guard inner.kind == .end else { throw inner.error("expected ')' to end the interpolation") }
        parts.append(.expr(expr))
      }
    }
    return .interpolated(parts, at)
  }
}

extension Parser {
  /// True when `source` stops inside an open bracket, brace, string or expression: the REPL reads another line.
  public static func needsMoreInput(_ source: String) -> Bool {
    if source.hasSuffix("\\") { return true }            // an explicit line continuation
    do { _ = try parse(source); return false } catch let d as Diagnostic { return d.kind == .unexpectedEnd } catch { return false }
  }
}
