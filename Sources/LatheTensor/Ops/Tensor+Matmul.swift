// Matrix multiplication through cblas_sgemm, with transposes and leading dimensions taken from the strides.

import CBLAS

extension Tensor {
  /// [m, k] @ [k, n] → [m, n]; [b, m, k] @ [b, k, n] (or a 2-D right side) → [b, m, n].
  public func matmul(_ other: Tensor) throws -> Tensor {
    switch (rank, other.rank) {
    case (2, 2):
      guard shape[1] == other.shape[0] else { throw TensorError.shapeMismatch(op: "matmul", lhs: shape, rhs: other.shape) }
      var out = try Tensor(uninitialized: [shape[0], other.shape[1]], op: "matmul")
      try Tensor.gemm(self, other, into: try out.mutablePointer())
      return out
    case (3, 3), (3, 2):
      let batch = shape[0]
      let rhsBatched = other.rank == 3
      guard shape[2] == other.shape[rhsBatched ? 1 : 0], !rhsBatched || other.shape[0] == batch else {
        throw TensorError.shapeMismatch(op: "matmul", lhs: shape, rhs: other.shape)
      }
      let m = shape[1], n = other.shape[rhsBatched ? 2 : 1]
      var out = try Tensor(uninitialized: [batch, m, n], op: "matmul")
      let dst = try out.mutablePointer()
      for b in 0..<batch {
        let lhs = try indexed([.index(b)])
        let rhs = rhsBatched ? try other.indexed([.index(b)]) : other
        try Tensor.gemm(lhs, rhs, into: dst + b * m * n)
      }
      return out
    default:
      throw TensorError.shapeMismatch(op: "matmul", lhs: shape, rhs: other.shape)
    }
  }

  /// out = a @ b for 2-D a, b into contiguous `out`; a layout BLAS can read (row-major or its transpose)
  /// goes in as is, any other is copied first.
  static func gemm(_ a: Tensor, _ b: Tensor, into out: UnsafeMutablePointer<Float>) throws {
    let m = a.shape[0], k = a.shape[1], n = b.shape[1]
    if m == 0 || n == 0 { return }
    if k == 0 { out.update(repeating: 0, count: m * n); return }
    func layout(_ t: Tensor) throws -> (Tensor, CBLAS_TRANSPOSE, Int32) {
      let t32 = try t.contiguousIfF32()
      let rows = t32.shape[0], cols = t32.shape[1]
      if t32.strides[1] == 1 && (rows == 1 || t32.strides[0] >= cols) { return (t32, CblasNoTrans, Int32(Swift.max(t32.strides[0], cols))) }
      if t32.strides[0] == 1 && (cols == 1 || t32.strides[1] >= rows) { return (t32, CblasTrans, Int32(Swift.max(t32.strides[1], rows))) }
      let c = try t32.copied(as: .f32)
      return (c, CblasNoTrans, Int32(cols))
    }
    let (la, ta, lda) = try layout(a), (lb, tb, ldb) = try layout(b)
    guard m < Int(Int32.max), n < Int(Int32.max), k < Int(Int32.max) else {
      throw TensorError.invalidShape(op: "matmul", shape: [m, k, n], reason: "is too large for BLAS")
    }
    // Large products go in blocks of rows, so Ctrl-C stops one between blocks (each block is about 2^30 MACs, a few
    // tens of milliseconds; sgemm's speed is the same on blocks of a few hundred rows).
    let macsPerRow = Swift.max(1, n * k)
    let rowsPerBlock = Swift.max(64, (1 << 30) / macsPerRow)
    var r0 = 0
    while r0 < m {
      let rows = Swift.min(rowsPerBlock, m - r0)
      // Row r0 of A: r0 rows down (row-major A) or r0 columns across (A stored transposed).
      let aStart = la.readPointer() + (ta == CblasNoTrans ? r0 * Int(lda) : r0)
      Gemm.multiply(transposeA: ta == CblasTrans, transposeB: tb == CblasTrans, m: rows, n: n, k: k, aStart, lda: Int(lda),
                    lb.readPointer(), ldb: Int(ldb), out + r0 * n, ldc: n)
      r0 += rows
      if r0 < m { try Cancellation.check("matmul") }
    }
  }
}
