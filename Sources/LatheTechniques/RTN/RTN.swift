// Round-to-nearest: `bits`-bit integers with f16 parameters per group of `group` consecutive weights in a row.
//
// Each row of W [rows, cols] is cut into cols / group groups (cols must be a multiple of group). With b = bits,
// Q = 2^b − 1, H = 2^(b−1), and f16(·) rounding to the nearest f16:
//   asymmetric (the default; Q4_1's rule): lo, hi = the group's smallest and largest weight,
//     m = f16(lo),  s = f16((hi − m) / Q),  q = clamp(roundHalfEven((w − m) / s), 0, Q)  (q = 0 when s = 0),
//     w' = Float(q)·s + m;
//   symmetric (`symmetric: true`; Q4_0's rule): a = the weight of largest magnitude (the first on ties),
//     d = f16(a / −H),  q = clamp(roundHalfEven(w / d) + H, 0, Q)  (q = H when d = 0),
//     w' = Float(q − H)·d  (so a decodes to −H·d, the full range −H ..< H is used);
// in f32 arithmetic without fused multiply-adds. The rounded parameters both encode and decode, so w' is exactly
// what an error measured on dequantizeRows saw. Weights must be finite and within ±65504.
//
// Packed layout, row after row, group after group: the group's f16 s then f16 m (asymmetric) or its f16 d
// (symmetric), little-endian, then its codes bit-packed LSB first (BitPacking.swift) in ceil(group·b / 8) bytes.
// A group takes P + ceil(group·b / 8) bytes with P = 4 (asymmetric) or 2 (symmetric); the stream is
// rows·(cols / group) groups. Bits per weight = 8·(P + ceil(group·b / 8)) / group, which is b + 8·P / group
// whenever group·b is a multiple of 8: b + 32 / group asymmetric (rtn(bits: 4, group: 128): 4.25, group 32: 5.0),
// b + 16 / group symmetric (4.125, 4.5, and 3.125 for bits 3, group 128: the seedlm.md baselines).
//
// Matrix-vector product: Σ_j (s·q_j + m)·x_j over a group = s·Σ_j q_j·x_j + m·Σ_j x_j, the second sum taken once
// per group of x (as QuantKernels.q4_1Rows does for Q4_1's blocks of 32); symmetric groups have m = −H·d.

import LatheModels
import LatheTensor

/// `rtn(bits: 4, group: 32)`: round-to-nearest with f16 parameters per `group` weights of a row.
///
///     let w4 = try RTN(bits: 4, group: 128, symmetric: true).compress(weight)    // 4.125 bits per weight
public struct RTN: MatrixCompressor {
  public let bits: Int
  public let group: Int
  /// One f16 scale per group and codes centred on 2^(bits−1) (else an f16 scale and minimum per group).
  public let symmetric: Bool

  public init(bits: Int = 4, group: Int = 64, symmetric: Bool = false) throws {
    try RTN.check(bits: bits, group: group)
    self.bits = bits
    self.group = group
    self.symmetric = symmetric
  }

  static func check(bits: Int, group: Int) throws {
    guard (2...8).contains(bits) else {
      throw TensorError.invalidArgument(op: "rtn", reason: "bits must be 2 to 8, got \(bits)")
    }
    guard group >= 1, group <= 1 << 24 else {
      throw TensorError.invalidArgument(op: "rtn", reason: "group must be 1 to 16777216 weights, got \(group)")
    }
  }

  static func describe(bits: Int, group: Int, symmetric: Bool) -> String {
    "rtn(bits: \(bits), group: \(group)" + (symmetric ? ", symmetric: true)" : ")")
  }

  /// Bytes one group takes: its f16 parameters, then its packed codes.
  static func groupBytes(bits: Int, group: Int, symmetric: Bool) -> Int { (symmetric ? 2 : 4) + (group * bits + 7) / 8 }

  public var description: String { RTN.describe(bits: bits, group: group, symmetric: symmetric) }

  public var bitsPerWeight: Double { Double(8 * RTN.groupBytes(bits: bits, group: group, symmetric: symmetric)) / Double(group) }

