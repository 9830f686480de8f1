// Errors of model file formats (GGUF): each names the file, the field and what is wrong with it.

/// A model file that cannot be read (or written) as asked, located by field:
///
///     model.gguf: tensor 'blk.0.attn_q.weight': offset 123 + 4096 bytes runs past the end of the file (98362432 bytes)
public enum ModelFormatError: Error, CustomStringConvertible, Equatable {
  /// The bytes break the format: truncated, inconsistent, out of range.
  case malformed(path: String, field: String, reason: String)
  /// Well formed, but asks for something this code does not do (a version, a type without a decoder).
  case unsupported(path: String, field: String, reason: String)
  /// The file, or a name asked for, is not there.
  case notFound(path: String, field: String, reason: String)

  public var path: String {
    switch self { case .malformed(let p, _, _), .unsupported(let p, _, _), .notFound(let p, _, _): return p }
  }
  public var field: String {
    switch self { case .malformed(_, let f, _), .unsupported(_, let f, _), .notFound(_, let f, _): return f }
  }
  public var reason: String {
    switch self { case .malformed(_, _, let r), .unsupported(_, _, let r), .notFound(_, _, let r): return r }
  }
  public var description: String { "\(path): \(field): \(reason)" }
}
