// A matrix in SeedLM's packed form: per block of C weights a K-bit seed (the LFSR register state), a 4-bit
// exponent and P 4-bit mantissas. The matrix-vector product regenerates each block's basis from its seed (its window
// of the normalised cycle) and never builds the dense matrix.

import Foundation
import LatheModels
import LatheTensor

public final class SeedMatrix: CompressedMatrix, @unchecked Sendable {
  public let config: SeedLM
  public let shape: [Int]
  public let blockCount: Int
  let bases: SeedBases
  /// The packed bitstream (`packed()`) with one change: each block's K-bit field holds its window's offset instead
  /// of the register state (the same K bits; `packed()` maps them back), so decoding needs no state → window
  /// lookup. 8 zero bytes follow, so a block's fields can be read as one little-endian word. This is all the
  /// matrix holds, and all a matrix-vector product reads of it.
  let stream: UnsafeMutableRawPointer

  public convenience init(technique: SeedLM, shape: [Int], seeds: [UInt16], exponents: [Int8], mantissas: [Int8]) throws {
    guard let count = Memory.count(shape), count >= 0, count <= 1 << 48 else {
      throw SeedLMError.invalid("shape", "needs at most 2^48 weights, got \(shape)")
    }
    let blocks = (count + technique.block - 1) / technique.block
    guard shape.count == 2, seeds.count == blocks, exponents.count == blocks, mantissas.count == blocks * technique.coeffs else {
      throw SeedLMError.invalid("packed", "\(seeds.count) seeds, \(exponents.count) exponents and \(mantissas.count) mantissas do not fit \(blocks) blocks of shape \(shape)")
    }
    guard exponents.allSatisfy({ (-8...7).contains($0) }), mantissas.allSatisfy({ (-8...7).contains($0) }) else {
      throw SeedLMError.invalid("packed", "exponents and mantissas must be 4-bit values in -8...7")
    }
    var out = [UInt8](repeating: 0, count: (blocks * technique.bitsPerBlock + 7) / 8)
    var bit = 0
    func put(_ value: UInt32, _ width: Int) {
      for i in 0..<width where (value >> UInt32(i)) & 1 == 1 { out[(bit + i) / 8] |= 1 << UInt8((bit + i) % 8) }
      bit += width
    }
    let p = technique.coeffs
    for b in 0..<blocks {
      put(UInt32(seeds[b]), technique.lfsrBits)
      put(UInt32(UInt8(bitPattern: exponents[b]) & 15), 4)
      for k in 0..<p { put(UInt32(UInt8(bitPattern: mantissas[b * p + k]) & 15), 4) }
    }
    try self.init(technique: technique, shape: shape, blocks: blocks, packed: out)
  }

  private init(technique: SeedLM, shape: [Int], blocks: Int, packed bytes: [UInt8]) throws {
    config = technique
    self.shape = shape
    blockCount = blocks
    bases = try technique.bases()
    stream = UnsafeMutableRawPointer.allocate(byteCount: bytes.count + 8, alignment: 64)
    stream.initializeMemory(as: UInt8.self, repeating: 0, count: bytes.count + 8)
    bytes.withUnsafeBytes { if let b = $0.baseAddress { stream.copyMemory(from: b, byteCount: bytes.count) } }
    for b in 0..<blocks {
      let s = Int(fields(b).seed)
      guard s < bases.offsetForState.count, bases.offsetForState[s] >= 0 else {
        throw SeedLMError.invalid("packed", "block \(b): seed \(s) is not a state of the \(technique.lfsrBits)-bit LFSR")
      }
      SeedMatrix.setSeedField(stream, block: b, bitsPerBlock: technique.bitsPerBlock, bits: technique.lfsrBits,
                              to: UInt64(bases.offsetForState[s]))
    }
  }

