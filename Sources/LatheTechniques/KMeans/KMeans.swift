// K-means palettisation: every weight is a `bits`-bit index into a lookup table (LUT) of 2^bits f16 centroids,
// one LUT per tensor (groups: 1) or per group of consecutive rows.
//
// Fitting, per group of rows (its n weights), with K = 2^bits (1-D Lloyd; the post-training baseline of edkm.md):
//   sort the weights v_0 <= ... <= v_{n−1};
//   initial centroids: the quantiles c_j = v_{floor((2j + 1)·n / (2K))}, j = 0 ..< K;
//   repeat at most 50 times: assign each weight to its nearest centroid (the clusters are runs of the sorted weights,
//   cut at the midpoints (c_{j−1} + c_j) / 2; a weight on a midpoint goes to the lower cluster); stop when no
//   assignment changed; else c_j = mean of cluster j (an empty cluster keeps its centroid, which stays between its
//   neighbours, so the centroids stay sorted). Sums come from prefix sums in Double.
//   The LUT is the centroids rounded to f16 (ascending), and each weight's index is its nearest LUT entry
//   (ties to the lower index), so dequantising gives exactly the entries the error was measured on.
// Weights must be finite and within ±65504.
//
// Packed layout: the LUTs, groups × 2^bits f16 (little-endian, group by group, each ascending), then the indices,
// row after row, bit-packed LSB first (BitPacking.swift) in ceil(cols·bits / 8) bytes per row. Bits per weight =
// 8·bytes / (rows·cols) = bits + 16·2^bits·groups / (rows·cols) whenever cols·bits is a multiple of 8.
//
// Matrix-vector product: y_r = Σ_j LUT[idx_rj]·x_j, 16 indices at a time gathered from the row group's LUT (as f32).

import LatheModels
import LatheTensor

/// `kmeans(bits: 4, groups: 1)`: per-tensor (or per row group) k-means palettisation with an f16 LUT.
///
///     let p3 = try KMeans(bits: 3).compress(weight)           // 3 bits per weight + 8 f16 centroids
public struct KMeans: MatrixCompressor {
  public let bits: Int
  /// How many LUTs: the rows are cut into `groups` equal runs of consecutive rows (1: one LUT for the tensor).
  public let groups: Int

  public init(bits: Int = 4, groups: Int = 1) throws {
    try KMeans.check(bits: bits, groups: groups)
    self.bits = bits
    self.groups = groups
  }

  static func check(bits: Int, groups: Int) throws {
    guard (1...8).contains(bits) else {
      throw TensorError.invalidArgument(op: "kmeans", reason: "bits must be 1 to 8, got \(bits)")
    }
    guard groups >= 1 else {
      throw TensorError.invalidArgument(op: "kmeans", reason: "groups must be at least 1, got \(groups)")
    }
  }

  public var description: String { "kmeans(bits: \(bits), groups: \(groups))" }

  /// The index bits alone: the LUTs add 16·2^bits·groups bits per matrix, which depends on its size
  /// (KMeansMatrix.bitsPerWeight counts them exactly).
  public var bitsPerWeight: Double { Double(bits) }

  public func compress(_ matrix: Tensor, progress: (Int, Int) throws -> Void) throws -> any CompressedMatrix {
    try KMeansMatrix(fitting: matrix, bits: bits, groups: groups, progress: progress)
  }

  public func unpack(_ bytes: [UInt8], shape: [Int]) throws -> any CompressedMatrix {
    try KMeansMatrix(packed: bytes, shape: shape, bits: bits, groups: groups)
  }
}

/// A matrix in k-means palettised form (see the file comment for the fit and the layout).
public final class KMeansMatrix: CompressedMatrix {
  public let shape: [Int]
  public let bits: Int
  public let groups: Int
  /// The packed stream (LUTs then indices), followed by BitPacking.slack zero bytes.
  let storage: Storage
  /// The LUTs as f32, groups × 2^bits, for the kernels.
  let lut: [Float]
  public let byteCount: Int

  var lutCount: Int { 1 << bits }
  var lutBytes: Int { groups * lutCount * 2 }
  var rowBytes: Int { (shape[1] * bits + 7) / 8 }
  var rowsPerGroup: Int { shape[0] / groups }

  public var bitsPerWeight: Double { Double(8 * byteCount) / (Double(shape[0]) * Double(shape[1])) }
  public var technique: String { "kmeans(bits: \(bits), groups: \(groups))" }

  /// The LUT of row group `g`, ascending.
  public func table(group g: Int) -> [Float] { Array(lut[(g * lutCount)..<((g + 1) * lutCount)]) }

