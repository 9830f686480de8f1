// Matrix-vector products that read GGUF's quantised blocks directly (decode-time: one token, every weight once).
//
// W is [rows, cols] row-major, each row `cols / 32` blocks. y = W·x:
//   Q4_1 block (d, m, q[32]): Σ_j (d·q_j + m)·x_j = d·Σ_j q_j·x_j + m·Σ_j x_j, the second sum taken once per block of x;
//   Q8_0 block (d, q[32]):    Σ_j d·q_j·x_j.
// The nibbles and int8s become floats in plain lane loops, which inline and vectorise (engine-notes.md section 3:
// the stdlib SIMD conversion inits are out-of-line calls, 2x slower). Each kernel has a scalar twin the tests
// compare against. Rows are split over the thread pool in chunks; every row is written by one thread.

import CBLAS

public enum QuantKernels {
  /// How far ahead of the rows being multiplied the kernels touch one byte per block, so the weights stream in
  /// from memory before they are needed (Swift has no prefetch instruction; an ordinary load whose value is kept
  /// does the same). SmolLM2 decoding on 1 thread went from 76 to 105 tokens/s (512 bytes; 1024: 101, 2048: 97).
  public static let readAhead = 512
  /// Where the touched bytes go, so the loads are not optimised away.
  nonisolated(unsafe) public static var touchedSink: UInt8 = 0

  /// The fewest rows a parallel chunk gets.
  static let rowsPerChunk = 32

  /// Per-block sums of x (cols / 32 of them), for the Q4_1 minimum term.
  @inlinable
  public static func blockSums(_ x: UnsafePointer<Float>, cols: Int, into sums: UnsafeMutablePointer<Float>) {
    for b in 0..<(cols / 32) {
      let p = UnsafeRawPointer(x + b * 32)
      let s = p.loadUnaligned(as: SIMD16<Float>.self) + p.loadUnaligned(fromByteOffset: 64, as: SIMD16<Float>.self)
      sums[b] = s.sum()
    }
  }

