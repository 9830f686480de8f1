// Binary PPM (P6) images: "P6", width, height, maxval (ASCII, with # comments), then RGB samples.
// scripts/setup decodes the scikit-learn sample photos to this format once, so Lathe reads no JPEG itself.

import Foundation
import LatheTensor

public enum PPM {
  /// An image as f32 [3, height, width] in [0, 1].
  public static func read(path: String) throws -> Tensor {
    guard let data = FileBytes.contents(atPath: path) else { throw DataError.cannotRead(path: path, reason: "not found") }
    return try read(bytes: [UInt8](data), path: path)
  }

  public static func read(bytes: [UInt8], path: String = "<ppm>") throws -> Tensor {
    var p = 0
    func fail(_ field: String, _ reason: String) -> DataError { .malformed(path: path, field: field, reason: reason) }
    func skipSpace() {
      while p < bytes.count {
        if bytes[p] == UInt8(ascii: "#") { while p < bytes.count && bytes[p] != 10 { p += 1 } }
        else if bytes[p] == 32 || (9...13).contains(bytes[p]) { p += 1 }
        else { break }
      }
    }
    func number(_ field: String) throws -> Int {
      skipSpace()
      var v = 0, digits = 0
      while p < bytes.count, (48...57).contains(bytes[p]), digits < 9 { v = v * 10 + Int(bytes[p] - 48); p += 1; digits += 1 }
      guard digits > 0 else { throw fail(field, "expected a number") }
      return v
    }
    guard bytes.count >= 2, bytes[0] == UInt8(ascii: "P"), bytes[1] == UInt8(ascii: "6") else { throw fail("magic", "not a binary PPM (P6)") }
    p = 2
    let width = try number("width"), height = try number("height"), maxval = try number("maxval")
    guard width > 0, height > 0, width <= 1 << 15, height <= 1 << 15 else { throw fail("size", "\(width)×\(height) is not a usable size") }
    guard maxval > 0, maxval < 256 else { throw fail("maxval", "\(maxval) is not in 1...255 (16-bit samples are not read)") }
    p += 1                                                 // the single whitespace byte before the samples
    let samples = width * height * 3
    guard bytes.count - p >= samples else {
      throw fail("samples", "\(width)×\(height) RGB needs \(samples) bytes, the file has \(max(0, bytes.count - p))")
    }
    var values = [Float](repeating: 0, count: samples)
    let scale = 1 / Float(maxval)
    for y in 0..<height {
      for x in 0..<width {
        for c in 0..<3 { values[(c * height + y) * width + x] = Float(bytes[p + (y * width + x) * 3 + c]) * scale }
      }
    }
    return try Tensor(values, shape: [3, height, width])
  }
}

extension Datasets {
  /// scikit-learn's two sample photos (china, flower): f32 [3, 427, 640] in [0, 1], from data/*.ppm.
  public static func photos() throws -> [(name: String, image: Tensor)] {
    try ["china", "flower"].map { ($0, try PPM.read(path: try locate("\($0).ppm"))) }
  }
}