  static func packedByteCount(shape: [Int], bits: Int, groups: Int) throws -> Int {
    try KMeans.check(bits: bits, groups: groups)
    guard shape.count == 2, shape[0] > 0, shape[1] > 0 else {
      throw TensorError.invalidShape(op: "kmeans", shape: shape, reason: "is not a non-empty matrix [rows, cols]")
    }
    guard shape[0] % groups == 0 else {
      throw TensorError.invalidShape(op: "kmeans", shape: shape, reason: "has \(shape[0]) rows, not a multiple of groups \(groups)")
    }
    guard let rowBytes = BitPacking.byteCount(codes: shape[1], bits: bits) else {
      throw TensorError.outOfMemory(op: "kmeans", bytes: Int.max, budget: Memory.budget)
    }
    let (indices, o1) = rowBytes.multipliedReportingOverflow(by: shape[0])
    let (total, o2) = indices.addingReportingOverflow(groups * (2 << bits))      // groups <= rows here
    guard !o1, !o2, total <= Int.max - BitPacking.slack else {
      throw TensorError.outOfMemory(op: "kmeans", bytes: Int.max, budget: Memory.budget)
    }
    return total
  }

  /// Fits one LUT per row group and packs the indices; `progress(groupsDone, groups)` follows the groups.
  public init(fitting matrix: Tensor, bits: Int, groups: Int, progress: (Int, Int) throws -> Void = { _, _ in }) throws {
    byteCount = try KMeansMatrix.packedByteCount(shape: matrix.shape, bits: bits, groups: groups)
    let dense = try BitPacking.checkedWeights(matrix, op: "kmeans")
    shape = matrix.shape; self.bits = bits; self.groups = groups
    storage = try Storage(byteCount: byteCount + BitPacking.slack, op: "kmeans")
    let rows = shape[0], cols = shape[1], w = dense.readPointer(), k = 1 << bits
    let perGroup = rows / groups, rowBytes = (cols * bits + 7) / 8, lutBytes = groups * k * 2
    var luts: [Float] = []
    luts.reserveCapacity(groups * k)
    let codes = UnsafeMutablePointer<UInt8>.allocate(capacity: cols)
    defer { codes.deallocate() }
    for g in 0..<groups {
      let values = w + g * perGroup * cols, n = perGroup * cols
      let table = KMeansFit.lut(UnsafeBufferPointer(start: values, count: n), count: k)
      for (j, c) in table.enumerated() {
        storage.bytes.storeBytes(of: c.bitPattern.littleEndian, toByteOffset: (g * k + j) * 2, as: UInt16.self)
      }
      let entries = table.map(Float.init)
      luts += entries
      let mids = (0..<(k - 1)).map { (entries[$0] + entries[$0 + 1]) / 2 }     // exact: two f16 values
      for r in (g * perGroup)..<((g + 1) * perGroup) {
        for j in 0..<cols { codes[j] = UInt8(KMeansFit.nearest(w[r * cols + j], midpoints: mids)) }
        BitPacking.pack(codes, count: cols, bits: bits, into: storage.bytes + lutBytes + r * rowBytes)
      }
      try progress(g + 1, groups)
    }
    lut = luts
  }

  /// Reads a packed stream back (bit-exact). Throws when the parameters do not fit the shape, `packed` has the
  /// wrong length, or a LUT is not ascending or holds a non-finite entry.
  public init(packed: [UInt8], shape: [Int], bits: Int, groups: Int) throws {
    byteCount = try KMeansMatrix.packedByteCount(shape: shape, bits: bits, groups: groups)
    guard packed.count == byteCount else {
      throw TensorError.invalidArgument(op: "kmeans", reason: "a packed \(shape) matrix at bits \(bits), groups \(groups) "
                                        + "takes \(byteCount) bytes, got \(packed.count)")
    }
    self.shape = shape; self.bits = bits; self.groups = groups
    let k = 1 << bits
    var entries: [Float] = []
    for i in 0..<(groups * k) {
      let c = Float(Float16(bitPattern: UInt16(packed[2 * i]) | UInt16(packed[2 * i + 1]) << 8))
      guard c.isFinite, i % k == 0 || entries[i - 1] <= c else {
        throw TensorError.invalidArgument(op: "kmeans", reason: "LUT \(i / k) entry \(i % k) is \(c): not finite and ascending")
      }
      entries.append(c)
    }
    lut = entries
    storage = try Storage(byteCount: byteCount + BitPacking.slack, op: "kmeans")
    packed.withUnsafeBytes { if let base = $0.baseAddress { storage.bytes.copyMemory(from: base, byteCount: byteCount) } }
  }

