// A weight matrix held in a compression technique's own packed form, which a model runs as it is (an nn layer or a
// decoder linear; it lives here, below both): the
// technique's matrix-vector product reads the packed bytes (decoding), and prefill dequantises slices of rows.



public protocol CompressedMatrix: AnyObject {
  /// [rows, cols], as the dense matrix it stands for.
  var shape: [Int] { get }
  /// Bits of packed storage per weight (everything a decoder needs, scales and seeds included).
  var bitsPerWeight: Double { get }
  /// Bytes of packed storage: what a matrix-vector product reads.
  var byteCount: Int { get }
  /// The technique's name and parameters, e.g. `seedlm(bits: 4, block: 8, coeffs: 3, lfsr: 16, exponent: "range")`.
  var technique: String { get }
  /// y = W·x over the packed form (x has cols floats, y rows floats); `threads` caps the pool threads.
  func matvec(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>, threads: Int) throws
  /// Rows `rows` of W as f32 (rows.count × cols floats).
  func dequantizeRows(_ rows: Range<Int>, into out: UnsafeMutablePointer<Float>) throws
  /// The exact packed bitstream (what `pack` returns and a file stores).
  func packed() -> [UInt8]
}

extension CompressedMatrix {
  public var rows: Int { shape[0] }
  public var cols: Int { shape[1] }

  /// The scalar twin of `matvec` the tests compare against: every row decoded, products summed in Double.
  public func matvecReference(_ x: UnsafePointer<Float>, into y: UnsafeMutablePointer<Float>) throws {
    let cols = shape[1]
    let row = UnsafeMutablePointer<Float>.allocate(capacity: cols)
    defer { row.deallocate() }
    for r in 0..<shape[0] {
      try dequantizeRows(r..<(r + 1), into: row)
      var sum = 0.0
      for j in 0..<cols { sum += Double(row[j]) * Double(x[j]) }
      y[r] = Float(sum)
    }
  }

  /// The whole matrix as an f32 tensor.
  public func dequantized() throws -> Tensor {
    var t = try Tensor(zeros: shape, op: "decompress")
    try dequantizeRows(0..<shape[0], into: try t.mutablePointer())
    return t
  }
}
