// The one escaping function for XML and HTML text, used by the plots' SVG and the notebook's HTML export.

public enum Markup {
  /// `s` as XML/HTML text: & < > " ' as entities, characters XML 1.0 forbids (control characters other than tab
  /// and line breaks, U+FFFE, U+FFFF) as U+FFFD; with `flattenWhitespace`, tabs and line breaks as spaces (one-line
  /// SVG text).
  ///
  ///     Markup.escape("a < b & 'c'") == "a &lt; b &amp; &apos;c&apos;"
  public static func escape(_ s: String, flattenWhitespace: Bool = false) -> String {
    var out = ""
    out.reserveCapacity(s.utf8.count)
    for scalar in s.unicodeScalars {
      switch scalar {
      case "&": out += "&amp;"
      case "<": out += "&lt;"
      case ">": out += "&gt;"
      case "\"": out += "&quot;"
      case "'": out += "&apos;"
      case "\t", "\n", "\r": out += flattenWhitespace ? " " : String(scalar)
      default:
        let v = scalar.value
        if v < 0x20 || v == 0xFFFE || v == 0xFFFF { out += "\u{FFFD}" } else { out.unicodeScalars.append(scalar) }
      }
    }
    return out
  }
}