  public func packed() -> [UInt8] {
    Array(UnsafeBufferPointer(start: storage.bytes.assumingMemoryBound(to: UInt8.self), count: byteCount))
  }

  /// Index j of row r.
  public func index(row r: Int, column j: Int) -> Int {
    BitPacking.code(UnsafeRawPointer(storage.bytes) + lutBytes + r * rowBytes, j, bits: bits)
  }

  public func dequantizeRows(_ rows: Range<Int>, into out: UnsafeMutablePointer<Float>) throws {
    guard rows.lowerBound >= 0, rows.upperBound <= shape[0] else {
      throw TensorError.invalidArgument(op: "decompress", reason: "rows \(rows) of a matrix \(shape)")
    }
    let cols = shape[1], base = UnsafeRawPointer(storage.bytes) + lutBytes
    for r in rows {
      let table = (r / rowsPerGroup) * lutCount, p = base + r * rowBytes
      let o = out + (r - rows.lowerBound) * cols
      for j in 0..<cols { o[j] = lut[table + BitPacking.code(p, j, bits: bits)] }
    }
  }

  public func matvec(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, threads: Int) throws {
    let w = UnsafeRawPointer(storage.bytes) + lutBytes, cols = shape[1], bits = self.bits, perGroup = rowsPerGroup
    try lut.withUnsafeBufferPointer { table in
      guard let t = table.baseAddress else { throw TensorError.invalidArgument(op: "matvec", reason: "empty LUT") }
      BitPacking.splitRows(shape[0], threads: threads) { rows in
        KMeansKernels.rows(w, bits: bits, cols: cols, lut: t, rowsPerGroup: perGroup, x: x, y: y, rows: rows)
      }
    }
  }
}

/// One-dimensional k-means (the fit in the file comment).
enum KMeansFit {
  /// The f16 LUT (ascending, `count` entries) that Lloyd's iterations from quantile centroids reach on `values`.
  static func lut(_ values: UnsafeBufferPointer<Float>, count k: Int) -> [Float16] {
    let sorted = values.sorted(), n = sorted.count
    var prefix = [Double](repeating: 0, count: n + 1)
    for i in 0..<n { prefix[i + 1] = prefix[i] + Double(sorted[i]) }
    var centroids = (0..<k).map { j in Double(sorted[Swift.min(n - 1, (2 * j + 1) * n / (2 * k))]) }
    var bounds: [Int] = []
    for _ in 0..<50 {
      // Cluster j is sorted[next[j] ..< next[j + 1]]: the weights at most the midpoint below c_{j+1}.
      var next = [0]
      for j in 1..<Swift.max(1, k) {
        let mid = (centroids[j - 1] + centroids[j]) / 2
        var lo = next[j - 1], hi = n
        while lo < hi { let m = (lo + hi) / 2; if Double(sorted[m]) <= mid { lo = m + 1 } else { hi = m } }
        next.append(lo)
      }
      next.append(n)
      if next == bounds { break }
      bounds = next
      for j in 0..<k where bounds[j + 1] > bounds[j] {
        centroids[j] = (prefix[bounds[j + 1]] - prefix[bounds[j]]) / Double(bounds[j + 1] - bounds[j])
      }
    }
    return centroids.map { Float16($0) }.sorted()
  }

  /// The index of the LUT entry nearest w, given the midpoints between consecutive entries (ties: the lower).
  @inline(__always)
  static func nearest(_ w: Float, midpoints: [Float]) -> Int {
    var lo = 0, hi = midpoints.count
    while lo < hi { let m = (lo + hi) / 2; if midpoints[m] < w { lo = m + 1 } else { hi = m } }
    return lo
  }
}

/// The fused kernel, specialised per index width so that the shifts are constants.
enum KMeansKernels {
  static func rows(_ w: UnsafeRawPointer, bits: Int, cols: Int, lut: UnsafePointer<Float>, rowsPerGroup: Int,
                   x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows: Range<Int>) {
    switch bits {
    case 1: kernel(w, width: 1, cols: cols, lut: lut, rowsPerGroup: rowsPerGroup, x: x, y: y, rows: rows)
    case 2: kernel(w, width: 2, cols: cols, lut: lut, rowsPerGroup: rowsPerGroup, x: x, y: y, rows: rows)
    case 3: kernel(w, width: 3, cols: cols, lut: lut, rowsPerGroup: rowsPerGroup, x: x, y: y, rows: rows)
    case 4: kernel(w, width: 4, cols: cols, lut: lut, rowsPerGroup: rowsPerGroup, x: x, y: y, rows: rows)
    case 5: kernel(w, width: 5, cols: cols, lut: lut, rowsPerGroup: rowsPerGroup, x: x, y: y, rows: rows)
    case 6: kernel(w, width: 6, cols: cols, lut: lut, rowsPerGroup: rowsPerGroup, x: x, y: y, rows: rows)
    case 7: kernel(w, width: 7, cols: cols, lut: lut, rowsPerGroup: rowsPerGroup, x: x, y: y, rows: rows)
    default: kernel(w, width: 8, cols: cols, lut: lut, rowsPerGroup: rowsPerGroup, x: x, y: y, rows: rows)
    }
  }

