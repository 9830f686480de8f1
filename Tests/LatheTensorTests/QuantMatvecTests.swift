// The fused Q4_1 / Q8_0 matrix-vector kernels against their scalar twins, and the Tensor entry point (threads,
// odd row counts, f32 weights, bad shapes).

import Testing
@testable import LatheTensor

/// A [rows, cols] tensor of `dtype` with blocks quantised from seeded normal values.
func quantisedMatrix(_ rows: Int, _ cols: Int, _ dtype: DType, seed: UInt64) throws -> (Tensor, Tensor) {
  let source = try Tensor.randn([rows, cols], seed: seed)
  return (try source.copied(as: dtype), source)
}

@Test(arguments: [(DType.q4_1, 1, 32), (.q4_1, 7, 64), (.q4_1, 130, 576), (.q8_0, 1, 32), (.q8_0, 9, 96), (.q8_0, 131, 576)])
func quantisedMatvecMatchesItsScalarTwin(dtype: DType, rows: Int, cols: Int) throws {
  let (w, _) = try quantisedMatrix(rows, cols, dtype, seed: UInt64(rows * 31 + cols))
  let x = try Tensor.randn([cols], seed: 5).scalars
  var fast = [Float](repeating: 0, count: rows), slow = fast, threaded = fast
  let raw = UnsafeRawPointer(w.storage.bytes)
  x.withUnsafeBufferPointer { xp in
    slow.withUnsafeMutableBufferPointer { y in
      if dtype == .q4_1 { QuantKernels.q4_1RowsScalar(raw, cols: cols, x: xp.baseAddress!, y: y.baseAddress!, rows: 0..<rows) }
      else { QuantKernels.q8_0RowsScalar(raw, cols: cols, x: xp.baseAddress!, y: y.baseAddress!, rows: 0..<rows) }
    }
  }
  try x.withUnsafeBufferPointer { xp in
    try fast.withUnsafeMutableBufferPointer { try w.matvec(xp.baseAddress!, into: $0.baseAddress!, threads: 1) }
    try threaded.withUnsafeMutableBufferPointer { try w.matvec(xp.baseAddress!, into: $0.baseAddress!, threads: 2) }
  }
  for r in 0..<rows {
    #expect(abs(fast[r] - slow[r]) <= 1e-4 * max(1, abs(slow[r])), "\(dtype) row \(r): \(fast[r]) vs scalar \(slow[r])")
  }
  #expect(fast == threaded, "the thread count changed the result")
  // The dequantised rows give the same products through a plain dot.
  var rowsOut = [Float](repeating: 0, count: rows * cols)
  try rowsOut.withUnsafeMutableBufferPointer { try w.dequantizeRows(0..<rows, into: $0.baseAddress!) }
  #expect(rowsOut == w.scalars)
}

@Test func matvecOnF32AndItsErrors() throws {
  let w = try Tensor.randn([5, 3], seed: 1), x: [Float] = [1, 2, 3]
  var y = [Float](repeating: 0, count: 5)
  try x.withUnsafeBufferPointer { xp in try y.withUnsafeMutableBufferPointer { try w.matvec(xp.baseAddress!, into: $0.baseAddress!) } }
  let ws = w.scalars
  for r in 0..<5 { #expect(abs(y[r] - (ws[r * 3] + 2 * ws[r * 3 + 1] + 3 * ws[r * 3 + 2])) < 1e-5) }
  let vector = try Tensor.randn([4], seed: 2)
  #expect(throws: TensorError.self) {
    try x.withUnsafeBufferPointer { xp in try y.withUnsafeMutableBufferPointer { try vector.matvec(xp.baseAddress!, into: $0.baseAddress!) } }
  }
  #expect(throws: TensorError.self) { try w.dequantizeRows(4..<6, into: UnsafeMutablePointer<Float>.allocate(capacity: 1)) }
}
