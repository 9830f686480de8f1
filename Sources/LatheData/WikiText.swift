// Wikipedia's XML dumps to plain text: the pages of a dump, and wiki markup stripped to the prose a reader sees.
// Works on UTF-8 bytes (every markup delimiter is ASCII), in a few linear passes: malformed markup (unclosed
// brackets, tags or comments) is kept or dropped locally, never crashes, and never makes the work quadratic.

/// Plain text from MediaWiki: `WikiText.plainText("'''Anarchism''' is a [[political philosophy|philosophy]]")`
/// is `"Anarchism is a philosophy"`.
public enum WikiText {
  /// A page of a dump: its title, namespace number (0 for articles), whether it is a redirect, and its markup.
  public struct Page: Equatable, Sendable {
    public var title: String, namespace: Int, isRedirect: Bool, markup: String
  }

  /// The pages of a MediaWiki XML export, in file order, with XML escapes in the title and text decoded.
  /// A page cut off by the end of the file is read up to there.
  public static func pages(xml: [UInt8]) -> [Page] {
    var pages: [Page] = []
    var i = 0
    let n = xml.count
    while let start = find(Array("<page>".utf8), in: xml, from: i) {
      let end = find(Array("</page>".utf8), in: xml, from: start) ?? n
      func element(_ name: String) -> ArraySlice<UInt8>? {
        guard let open = find(Array("<\(name)".utf8), in: xml, from: start, before: end),
              let close = find(Array(">".utf8), in: xml, from: open, before: end) else { return nil }
        if xml[close - 1] == UInt8(ascii: "/") { return xml[close..<close] }          // <text ... />
        let contentEnd = find(Array("</\(name)>".utf8), in: xml, from: close, before: end) ?? end
        return xml[(close + 1)..<contentEnd]
      }
      let title = element("title").map { String(decoding: decodeEntities($0, html: false), as: UTF8.self) } ?? ""
      let namespace = element("ns").flatMap { Int(String(decoding: $0, as: UTF8.self)) } ?? 0
      let isRedirect = find(Array("<redirect".utf8), in: xml, from: start, before: end) != nil
      let markup = element("text").map { String(decoding: decodeEntities($0, html: false), as: UTF8.self) } ?? ""
      pages.append(Page(title: title, namespace: namespace, isRedirect: isRedirect, markup: markup))
      i = min(n, end + 1)
    }
    return pages
  }

  /// A dump's articles as text: for each page in namespace 0 that is not a redirect, its title on a line, then
  /// its plain text; articles are separated by a blank line.
  public static func articlesText(xml: [UInt8]) -> String {
    var parts: [String] = []
    for page in pages(xml: xml) where page.namespace == 0 && !page.isRedirect {
      let body = plainText(page.markup)
      parts.append(body.isEmpty ? page.title : page.title + "\n" + body)
    }
    return parts.joined(separator: "\n\n")
  }

  /// The prose of wiki markup. Dropped: templates `{{…}}` (nested), tables `{|…|}`, file, image, category and
  /// interlanguage links, `<ref>…</ref>` and the content of other non-prose tags (math, gallery, …), comments,
  /// horizontal rules and `__MAGIC__` words. Kept: the text of links (`[[a|b]]` → `b`, `[[a]]` → `a`,
  /// `[http://x b]` → `b`), the content of formatting tags, heading text (`== X ==` → `X`), list items without
  /// their markers. Bold and italic quotes are removed, HTML entities decoded (`&nbsp;` as a space), spaces
  /// trimmed at line ends and runs of blank lines cut to one.
  public static func plainText(_ markup: String) -> String {
    let bytes = Array(markup.utf8)
    let noTags = removeCommentsAndTags(bytes)
    let noBrackets = removeBrackets(noTags)
    let lines = cleanLines(noBrackets)
    return String(decoding: decodeEntities(lines[...], html: true), as: UTF8.self)
  }

  // MARK: - Comments and tags

