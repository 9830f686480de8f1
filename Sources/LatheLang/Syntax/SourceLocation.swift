// Source positions and the located diagnostics every syntax and runtime error becomes.

/// A 1-based line and column in a named source (a REPL cell, a script, an imported file).
public struct SourceLocation: Sendable, Equatable, CustomStringConvertible {
  public var line: Int
  public var column: Int
  public init(line: Int, column: Int) { self.line = line; self.column = column }
  public static let unknown = SourceLocation(line: 0, column: 0)
  public var description: String { "\(line):\(column)" }
}

/// An error in Lathe code, located at the token or node that caused it.
///
/// `unexpectedEnd` means the input stopped inside an open bracket, brace or string: the REPL reads another line.
public struct Diagnostic: Error, CustomStringConvertible {
  public enum Kind: String, Sendable { case syntax, unexpectedEnd, unknownName, type, runtime, interrupted, limit }
  public var kind: Kind
  public var message: String
  public var location: SourceLocation
  /// The source the location refers to: "cell 3", "notebooks/x.lathe" or "stdlib/prelude.lathe".
  public var sourceName: String
  /// The source text, for printing the line and a caret.
  public var sourceText: String?
  /// The line number of the first line of `sourceText` (a cell in the middle of a script starts past line 1).
  public var sourceFirstLine = 1
  /// Where the error passed through calls, innermost first.
  public var notes: [(String, SourceLocation)] = []

  public init(_ kind: Kind, _ message: String, at location: SourceLocation, sourceName: String = "", sourceText: String? = nil) {
    self.kind = kind; self.message = message; self.location = location
    self.sourceName = sourceName; self.sourceText = sourceText
  }

  public var description: String {
    let prefix = sourceName.isEmpty ? "" : "\(sourceName), "
    return "\(prefix)\(location): error: \(message)"
  }

  /// The message, the offending source line and a caret under the column, then the call notes.
  public var rendered: String {
    var out = description
    if let text = sourceText, location.line > 0 {
      let lines = text.split(separator: "\n", omittingEmptySubsequences: false)
      let i = location.line - sourceFirstLine
      if i >= 0 && i < lines.count {
        let line = String(lines[i])
        if line.count <= 400 {
          out += "\n  " + line + "\n  " + String(repeating: " ", count: max(0, location.column - 1)) + "^"
        }
      }
    }
    for (what, at) in notes.prefix(8) { out += "\n  \(what) at \(at)" }
    if notes.count > 8 { out += "\n  ... \(notes.count - 8) more calls" }
    return out
  }
}
