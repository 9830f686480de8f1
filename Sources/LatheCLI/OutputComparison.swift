// Compares a run's outputs with a rerun's: text exactly, numbers within a tolerance, ints exactly.

import LatheNotebook

public enum OutputComparison {
  /// Human-readable differences; empty when the outputs agree.
  public static func differences(expected: [OutputRecord], actual: [OutputRecord], rtol: Double, atol: Double) -> [String] {
    var out: [String] = []
    let a = coalesced(expected.sorted { ($0.idx, $0.mime) < ($1.idx, $1.mime) })
    let b = coalesced(actual.sorted { ($0.idx, $0.mime) < ($1.idx, $1.mime) })
    if a.count != b.count { out.append("had \(a.count) output\(a.count == 1 ? "" : "s"), now \(b.count)") }
    for (i, (x, y)) in zip(a, b).enumerated() {
      if x.kind != y.kind || x.mime != y.mime {
        out.append("output \(i + 1) was \(x.kind.rawValue) \(x.mime), now \(y.kind.rawValue) \(y.mime)")
      } else if let problem = compare(x.text, y.text, rtol: rtol, atol: atol) {
        out.append("output \(i + 1) (\(x.kind.rawValue)): \(problem)")
      }
    }
    return out
  }

  /// Consecutive stdout (or stderr) outputs joined into one: text streamed as it is produced (generate) is stored in
  /// chunks whose boundaries depend on timing, so only the joined text is compared.
  static func coalesced(_ records: [OutputRecord]) -> [OutputRecord] {
    var out: [OutputRecord] = []
    for r in records {
      if let last = out.last, last.kind == r.kind, last.mime == r.mime, r.kind == .stdout || r.kind == .stderr {
        out[out.count - 1].text += r.text
      } else {
        out.append(r)
      }
    }
    return out
  }

  /// nil when `expected` and `actual` agree; else the first differing line, both versions.
  public static func compare(_ expected: String, _ actual: String, rtol: Double, atol: Double) -> String? {
    if expected == actual { return nil }
    let e = expected.split(separator: "\n", omittingEmptySubsequences: false)
    let g = actual.split(separator: "\n", omittingEmptySubsequences: false)
    for i in 0..<max(e.count, g.count) {
      let x = i < e.count ? String(e[i]) : "", y = i < g.count ? String(g[i]) : ""
      if !linesAgree(x, y, rtol: rtol, atol: atol) {
        return "line \(i + 1) differs\n    was: \(x)\n    now: \(y)"
      }
    }
    return nil
  }

  static func linesAgree(_ x: String, _ y: String, rtol: Double, atol: Double) -> Bool {
    if x == y { return true }
    let a = tokens(x), b = tokens(y)
    guard a.count == b.count else { return false }
    for (s, t) in zip(a, b) {
      switch (s, t) {
      case (.text(let p), .text(let q)): if p != q { return false }
      case (.number(let p, let pi), .number(let q, let qi)):
        if pi || qi { if p != q { return false } }       // integers (token ids, counts) must be identical
        else if let u = Double(p), let v = Double(q) {
          if u.isNaN && v.isNaN { continue }
          if !(abs(u - v) <= atol + rtol * abs(v)) { return false }
        } else if p != q { return false }
      default: return false
      }
    }
    return true
  }

  enum Token { case text(String), number(String, isInteger: Bool) }

  /// Splits a line into numbers (`-1.5e-3`, `42`) and the text between them.
  static func tokens(_ s: String) -> [Token] {
    var out: [Token] = []
    let chars = Array(s)
    var i = 0
    var text = ""
    func isDigit(_ c: Character) -> Bool { c >= "0" && c <= "9" }
    while i < chars.count {
      let c = chars[i]
      let startsNumber = isDigit(c) || ((c == "-" || c == ".") && i + 1 < chars.count && isDigit(chars[i + 1]))
      let afterWord = i > 0 && (chars[i - 1].isLetter || chars[i - 1] == "_")
      if startsNumber && !afterWord {
        if !text.isEmpty { out.append(.text(text)); text = "" }
        var j = i
        if chars[j] == "-" { j += 1 }
        var isInteger = true
        while j < chars.count, isDigit(chars[j]) { j += 1 }
        if j < chars.count, chars[j] == ".", j + 1 < chars.count, isDigit(chars[j + 1]) {
          isInteger = false; j += 1
          while j < chars.count, isDigit(chars[j]) { j += 1 }
        }
        if j < chars.count, chars[j] == "e" || chars[j] == "E" {
          var k = j + 1
          if k < chars.count, chars[k] == "-" || chars[k] == "+" { k += 1 }
          if k < chars.count, isDigit(chars[k]) {
            isInteger = false; j = k
            while j < chars.count, isDigit(chars[j]) { j += 1 }
          }
        }
        out.append(.number(String(chars[i..<j]), isInteger: isInteger))
        i = j
      } else {
        text.append(c)
        i += 1
      }
    }
    if !text.isEmpty { out.append(.text(text)) }
    return out
  }
}