  /// Tags whose content is not prose: dropped with their content.
  static let droppedContentTags: Set<String> = [
    "ref", "references", "math", "chem", "ce", "gallery", "timeline", "imagemap", "score", "hiero", "graph",
    "templatedata", "syntaxhighlight", "source", "includeonly", "mapframe", "maplink", "inputbox", "categorytree",
  ]
  /// HTML and extension tags MediaWiki accepts; only these count as tags (so `a<b and c>d` stays text).
  static let knownTags: Set<String> = droppedContentTags.union([
    "b", "i", "u", "s", "del", "ins", "sub", "sup", "small", "big", "span", "div", "p", "br", "hr", "center",
    "font", "blockquote", "code", "pre", "tt", "em", "strong", "cite", "abbr", "ol", "ul", "li", "dl", "dt", "dd",
    "table", "tr", "td", "th", "caption", "nowiki", "poem", "noinclude", "onlyinclude", "var", "kbd", "samp", "q",
    "ruby", "rb", "rp", "rt", "bdi", "data", "time", "mark", "wbr", "strike", "h1", "h2", "h3", "h4", "h5", "h6",
    "section", "dfn",
  ])

  /// A tag at `i` (`<name …>`, `</name>` or `<name …/>`): its lowercased name, whether it closes or closes
  /// itself, and the index just past its `>`. nil when the bytes there are not a known tag.
  static func tag(at i: Int, in b: [UInt8]) -> (name: String, closing: Bool, selfClosing: Bool, end: Int)? {
    var j = i + 1
    let closing = j < b.count && b[j] == UInt8(ascii: "/")
    if closing { j += 1 }
    let nameStart = j
    while j < b.count, j - nameStart < 24, isAlphanumeric(b[j]) { j += 1 }
    guard j > nameStart, isLetter(b[nameStart]) else { return nil }
    let name = String(decoding: b[nameStart..<j].map(lowercased), as: UTF8.self)
    guard knownTags.contains(name), j < b.count,
          b[j] == UInt8(ascii: ">") || b[j] == UInt8(ascii: "/") || isSpace(b[j]) else { return nil }
    // The attributes end at the first '>' within 1000 bytes (bounded, so unclosed tags cost little).
    let limit = min(b.count, j + 1000)
    while j < limit, b[j] != UInt8(ascii: ">"), b[j] != UInt8(ascii: "<") { j += 1 }
    guard j < limit, b[j] == UInt8(ascii: ">") else { return nil }
    return (name, closing, b[j - 1] == UInt8(ascii: "/"), j + 1)
  }

  /// Comments removed (an unclosed one runs to the end, as in MediaWiki); dropped-content tags removed with
  /// their content (an unclosed one loses only its opening tag); other known tags removed, `<br>` as a space.
  static func removeCommentsAndTags(_ b: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(b.count)
    // For each dropped-content tag, where its next closing tag is at or after the last query; queries only move
    // forward, so each name's search covers the text once.
    var nextClose: [String: Int] = [:]
    func closeTag(_ name: String, from p: Int) -> Int? {
      if let c = nextClose[name], c >= p { return c < b.count ? c : nil }
      let c = findCaseInsensitive(Array("</\(name)".utf8), in: b, from: p) ?? b.count
      nextClose[name] = c
      return c < b.count ? c : nil
    }
    var i = 0
    while i < b.count {
      guard b[i] == UInt8(ascii: "<") else { out.append(b[i]); i += 1; continue }
      if hasPrefix(Array("<!--".utf8), in: b, at: i) {
        guard let close = find(Array("-->".utf8), in: b, from: i + 4) else { break }
        i = close + 3
        continue
      }
      guard let t = tag(at: i, in: b) else { out.append(b[i]); i += 1; continue }
      if droppedContentTags.contains(t.name), !t.closing, !t.selfClosing, let c = closeTag(t.name, from: t.end) {
        // Skip to just past the closing tag's '>' (or past its name when that '>' is missing).
        var j = c + 2 + t.name.utf8.count
        let limit = min(b.count, j + 100)
        while j < limit, b[j] != UInt8(ascii: ">") { j += 1 }
        i = j < limit ? j + 1 : c + 2 + t.name.utf8.count
        continue
      }
      if t.name == "br" { out.append(UInt8(ascii: " ")) }
      i = t.end
    }
    return out
  }