  /// y[r] = Σ W[r, :]·x for r in `rowRange`, W in Q4_1 blocks. Two rows at a time share the loads of x (measured
  /// on 1536×576: 69 µs against 83 for one row at a time).
  @inlinable
  public static func q4_1Rows(_ w: UnsafeRawPointer, cols: Int, x: UnsafePointer<Float>, blockSums: UnsafePointer<Float>,
                              y: UnsafeMutablePointer<Float>, rows rowRange: Range<Int>) {
    let blocks = cols / 32, rowBytes = blocks * 20
    let xr = UnsafeRawPointer(x)
    var r = rowRange.lowerBound
    var touched: UInt8 = 0
    let end = w + rowRange.upperBound * rowBytes - 1
    while r < rowRange.upperBound {
      let pair = r + 1 < rowRange.upperBound
      let row0 = w + r * rowBytes, row1 = pair ? row0 + rowBytes : row0
      var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
      var m0: Float = 0, m1: Float = 0
      for b in 0..<blocks {
        touched &+= Swift.min(row0 + QuantKernels.readAhead + 40 * b, end).load(as: UInt8.self)
        let x0 = xr.loadUnaligned(fromByteOffset: b * 128, as: SIMD16<Float>.self)
        let x1 = xr.loadUnaligned(fromByteOffset: b * 128 + 64, as: SIMD16<Float>.self)
        let s = blockSums[b]
        let block0 = row0 + b * 20, block1 = row1 + b * 20
        let bytes0 = block0.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self)
        let bytes1 = block1.loadUnaligned(fromByteOffset: 4, as: SIMD16<UInt8>.self)
        var lo0 = SIMD16<Float>(), hi0 = SIMD16<Float>(), lo1 = SIMD16<Float>(), hi1 = SIMD16<Float>()
        for i in 0..<16 { lo0[i] = Float(bytes0[i] & 15); hi0[i] = Float(bytes0[i] >> 4) }
        for i in 0..<16 { lo1[i] = Float(bytes1[i] & 15); hi1[i] = Float(bytes1[i] >> 4) }
        let d0 = Float(Float16(bitPattern: block0.loadUnaligned(as: UInt16.self)))
        let d1 = Float(Float16(bitPattern: block1.loadUnaligned(as: UInt16.self)))
        a0 = a0.addingProduct(SIMD16(repeating: d0), (lo0 * x0).addingProduct(hi0, x1))
        a1 = a1.addingProduct(SIMD16(repeating: d1), (lo1 * x0).addingProduct(hi1, x1))
        m0 = m0.addingProduct(Float(Float16(bitPattern: block0.loadUnaligned(fromByteOffset: 2, as: UInt16.self))), s)
        m1 = m1.addingProduct(Float(Float16(bitPattern: block1.loadUnaligned(fromByteOffset: 2, as: UInt16.self))), s)
      }
      y[r] = a0.sum() + m0
      if pair { y[r + 1] = a1.sum() + m1 }
      r += 2
    }
    QuantKernels.touchedSink = touched
  }

  /// y[r] = Σ W[r, :]·x for r in `rowRange`, W in Q8_0 blocks, two rows at a time (1536×576: 56 µs).
  @inlinable
  public static func q8_0Rows(_ w: UnsafeRawPointer, cols: Int, x: UnsafePointer<Float>,
                              y: UnsafeMutablePointer<Float>, rows rowRange: Range<Int>) {
    let blocks = cols / 32, rowBytes = blocks * 34
    let xr = UnsafeRawPointer(x)
    var r = rowRange.lowerBound
    var touched: UInt8 = 0
    let end = w + rowRange.upperBound * rowBytes - 1
    while r < rowRange.upperBound {
      let pair = r + 1 < rowRange.upperBound
      let row0 = w + r * rowBytes, row1 = pair ? row0 + rowBytes : row0
      var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
      for b in 0..<blocks {
        touched &+= Swift.min(row0 + QuantKernels.readAhead + 68 * b, end).load(as: UInt8.self)
        let x0 = xr.loadUnaligned(fromByteOffset: b * 128, as: SIMD16<Float>.self)
        let x1 = xr.loadUnaligned(fromByteOffset: b * 128 + 64, as: SIMD16<Float>.self)
        let block0 = row0 + b * 34, block1 = row1 + b * 34
        let p0 = block0.loadUnaligned(fromByteOffset: 2, as: SIMD16<Int8>.self), q0 = block0.loadUnaligned(fromByteOffset: 18, as: SIMD16<Int8>.self)
        let p1 = block1.loadUnaligned(fromByteOffset: 2, as: SIMD16<Int8>.self), q1 = block1.loadUnaligned(fromByteOffset: 18, as: SIMD16<Int8>.self)
        var u0 = SIMD16<Float>(), v0 = SIMD16<Float>(), u1 = SIMD16<Float>(), v1 = SIMD16<Float>()
        for i in 0..<16 { u0[i] = Float(p0[i]); v0[i] = Float(q0[i]) }
        for i in 0..<16 { u1[i] = Float(p1[i]); v1[i] = Float(q1[i]) }
        let d0 = Float(Float16(bitPattern: block0.loadUnaligned(as: UInt16.self)))
        let d1 = Float(Float16(bitPattern: block1.loadUnaligned(as: UInt16.self)))
        a0 = a0.addingProduct(SIMD16(repeating: d0), (u0 * x0).addingProduct(v0, x1))
        a1 = a1.addingProduct(SIMD16(repeating: d1), (u1 * x0).addingProduct(v1, x1))
      }
      y[r] = a0.sum()
      if pair { y[r + 1] = a1.sum() }
      r += 2
    }
    QuantKernels.touchedSink = touched
  }

  /// The scalar twins: the block formulas element by element, accumulated in Double.
  public static func q4_1RowsScalar(_ w: UnsafeRawPointer, cols: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Range<Int>) {
    for r in rows {
      var s = 0.0
      for j in 0..<cols { s += Double(GGMLBlocks.q4_1(w + (r * cols + j) / 32 * 20, j % 32)) * Double(x[j]) }
      y[r] = Float(s)
    }
  }

  public static func q8_0RowsScalar(_ w: UnsafeRawPointer, cols: Int, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Range<Int>) {
    for r in rows {
      var s = 0.0
      for j in 0..<cols { s += Double(GGMLBlocks.q8_0(w + (r * cols + j) / 32 * 34, j % 32)) * Double(x[j]) }
      y[r] = Float(s)
    }
  }
}

