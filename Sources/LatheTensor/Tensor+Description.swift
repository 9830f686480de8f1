// Printing tensors as numpy does: one format for the whole tensor (positional, or scientific when the magnitudes
// call for it), the shortest digits that read back to the same f32 (at most 8 after the point), decimal points
// aligned, rows indented under the opening bracket, lines wrapped at 75 characters, "..." when large.

import Foundation

extension Tensor: CustomStringConvertible {
  public var description: String {
    let prefix = "tensor("
    return prefix + body(threshold: 1000, edge: 3, indent: prefix.count) + ", shape: \(shape), dtype: \(dtype))"
  }

  /// The bracketed elements; with more than `threshold` elements each axis shows `edge` items at each end.
  /// `indent` is the column the opening bracket sits at (continuation lines line up under it).
  public func body(threshold: Int, edge: Int, indent: Int = 0, lineWidth: Int = 75) -> String {
    let values = scalars
    let summarise = values.count > threshold
    func shown(_ axis: Int) -> [Int?] {
      let n = shape[axis]
      return summarise && n > 2 * edge ? Array(0..<edge) + [nil] + Array((n - edge)..<n) : Array(0..<n)
    }
    // The elements that will print decide the format, as in numpy.
    var visible: [Float] = []
    func collect(_ axis: Int, _ base: Int) {
      if axis == rank { if base < values.count { visible.append(values[base]) }; return }
      let stride = shape[(axis + 1)...].reduce(1, *)
      for i in shown(axis) { if let i { collect(axis + 1, base + i * stride) } }
    }
    collect(0, 0)
    let format = NumberFormat(visible, integer: dtype.isInteger)
    func render(_ axis: Int, _ base: Int, _ column: Int) -> String {
      if axis == rank { return format.string(values[base]) }
      let stride = shape[(axis + 1)...].reduce(1, *)
      let items = shown(axis).map { i in i.map { render(axis + 1, base + $0 * stride, column + 1) } ?? "..." }
      if axis == rank - 1 {
        // One row: wrap before an element that would pass the line width.
        var out = "[", lineLength = column + 1
        for (k, item) in items.enumerated() {
          let piece = item + (k == items.count - 1 ? "]" : ",")
          if k > 0 {
            if lineLength + 1 + piece.count > lineWidth {
              out += "\n" + String(repeating: " ", count: column + 1); lineLength = column + 1
            } else {
              out += " "; lineLength += 1
            }
          }
          out += piece; lineLength += piece.count
        }
        return items.isEmpty ? "[]" : out
      }
      let separator = "," + String(repeating: "\n", count: Swift.max(1, rank - axis - 1)) + String(repeating: " ", count: column + 1)
      return "[" + items.joined(separator: separator) + "]"
    }
    return rank == 0 ? format.string(values.first ?? 0) : render(0, 0, indent)
  }

  /// The element as the tensor's format prints it alone (for messages).
  func format(_ x: Float) -> String { NumberFormat([x], integer: dtype.isInteger).string(x) }
}

/// numpy's float formatting (floatmode "maxprec", precision 8) for one set of values.
struct NumberFormat {
  let integer: Bool
  let scientific: Bool
  /// Positional: characters left of the point (sign included) and digits right of it.
  /// Scientific: the digits after the mantissa's point, and the exponent's digits.
  var padLeft = 0, padRight = 0, exponentDigits = 2
  static let precision = 8

  init(_ values: [Float], integer: Bool) {
    self.integer = integer
    let finite = values.filter { $0.isFinite }
    let magnitudes = finite.map(Swift.abs).filter { $0 != 0 }
    if integer {
      scientific = false
      padLeft = finite.map { String(Int($0)).count }.max() ?? 0
      return
    }
    if let hi = magnitudes.max(), let lo = magnitudes.min() {
      scientific = hi >= 1e8 || lo < 1e-4 || hi / lo > 1e3
    } else {
      scientific = false
    }
    if scientific {
      let parts = finite.map(NumberFormat.scientificParts)
      padRight = parts.map { $0.fraction.count }.max() ?? 0
      exponentDigits = Swift.max(2, parts.map { String(Swift.abs($0.exponent)).count }.max() ?? 2)
      padLeft = parts.map { $0.mantissa.count }.max() ?? 1
    } else {
      let parts = finite.map(NumberFormat.positionalParts)
      padLeft = parts.map { $0.integer.count }.max() ?? 0
      padRight = parts.map { $0.fraction.count }.max() ?? 0
    }
  }

