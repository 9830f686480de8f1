// Errors of tensor operations: each names the operation and the shapes or values involved.

public enum TensorError: Error, CustomStringConvertible, Equatable {
  case shapeMismatch(op: String, lhs: [Int], rhs: [Int])
  case invalidShape(op: String, shape: [Int], reason: String)
  case invalidAxis(op: String, axis: Int, rank: Int)
  case invalidArgument(op: String, reason: String)
  case unsupportedDType(op: String, dtype: DType)
  case outOfMemory(op: String, bytes: Int, budget: Int)
  case indexOutOfRange(op: String, index: Int, size: Int, axis: Int)
  /// Ctrl-C stopped the operation between two of its tiles.
  case interrupted(op: String)

  public var description: String {
    switch self {
    case .shapeMismatch(let op, let lhs, let rhs): return "\(op): shapes \(lhs) and \(rhs) do not fit"
    case .invalidShape(let op, let shape, let reason): return "\(op): shape \(shape) \(reason)"
    case .invalidAxis(let op, let axis, let rank): return "\(op): axis \(axis) is out of range for a tensor of rank \(rank)"
    case .invalidArgument(let op, let reason): return "\(op): \(reason)"
    case .unsupportedDType(let op, let dtype): return "\(op): not supported for dtype \(dtype)"
    case .outOfMemory(let op, let bytes, let budget):
      return "\(op): \(Memory.describe(bytes)) exceeds the memory budget of \(Memory.describe(budget))"
    case .interrupted(let op): return "interrupted (in \(op))"
    case .indexOutOfRange(let op, let index, let size, let axis):
      return "\(op): index \(index) is out of range for axis \(axis) of size \(size)"
    }
  }
}