  // MARK: - Templates, tables and links

  enum Bracket: UInt8 { case none = 0, template, link, table }

  /// Templates and tables dropped, links replaced by their text, and bracket tokens that close nothing, or are
  /// never closed, dropped (the text around them stays).
  static func removeBrackets(_ b: [UInt8]) -> [UInt8] {
    let n = b.count
    // Pass 1: tokens and their matches. token[i] is the kind of a two-byte token starting at i; match[i] is where
    // an opener's closer starts (-1 when it has none). A closer pops the openers above its own kind, which stay
    // unmatched; a closer with no opener of its kind open is unmatched. Each opener is pushed and popped once.
    var token = [Bracket](repeating: .none, count: n), isOpener = [Bool](repeating: false, count: n)
    var match = [Int](repeating: -1, count: n)
    var stack: [(kind: Bracket, position: Int)] = []
    var open = [Int](repeating: 0, count: 4)                          // open openers, by kind
    var i = 0, lineStart = true
    while i + 1 < n {
      let c = b[i], d = b[i + 1]
      var kind = Bracket.none, opens = false
      if c == UInt8(ascii: "{") && d == UInt8(ascii: "{") { kind = .template; opens = true }
      else if c == UInt8(ascii: "}") && d == UInt8(ascii: "}") { kind = .template }
      else if c == UInt8(ascii: "[") && d == UInt8(ascii: "[") { kind = .link; opens = true }
      else if c == UInt8(ascii: "]") && d == UInt8(ascii: "]") { kind = .link }
      else if lineStart && c == UInt8(ascii: "{") && d == UInt8(ascii: "|") { kind = .table; opens = true }
      else if lineStart && c == UInt8(ascii: "|") && d == UInt8(ascii: "}") && open[Int(Bracket.table.rawValue)] > 0 { kind = .table }
      if kind == .none {
        if c == 10 { lineStart = true } else if !(isSpace(c) || c == UInt8(ascii: ":")) { lineStart = false }
        i += 1
        continue
      }
      token[i] = kind
      lineStart = false
      if opens {
        isOpener[i] = true
        stack.append((kind, i))
        open[Int(kind.rawValue)] += 1
      } else if open[Int(kind.rawValue)] > 0 {
        while let top = stack.popLast() {
          open[Int(top.kind.rawValue)] -= 1
          if top.kind == kind { match[top.position] = i; break }
        }
      }
      i += 2
    }

    // Pass 2: render. `ends` holds where the links whose text is being copied close (and the closer's length),
    // innermost last.
    var out: [UInt8] = []
    out.reserveCapacity(n)
    var ends: [(position: Int, length: Int)] = []
    i = 0
    while i < n {
      if let e = ends.last, i == e.position { ends.removeLast(); i += e.length; continue }
      if token[i] != .none {
        let q = match[i]
        if isOpener[i] && q >= 0 && token[i] == .link {
          if let textStart = linkText(open: i, close: q, b, token: token, isOpener: isOpener, match: match) {
            ends.append((q, 2))
            i = textStart
          } else {
            i = q + 2
          }
        } else if isOpener[i] && q >= 0 {
          i = q + 2                                                   // a template or table
        } else {
          i += 2                                                      // unmatched, or a closer already passed
        }
        continue
      }
      if b[i] == UInt8(ascii: "["), let (textStart, close) = externalLink(at: i, b, token: token, isOpener: isOpener, match: match) {
        ends.append((close, 1))
        i = textStart
        continue
      }
      out.append(b[i])
      i += 1
    }
    return out
  }

