// Tokens of the Lathe language.

public enum TokenKind: Equatable, Sendable {
  case identifier(String)
  case integer(Int)
  case float(Double)
  /// A string literal: literal text pieces and interpolated source pieces, in order.
  case string([StringPiece])
  case keyword(Keyword)
  case symbol(Symbol)
  case newline
  case end
}

public enum StringPiece: Equatable, Sendable {
  case text(String)
  /// The source of `\( ... )` and where it starts.
  case interpolation(String, SourceLocation)
}

public enum Keyword: String, CaseIterable, Sendable {
  case `let`, `var`, `fn`, `if`, `else`, `while`, `for`, `in`, `return`, `break`, `continue`
  case `true`, `false`, `none`, `import`, `and`, `or`, `not`
}

public enum Symbol: String, CaseIterable, Sendable {
  // Longest first: the lexer tries them in this order.
  case ellipsis = "...", halfOpen = "..<", starStar = "**", slashSlash = "//"
  case equalEqual = "==", bangEqual = "!=", lessEqual = "<=", greaterEqual = ">=", ampAmp = "&&", pipePipe = "||"
  case pipeForward = "|>", arrow = "->", fatArrow = "=>"
  case plusEqual = "+=", minusEqual = "-=", starEqual = "*=", slashEqual = "/=", percentEqual = "%="
  case plus = "+", minus = "-", star = "*", slash = "/", percent = "%", at = "@"
  case less = "<", greater = ">", equal = "=", bang = "!", question = "?"
  case dot = ".", comma = ",", colon = ":", semicolon = ";"
  case leftParen = "(", rightParen = ")", leftBracket = "[", rightBracket = "]", leftBrace = "{", rightBrace = "}"
}

public struct Token: Sendable {
  public var kind: TokenKind
  public var location: SourceLocation
  /// True when a newline or the start of input came right before this token.
  public var startsLine: Bool

  public var text: String {
    switch kind {
    case .identifier(let name): return name
    case .integer(let value): return String(value)
    case .float(let value): return String(value)
    case .string: return "string literal"
    case .keyword(let k): return k.rawValue
    case .symbol(let s): return s.rawValue
    case .newline: return "newline"
    case .end: return "end of input"
    }
  }
}
