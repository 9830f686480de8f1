// Tab completion: variables, builtins, members after '.', and inside a call the labels not yet given.

import LatheLang

public enum Completion {
  static let keywords = ["let", "var", "fn", "if", "else", "while", "for", "in", "return", "break", "continue",
                         "true", "false", "none", "import"]
  static let commands = [":help", ":time", ":history", ":quit", ":vars"]

  /// Completions of the word that ends at `cursor` in `line` (the whole word, as readline replaces it).
  public static func candidates(line: String, cursor: Int, interpreter: Interpreter) -> [String] {
    let chars = Array(line.prefix(cursor))
    var start = chars.count
    while start > 0, isWordCharacter(chars[start - 1]) { start -= 1 }
    let word = String(chars[start...])
    let before = String(chars[..<start])
    // REPL commands: `:hi` completes to `:history` (readline may hand over the word with or without the colon).
    let typed = String(chars).trimmingCharacters(in: .whitespaces)
    if typed.hasPrefix(":"), !typed.contains(" ") {
      if start > 0, chars[start - 1] == ":" { return commands.map { String($0.dropFirst()) }.filter { $0.hasPrefix(word) } }
      return commands.filter { $0.hasPrefix(typed) }
    }
    if let dot = word.lastIndex(of: ".") {
      let base = String(word[..<dot]), prefix = String(word[word.index(after: dot)...])
      return members(of: base, interpreter).filter { $0.hasPrefix(prefix) }.map { base + "." + $0 }.sorted()
    }
    var names = Set(interpreter.globalNames).union(keywords)
    if let call = openCall(before), case .function(let f)? = interpreter.global(call.function) {
      let labels = f.parameters.filter { !$0.variadic && !call.givenLabels.contains($0.name) }.map { $0.name + ":" }
      let matching = labels.filter { $0.hasPrefix(word) }
      // Labels win: inside `seedlm(` the arguments are what one is typing, and readline would otherwise only
      // complete the prefix shared with other names (`sorted(xs, re` has `reverse:` but also `repr`, `return`).
      if !matching.isEmpty { return matching }
      return names.filter { $0.hasPrefix(word) && !word.isEmpty }.sorted()
    }
    names = names.filter { $0.hasPrefix(word) }
    return names.sorted()
  }

  static func isWordCharacter(_ c: Character) -> Bool { c.isLetter || c.isNumber || c == "_" || c == "." }

  /// Members offered after `base.`: that value's own members only (record fields, host members, list methods).
  static func members(of base: String, _ interpreter: Interpreter) -> [String] {
    let parts = base.split(separator: ".").map(String.init)
    guard let first = parts.first, var value = interpreter.global(first) else { return [] }
    for part in parts.dropFirst() {
      switch value {
      case .record(let r): guard let next = r[part] else { return [] }; value = next
      case .host(let h): guard let next = (try? h.member(part)) ?? nil else { return [] }; value = next
      default: return []
      }
    }
    return Members.names(of: value)
  }

  /// The innermost call still open at the end of `text`: its function name and the labels already written.
  static func openCall(_ text: String) -> (function: String, givenLabels: Set<String>)? {
    let chars = Array(text)
    var depth = 0
    var i = chars.count - 1
    var inString = false
    while i >= 0 {
      let c = chars[i]
      if c == "\"" { inString.toggle() }
      if !inString {
        if c == ")" || c == "]" || c == "}" { depth += 1 }
        if c == "(" || c == "[" || c == "{" {
          if depth == 0 {
            guard c == "(" else { return nil }
            var j = i - 1
            while j >= 0, chars[j].isLetter || chars[j].isNumber || chars[j] == "_" { j -= 1 }
            let name = String(chars[(j + 1)..<i])
            guard !name.isEmpty else { return nil }
            let inside = String(chars[(i + 1)...])
            var labels = Set<String>()
            for piece in inside.split(separator: ",") {
              let t = piece.trimmingCharacters(in: .whitespaces)
              if let colon = t.firstIndex(of: ":") {
                let label = String(t[..<colon])
                if !label.isEmpty, label.allSatisfy({ $0.isLetter || $0.isNumber || $0 == "_" }) { labels.insert(label) }
              }
            }
            return (name, labels)
          }
          depth -= 1
        }
      }
      i -= 1
    }
    return nil
  }
}