  public func compress(_ matrix: Tensor, progress: (Int, Int) throws -> Void) throws -> any CompressedMatrix {
    try RTNMatrix(encoding: matrix, bits: bits, group: group, symmetric: symmetric, progress: progress)
  }

  public func unpack(_ bytes: [UInt8], shape: [Int]) throws -> any CompressedMatrix {
    try RTNMatrix(packed: bytes, shape: shape, bits: bits, group: group, symmetric: symmetric)
  }
}

/// A matrix in RTN's packed form (see the file comment for the rules and the layout).
public final class RTNMatrix: CompressedMatrix {
  public let shape: [Int]
  public let bits: Int
  public let group: Int
  public let symmetric: Bool
  /// The packed stream, followed by BitPacking.slack zero bytes.
  let storage: Storage
  public let byteCount: Int

  var groupsPerRow: Int { shape[1] / group }
  var parameterBytes: Int { symmetric ? 2 : 4 }
  var groupBytes: Int { RTN.groupBytes(bits: bits, group: group, symmetric: symmetric) }

  public var bitsPerWeight: Double { Double(8 * byteCount) / (Double(shape[0]) * Double(shape[1])) }
  public var technique: String { RTN.describe(bits: bits, group: group, symmetric: symmetric) }

  /// Checks the parameters against `shape` and returns the packed byte count.
  static func packedByteCount(shape: [Int], bits: Int, group: Int, symmetric: Bool) throws -> Int {
    try RTN.check(bits: bits, group: group)
    guard shape.count == 2, shape[0] > 0, shape[1] > 0 else {
      throw TensorError.invalidShape(op: "rtn", shape: shape, reason: "is not a non-empty matrix [rows, cols]")
    }
    guard shape[1] % group == 0 else {
      // Candidates up to 4096 only: a crafted shape in a file may claim rows of 2^40 weights.
      let fits = (8...Swift.max(8, Swift.min(shape[1], 4096))).lazy.filter { shape[1] % $0 == 0 }.prefix(12).map(String.init).joined(separator: ", ")
      throw TensorError.invalidShape(op: "rtn", shape: shape, reason: "has rows of \(shape[1]) weights, which group \(group) does not divide; "
                                     + "groups that do: \(fits.isEmpty ? "\(shape[1])" : fits)")
    }
    let groupBytes = RTN.groupBytes(bits: bits, group: group, symmetric: symmetric)
    let (perRow, o1) = (shape[1] / group).multipliedReportingOverflow(by: groupBytes)
    let (total, o2) = perRow.multipliedReportingOverflow(by: shape[0])
    guard !o1, !o2, total <= Int.max - BitPacking.slack else {
      throw TensorError.outOfMemory(op: "rtn", bytes: Int.max, budget: Memory.budget)
    }
    return total
  }

  /// Encodes a dense matrix by the rules above; `progress(rowsDone, rows)` is called every 16,384 weights (in whole
  /// rows) and at the end, which is how often Ctrl-C can stop it.
  public init(encoding matrix: Tensor, bits: Int, group: Int, symmetric: Bool = false,
              progress: (Int, Int) throws -> Void = { _, _ in }) throws {
    byteCount = try RTNMatrix.packedByteCount(shape: matrix.shape, bits: bits, group: group, symmetric: symmetric)
    let dense = try BitPacking.checkedWeights(matrix, op: "rtn")
    shape = matrix.shape; self.bits = bits; self.group = group; self.symmetric = symmetric
    storage = try Storage(byteCount: byteCount + BitPacking.slack, op: "rtn")
    let rows = shape[0], cols = shape[1], w = dense.readPointer(), out = storage.bytes
    let groupBytes = self.groupBytes, parameterBytes = self.parameterBytes
    let codes = UnsafeMutablePointer<UInt8>.allocate(capacity: group)
    defer { codes.deallocate() }
    let every = Swift.max(1, 16_384 / cols)
    for r in 0..<rows {
      for g in 0..<(cols / group) {
        let weights = w + r * cols + g * group, p = out + (r * (cols / group) + g) * groupBytes
        if symmetric {
          let d = RTNMatrix.encodeSymmetric(weights, count: group, bits: bits, codes: codes)
          p.storeBytes(of: d.bitPattern.littleEndian, as: UInt16.self)
        } else {
          let (s, m) = RTNMatrix.encodeAsymmetric(weights, count: group, bits: bits, codes: codes)
          p.storeBytes(of: s.bitPattern.littleEndian, as: UInt16.self)
          p.storeBytes(of: m.bitPattern.littleEndian, toByteOffset: 2, as: UInt16.self)
        }
        BitPacking.pack(codes, count: group, bits: bits, into: p + parameterBytes)
      }
      if (r + 1) % every == 0 || r == rows - 1 { try progress(r + 1, rows) }
    }
  }

