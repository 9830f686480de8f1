// PPM images: the real scikit-learn photos, and malformed files refused by field.

import Foundation
import Testing
import LatheTensor
@testable import LatheData

@Test func readsTheSamplePhotos() throws {
  let photos = try Datasets.photos()
  #expect(photos.map(\.name) == ["china", "flower"])
  for (name, image) in photos {
    #expect(image.shape == [3, 427, 640], "\(name)")
    let values = image.scalars
    #expect(values.allSatisfy { $0 >= 0 && $0 <= 1 } && Set(values.prefix(5000)).count > 50, "\(name) has real content")
  }
}

@Test func ppmPixelsAndMalformedFiles() throws {
  // 2×1 image: red then blue, with a comment.
  let good = Array("P6\n# a comment\n2 1\n255\n".utf8) + [255, 0, 0, 0, 0, 255]
  let t = try PPM.read(bytes: good)
  #expect(t.shape == [3, 1, 2] && t.scalars == [1, 0, 0, 0, 0, 1])
  let cases: [([UInt8], String)] = [
    (Array("P5\n1 1\n255\n".utf8) + [0], "magic"),
    (Array("P6\nx 1\n255\n".utf8), "width"),
    (Array("P6\n0 1\n255\n".utf8), "size"),
    (Array("P6\n1 1\n65535\n".utf8) + [0, 0, 0, 0, 0, 0], "maxval"),
    (Array("P6\n4 4\n255\n".utf8) + [1, 2, 3], "samples"),
  ]
  for (bytes, field) in cases {
    #expect(throws: DataError.self) { try PPM.read(bytes: bytes, path: "bad.ppm") }
    do { _ = try PPM.read(bytes: bytes, path: "bad.ppm") } catch { #expect("\(error)".hasPrefix("bad.ppm: \(field):"), "\(error)") }
  }
}
