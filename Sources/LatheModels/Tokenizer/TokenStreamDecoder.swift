// Decoding ids one at a time, as generation produces them, without splitting a character across outputs.

/// Turns token ids into text as they arrive. A character whose UTF-8 bytes are spread over several tokens (an
/// emoji is often two or three) comes out whole with the token that completes it; bytes that can never form a
/// character come out as U+FFFD at once, and an unfinished character left at the end as U+FFFD from `finish()`.
/// The pieces joined equal `tokenizer.decode(ids)`.
///
///     var decoder = tokenizer.streamDecoder()
///     for id in ids { print(try decoder.append(id), terminator: "") }
///     print(decoder.finish())
public struct TokenStreamDecoder: Sendable {
  public let tokenizer: BPETokenizer
  /// Bytes of a character still waiting for its continuation bytes (at most 3).
  private var pending: [UInt8] = []

  public init(tokenizer: BPETokenizer) { self.tokenizer = tokenizer }

  /// The text that `id` completes (often empty while a character is unfinished). Unknown ids throw
  /// `TokenizerError.unknownID` and leave the decoder as it was.
  public mutating func append(_ id: Int) throws -> String {
    var bytes = pending
    try tokenizer.appendBytes(of: id, to: &bytes)
    let keep = Self.unfinishedSuffixLength(bytes)
    pending = Array(bytes[(bytes.count - keep)...])
    return String(decoding: bytes[..<(bytes.count - keep)], as: UTF8.self)
  }

  /// Whatever is still held back, as U+FFFD, and an empty decoder.
  public mutating func finish() -> String {
    defer { pending.removeAll() }
    return String(decoding: pending, as: UTF8.self)
  }

  /// The length of the longest suffix of `bytes` that starts a UTF-8 character and could still be completed:
  /// a lead byte followed by fewer continuation bytes than it needs, each in its allowed range.
  static func unfinishedSuffixLength(_ bytes: [UInt8]) -> Int {
    let count = bytes.count
    for length in 1...3 where length <= count {
      let lead = bytes[count - length]
      let needed: Int
      var secondRange: ClosedRange<UInt8> = 0x80...0xBF
      switch lead {
      case 0xC2...0xDF: needed = 2
      case 0xE0: needed = 3; secondRange = 0xA0...0xBF
      case 0xE1...0xEC, 0xEE...0xEF: needed = 3
      case 0xED: needed = 3; secondRange = 0x80...0x9F
      case 0xF0: needed = 4; secondRange = 0x90...0xBF
      case 0xF1...0xF3: needed = 4
      case 0xF4: needed = 4; secondRange = 0x80...0x8F
      case 0x80...0xBF: continue                      // a continuation byte: look further back
      default: return 0                               // ASCII or a byte that never starts a character
      }
      guard length < needed else { return 0 }         // complete (or over-long, which decoding replaces)
      for k in 1..<length {
        let byte = bytes[count - length + k]
        guard (k == 1 ? secondRange : 0x80...0xBF).contains(byte) else { return 0 }
      }
      return length
    }
    return 0
  }
}
