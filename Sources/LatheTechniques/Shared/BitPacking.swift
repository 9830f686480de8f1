// Codes of 2 to 8 bits packed LSB first into bytes, and the row split the baseline kernels share.
//
// A stream of codes c_0, c_1, ... of `bits` bits each puts c_i at bits i·bits ..< (i+1)·bits, counting from bit 0
// (the least significant) of byte 0; the last byte's unused high bits are zero. Sixteen codes take exactly 2·bits
// bytes, and eight take `bits` bytes, so the fused kernels read 16 codes as two little-endian 8-byte words (at
// byte 0 and byte `bits` of the chunk) and shift each lane's code out with constant shifts.

import LatheTensor

enum BitPacking {
  /// Bytes that `count` codes of `bits` bits take (the last one zero-padded); nil when that overflows.
  static func byteCount(codes count: Int, bits: Int) -> Int? {
    let (total, overflow) = count.multipliedReportingOverflow(by: bits)
    guard !overflow, count >= 0 else { return nil }
    return total / 8 + (total % 8 == 0 ? 0 : 1)
  }

  /// Writes `count` codes (each below 2^bits) LSB first from bit 0 of `out`, zeroing its bytes first.
  static func pack(_ codes: UnsafePointer<UInt8>, count: Int, bits: Int, into out: UnsafeMutableRawPointer) {
    let bytes = out.assumingMemoryBound(to: UInt8.self)
    let n = (count * bits + 7) / 8
    bytes.initialize(repeating: 0, count: n)
    var bit = 0
    for i in 0..<count {
      let shifted = UInt16(codes[i]) << UInt16(bit % 8)              // at most 8 + 7 bits
      bytes[bit / 8] |= UInt8(truncatingIfNeeded: shifted)
      if shifted >> 8 != 0 { bytes[bit / 8 + 1] |= UInt8(shifted >> 8) }
      bit += bits
    }
  }

  /// Code `i` of a stream packed LSB first from `p` (the scalar twins' reader; never reads past the code's bytes).
  @inline(__always)
  static func code(_ p: UnsafeRawPointer, _ i: Int, bits: Int) -> Int {
    let bit = i * bits, byte = bit / 8, shift = bit % 8
    let lo = Int(p.load(fromByteOffset: byte, as: UInt8.self))
    let hi = shift + bits > 8 ? Int(p.load(fromByteOffset: byte + 1, as: UInt8.self)) : 0
    return ((hi << 8 | lo) >> shift) & ((1 << bits) - 1)
  }

  /// The 16 codes packed from `p` (byte-aligned) as floats. Reads the 8-byte words at p and p + bits: up to
  /// 8 − bits bytes past the 2·bits bytes the codes take, so every buffer the kernels read keeps `slack` bytes
  /// after its end. `bits` is a literal at each call site (the kernels are specialised per width), so the shifts
  /// are constants and the lane loops vectorise.
  @inline(__always)
  static func unpack16(_ p: UnsafeRawPointer, bits: Int) -> SIMD16<Float> {
    let w0 = p.loadUnaligned(as: UInt64.self), w1 = p.loadUnaligned(fromByteOffset: bits, as: UInt64.self)
    let mask = SIMD8<UInt64>(repeating: UInt64(1) << UInt64(bits) - 1)
    let shifts = SIMD8<UInt64>(0, 1, 2, 3, 4, 5, 6, 7) &* UInt64(bits)
    let a = (SIMD8(repeating: w0) &>> shifts) & mask, b = (SIMD8(repeating: w1) &>> shifts) & mask
    var v = SIMD16<Float>()
    for k in 0..<8 { v[k] = Float(Int32(truncatingIfNeeded: a[k])); v[k + 8] = Float(Int32(truncatingIfNeeded: b[k])) }
    return v
  }

  /// Bytes kept after each packed buffer for `unpack16`'s over-read.
  static let slack = 8

  /// Runs `body` over `rows` rows as Tensor.matvec does: two even chunks of whole row pairs per thread over
  /// ThreadPool.shared, at least 32 rows a chunk; `threads` <= 1 (or one chunk) runs on this thread.
  static func splitRows(_ rows: Int, threads: Int, _ body: @escaping (Range<Int>) -> Void) {
    let rowsPerChunk = 32
    let chunks = Swift.max(1, Swift.min((rows + rowsPerChunk - 1) / rowsPerChunk,
                                        Swift.min(threads, ThreadPool.shared.threadCount) * 2))
    let perChunk = ((rows + chunks - 1) / chunks + 1) / 2 * 2
    if chunks == 1 || threads <= 1 { body(0..<rows); return }
    ThreadPool.shared.parallelFor(chunks) { c in
      let start = c * perChunk
      if start < rows { body(start..<Swift.min(rows, start + perChunk)) }
    }
  }

  /// The weights of a rank-2 tensor as contiguous f32, after checking them: finite and within f16's range
  /// (scales, minima and LUT entries are stored as f16).
  static func checkedWeights(_ matrix: Tensor, op: String) throws -> Tensor {
    guard matrix.rank == 2, matrix.shape[0] > 0, matrix.shape[1] > 0 else {
      throw TensorError.invalidShape(op: op, shape: matrix.shape, reason: "is not a non-empty matrix [rows, cols]")
    }
    let dense = try matrix.contiguous()
    let p = dense.readPointer(), n = dense.count
    let limit = Float(Float16.greatestFiniteMagnitude)
    for start in stride(from: 0, to: n, by: 1 << 20) {
      try Cancellation.check(op)                       // Ctrl-C between pieces of a large matrix
      for i in start..<Swift.min(n, start + (1 << 20)) where !(abs(p[i]) <= limit) {
        throw TensorError.invalidArgument(op: op, reason: "weight \(i) of the matrix \(matrix.shape) is \(p[i]), "
                                          + "outside f16's finite range ±65504")
      }
    }
    return dense
  }
}