  /// Writes the K-bit field of block b (read-modify-write of the 8 bytes it starts in).
  static func setSeedField(_ p: UnsafeMutableRawPointer, block b: Int, bitsPerBlock: Int, bits: Int, to value: UInt64) {
    let bit = b * bitsPerBlock, shift = UInt64(bit & 7), mask = ((UInt64(1) << UInt64(bits)) - 1) << shift
    let word = p.loadUnaligned(fromByteOffset: bit >> 3, as: UInt64.self).littleEndian
    p.storeBytes(of: ((word & ~mask) | (value << shift)).littleEndian, toByteOffset: bit >> 3, as: UInt64.self)
  }

  deinit { stream.deallocate() }

  /// Block b's word, shifted so its first field starts at bit 0: the K-bit field (the register state while the
  /// constructor checks it, the window offset after), exponent (4), mantissas (4 each).
  @inline(__always) func fields(_ b: Int) -> (seed: UInt64, word: UInt64) {
    let bit = b * config.bitsPerBlock
    let word = stream.loadUnaligned(fromByteOffset: bit >> 3, as: UInt64.self).littleEndian >> UInt64(bit & 7)
    return (word & ((1 << UInt64(config.lfsrBits)) - 1), word)
  }

  /// 4-bit two's-complement field at `shift` of a block's word.
  @inline(__always) static func signed4(_ word: UInt64, _ shift: Int) -> Int {
    Int(Int8(bitPattern: UInt8(truncatingIfNeeded: word >> UInt64(shift)) << 4) >> 4)
  }

  /// Per block: the register state (the stored seed).
  public var seeds: [UInt16] { (0..<blockCount).map { bases.stateForOffset[Int(fields($0).seed)] } }
  public var exponents: [Int8] { (0..<blockCount).map { Int8(SeedMatrix.signed4(fields($0).word, config.lfsrBits)) } }
  /// P per block, each in [−8, 7].
  public var mantissas: [Int8] {
    let k0 = config.lfsrBits + 4
    return (0..<blockCount).flatMap { b in
      let w = fields(b).word
      return (0..<config.coeffs).map { Int8(SeedMatrix.signed4(w, k0 + 4 * $0)) }
    }
  }

  public var technique: String { config.description }
  public var bitsPerWeight: Double { Double(byteCount * 8) / Double(blockCount * config.block) }
  public var byteCount: Int { (blockCount * config.bitsPerBlock + 7) / 8 }

  /// The bitstream: per block, LSB first, the K-bit seed, the 4-bit exponent and the P 4-bit mantissas (two's
  /// complement), blocks back to back; (8, 3, 16) is 32 bits a block, (12, 4, 16) 36.
  public func packed() -> [UInt8] {
    var out = [UInt8](UnsafeRawBufferPointer(start: stream, count: byteCount + 8))
    out.withUnsafeMutableBytes { p in
      for b in 0..<blockCount {
        SeedMatrix.setSeedField(p.baseAddress!, block: b, bitsPerBlock: config.bitsPerBlock, bits: config.lfsrBits,
                                to: UInt64(bases.stateForOffset[Int(fields(b).seed)]))
      }
    }
    return Array(out.prefix(byteCount))
  }

  /// Reads a bitstream written by `packed()` back (checking every seed is a state of the register).
  public static func unpack(_ bytes: [UInt8], technique: SeedLM, shape: [Int]) throws -> SeedMatrix {
    // 2^48 weights bound the block and bit counts far inside Int (a crafted shape in a file is an error, not a trap).
    guard shape.count == 2, shape.allSatisfy({ $0 > 0 }), let count = Memory.count(shape), count <= 1 << 48 else {
      throw SeedLMError.invalid("shape", "needs [rows, cols] with positive sizes and at most 2^48 weights, got \(shape)")
    }
    let blocks = (count + technique.block - 1) / technique.block
    let expected = (blocks * technique.bitsPerBlock + 7) / 8
    guard bytes.count == expected else {
      throw SeedLMError.invalid("packed", "\(bytes.count) bytes; \(blocks) blocks of \(technique.bitsPerBlock) bits need \(expected)")
    }
    return try SeedMatrix(technique: technique, shape: shape, blocks: blocks, packed: bytes)
  }