  /// Width of every element, for aligning non-finite values.
  var width: Int { integer ? padLeft : (scientific ? padLeft + 1 + padRight + 2 + exponentDigits : padLeft + 1 + padRight) }

  func string(_ x: Float) -> String {
    if !x.isFinite || integer {
      let s = integer && x.isFinite ? String(Int(x)) : (x.isNaN ? "nan" : (x < 0 ? "-inf" : "inf"))
      return String(repeating: " ", count: Swift.max(0, width - s.count)) + s
    }
    if scientific {
      let p = NumberFormat.scientificParts(x)
      let fraction = p.fraction + String(repeating: "0", count: Swift.max(0, padRight - p.fraction.count))
      let e = String(Swift.abs(p.exponent))
      let exponent = (p.exponent < 0 ? "-" : "+") + String(repeating: "0", count: Swift.max(0, exponentDigits - e.count)) + e
      return String(repeating: " ", count: Swift.max(0, padLeft - p.mantissa.count)) + p.mantissa + "." + fraction + "e" + exponent
    }
    let p = NumberFormat.positionalParts(x)
    return String(repeating: " ", count: Swift.max(0, padLeft - p.integer.count)) + p.integer + "." + p.fraction
      + String(repeating: " ", count: Swift.max(0, padRight - p.fraction.count))
  }

  /// The shortest decimal digits that read back to `x` (as f32) and the power of ten: x = ±0.d₁d₂… × 10^point.
  static func shortestDigits(_ x: Float) -> (digits: String, point: Int, negative: Bool) {
    let text = Swift.abs(x).description                 // shortest round trip: "0.001", "1e-05", "1.5e+20"
    let pieces = text.split(separator: "e", maxSplits: 1)
    let mantissa = String(pieces[0]), exponent = pieces.count > 1 ? Int(pieces[1]) ?? 0 : 0
    let split = mantissa.split(separator: ".", maxSplits: 1, omittingEmptySubsequences: false)
    let whole = String(split[0]), fraction = split.count > 1 ? String(split[1]) : ""
    var digits = whole + fraction, point = whole.count + exponent
    while digits.hasPrefix("0") && digits.count > 1 { digits.removeFirst(); point -= 1 }
    while digits.hasSuffix("0") && digits.count > 1 { digits.removeLast() }
    if digits == "0" { point = 1 }
    return (digits, point, x.sign == .minus)          // -0 prints as "-0.", as in numpy
  }

  /// "-12" and "5" for -12.5: at most 8 fractional digits (rounded), trailing zeros trimmed.
  static func positionalParts(_ x: Float) -> (integer: String, fraction: String) {
    let (digits, point, negative) = shortestDigits(x)
    var whole: String, fraction: String
    if point <= 0 {
      whole = "0"; fraction = String(repeating: "0", count: -point) + digits
    } else if point >= digits.count {
      whole = digits + String(repeating: "0", count: point - digits.count); fraction = ""
    } else {
      whole = String(digits.prefix(point)); fraction = String(digits.dropFirst(point))
    }
    if fraction.count > precision {
      let rounded = String(format: "%.\(precision)f", Double(Swift.abs(x))).split(separator: ".")
      whole = String(rounded[0]); fraction = rounded.count > 1 ? String(rounded[1]) : ""
      while fraction.hasSuffix("0") { fraction.removeLast() }
    }
    return ((negative ? "-" : "") + whole, fraction)
  }

  /// "-1", "25" and -3 for -1.25e-3: at most 8 digits after the mantissa's point.
  static func scientificParts(_ x: Float) -> (mantissa: String, fraction: String, exponent: Int) {
    let (digits, point, negative) = shortestDigits(x)
    var lead = String(digits.prefix(1)), fraction = String(digits.dropFirst()), exponent = point - 1
    if fraction.count > precision {
      let text = String(format: "%.\(precision)e", Double(Swift.abs(x)))
      let parts = text.split(separator: "e")
      let m = parts[0].split(separator: ".")
      lead = String(m[0]); fraction = m.count > 1 ? String(m[1]) : ""
      exponent = Int(parts[1]) ?? exponent
      while fraction.hasSuffix("0") { fraction.removeLast() }
    }
    return ((negative ? "-" : "") + lead, fraction, exponent)
  }
}
