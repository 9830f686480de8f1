// Numeric CSV tables (mnist_5k.csv.gz, digits.csv.gz): comma-separated numbers, one row a line, no quoting.

import Foundation
import LatheTensor

/// A rectangular table of numbers, row-major.
public struct NumericTable {
  public var rowCount: Int
  public var columnCount: Int
  /// `rowCount * columnCount` values; integers up to 2^24 are exact.
  public var values: [Float]
}

/// Reads CSV files of numbers. Both real files have no header, use `,` and end each row with `\n`; `\r\n`, spaces
/// around fields and a final line without `\n` are accepted too.
///
///     let table = try CSV.numbers(path: "data/digits.csv.gz")     // 1797 rows, 65 columns
public enum CSV {
  /// A path ending in `.gz` is inflated first. `skipHeader` drops the first line unread.
  public static func numbers(path: String, skipHeader: Bool = false) throws -> NumericTable {
    let bytes = path.hasSuffix(".gz") ? try Gzip.read(path: path) : try readFile(path)
    return try numbers(bytes: bytes, path: path, skipHeader: skipHeader)
  }

  /// Parses `bytes`; `path` names the input in errors, with the line and column of a bad field.
  public static func numbers(bytes: [UInt8], path: String, skipHeader: Bool = false) throws -> NumericTable {
    var values: [Float] = []
    var columns = 0, rows = 0, line = 0
    try bytes.withUnsafeBufferPointer { buf in
      let n = buf.count
      var p = 0
      if skipHeader {
        while p < n && buf[p] != newline { p += 1 }
        p += 1
        line += 1
      }
      var row: [Float] = []
      while p < n {
        line += 1
        // One line: fields until '\n' or the end.
        var end = p
        while end < n && buf[end] != newline { end += 1 }
        var lineEnd = end
        if lineEnd > p && buf[lineEnd - 1] == carriageReturn { lineEnd -= 1 }
        defer { p = end + 1 }
        if isBlank(buf, p, lineEnd) { continue }
        row.removeAll(keepingCapacity: true)
        var q = p
        while true {
          var fieldEnd = q
          while fieldEnd < lineEnd && buf[fieldEnd] != comma { fieldEnd += 1 }
          guard let v = number(buf, q, fieldEnd) else {
            let text = String(decoding: UnsafeBufferPointer(rebasing: buf[q..<min(fieldEnd, q + 40)]), as: UTF8.self)
            var reason = text.isEmpty ? "the field is empty" : "'\(text)' is not a number"
            if rows == 0 && !skipHeader && !text.isEmpty { reason += " (is line \(line) a header? pass skipHeader: true)" }
            throw DataError.malformed(path: path, field: "line \(line), column \(row.count + 1)", reason: reason)
          }
          row.append(v)
          if fieldEnd >= lineEnd { break }
          q = fieldEnd + 1
        }
        if rows == 0 {
          columns = row.count
          values.reserveCapacity(columns * max(1, n / max(1, (end - p + 1))))
        } else if row.count != columns {
          throw DataError.malformed(path: path, field: "line \(line)",
                                    reason: "has \(row.count) columns, the first row has \(columns)")
        }
        values.append(contentsOf: row)
        rows += 1
      }
    }
    return NumericTable(rowCount: rows, columnCount: columns, values: values)
  }

  private static let newline = UInt8(ascii: "\n"), carriageReturn = UInt8(ascii: "\r"), comma = UInt8(ascii: ",")

  private static func isBlank(_ buf: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Bool {
    var i = start
    while i < end { if buf[i] != UInt8(ascii: " ") && buf[i] != UInt8(ascii: "\t") { return false }; i += 1 }
    return true
  }

  /// The number in `buf[start..<end]` (spaces around it allowed), or nil. Plain integers take a fast path; anything
  /// else (`0.5`, `1e-3`) goes through `Double`'s parser.
  private static func number(_ buf: UnsafeBufferPointer<UInt8>, _ start: Int, _ end: Int) -> Float? {
    var s = start, e = end
    while s < e && (buf[s] == UInt8(ascii: " ") || buf[s] == UInt8(ascii: "\t")) { s += 1 }
    while e > s && (buf[e - 1] == UInt8(ascii: " ") || buf[e - 1] == UInt8(ascii: "\t")) { e -= 1 }
    guard s < e else { return nil }
    var i = s, negative = false
    if buf[i] == UInt8(ascii: "-") { negative = true; i += 1 }
    if i < e && e - i <= 9 {
      var x = 0, allDigits = true
      while i < e {
        let d = Int(buf[i]) &- 48
        if d < 0 || d > 9 { allDigits = false; break }
        x = x * 10 + d
        i += 1
      }
      if allDigits { return Float(negative ? -x : x) }
    }
    let text = String(decoding: UnsafeBufferPointer(rebasing: buf[s..<e]), as: UTF8.self)
    guard let d = Double(text), d.isFinite else { return nil }
    return Float(d)
  }
}

/// The bytes of a file, or `DataError.cannotRead` naming it.
func readFile(_ path: String) throws -> [UInt8] {
  guard let data = FileBytes.contents(atPath: path) else {
    let reason = FileManager.default.fileExists(atPath: path) ? "not readable" : "no such file"
    throw DataError.cannotRead(path: path, reason: reason)
  }
  return [UInt8](data)
}
