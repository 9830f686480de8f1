// GPT-2's byte-level alphabet: each of the 256 byte values is written as one printable Unicode scalar.

/// The byte ↔ scalar table of GPT-2 byte-level BPE. Printable Latin-1 bytes (`!`…`~`, `¡`…`¬`, `®`…`ÿ`) stand for
/// themselves; the other 68 bytes (controls, space, DEL, NBSP, soft hyphen) take U+0100, U+0101, … in byte order, so
/// a space is `Ġ` (U+0120) and a newline `Ċ` (U+010A).
package enum ByteLevel {
  /// `scalar(for: b)` is the scalar that stands for byte `b`.
  static let scalars: [Unicode.Scalar] = {
    var table = [Unicode.Scalar](repeating: " ", count: 256)
    var next: UInt32 = 256
    for byte in 0..<256 {
      if isPrintable(byte) {
        table[byte] = Unicode.Scalar(UInt8(byte))
      } else {
        table[byte] = Unicode.Scalar(next)!     // 256...323: always valid scalars
        next += 1
      }
    }
    return table
  }()

  /// The byte each scalar below U+0144 stands for, or -1 (indexed by scalar value).
  static let bytes: [Int16] = {
    var table = [Int16](repeating: -1, count: 324)
    for (byte, scalar) in scalars.enumerated() { table[Int(scalar.value)] = Int16(byte) }
    return table
  }()

  private static func isPrintable(_ byte: Int) -> Bool {
    (0x21...0x7E).contains(byte) || (0xA1...0xAC).contains(byte) || (0xAE...0xFF).contains(byte)
  }

  /// The byte-level spelling of raw bytes: `encode([0x20, 0x61]) == "Ġa"`.
  package static func encode<S: Sequence>(_ raw: S) -> String where S.Element == UInt8 {
    var out = String.UnicodeScalarView()
    for byte in raw { out.append(scalars[Int(byte)]) }
    return String(out)
  }

  /// The bytes a byte-level token text stands for. A scalar outside the alphabet (possible only in a malformed
  /// vocabulary) contributes its own UTF-8 bytes.
  static func decode(_ text: String) -> [UInt8] {
    var out: [UInt8] = []
    out.reserveCapacity(text.utf8.count)
    for scalar in text.unicodeScalars {
      if scalar.value < 324, bytes[Int(scalar.value)] >= 0 {
        out.append(UInt8(bytes[Int(scalar.value)]))
      } else {
        out.append(contentsOf: String(scalar).utf8)
      }
    }
    return out
  }
}