  /// The scale s, the minimum m and the codes of one group, by the asymmetric rule.
  static func encodeAsymmetric(_ w: UnsafePointer<Float>, count: Int, bits: Int, codes: UnsafeMutablePointer<UInt8>) -> (Float16, Float16) {
    var lo = w[0], hi = w[0]
    for i in 0..<count { lo = Swift.min(lo, w[i]); hi = Swift.max(hi, w[i]) }
    let top = Float((1 << bits) - 1)
    let m16 = Float16(lo), m = Float(m16)
    let s16 = Float16((hi - m) / top), s = Float(s16)
    for i in 0..<count {
      let q = s > 0 ? Swift.min(Swift.max(((w[i] - m) / s).rounded(.toNearestOrEven), 0), top) : 0
      codes[i] = UInt8(q)
    }
    return (s16, m16)
  }

  /// The scale d and the codes of one group, by the symmetric rule.
  static func encodeSymmetric(_ w: UnsafePointer<Float>, count: Int, bits: Int, codes: UnsafeMutablePointer<UInt8>) -> Float16 {
    var a = w[0]
    for i in 0..<count where Swift.abs(w[i]) > Swift.abs(a) { a = w[i] }
    let top = Float((1 << bits) - 1), half = Float(1 << (bits - 1))
    let d16 = Float16(a / -half), d = Float(d16)
    for i in 0..<count {
      let q = d != 0 ? Swift.min(Swift.max((w[i] / d).rounded(.toNearestOrEven) + half, 0), top) : half
      codes[i] = UInt8(q)
    }
    return d16
  }

  /// Reads a packed stream back (bit-exact: `packed()` returns the same bytes). Throws when the parameters do not
  /// fit the shape or `packed` has the wrong length.
  public init(packed: [UInt8], shape: [Int], bits: Int, group: Int, symmetric: Bool = false) throws {
    byteCount = try RTNMatrix.packedByteCount(shape: shape, bits: bits, group: group, symmetric: symmetric)
    guard packed.count == byteCount else {
      throw TensorError.invalidArgument(op: "rtn", reason: "a packed \(shape) matrix as "
                                        + "\(RTN.describe(bits: bits, group: group, symmetric: symmetric)) "
                                        + "takes \(byteCount) bytes, got \(packed.count)")
    }
    self.shape = shape; self.bits = bits; self.group = group; self.symmetric = symmetric
    storage = try Storage(byteCount: byteCount + BitPacking.slack, op: "rtn")
    packed.withUnsafeBytes { if let base = $0.baseAddress { storage.bytes.copyMemory(from: base, byteCount: byteCount) } }
  }

  public func packed() -> [UInt8] {
    Array(UnsafeBufferPointer(start: storage.bytes.assumingMemoryBound(to: UInt8.self), count: byteCount))
  }