  /// Block b's window offset, exponent and mantissa k reader.
  @inline(__always) func block(_ b: Int) -> (offset: Int, scale: Float, word: UInt64) {
    let (offset, word) = fields(b)
    let e = SeedMatrix.signed4(word, config.lfsrBits)
    return (Int(offset), Float(sign: .plus, exponent: e, significand: 1), word)
  }

  /// Block b's C weights: U(seed)·(q·2^e), with U regenerated from the seed's window of the cycle.
  @inline(__always) func decodeBlock(_ b: Int, into out: UnsafeMutablePointer<Float>) {
    let c = config.block, p = config.coeffs, k0 = config.lfsrBits + 4
    let (j, scale, word) = block(b)
    bases.cycle.withUnsafeBufferPointer { u in
      for i in 0..<c {
        var s: Float = 0
        for k in 0..<p { s = s.addingProduct(u[j + i * p + k], Float(SeedMatrix.signed4(word, k0 + 4 * k)) * scale) }
        out[i] = s
      }
    }
  }

  public func dequantizeRows(_ rows: Range<Int>, into out: UnsafeMutablePointer<Float>) throws {
    guard rows.lowerBound >= 0, rows.upperBound <= shape[0] else {
      throw SeedLMError.invalid("rows", "\(rows) of a matrix \(shape)")
    }
    let c = config.block, cols = shape[1]
    let first = rows.lowerBound * cols, last = rows.upperBound * cols
    var buffer = [Float](repeating: 0, count: c)
    var b = first / c
    while b * c < last {
      buffer.withUnsafeMutableBufferPointer { decodeBlock(b, into: $0.baseAddress!) }
      for i in 0..<c where b * c + i >= first && b * c + i < last { out[b * c + i - first] = buffer[i] }
      b += 1
    }
  }

  /// y = W·x block by block from the seeds: per block, v_k = Σ_i U[i][k]·x_i, then y += 2^e·Σ_k q_k·v_k. Rows
  /// split over the pool when `threads` > 1.
  public func matvec(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, threads: Int) throws {
    let c = config.block, p = config.coeffs, rows = shape[0], cols = shape[1]
    guard cols % c == 0 else {
      // Blocks straddle rows: decode each row, then a plain dot.
      var row = [Float](repeating: 0, count: cols)
      for r in 0..<rows {
        try row.withUnsafeMutableBufferPointer { try dequantizeRows(r..<(r + 1), into: $0.baseAddress!) }
        var s: Float = 0
        for i in 0..<cols { s = s.addingProduct(row[i], x[i]) }
        y[r] = s
      }
      return
    }
    let perRow = cols / c
    let xs = UnsafeShared(x), ys = UnsafeShared(y)
    // C = 8 and 12 (the paper's configurations): the block's weights are built in SIMD lanes from P contiguous
    // columns (SeedBases.strided), w = Σ_k (q_k·2^e)·U[:, k], then multiplied with x in the same lanes.
    let vectorised = c == 8 || c == 12
    let body: (Range<Int>) -> Void = { range in
      if vectorised { self.rowsVectorised(range, x: xs.pointer, y: ys.pointer, perRow: perRow); return }
      let k0 = self.config.lfsrBits + 4
      self.bases.cycle.withUnsafeBufferPointer { u in
        for r in range {
          var total: Float = 0
          for blockInRow in 0..<perRow {
            let (j, scale, word) = self.block(r * perRow + blockInRow)
            let xb = xs.pointer + blockInRow * c
            var acc: Float = 0
            for k in 0..<p {
              var v: Float = 0
              for i in 0..<c { v = v.addingProduct(u[j + i * p + k], xb[i]) }
              acc = acc.addingProduct(Float(SeedMatrix.signed4(word, k0 + 4 * k)), v)
            }
            total = total.addingProduct(acc, scale)
          }
          ys.pointer[r] = total
        }
      }
    }
    let chunks = threads <= 1 ? 1 : Swift.min(rows, Swift.min(threads, ThreadPool.shared.threadCount) * 2)
    if chunks <= 1 { body(0..<rows); return }
    let per = (rows + chunks - 1) / chunks
    ThreadPool.shared.parallelFor(chunks) { ci in
      let a = ci * per
      if a < rows { body(a..<Swift.min(rows, a + per)) }
    }
  }

