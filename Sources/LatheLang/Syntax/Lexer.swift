// The lexer: UTF-8 source to tokens, with line:column on each and string interpolation split out.

public struct Lexer {
  private let bytes: [UInt8]
  private var index = 0
  private var line: Int
  private var column: Int
  /// Open brackets: newlines are tokens only at the top level and directly inside `{ }`.
  private var brackets: [UInt8] = []
  private var sawNewline = true

  public static let maxSourceBytes = 16 << 20

  public init(_ source: String, start: SourceLocation = SourceLocation(line: 1, column: 1)) {
    bytes = Array(source.utf8)
    line = start.line
    column = start.column
  }

  /// All tokens, ending with `.end`. Throws a located `Diagnostic` on a malformed token.
  public static func tokenize(_ source: String, start: SourceLocation = SourceLocation(line: 1, column: 1)) throws -> [Token] {
    var lexer = Lexer(source, start: start)
    guard lexer.bytes.count <= maxSourceBytes else {
      throw Diagnostic(.limit, "source is too long (\(lexer.bytes.count) bytes; the limit is \(maxSourceBytes))", at: start)
    }
    var tokens: [Token] = []
    while true {
      let token = try lexer.next()
      tokens.append(token)
      if token.kind == .end { return tokens }
    }
  }

  private var location: SourceLocation { SourceLocation(line: line, column: column) }

  private func peek(_ offset: Int = 0) -> UInt8 {
    let i = index + offset
    return i >= 0 && i < bytes.count ? bytes[i] : 0
  }

  private mutating func advance() {
    let b = bytes[index]
    index += 1
    if b == UInt8(ascii: "\n") { line += 1; column = 1 }
    else if b & 0xC0 != 0x80 { column += 1 }   // count characters, not continuation bytes
  }

  private var newlinesAreTokens: Bool { brackets.last.map { $0 == UInt8(ascii: "{") } ?? true }

  public mutating func next() throws -> Token {
    // Skip spaces, comments and (where they do not separate statements) newlines.
    while index < bytes.count {
      let b = bytes[index]
      if b == UInt8(ascii: " ") || b == UInt8(ascii: "\t") || b == UInt8(ascii: "\r") {
        advance()
      } else if b == UInt8(ascii: "#") {
        while index < bytes.count && bytes[index] != UInt8(ascii: "\n") { advance() }
      } else if b == UInt8(ascii: "\\") && peek(1) == UInt8(ascii: "\n") {
        advance(); advance()                      // explicit line continuation
      } else if b == UInt8(ascii: "\n") {
        let at = location
        advance()
        if newlinesAreTokens && !sawNewline {
          sawNewline = true
          return Token(kind: .newline, location: at, startsLine: false)
        }
        sawNewline = true
      } else {
        break
      }
    }
    let start = location
    let startsLine = sawNewline
    sawNewline = false
    guard index < bytes.count else { return Token(kind: .end, location: start, startsLine: true) }
    let b = bytes[index]

    if isIdentifierStart(b) {
      var name = [UInt8]()
      while index < bytes.count && isIdentifierPart(bytes[index]) { name.append(bytes[index]); advance() }
      let text = String(decoding: name, as: UTF8.self)
      if let keyword = Keyword(rawValue: text) { return Token(kind: .keyword(keyword), location: start, startsLine: startsLine) }
      return Token(kind: .identifier(text), location: start, startsLine: startsLine)
    }
    // `.5` is a float, but `t.0` and `f().0` are member access: a '.' right after a name or a closer is not a number.
    let afterOperand = isIdentifierPart(peek(-1)) || peek(-1) == UInt8(ascii: ")") || peek(-1) == UInt8(ascii: "]")
      || peek(-1) == UInt8(ascii: ".")
    if isDigit(b) || (b == UInt8(ascii: ".") && isDigit(peek(1)) && !afterOperand) {
      return Token(kind: try number(start), location: start, startsLine: startsLine)
    }
    if b == UInt8(ascii: "\"") {
      return Token(kind: try string(start), location: start, startsLine: startsLine)
    }
    for symbol in Symbol.allCases {
      let raw = symbol.rawValue.utf8
      var matches = true
      for (offset, c) in raw.enumerated() where peek(offset) != c { matches = false; break }
      if matches {
        for _ in 0..<raw.count { advance() }
        switch symbol {
        case .leftParen, .leftBracket, .leftBrace: brackets.append(raw.first ?? 0)
        case .rightParen, .rightBracket, .rightBrace: if !brackets.isEmpty { brackets.removeLast() }
        default: break
        }
        return Token(kind: .symbol(symbol), location: start, startsLine: startsLine)
      }
    }
    let shown = b < 0x80 && b >= 0x20 ? "'\(Character(Unicode.Scalar(b)))'" : "byte 0x\(String(b, radix: 16))"
    throw Diagnostic(.syntax, "unexpected character \(shown)", at: start)
  }

