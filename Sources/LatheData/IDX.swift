// IDX files (MNIST, Fashion-MNIST): a big-endian header of magic and dimensions, then unsigned bytes.

import LatheTensor

/// Reads the IDX format of LeCun's MNIST files. Magic `00 00 08 0n`: type 0x08 (unsigned byte), n dimensions,
/// then n big-endian UInt32 sizes, then the product of the sizes in bytes, row-major.
///
///     let labels = try IDX.labels(path: "/usr/share/datasets/fashion-mnist/t10k-labels-idx1-ubyte.gz")   // i32 [10000]
public enum IDX {
  /// Images of an `idx3` file (magic 0x00000803, dimensions N, H, W) as f32 [N, 1, H, W] scaled to [0, 1].
  /// A path ending in `.gz` is inflated first.
  public static func images(path: String) throws -> Tensor {
    try images(bytes: try contents(path), path: path)
  }

  /// Labels of an `idx1` file (magic 0x00000801, dimension N) as i32 [N].
  public static func labels(path: String) throws -> Tensor {
    try labels(bytes: try contents(path), path: path)
  }

  public static func images(bytes: [UInt8], path: String) throws -> Tensor {
    let (dims, start) = try header(bytes, dimensionCount: 3, path: path)
    let (n, h, w) = (dims[0], dims[1], dims[2])
    let out = try tensor([n, 1, h, w], dtype: .f32, path: path)
    var scale = [Float](repeating: 0, count: 256)
    for v in 0..<256 { scale[v] = Float(v) / 255 }
    let dst = out.storage.floats()
    bytes.withUnsafeBufferPointer { src in
      scale.withUnsafeBufferPointer { table in
        for i in 0..<out.count { dst[i] = table[Int(src[start + i])] }
      }
    }
    return out
  }

  public static func labels(bytes: [UInt8], path: String) throws -> Tensor {
    let (dims, start) = try header(bytes, dimensionCount: 1, path: path)
    let out = try tensor([dims[0]], dtype: .i32, path: path)
    let dst = out.storage.ints()
    bytes.withUnsafeBufferPointer { src in
      for i in 0..<out.count { dst[i] = Int32(src[start + i]) }
    }
    return out
  }

  /// The dimensions and the offset of the data, after checking the magic and that the data is exactly as long as
  /// the dimensions say (so the readers above never index past the end).
  static func header(_ bytes: [UInt8], dimensionCount: Int, path: String) throws -> (dims: [Int], dataStart: Int) {
    guard bytes.count >= 4 else {
      throw DataError.malformed(path: path, field: "magic", reason: "the file has \(bytes.count) bytes, too short for a header")
    }
    let expected = UInt32(0x0800 + dimensionCount)
    let magic = readUInt32(bytes, at: 0)
    guard magic == expected else {
      throw DataError.malformed(path: path, field: "magic",
                                reason: "expected \(hex(expected)) (unsigned bytes, \(dimensionCount) dimensions), got \(hex(magic))")
    }
    let dataStart = 4 + 4 * dimensionCount
    guard bytes.count >= dataStart else {
      throw DataError.malformed(path: path, field: "dimensions",
                                reason: "the header needs \(dataStart) bytes, the file has \(bytes.count)")
    }
    let dims = (0..<dimensionCount).map { Int(readUInt32(bytes, at: 4 + 4 * $0)) }
    let names = dimensionCount == 3 ? ["count", "rows", "columns"] : ["count"]
    guard let needed = Memory.count(dims) else {
      throw DataError.malformed(path: path, field: "dimensions", reason: "\(dims) overflow")
    }
    let have = bytes.count - dataStart
    guard needed == have else {
      let described = zip(names, dims).map { "\($0) \($1)" }.joined(separator: ", ")
      throw DataError.malformed(path: path, field: "dimensions",
                                reason: "\(described) need \(needed) bytes of data, the file has \(have)")
    }
    return (dims, dataStart)
  }

  static func readUInt32(_ bytes: [UInt8], at i: Int) -> UInt32 {
    UInt32(bytes[i]) << 24 | UInt32(bytes[i + 1]) << 16 | UInt32(bytes[i + 2]) << 8 | UInt32(bytes[i + 3])
  }

  static func hex(_ x: UInt32) -> String {
    let digits = String(x, radix: 16)
    return "0x" + String(repeating: "0", count: max(0, 8 - digits.count)) + digits
  }

  static func contents(_ path: String) throws -> [UInt8] {
    if path.hasSuffix(".gz") { return try Gzip.read(path: path) }
    return try readFile(path)
  }

  static func tensor(_ shape: [Int], dtype: DType, path: String) throws -> Tensor {
    do { return try Tensor(zeros: shape, dtype: dtype, op: "load") }
    catch { throw DataError.cannotRead(path: path, reason: "\(error)") }
  }
}