  /// The SIMD path of `matvec` for C = 8 or 12: each block's fields come from the packed stream.
  func rowsVectorised(_ range: Range<Int>, x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, perRow: Int) {
    let c = config.block, p = config.coeffs, k0 = UInt64(config.lfsrBits + 4), bitsPerBlock = config.bitsPerBlock
    let seedMask = (UInt64(1) << UInt64(config.lfsrBits)) - 1, exponentShift = UInt64(config.lfsrBits)
    let stream = UnsafeRawPointer(self.stream)
    // (j + k) / P as a multiply and shift, exact for j + k < 2^33 / P² (windows are below 2^16): a division, or a
    // branch stepping the residue, costs more than the block's arithmetic (the branch mispredicts on random windows).
    let magic = ((UInt64(1) << 33) + UInt64(p) - 1) / UInt64(p)
      bases.strided.withUnsafeBufferPointer { columns in
        // Two passes per row: first every block's word and window offset, then the arithmetic (the column loads of
        // consecutive blocks are then independent, so their cache misses overlap).
        withUnsafeTemporaryAllocation(of: (UInt64, Int).self, capacity: perRow) { blocks in
        for r in range {
          for blockInRow in 0..<perRow {
            let bit = (r * perRow + blockInRow) * bitsPerBlock
            let word = stream.loadUnaligned(fromByteOffset: bit >> 3, as: UInt64.self).littleEndian >> UInt64(bit & 7)
            blocks[blockInRow] = (word, Int(word & seedMask))
          }
          var acc8 = SIMD8<Float>(), acc4 = SIMD4<Float>()
          for blockInRow in 0..<perRow {
            let (word, j) = blocks[blockInRow]
            let e = Int32(truncatingIfNeeded: Int8(bitPattern: UInt8(truncatingIfNeeded: word >> exponentShift) << 4) >> 4)
            let scale = Float(bitPattern: UInt32(127 + e) << 23)          // 2^e, e in -8...7
            let xb = UnsafeRawPointer(x + blockInRow * c)
            var w8 = SIMD8<Float>(), w4 = SIMD4<Float>()
            for k in 0..<p {
              let jk = j + k, run = Int((UInt64(jk) &* magic) >> 33), residue = jk - run * p
              let column = UnsafeRawPointer(columns[residue] + run)
              let q = Int8(bitPattern: UInt8(truncatingIfNeeded: word >> (k0 + 4 * UInt64(k))) << 4) >> 4
              let t = SIMD8<Float>(repeating: Float(q) * scale)
              w8 = w8.addingProduct(t, column.loadUnaligned(as: SIMD8<Float>.self))
              if c == 12 { w4 = w4.addingProduct(SIMD4(repeating: t[0]), column.loadUnaligned(fromByteOffset: 32, as: SIMD4<Float>.self)) }
            }
            acc8 = acc8.addingProduct(w8, xb.loadUnaligned(as: SIMD8<Float>.self))
            if c == 12 { acc4 = acc4.addingProduct(w4, xb.loadUnaligned(fromByteOffset: 32, as: SIMD4<Float>.self)) }
          }
          y[r] = acc8.sum() + acc4.sum()
        }
      }
    }
  }
}