  private func isDigit(_ b: UInt8) -> Bool { b >= 48 && b <= 57 }
  private func isIdentifierStart(_ b: UInt8) -> Bool {
    (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == 95
  }
  private func isIdentifierPart(_ b: UInt8) -> Bool { isIdentifierStart(b) || isDigit(b) }

  private mutating func number(_ start: SourceLocation) throws -> TokenKind {
    var text = [UInt8]()
    var isFloat = false
    // After a '.', a number is an element index (`t.1.0` is element 0 of element 1): digits only.
    let isMemberIndex = peek(-1) == UInt8(ascii: ".") && (index < 2 || bytes[index - 2] != UInt8(ascii: "."))
    func digits(_ lexer: inout Lexer, into text: inout [UInt8]) {
      while lexer.index < lexer.bytes.count, lexer.isDigit(lexer.bytes[lexer.index]) || lexer.bytes[lexer.index] == 95 {
        if lexer.bytes[lexer.index] != 95 { text.append(lexer.bytes[lexer.index]) }
        lexer.advance()
      }
    }
    digits(&self, into: &text)
    // A '.' followed by a digit is a fraction; '..<' and '...' are range operators; '1.x' is member access.
    if !isMemberIndex, peek() == UInt8(ascii: "."), isDigit(peek(1)) {
      isFloat = true
      text.append(UInt8(ascii: ".")); advance()
      digits(&self, into: &text)
    }
    if !isMemberIndex, peek() == UInt8(ascii: "e") || peek() == UInt8(ascii: "E") {
      let sign = peek(1) == UInt8(ascii: "+") || peek(1) == UInt8(ascii: "-")
      if isDigit(peek(sign ? 2 : 1)) {
        isFloat = true
        text.append(UInt8(ascii: "e")); advance()
        if sign { text.append(bytes[index]); advance() }
        digits(&self, into: &text)
      }
    }
    if isIdentifierStart(peek()) {
      throw Diagnostic(.syntax, "malformed number: a letter follows '\(String(decoding: text, as: UTF8.self))'", at: location)
    }
    let literal = String(decoding: text, as: UTF8.self)
    if isFloat {
      guard let value = Double(literal) else { throw Diagnostic(.syntax, "malformed number '\(literal)'", at: start) }
      return .float(value)
    }
    guard let value = Int(literal) else {
      throw Diagnostic(.syntax, "integer literal is too large (\(literal.count) digits; the largest is \(Int.max))", at: start)
    }
    return .integer(value)
  }

  private mutating func string(_ start: SourceLocation) throws -> TokenKind {
    advance()  // opening quote
    var pieces: [StringPiece] = []
    var text = [UInt8]()
    while true {
      guard index < bytes.count else {
        throw Diagnostic(.unexpectedEnd, "unterminated string starting at \(start)", at: start)
      }
      let b = bytes[index]
      if b == UInt8(ascii: "\"") { advance(); break }
      if b == UInt8(ascii: "\n") {
        throw Diagnostic(.syntax, "unterminated string starting at \(start): strings end on the line they start", at: start)
      }
      if b != UInt8(ascii: "\\") { text.append(b); advance(); continue }
      let escapeAt = location
      advance()
      guard index < bytes.count else { throw Diagnostic(.unexpectedEnd, "unterminated string starting at \(start)", at: start) }
      let e = bytes[index]
      advance()
      switch e {
      case UInt8(ascii: "n"): text.append(10)
      case UInt8(ascii: "t"): text.append(9)
      case UInt8(ascii: "r"): text.append(13)
      case UInt8(ascii: "0"): text.append(0)
      case UInt8(ascii: "\""), UInt8(ascii: "\\"): text.append(e)
      case UInt8(ascii: "u"):
        guard peek() == UInt8(ascii: "{") else { throw Diagnostic(.syntax, "expected '{' after \\u", at: escapeAt) }
        advance()
        var hex = [UInt8]()
        while index < bytes.count && bytes[index] != UInt8(ascii: "}") && hex.count < 9 { hex.append(bytes[index]); advance() }
        guard peek() == UInt8(ascii: "}"), let code = UInt32(String(decoding: hex, as: UTF8.self), radix: 16),
              let scalar = Unicode.Scalar(code) else {
          throw Diagnostic(.syntax, "malformed unicode escape: expected \\u{hex digits} naming a code point", at: escapeAt)
        }
        advance()
        text.append(contentsOf: Array(String(Character(scalar)).utf8))
      case UInt8(ascii: "("):
        if !text.isEmpty { pieces.append(.text(String(decoding: text, as: UTF8.self))); text.removeAll() }
        let innerStart = location
        var depth = 1
        var inner = [UInt8]()
        var inString = false
        while true {
          guard index < bytes.count else {
            throw Diagnostic(.unexpectedEnd, "unterminated interpolation '\\(' in the string starting at \(start)", at: escapeAt)
          }
          let c = bytes[index]
          if c == UInt8(ascii: "\n") {
            throw Diagnostic(.syntax, "unterminated interpolation '\\(' in the string starting at \(start)", at: escapeAt)
          }
          if inString {
            if c == UInt8(ascii: "\\"), index + 1 < bytes.count { inner.append(c); advance(); inner.append(bytes[index]); advance(); continue }
            if c == UInt8(ascii: "\"") { inString = false }
          } else if c == UInt8(ascii: "\"") {
            inString = true
          } else if c == UInt8(ascii: "(") {
            depth += 1
          } else if c == UInt8(ascii: ")") {
            depth -= 1
            if depth == 0 { advance(); break }
          }
          inner.append(c)
          advance()
        }
        pieces.append(.interpolation(String(decoding: inner, as: UTF8.self), innerStart))
      default:
        throw Diagnostic(.syntax, "unknown escape '\\\(Character(Unicode.Scalar(e)))' in string", at: escapeAt)
      }
    }
    if !text.isEmpty || pieces.isEmpty { pieces.append(.text(String(decoding: text, as: UTF8.self))) }
    return .string(pieces)
  }
}