extension Tensor {
  /// y = self·x for a matrix [rows, cols] in f32, f16, q8_0 or q4_1 and a vector of `cols` floats, written to the
  /// `rows` floats at y; the quantised types are read in place (no dequantised copy). `threads` caps the pool
  /// threads used (1: this thread only). cols must be a multiple of 32 for the block types.
  public func matvec(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, threads: Int = .max) throws {
    guard rank == 2, isContiguous else {
      throw TensorError.invalidArgument(op: "matvec", reason: "needs a contiguous matrix, got shape \(shape)")
    }
    let rows = shape[0], cols = shape[1]
    // Two even chunks per thread (of whole row pairs, which the kernels take together): fine enough that a late
    // worker costs little, coarse enough that a 192-row projection is not split unevenly between 2 threads.
    let chunks = Swift.max(1, Swift.min((rows + QuantKernels.rowsPerChunk - 1) / QuantKernels.rowsPerChunk,
                                        Swift.min(threads, ThreadPool.shared.threadCount) * 2))
    let perChunk = ((rows + chunks - 1) / chunks + 1) / 2 * 2
    func split(_ body: @escaping (Range<Int>) -> Void) {
      if chunks == 1 || threads <= 1 { body(0..<rows); return }
      ThreadPool.shared.parallelFor(chunks) { c in
        let start = c * perChunk
        if start < rows { body(start..<Swift.min(rows, start + perChunk)) }
      }
    }
    switch dtype {
    case .q4_1:
      guard cols % 32 == 0 else { throw TensorError.invalidArgument(op: "matvec", reason: "q4_1 needs cols a multiple of 32, got \(cols)") }
      let w = UnsafeRawPointer(storage.bytes) + offset / 32 * 20
      let sums = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(1, cols / 32))
      defer { sums.deallocate() }
      QuantKernels.blockSums(x, cols: cols, into: sums)
      let s = UnsafePointer(sums)
      split { QuantKernels.q4_1Rows(w, cols: cols, x: x, blockSums: s, y: y, rows: $0) }
    case .q8_0:
      guard cols % 32 == 0 else { throw TensorError.invalidArgument(op: "matvec", reason: "q8_0 needs cols a multiple of 32, got \(cols)") }
      let w = UnsafeRawPointer(storage.bytes) + offset / 32 * 34
      split { QuantKernels.q8_0Rows(w, cols: cols, x: x, y: y, rows: $0) }
    case .f32:
      let w = UnsafePointer(storage.floats(at: offset))
      split { r in
        cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(r.count), Int32(cols), 1, w + r.lowerBound * cols, Int32(cols),
                    x, 1, 0, y + r.lowerBound, 1)
      }
    default:
      let f = try copied(as: .f32)
      try f.matvec(x, into: y, threads: threads)
    }
  }

  /// Rows `rows` of a matrix [R, C] (any dtype) as f32, written to `out` (rows.count × C floats).
  public func dequantizeRows(_ rows: Range<Int>, into out: UnsafeMutablePointer<Float>) throws {
    guard rank == 2, isContiguous, rows.lowerBound >= 0, rows.upperBound <= shape[0] else {
      throw TensorError.invalidArgument(op: "dequantize", reason: "rows \(rows) of a matrix \(shape)")
    }
    let cols = shape[1], first = offset + rows.lowerBound * cols
    switch dtype {
    case .q4_1 where cols % 32 == 0:
      GGMLBlocks.dequantizeQ4_1(UnsafeRawPointer(storage.bytes) + first / 32 * 20, into: out, blocks: rows.count * cols / 32)
    case .q8_0 where cols % 32 == 0:
      GGMLBlocks.dequantizeQ8_0(UnsafeRawPointer(storage.bytes) + first / 32 * 34, into: out, blocks: rows.count * cols / 32)
    case .f32:
      out.update(from: storage.floats(at: first), count: rows.count * cols)
    default:
      for i in 0..<(rows.count * cols) { out[i] = dtype.load(storage.bytes, first + i) }
    }
  }
}
