// Errors of data files and datasets: each names the file and the field or record that was wrong.

public enum DataError: Error, CustomStringConvertible, Equatable {
  case cannotRead(path: String, reason: String)
  case malformed(path: String, field: String, reason: String)
  /// A dataset operation given arguments it cannot use: `split: fraction must be in [0, 1], got 1.5`.
  case invalidArgument(op: String, reason: String)

  public var description: String {
    switch self {
    case .cannotRead(let path, let reason): return "cannot read \(path): \(reason)"
    case .malformed(let path, let field, let reason): return "\(path): \(field): \(reason)"
    case .invalidArgument(let op, let reason): return "\(op): \(reason)"
    }
  }
}