  public func dequantizeRows(_ rows: Range<Int>, into out: UnsafeMutablePointer<Float>) throws {
    guard rows.lowerBound >= 0, rows.upperBound <= shape[0] else {
      throw TensorError.invalidArgument(op: "decompress", reason: "rows \(rows) of a matrix \(shape)")
    }
    let cols = shape[1], groupBytes = self.groupBytes, base = UnsafeRawPointer(storage.bytes), half = 1 << (bits - 1)
    for r in rows {
      for g in 0..<groupsPerRow {
        let p = base + (r * groupsPerRow + g) * groupBytes
        let s = Float(Float16(bitPattern: UInt16(littleEndian: p.loadUnaligned(as: UInt16.self))))
        let o = out + (r - rows.lowerBound) * cols + g * group
        if symmetric {
          for j in 0..<group { o[j] = Float(BitPacking.code(p + 2, j, bits: bits) - half) * s }
        } else {
          let m = Float(Float16(bitPattern: UInt16(littleEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt16.self))))
          for j in 0..<group { o[j] = Float(BitPacking.code(p + 4, j, bits: bits)) * s + m }
        }
      }
    }
  }

  public func matvec(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, threads: Int) throws {
    let groups = groupsPerRow
    let sums = UnsafeMutablePointer<Float>.allocate(capacity: groups)
    defer { sums.deallocate() }
    RTNKernels.groupSums(x, group: group, groups: groups, into: sums)
    let w = UnsafeRawPointer(storage.bytes), cols = shape[1], group = self.group, bits = self.bits
    let symmetric = self.symmetric, s = UnsafePointer(sums)
    BitPacking.splitRows(shape[0], threads: threads) { rows in
      RTNKernels.rows(w, bits: bits, symmetric: symmetric, cols: cols, group: group, x: x, groupSums: s, y: y, rows: rows)
    }
  }
}

/// The fused kernels, specialised per bit width so that the code shifts are constants.
enum RTNKernels {
  /// Σ x over each group of `group` consecutive entries.
  static func groupSums(_ x: UnsafePointer<Float>, group: Int, groups: Int, into sums: UnsafeMutablePointer<Float>) {
    for g in 0..<groups {
      var acc = SIMD16<Float>(), j = 0, tail: Float = 0
      let p = UnsafeRawPointer(x + g * group)
      while j + 16 <= group { acc += p.loadUnaligned(fromByteOffset: j * 4, as: SIMD16<Float>.self); j += 16 }
      while j < group { tail += x[g * group + j]; j += 1 }
      sums[g] = acc.sum() + tail
    }
  }

  static func rows(_ w: UnsafeRawPointer, bits: Int, symmetric: Bool, cols: Int, group: Int, x: UnsafePointer<Float>,
                   groupSums: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Range<Int>) {
    switch bits {
    case 2: kernel(w, width: 2, symmetric: symmetric, cols: cols, group: group, x: x, groupSums: groupSums, y: y, rows: rows)
    case 3: kernel(w, width: 3, symmetric: symmetric, cols: cols, group: group, x: x, groupSums: groupSums, y: y, rows: rows)
    case 4: kernel(w, width: 4, symmetric: symmetric, cols: cols, group: group, x: x, groupSums: groupSums, y: y, rows: rows)
    case 5: kernel(w, width: 5, symmetric: symmetric, cols: cols, group: group, x: x, groupSums: groupSums, y: y, rows: rows)
    case 6: kernel(w, width: 6, symmetric: symmetric, cols: cols, group: group, x: x, groupSums: groupSums, y: y, rows: rows)
    case 7: kernel(w, width: 7, symmetric: symmetric, cols: cols, group: group, x: x, groupSums: groupSums, y: y, rows: rows)
    default: kernel(w, width: 8, symmetric: symmetric, cols: cols, group: group, x: x, groupSums: groupSums, y: y, rows: rows)
    }
  }