  /// Where the shown text of the link `[[target|text]]` between `open` and `close` starts, or nil when the
  /// link shows nothing in prose (files, images, categories, interlanguage links).
  static func linkText(open: Int, close: Int, _ b: [UInt8], token: [Bracket], isOpener: [Bool], match: [Int]) -> Int? {
    // The first '|' at this link's own level; nested brackets are jumped over, so each level scans its own text.
    var j = open + 2, pipe: Int? = nil
    while j < close {
      if token[j] != .none {
        j = isOpener[j] && match[j] >= 0 ? match[j] + 2 : j + 2
      } else if b[j] == UInt8(ascii: "|") {
        pipe = j
        break
      } else {
        j += 1
      }
    }
    var targetStart = open + 2
    while targetStart < close, isSpace(b[targetStart]) { targetStart += 1 }
    let leadingColon = targetStart < close && b[targetStart] == UInt8(ascii: ":")    // [[:Category:X]] is shown
    if leadingColon { targetStart += 1 }
    let target = b[targetStart..<(pipe ?? close)]
    if !leadingColon, let colon = target.firstIndex(of: UInt8(ascii: ":")) {
      let prefix = String(decoding: trimmed(target[target.startIndex..<colon]).map(lowercased), as: UTF8.self)
      if ["file", "image", "category", "media"].contains(prefix) { return nil }
      if pipe == nil, isLanguageCode(target[target.startIndex..<colon]) { return nil }
    }
    if let pipe { return pipe + 1 }
    return targetStart
  }

  /// `de`, `fr`, `zh-min-nan`, `simple`: the lowercase prefixes of interlanguage links.
  static func isLanguageCode(_ s: ArraySlice<UInt8>) -> Bool {
    guard s.count >= 2, s.count <= 12, let first = s.first, (97...122).contains(first) else { return false }
    return s.allSatisfy { (97...122).contains($0) || $0 == UInt8(ascii: "-") }
  }

  /// `[http://example.org shown text]` at `i`: where the shown text starts (at the `]` when there is none) and
  /// where the `]` is. It is looked for on the same line within 2000 bytes, jumping over matched brackets (the
  /// text may hold links) and stopping at a '[' or any other bracket token, so the searches of several unclosed
  /// links never cover the same bytes.
  static func externalLink(at i: Int, _ b: [UInt8], token: [Bracket], isOpener: [Bool], match: [Int]) -> (Int, Int)? {
    let schemes = ["http://", "https://", "ftp://", "//", "mailto:"].map { Array($0.utf8) }
    guard schemes.contains(where: { hasPrefix($0, in: b, at: i + 1) }) else { return nil }
    var j = i + 1, space: Int? = nil
    let limit = min(b.count, i + 2000)
    while j < limit {
      if token[j] != .none {
        guard isOpener[j], match[j] >= 0 else { return nil }
        j = match[j] + 2
        continue
      }
      let c = b[j]
      if c == UInt8(ascii: "]") { return (space.map { $0 + 1 } ?? j, j) }
      if c == UInt8(ascii: "[") || c == 10 { return nil }
      if space == nil, c == UInt8(ascii: " ") { space = j }
      j += 1
    }
    return nil
  }

  // MARK: - Lines

