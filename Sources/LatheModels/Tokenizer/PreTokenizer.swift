// Pre-tokenization: text is cut into words before BPE merges, with the rules llama.cpp applies for each
// `tokenizer.ggml.pre` name. Matched by hand over Unicode scalars: no regular-expression engine.

/// How text is cut into words before BPE (GGUF key `tokenizer.ggml.pre`).
///
/// The GPT-2 pattern is `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`, read the way
/// llama.cpp reads it: contractions are lower-case only, `\s` is the Unicode White_Space property, and a run of
/// several white-space scalars followed by more text leaves its last scalar to start the next word (`"\n    if"` is
/// `"\n   "`, `" if"`). Each earlier stage's pieces are cut separately; a later stage never joins them.
///
///     PreTokenizer.smollm.words(in: "on 2024-03") == ["on", " ", "2", "0", "2", "4", "-", "0", "3"]
public enum PreTokenizer: String, Sendable, CaseIterable {
  /// The GPT-2 pattern alone (`gpt2`, `mpt`, `olmo`, `jais`).
  case gpt2
  /// Every `\p{N}` scalar is a word of its own, then the GPT-2 pattern cuts the rest (`smollm`, `starcoder`,
  /// `refact`, `command-r`, `codeshell`).
  case smollm
  /// llama.cpp's choice when a file names none (`default`, or an empty name): runs of `[\p{P}$+<=>^~|]` first,
  /// then the GPT-2 pattern, then runs of `\p{N}`, then groups of three ASCII digits from the left.
  case `default`

  /// The pre-tokenizer a GGUF `tokenizer.ggml.pre` value names; other names throw, as they do in llama.cpp.
  public init(name: String) throws {
    switch name {
    case "gpt2", "mpt", "olmo", "jais": self = .gpt2
    case "smollm", "starcoder", "refact", "command-r", "codeshell": self = .smollm
    case "default", "": self = .default
    default:
      throw TokenizerError.invalid(field: "tokenizer.ggml.pre",
                                   reason: "'\(name)' is not a known pre-tokenizer (gpt2, smollm, default, or an alias)")
    }
  }

  /// The words of `text`, in order; joined they give `text` back.
  public func words(in text: String) -> [String] {
    let scalars = ScalarText(Array(text.utf8))
    return split(scalars, 0..<scalars.count).map { range in
      String(decoding: scalars.bytes[scalars.byteRange(range)], as: UTF8.self)
    }
  }

  /// Word boundaries, as scalar index ranges, of `text[range]`.
  func split(_ text: ScalarText, _ range: Range<Int>) -> [Range<Int>] {
    switch self {
    case .gpt2:
      var words: [Range<Int>] = []
      Self.gpt2(text, range, into: &words)
      return words
    case .smollm:
      var words: [Range<Int>] = []
      var start = range.lowerBound
      for i in range where text.classes[i] == .number {
        if start < i { Self.gpt2(text, start..<i, into: &words) }
        words.append(i..<i + 1)
        start = i + 1
      }
      if start < range.upperBound { Self.gpt2(text, start..<range.upperBound, into: &words) }
      return words
    case .default:
      let symbols = Self.runs(text, [range]) { text.classes[$0] == .punctuation || Self.isDefaultSymbol(text.scalars[$0]) }
      var words: [Range<Int>] = []
      for piece in symbols { Self.gpt2(text, piece, into: &words) }
      words = Self.runs(text, words) { text.classes[$0] == .number }
      return Self.asciiDigitTriples(text, words)
    }
  }

  private static func isDefaultSymbol(_ scalar: UInt32) -> Bool {
    switch scalar {
    case 0x24, 0x2B, 0x3C, 0x3D, 0x3E, 0x5E, 0x7E, 0x7C: return true    // $ + < = > ^ ~ |
    default: return false
    }
  }

  /// Each piece cut into maximal runs where `matches` holds and the gaps between them (a regex `X+` used to split).
  private static func runs(_ text: ScalarText, _ pieces: [Range<Int>], _ matches: (Int) -> Bool) -> [Range<Int>] {
    var out: [Range<Int>] = []
    out.reserveCapacity(pieces.count)
    for piece in pieces {
      var start = piece.lowerBound, i = piece.lowerBound
      while i < piece.upperBound {
        guard matches(i) else { i += 1; continue }
        var end = i + 1
        while end < piece.upperBound && matches(end) { end += 1 }
        if start < i { out.append(start..<i) }
        out.append(i..<end)
        start = end
        i = end
      }
      if start < piece.upperBound { out.append(start..<piece.upperBound) }
    }
    return out
  }

  /// Each piece cut at the regex `[0-9][0-9][0-9]`: leftmost non-overlapping triples of ASCII digits.
  private static func asciiDigitTriples(_ text: ScalarText, _ pieces: [Range<Int>]) -> [Range<Int>] {
    func isDigit(_ i: Int) -> Bool { (0x30...0x39).contains(text.scalars[i]) }
    var out: [Range<Int>] = []
    out.reserveCapacity(pieces.count)
    for piece in pieces {
      var start = piece.lowerBound, i = piece.lowerBound
      while i + 3 <= piece.upperBound {
        if isDigit(i) && isDigit(i + 1) && isDigit(i + 2) {
          if start < i { out.append(start..<i) }
          out.append(i..<i + 3)
          i += 3
          start = i
        } else {
          i += 1
        }
      }
      if start < piece.upperBound { out.append(start..<piece.upperBound) }
    }
    return out
  }