  /// y[r] = Σ_g (s_g·Σ_j q_j·x_j + m_g·groupSums[g]) (m_g = −2^(bits−1)·s_g when symmetric) for r in `rowRange`, two rows at a time sharing the loads of
  /// x, 16 codes per step (a group's last group % 16 codes one by one), touching one byte per group
  /// QuantKernels.readAhead bytes ahead so the codes stream in before they are needed.
  @inline(__always)
  static func kernel(_ w: UnsafeRawPointer, width bits: Int, symmetric: Bool, cols: Int, group: Int, x: UnsafePointer<Float>,
                   groupSums: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows rowRange: Range<Int>) {
    let groups = cols / group, head = symmetric ? 2 : 4, groupBytes = head + (group * bits + 7) / 8
    let minusHalf = -Float(1 << (bits - 1))
    let rowBytes = groups * groupBytes, steps = group / 16, chunkBytes = 2 * bits
    let xr = UnsafeRawPointer(x)
    let end = w + rowRange.upperBound * rowBytes - 1
    var touched: UInt8 = 0
    var r = rowRange.lowerBound
    while r < rowRange.upperBound {
      let pair = r + 1 < rowRange.upperBound
      let row0 = w + r * rowBytes, row1 = pair ? row0 + rowBytes : row0
      var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
      var m0: Float = 0, m1: Float = 0, t0: Float = 0, t1: Float = 0
      for g in 0..<groups {
        touched &+= Swift.min(row0 + QuantKernels.readAhead + 2 * groupBytes * g, end).load(as: UInt8.self)
        let g0 = row0 + g * groupBytes, g1 = row1 + g * groupBytes
        let xg = xr + g * group * 4
        var s0 = SIMD16<Float>(), s1 = SIMD16<Float>()
        for c in 0..<steps {
          let xv = xg.loadUnaligned(fromByteOffset: c * 64, as: SIMD16<Float>.self)
          s0 = s0.addingProduct(BitPacking.unpack16(g0 + head + c * chunkBytes, bits: bits), xv)
          s1 = s1.addingProduct(BitPacking.unpack16(g1 + head + c * chunkBytes, bits: bits), xv)
        }
        let d0 = Float(Float16(bitPattern: g0.loadUnaligned(as: UInt16.self)))
        let d1 = Float(Float16(bitPattern: g1.loadUnaligned(as: UInt16.self)))
        if steps * 16 < group {
          var e0: Float = 0, e1: Float = 0
          for j in (steps * 16)..<group {
            let xj = x[g * group + j]
            e0 += Float(BitPacking.code(g0 + head, j, bits: bits)) * xj
            e1 += Float(BitPacking.code(g1 + head, j, bits: bits)) * xj
          }
          t0 += d0 * e0; t1 += d1 * e1
        }
        a0 = a0.addingProduct(SIMD16(repeating: d0), s0)
        a1 = a1.addingProduct(SIMD16(repeating: d1), s1)
        let sum = groupSums[g]
        if symmetric {
          m0 = m0.addingProduct(minusHalf * d0, sum)
          m1 = m1.addingProduct(minusHalf * d1, sum)
        } else {
          m0 = m0.addingProduct(Float(Float16(bitPattern: g0.loadUnaligned(fromByteOffset: 2, as: UInt16.self))), sum)
          m1 = m1.addingProduct(Float(Float16(bitPattern: g1.loadUnaligned(fromByteOffset: 2, as: UInt16.self))), sum)
        }
      }
      y[r] = a0.sum() + t0 + m0
      if pair { y[r + 1] = a1.sum() + t1 + m1 }
      r += 2
    }
    QuantKernels.touchedSink = touched
  }
}

extension RTN {
  public var entry: TechniqueEntry { RTN.entry }
  public var fields: [(String, TechniqueArgument)] { [("bits", .int(bits)), ("group", .int(group)), ("symmetric", .bool(symmetric))] }

  public static let entry = TechniqueEntry(
    name: "rtn", roles: [.compressor],
    parameters: [TechniqueParameter("bits", .int(4), "code width, 2 to 8"),
                 TechniqueParameter("group", .int(64), "weights of a row that share a scale (must divide the row; 64 divides every SmolLM2 row)"),
                 TechniqueParameter("symmetric", .bool(false), "one f16 scale per group and codes centred on 2^(bits-1), instead of a scale and a minimum")],
    doc: "Round-to-nearest per group of weights in a row: an f16 scale and minimum per group (symmetric: one f16 scale), codes of `bits` bits.",
    example: "rtn(bits: 4, group: 128)",
    make: { a in try RTN(bits: try a.int("bits"), group: try a.int("group"), symmetric: try a.bool("symmetric")) })
}
