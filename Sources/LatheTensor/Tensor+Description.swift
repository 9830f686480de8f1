// Printing tensors like numpy: nested brackets, aligned, summarised with "..." when large.

import Foundation

extension Tensor: CustomStringConvertible {
  public var description: String {
    "tensor(" + body(threshold: 1000, edge: 3) + ", shape: \(shape), dtype: \(dtype))"
  }

  /// The bracketed elements; with more than `threshold` elements each axis shows `edge` items at each end.
  public func body(threshold: Int, edge: Int) -> String {
    let values = scalars
    let summarise = values.count > threshold
    let formatted = values.map { format($0) }
    let width = formatted.map(\.count).max() ?? 1
    func render(_ axis: Int, _ base: Int, _ indent: String) -> String {
      if axis == rank { return formatted.isEmpty ? "" : String(repeating: " ", count: width - formatted[base].count) + formatted[base] }
      let n = shape[axis], stride = shape[(axis + 1)...].reduce(1, *)
      var parts: [String] = []
      let indices: [Int?] = summarise && n > 2 * edge ? Array(0..<edge) + [nil] + Array((n - edge)..<n) : Array(0..<n)
      for i in indices {
        if let i { parts.append(render(axis + 1, base + i * stride, indent + " ")) } else { parts.append("...") }
      }
      let separator = axis == rank - 1 ? ", " : ",\n" + String(repeating: "\n", count: Swift.max(0, rank - axis - 2)) + indent + " "
      return "[" + parts.joined(separator: separator) + "]"
    }
    return render(0, 0, "")
  }

  func format(_ x: Float) -> String {
    if dtype.isInteger { return String(Int(x)) }
    if x.isNaN { return "nan" }
    if x.isInfinite { return x < 0 ? "-inf" : "inf" }
    if x == x.rounded() && Swift.abs(x) < 1e7 { return String(format: "%.0f.", x) }
    let a = Swift.abs(x)
    return a >= 1e-4 && a < 1e7 ? String(format: "%.4f", x) : String(format: "%.4e", x)
  }
}