  /// The GPT-2 pattern over `text[range]`; nothing outside `range` is looked at (it counts as end of text).
  static func gpt2(_ text: ScalarText, _ range: Range<Int>, into words: inout [Range<Int>]) {
    let end = range.upperBound
    let scalars = text.scalars, classes = text.classes
    func cls(_ i: Int) -> ScalarClass { i < end ? classes[i] : .none }
    var pos = range.lowerBound
    while pos < end {
      let start = pos, scalar = scalars[pos]
      // 's 't 'm 'd 're 've 'll
      if scalar == 0x27, pos + 1 < end {
        let next = scalars[pos + 1]
        if next == 0x73 || next == 0x74 || next == 0x6D || next == 0x64 {
          words.append(pos..<pos + 2); pos += 2; continue
        }
        if pos + 2 < end {
          let third = scalars[pos + 2]
          if (next == 0x72 && third == 0x65) || (next == 0x76 && third == 0x65) || (next == 0x6C && third == 0x6C) {
            words.append(pos..<pos + 3); pos += 3; continue
          }
        }
      }
      // An optional leading space, then letters, numbers, or other non-space scalars.
      let lead = scalar == 0x20 ? cls(pos + 1) : classes[pos]
      if lead != .whitespace && lead != .none {
        var i = scalar == 0x20 ? pos + 1 : pos
        switch lead {
        case .letter: while cls(i) == .letter { i += 1 }
        case .number: while cls(i) == .number { i += 1 }
        default: while cls(i).isSymbol { i += 1 }
        }
        words.append(start..<i); pos = i; continue
      }
      // White space: a run that is followed by more text keeps its last scalar for the next word.
      var i = pos
      while cls(i) == .whitespace { i += 1 }
      if i - pos > 1 && i < end { i -= 1 }
      if i == pos { i += 1 }             // not reached for valid classes; guarantees progress
      words.append(start..<i); pos = i
    }
  }
}

/// What the pre-tokenizers need to know about a scalar: its general category group and the White_Space property.
enum ScalarClass: UInt8 {
  case none           // past the end of the piece being cut
  case letter         // \p{L}
  case number         // \p{N}
  case whitespace     // \s (White_Space)
  case punctuation    // \p{P}
  case other          // symbols, marks, controls, unassigned...

  /// In `[^\s\p{L}\p{N}]`.
  var isSymbol: Bool { self == .punctuation || self == .other }

  static let ascii: [ScalarClass] = (0..<128).map { classify(Unicode.Scalar(UInt8($0))) }

  @inline(__always) static func of(_ value: UInt32) -> ScalarClass {
    if value < 128 { return ascii[Int(value)] }
    guard let scalar = Unicode.Scalar(value) else { return .other }
    return classify(scalar)
  }

  static func classify(_ scalar: Unicode.Scalar) -> ScalarClass {
    let properties = scalar.properties
    if properties.isWhitespace { return .whitespace }
    switch properties.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
    case .decimalNumber, .letterNumber, .otherNumber: return .number
    case .connectorPunctuation, .dashPunctuation, .openPunctuation, .closePunctuation, .initialPunctuation,
         .finalPunctuation, .otherPunctuation: return .punctuation
    default: return .other
    }
  }
}

/// UTF-8 text decoded once into scalars, their classes and byte offsets.
struct ScalarText {
  let bytes: [UInt8]
  private(set) var scalars: [UInt32] = []
  private(set) var classes: [ScalarClass] = []
  /// Byte offset of each scalar, plus one entry for the end.
  private(set) var offsets: [Int] = []
  var count: Int { scalars.count }

  /// Decodes `bytes[range]` (all of `bytes` by default). Malformed UTF-8 is read as U+FFFD, one byte at a time.
  init(_ bytes: [UInt8], range: Range<Int>? = nil) {
    self.bytes = bytes
    let range = range ?? 0..<bytes.count
    scalars.reserveCapacity(range.count)
    classes.reserveCapacity(range.count)
    offsets.reserveCapacity(range.count + 1)
    var i = range.lowerBound
    while i < range.upperBound {
      let (value, length) = Self.decodeScalar(bytes, at: i, end: range.upperBound)
      scalars.append(value)
      classes.append(ScalarClass.of(value))
      offsets.append(i)
      i += length
    }
    offsets.append(range.upperBound)
  }

  /// The bytes of scalars `range`.
  func byteRange(_ range: Range<Int>) -> Range<Int> { offsets[range.lowerBound]..<offsets[range.upperBound] }

  @inline(__always)
  private static func decodeScalar(_ b: [UInt8], at i: Int, end: Int) -> (UInt32, Int) {
    let lead = b[i]
    if lead < 0x80 { return (UInt32(lead), 1) }
    func continuation(_ k: Int) -> UInt32? { i + k < end && b[i + k] & 0xC0 == 0x80 ? UInt32(b[i + k] & 0x3F) : nil }
    if lead & 0xE0 == 0xC0, let c1 = continuation(1) {
      let v = UInt32(lead & 0x1F) << 6 | c1
      if v >= 0x80 { return (v, 2) }
    } else if lead & 0xF0 == 0xE0, let c1 = continuation(1), let c2 = continuation(2) {
      let v = UInt32(lead & 0x0F) << 12 | c1 << 6 | c2
      if v >= 0x800 && !(0xD800...0xDFFF).contains(v) { return (v, 3) }
    } else if lead & 0xF8 == 0xF0, let c1 = continuation(1), let c2 = continuation(2), let c3 = continuation(3) {
      let v = UInt32(lead & 0x07) << 18 | c1 << 12 | c2 << 6 | c3
      if (0x10000...0x10FFFF).contains(v) { return (v, 4) }
    }
    return (0xFFFD, 1)
  }
}
