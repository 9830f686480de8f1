// A linear layer's weight matrix [out, in]: a tensor (f32, or the GGUF block types the kernels read in place), or a
// compression technique's packed form. Both run the same two ways: a matrix-vector product for decoding and
// dequantised rows for prefill.

import LatheTensor

public enum LinearWeight {
  case tensor(Tensor)
  case compressed(any CompressedMatrix)

  public var shape: [Int] {
    switch self {
    case .tensor(let t): return t.shape
    case .compressed(let c): return c.shape
    }
  }

  public var count: Int { shape.reduce(1, *) }

  /// The dense tensor, when this is one.
  public var tensor: Tensor? { if case .tensor(let t) = self { return t } else { return nil } }

  /// "q4_1", "f32", … or the technique's name ("seedlm", "rtn").
  public var kind: String {
    switch self {
    case .tensor(let t): return t.dtype.rawValue
    case .compressed(let c): return String(c.technique.prefix { $0 != "(" })
    }
  }

  /// Bytes read by one matrix-vector product.
  public var byteCount: Int {
    switch self {
    case .tensor(let t): return t.dtype.bytes(forElements: t.count) ?? 0
    case .compressed(let c): return c.byteCount
    }
  }

  public func matvec(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, threads: Int) throws {
    switch self {
    case .tensor(let t): try t.matvec(x, into: y, threads: threads)
    case .compressed(let c): try c.matvec(x, into: y, threads: threads)
    }
  }

  public func dequantizeRows(_ rows: Range<Int>, into out: UnsafeMutablePointer<Float>) throws {
    switch self {
    case .tensor(let t): try t.dequantizeRows(rows, into: out)
    case .compressed(let c): try c.dequantizeRows(rows, into: out)
    }
  }

  /// A contiguous f32 copy of the matrix.
  public func denseF32() throws -> Tensor {
    switch self {
    case .tensor(let t): return try t.denseF32()
    case .compressed(let c): return try c.dequantized()
    }
  }
}
