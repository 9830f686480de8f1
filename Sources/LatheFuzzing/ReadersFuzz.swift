// The readers target: the data formats Lathe reads from disk. The first byte picks the reader, the rest is the file:
// 0 IDX images, 1 IDX labels, 2 CSV numbers, 3 CSV numbers after a header line, 4 PPM, 5 gzip (whose contents are
// then read as CSV, as `digits()` reads its file). Each must end in a tensor or table of the promised shape or an
// error; none may read past its input or allocate beyond the budget.

import Foundation
import LatheData
import LatheTensor

enum ReadersFuzz {
  static func idx(_ dims: [Int], _ magic: UInt8) -> [UInt8] {
    var out: [UInt8] = [0, 0, 8, magic]
    for d in dims { out += [0, 0, UInt8(d >> 8), UInt8(d & 0xFF)] }
    return out + (0..<dims.reduce(1, *)).map { UInt8(truncatingIfNeeded: $0 * 37) }
  }

  static let csv = Array("label,a,b,c\n1,0.5,2,-3\n0,1e-3,4,5\n".utf8)

  static func crc32(_ bytes: [UInt8]) -> UInt32 {
    var crc: UInt32 = 0xFFFF_FFFF
    for b in bytes {
      crc ^= UInt32(b)
      for _ in 0..<8 { crc = crc & 1 == 1 ? (crc >> 1) ^ 0xEDB8_8320 : crc >> 1 }
    }
    return ~crc
  }

  /// A gzip member holding `data` in one stored (uncompressed) deflate block.
  static func gzip(_ data: [UInt8]) -> [UInt8] {
    let n = UInt16(data.count)
    var out: [UInt8] = [0x1F, 0x8B, 8, 0, 0, 0, 0, 0, 0, 0xFF, 1, UInt8(n & 0xFF), UInt8(n >> 8), UInt8(~n & 0xFF), UInt8(~n >> 8)]
    out += data
    for value in [crc32(data), UInt32(data.count)] { out += (0..<4).map { UInt8(truncatingIfNeeded: value >> (8 * $0)) } }
    return out
  }

  static func seeds() throws -> [(String, [UInt8])] {
    [("images.idx", [0] + idx([2, 3, 4], 3)), ("labels.idx", [1] + idx([5], 1)), ("numbers.csv", [2] + Array(csv.dropFirst(12))),
     ("table.csv", [3] + csv), ("image.ppm", [4] + Array("P6\n# seed\n2 2\n255\n".utf8) + (0..<12).map { UInt8($0 * 20) }),
     ("table.csv.gz", [5] + gzip(csv))]
  }

  static func check(_ input: [UInt8]) throws {
    guard let kind = input.first else { return }
    let bytes = Array(input.dropFirst())
    switch kind % 6 {
    case 0:
      guard let t = try? IDX.images(bytes: bytes, path: "fuzz") else { return }
      guard t.shape.count == 4, t.shape[1] == 1, t.count <= bytes.count else { throw FuzzFinding("IDX images gave shape \(t.shape) from \(bytes.count) bytes") }
    case 1:
      guard let t = try? IDX.labels(bytes: bytes, path: "fuzz") else { return }
      guard t.shape.count == 1, t.count <= bytes.count else { throw FuzzFinding("IDX labels gave shape \(t.shape) from \(bytes.count) bytes") }
    case 2, 3:
      try table(bytes, skipHeader: kind % 6 == 3)
    case 4:
      guard let t = try? PPM.read(bytes: bytes, path: "fuzz") else { return }
      guard t.count <= bytes.count else { throw FuzzFinding("PPM gave \(t.count) values from \(bytes.count) bytes") }
    default:
      guard let out = try? Gzip.decompress(bytes, limit: 1 << 24, path: "fuzz") else { return }
      guard out.count <= 1 << 24 else { throw FuzzFinding("gzip gave \(out.count) bytes past its limit") }
      try table(out, skipHeader: true)
    }
  }

  static func table(_ bytes: [UInt8], skipHeader: Bool) throws {
    guard let t = try? CSV.numbers(bytes: bytes, path: "fuzz", skipHeader: skipHeader) else { return }
    guard t.rowCount >= 0, t.columnCount >= 0, t.values.count == t.rowCount * t.columnCount else {
      throw FuzzFinding("CSV gave \(t.values.count) values for \(t.rowCount) rows of \(t.columnCount)")
    }
  }
}