  /// Headings to their text, list markers, rules and magic words dropped, bold and italic quotes removed,
  /// lines trimmed, and at most one blank line in a row (none at the ends).
  static func cleanLines(_ b: [UInt8]) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(b.count)
    var blankRun = 0
    var start = 0
    while start <= b.count {
      let end = b[start...].firstIndex(of: 10) ?? b.count
      var line = cleanLine(b[start..<end])
      if line.count >= 4, line.allSatisfy({ $0 == UInt8(ascii: "-") }) { line = [] }     // ----
      if line.isEmpty {
        blankRun += 1
      } else {
        if !out.isEmpty { out.append(10); if blankRun > 0 { out.append(10) } }
        out.append(contentsOf: line)
        blankRun = 0
      }
      start = end + 1
    }
    return out
  }

  static func cleanLine(_ raw: ArraySlice<UInt8>) -> [UInt8] {
    var s = trimmed(raw)
    // "== Heading ==": the text between the runs of '='.
    if s.count >= 2, s.first == UInt8(ascii: "="), s.last == UInt8(ascii: "=") {
      s = trimmed(s.drop(while: { $0 == UInt8(ascii: "=") }))
      while s.last == UInt8(ascii: "=") { s = s.dropLast() }
      s = trimmed(s)
    }
    // List and indent markers: * # : ;
    s = trimmed(s.drop(while: { $0 == UInt8(ascii: "*") || $0 == UInt8(ascii: "#") || $0 == UInt8(ascii: ":") || $0 == UInt8(ascii: ";") }))
    var line: [UInt8] = []
    line.reserveCapacity(s.count)
    var i = s.startIndex
    while i < s.endIndex {
      let c = s[i]
      if c == UInt8(ascii: "'") {                       // '' italic, ''' bold, ''''' both; a lone ' is kept
        var j = i
        while j < s.endIndex, s[j] == UInt8(ascii: "'") { j += 1 }
        if j - i == 1 { line.append(c) }
        i = j
      } else if c == UInt8(ascii: "_"), let end = magicWordEnd(s, at: i) {
        i = end
      } else if isSpace(c) {                             // runs of spaces (left by dropped markup) become one
        if let last = line.last, !isSpace(last) { line.append(UInt8(ascii: " ")) }
        i += 1
      } else {
        line.append(c)
        i += 1
      }
    }
    while let last = line.last, isSpace(last) { line.removeLast() }
    return line
  }

  /// The end of `__NOTOC__`-style words (two underscores, capitals, two underscores) at `i`.
  static func magicWordEnd(_ s: ArraySlice<UInt8>, at i: Int) -> Int? {
    guard i + 1 < s.endIndex, s[i + 1] == UInt8(ascii: "_") else { return nil }
    var j = i + 2
    while j < s.endIndex, j - i < 40, (65...90).contains(s[j]) { j += 1 }
    guard j > i + 2, j + 1 < s.endIndex, s[j] == UInt8(ascii: "_"), s[j + 1] == UInt8(ascii: "_") else { return nil }
    return j + 2
  }

  // MARK: - Entities

  static let xmlEntities: [String: String] = ["amp": "&", "lt": "<", "gt": ">", "quot": "\"", "apos": "'"]
  static let htmlEntities: [String: String] = xmlEntities.merging([
    "nbsp": " ", "ndash": "–", "mdash": "—", "minus": "−", "hellip": "…", "lsquo": "‘", "rsquo": "’", "ldquo": "“",
    "rdquo": "”", "laquo": "«", "raquo": "»", "times": "×", "divide": "÷", "deg": "°", "plusmn": "±", "middot": "·",
    "bull": "•", "copy": "©", "reg": "®", "trade": "™", "sect": "§", "para": "¶", "euro": "€", "pound": "£",
    "yen": "¥", "cent": "¢", "frac12": "½", "frac14": "¼", "frac34": "¾", "sup2": "²", "sup3": "³", "prime": "′",
    "Prime": "″", "larr": "←", "rarr": "→", "harr": "↔", "thinsp": " ", "ensp": " ", "emsp": " ", "zwj": "",
    "zwnj": "", "shy": "", "lrm": "", "rlm": "", "alpha": "α", "beta": "β", "gamma": "γ", "delta": "δ",
    "epsilon": "ε", "zeta": "ζ", "eta": "η", "theta": "θ", "iota": "ι", "kappa": "κ", "lambda": "λ", "mu": "μ", "nu": "ν",
    "xi": "ξ", "omicron": "ο", "pi": "π", "rho": "ρ", "sigma": "σ", "tau": "τ", "upsilon": "υ", "phi": "φ", "chi": "χ",
    "psi": "ψ", "omega": "ω", "fnof": "ƒ", "eacute": "é", "egrave": "è", "aacute": "á", "agrave": "à",
    "ouml": "ö", "uuml": "ü", "auml": "ä", "szlig": "ß", "ccedil": "ç", "ntilde": "ñ", "oacute": "ó", "iacute": "í",
    "uacute": "ú",
  ]) { a, _ in a }

  /// `&name;`, `&#123;` and `&#x7B;` decoded (`html` adds the named HTML entities to XML's five); an unknown
  /// name or an invalid number is left as it is.
  static func decodeEntities(_ b: ArraySlice<UInt8>, html: Bool) -> [UInt8] {
    let table = html ? htmlEntities : xmlEntities
    var out: [UInt8] = []
    out.reserveCapacity(b.count)
    var i = b.startIndex
    while i < b.endIndex {
      guard b[i] == UInt8(ascii: "&") else { out.append(b[i]); i += 1; continue }
      var j = i + 1
      while j < b.endIndex, j - i <= 10, isAlphanumeric(b[j]) || b[j] == UInt8(ascii: "#") { j += 1 }
      if j < b.endIndex, b[j] == UInt8(ascii: ";"), j > i + 1, let decoded = entity(b[(i + 1)..<j], table) {
        out.append(contentsOf: decoded)
        i = j + 1
      } else {
        out.append(b[i])
        i += 1
      }
    }
    return out
  }

  static func entity(_ name: ArraySlice<UInt8>, _ table: [String: String]) -> [UInt8]? {
    let s = String(decoding: name, as: UTF8.self)
    if let v = table[s] { return Array(v.utf8) }
    guard s.hasPrefix("#") else { return nil }
    let digits = s.dropFirst()
    let value = digits.hasPrefix("x") || digits.hasPrefix("X") ? UInt32(digits.dropFirst(), radix: 16) : UInt32(digits)
    guard let value, let scalar = Unicode.Scalar(value), value != 0 else { return nil }
    return Array(String(Character(scalar)).utf8)
  }

  // MARK: - Bytes

  static func isSpace(_ c: UInt8) -> Bool { c == 32 || c == 9 || c == 13 }
  static func isLetter(_ c: UInt8) -> Bool { (65...90).contains(c) || (97...122).contains(c) }
  static func isAlphanumeric(_ c: UInt8) -> Bool { isLetter(c) || (48...57).contains(c) }
  static func lowercased(_ c: UInt8) -> UInt8 { (65...90).contains(c) ? c + 32 : c }

  static func trimmed(_ s: ArraySlice<UInt8>) -> ArraySlice<UInt8> {
    var s = s
    while let f = s.first, isSpace(f) { s = s.dropFirst() }
    while let l = s.last, isSpace(l) { s = s.dropLast() }
    return s
  }

  static func hasPrefix(_ needle: [UInt8], in b: [UInt8], at i: Int) -> Bool {
    guard i >= 0, i + needle.count <= b.count else { return false }
    for k in 0..<needle.count where b[i + k] != needle[k] { return false }
    return true
  }

  /// The first index at or after `from` (and before `before`, the end by default) where `needle` starts.
  static func find(_ needle: [UInt8], in b: [UInt8], from: Int, before: Int? = nil) -> Int? {
    let end = min(before ?? b.count, b.count) - needle.count
    guard let first = needle.first, from <= end else { return nil }
    var i = max(0, from)
    while i <= end {
      if b[i] == first, hasPrefix(needle, in: b, at: i) { return i }
      i += 1
    }
    return nil
  }

  static func findCaseInsensitive(_ needle: [UInt8], in b: [UInt8], from: Int) -> Int? {
    let lower = needle.map(lowercased)
    guard !lower.isEmpty, from <= b.count - lower.count else { return nil }
    var i = max(0, from)
    outer: while i <= b.count - lower.count {
      for k in 0..<lower.count where lowercased(b[i + k]) != lower[k] { i += 1; continue outer }
      return i
    }
    return nil
  }
}
