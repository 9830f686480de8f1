// IDX: real Fashion-MNIST counts and labels, and malformed files that must fail with the field named.

import Foundation
import LatheData
import LatheTensor
import LatheTestSupport
import Testing

@Test(.enabled(if: RealFiles.haveFashionMNIST, "Fashion-MNIST is missing (run scripts/setup)"))
func fashionMNISTTrainHas60000ImagesAnd6000PerClass() throws {
  let train = try timed("Datasets.fashionMNIST(split: train)") { try Datasets.fashionMNIST(split: "train") }
  #expect(train.count == 60000)
  #expect(train.images.shape == [60000, 1, 28, 28])
  #expect(train.images.dtype == .f32 && train.labels.dtype == .i32)
  #expect(train.classCount == 10)
  #expect(train.labelCounts() == Array(repeating: 6000, count: 10))
  #expect(train.name == "fashionmnist/train")
  let first = try train.batch(0..<1)
  let pixels = first.images.scalars
  #expect(pixels.min() == 0 && (pixels.max() ?? 0) <= 1 && (pixels.max() ?? 0) > 0.5)
  #expect(first.labels.scalars == [9])                          // the first training image is an ankle boot
}

@Test(.enabled(if: RealFiles.haveFashionMNIST, "Fashion-MNIST is missing (run scripts/setup)"))
func fashionMNISTTestHas10000Images() throws {
  let test = try timed("Datasets.fashionMNIST(split: test)") { try Datasets.fashionMNIST(split: "test") }
  #expect(test.count == 10000)
  #expect(test.imageShape == [1, 28, 28])
  #expect(test.labelCounts() == Array(repeating: 1000, count: 10))
  expectDataError(containing: ["fashionmnist", "\"valid\""]) { _ = try Datasets.fashionMNIST(split: "valid") }
}

/// An IDX file: magic, big-endian dimensions, then `data`.
func idx(magic: UInt32, dims: [UInt32], data: [UInt8]) -> [UInt8] {
  func be(_ x: UInt32) -> [UInt8] { [UInt8(x >> 24), UInt8((x >> 16) & 0xFF), UInt8((x >> 8) & 0xFF), UInt8(x & 0xFF)] }
  return be(magic) + dims.flatMap(be) + data
}

@Test func idxReadsATinyWrittenFile() throws {
  let dir = try TestPaths.temporaryDirectory("idx")
  defer { try? FileManager.default.removeItem(at: dir) }
  let imagesPath = dir.appendingPathComponent("images-idx3-ubyte").path
  let labelsPath = dir.appendingPathComponent("labels-idx1-ubyte").path
  try Data(idx(magic: 0x803, dims: [2, 2, 3], data: [0, 51, 102, 153, 204, 255, 255, 0, 0, 0, 0, 255])).write(to: URL(fileURLWithPath: imagesPath))
  try Data(idx(magic: 0x801, dims: [2], data: [7, 3])).write(to: URL(fileURLWithPath: labelsPath))
  let images = try IDX.images(path: imagesPath), labels = try IDX.labels(path: labelsPath)
  #expect(images.shape == [2, 1, 2, 3])
  #expect(images.scalars == [0, 0.2, 0.4, 0.6, 0.8, 1, 1, 0, 0, 0, 0, 1])
  #expect(labels.shape == [2] && labels.dtype == .i32 && labels.scalars == [7, 3])
}

@Test func idxRejectsMalformedFiles() throws {
  let dir = try TestPaths.temporaryDirectory("idx-bad")
  defer { try? FileManager.default.removeItem(at: dir) }
  func write(_ name: String, _ bytes: [UInt8]) throws -> String {
    let path = dir.appendingPathComponent(name).path
    try Data(bytes).write(to: URL(fileURLWithPath: path))
    return path
  }
  let badMagic = try write("bad-magic", idx(magic: 0x0803_0000, dims: [1, 1, 1], data: [0]))
  expectDataError(containing: [badMagic, "magic", "0x00000803"]) { _ = try IDX.images(path: badMagic) }
  let labelsAsImages = try write("labels-as-images", idx(magic: 0x801, dims: [1], data: [0]))
  expectDataError(containing: ["magic", "0x00000801"]) { _ = try IDX.images(path: labelsAsImages) }
  let floats = try write("float-type", idx(magic: 0x0D03, dims: [1, 1, 1], data: [0, 0, 0, 0]))
  expectDataError(containing: ["magic"]) { _ = try IDX.images(path: floats) }
  let short = try write("short", [0, 0])
  expectDataError(containing: [short, "magic", "2 bytes"]) { _ = try IDX.labels(path: short) }
  let headerCut = try write("header-cut", Array(idx(magic: 0x803, dims: [1, 28, 28], data: [])[..<10]))
  expectDataError(containing: [headerCut, "dimensions", "16 bytes"]) { _ = try IDX.images(path: headerCut) }
  let truncated = try write("truncated", idx(magic: 0x803, dims: [2, 28, 28], data: [UInt8](repeating: 1, count: 784 + 100)))
  expectDataError(containing: [truncated, "dimensions", "count 2, rows 28, columns 28", "1568", "884"]) { _ = try IDX.images(path: truncated) }
  let huge = try write("huge", idx(magic: 0x803, dims: [0xFFFF_FFFF, 0xFFFF_FFFF, 0xFFFF_FFFF], data: [1, 2, 3]))
  expectDataError(containing: [huge, "dimensions"]) { _ = try IDX.images(path: huge) }
  let tooBig = try write("labels-too-big", idx(magic: 0x801, dims: [1_000_000], data: [1, 2, 3]))
  expectDataError(containing: [tooBig, "count 1000000", "3"]) { _ = try IDX.labels(path: tooBig) }
  let trailing = try write("trailing", idx(magic: 0x801, dims: [2], data: [1, 2, 3]))
  expectDataError(containing: ["dimensions"]) { _ = try IDX.labels(path: trailing) }
  // Through gzip: a compressed truncated file names the .gz path.
  let gz = dir.appendingPathComponent("truncated.gz").path
  try Data(try runTool("/usr/bin/gzip", ["-c"], input: idx(magic: 0x801, dims: [10], data: [1, 2]))).write(to: URL(fileURLWithPath: gz))
  expectDataError(containing: [gz, "dimensions"]) { _ = try IDX.labels(path: gz) }
}