  /// LUT[code] for the 16 codes packed from `p` (two 8-byte words, as BitPacking.unpack16 reads them).
  @inline(__always)
  static func gather16(_ p: UnsafeRawPointer, bits: Int, lut: UnsafePointer<Float>) -> SIMD16<Float> {
    let w0 = p.loadUnaligned(as: UInt64.self), w1 = p.loadUnaligned(fromByteOffset: bits, as: UInt64.self)
    let mask = SIMD8<UInt64>(repeating: UInt64(1) << UInt64(bits) - 1)
    let shifts = SIMD8<UInt64>(0, 1, 2, 3, 4, 5, 6, 7) &* UInt64(bits)
    let a = (SIMD8(repeating: w0) &>> shifts) & mask, b = (SIMD8(repeating: w1) &>> shifts) & mask
    var v = SIMD16<Float>()
    for k in 0..<8 { v[k] = lut[Int(truncatingIfNeeded: a[k])]; v[k + 8] = lut[Int(truncatingIfNeeded: b[k])] }
    return v
  }

  /// y[r] = Σ_j LUT_g(r)[idx_rj]·x_j for r in `rowRange`, two rows at a time sharing the loads of x, 16 indices per
  /// step (the last cols % 16 one by one), touching one byte per step QuantKernels.readAhead bytes ahead.
  @inline(__always)
  static func kernel(_ w: UnsafeRawPointer, width bits: Int, cols: Int, lut: UnsafePointer<Float>, rowsPerGroup: Int,
                   x: UnsafePointer<Float>, y: UnsafeMutablePointer<Float>, rows rowRange: Range<Int>) {
    let rowBytes = (cols * bits + 7) / 8, steps = cols / 16, chunkBytes = 2 * bits
    let xr = UnsafeRawPointer(x)
    let end = w + rowRange.upperBound * rowBytes - 1
    var touched: UInt8 = 0
    var r = rowRange.lowerBound
    while r < rowRange.upperBound {
      let pair = r + 1 < rowRange.upperBound
      let row0 = w + r * rowBytes, row1 = pair ? row0 + rowBytes : row0
      let lut0 = lut + (r / rowsPerGroup) << bits, lut1 = lut + ((pair ? r + 1 : r) / rowsPerGroup) << bits
      var a0 = SIMD16<Float>(), a1 = SIMD16<Float>()
      for c in 0..<steps {
        if c & 3 == 0 { touched &+= Swift.min(row0 + QuantKernels.readAhead + 2 * chunkBytes * c, end).load(as: UInt8.self) }
        let xv = xr.loadUnaligned(fromByteOffset: c * 64, as: SIMD16<Float>.self)
        a0 = a0.addingProduct(gather16(row0 + c * chunkBytes, bits: bits, lut: lut0), xv)
        a1 = a1.addingProduct(gather16(row1 + c * chunkBytes, bits: bits, lut: lut1), xv)
      }
      var t0: Float = 0, t1: Float = 0
      for j in (steps * 16)..<cols {
        t0 += lut0[BitPacking.code(row0, j, bits: bits)] * x[j]
        t1 += lut1[BitPacking.code(row1, j, bits: bits)] * x[j]
      }
      y[r] = a0.sum() + t0
      if pair { y[r + 1] = a1.sum() + t1 }
      r += 2
    }
    QuantKernels.touchedSink = touched
  }
}

extension KMeans {
  public var entry: TechniqueEntry { KMeans.entry }
  public var fields: [(String, TechniqueArgument)] { [("bits", .int(bits)), ("groups", .int(groups))] }

  public static let entry = TechniqueEntry(
    name: "kmeans", roles: [.compressor],
    parameters: [TechniqueParameter("bits", .int(4), "index width: a table of 2^bits values"),
                 TechniqueParameter("groups", .int(1), "tables per matrix, each for an equal run of rows (1: per tensor)")],
    doc: "Palettisation: a table of 2^bits f16 values fitted by k-means (one per group of rows; 1 = per tensor) and an index per weight.",
    example: "kmeans(bits: 4)",
    make: { a in try KMeans(bits: try a.int("bits"), groups: try a.int("groups")) })
}
