// Gzip: the real .gz files inflate as gzip(1) does; round trips, concatenated members, and every way to fail.

import Foundation
import LatheData
import Testing

@Test(.enabled(if: RealFiles.haveFashionMNIST, "Fashion-MNIST is missing (run scripts/setup)"),
      arguments: ["t10k-labels-idx1-ubyte.gz", "train-labels-idx1-ubyte.gz", "t10k-images-idx3-ubyte.gz"])
func gzipMatchesGzipToolOnRealFiles(file: String) throws {
  let path = RealFiles.fashionMNIST + "/" + file
  let ours = try timed("Gzip.read \(file)") { try Gzip.read(path: path) }
  let theirs = try runTool("/usr/bin/gzip", ["-dc", path])
  #expect(ours.count == theirs.count)
  #expect(ours == theirs)
}

@Test func gzipRoundTripsThroughGzipTool() throws {
  let sizes = [0, 1, 1000, 300_000]                              // 300 kB: more than one 256 KiB output chunk
  for n in sizes {
    let original = (0..<n).map { UInt8(truncatingIfNeeded: ($0 * 7919) ^ ($0 >> 5)) }
    let compressed = try runTool("/usr/bin/gzip", ["-c"], input: original)
    #expect(try Gzip.decompress(compressed) == original, "size \(n)")
  }
}

@Test func gzipInflatesConcatenatedMembersAndIgnoresZeroPadding() throws {
  let a = Array("first member\n".utf8), b = Array("second member\n".utf8)
  let ga = try runTool("/usr/bin/gzip", ["-c"], input: a), gb = try runTool("/usr/bin/gzip", ["-c"], input: b)
  #expect(try Gzip.decompress(ga + gb) == a + b)
  #expect(try Gzip.decompress(ga + [UInt8](repeating: 0, count: 16)) == a)
}

@Test func gzipRejectsTruncatedData() throws {
  let original = (0..<50_000).map { UInt8(truncatingIfNeeded: $0 * 31 + $0 / 7) }
  let compressed = try runTool("/usr/bin/gzip", ["-c"], input: original)
  for cut in [1, 10, compressed.count / 2, compressed.count - 4, compressed.count - 1] {
    expectDataError(containing: ["sample.gz", "gzip"]) { _ = try Gzip.decompress(Array(compressed[..<cut]), path: "sample.gz") }
  }
  expectDataError(containing: ["truncated"]) { _ = try Gzip.decompress(Array(compressed[..<(compressed.count / 2)])) }
}

@Test func gzipRejectsCorruptData() throws {
  let original = Array(repeating: Array("lathe gzip test line\n".utf8), count: 2000).flatMap { $0 }
  var compressed = try runTool("/usr/bin/gzip", ["-c"], input: original)
  compressed[compressed.count - 6] ^= 0xFF                      // inside the CRC-32 of the trailer
  expectDataError(containing: ["x.gz", "corrupt"]) { _ = try Gzip.decompress(compressed, path: "x.gz") }
  expectDataError(containing: ["corrupt"]) { _ = try Gzip.decompress(Array("not gzip at all".utf8)) }
  expectDataError(containing: ["empty"]) { _ = try Gzip.decompress([]) }
  // A second member that is garbage.
  let good = try runTool("/usr/bin/gzip", ["-c"], input: Array("ok".utf8))
  expectDataError(containing: ["gzip member 2"]) { _ = try Gzip.decompress(good + [0x1F, 0x8B, 0x08, 0x00, 1, 2, 3]) }
}

@Test func gzipEnforcesItsSizeLimit() throws {
  let compressed = try runTool("/usr/bin/gzip", ["-c"], input: [UInt8](repeating: 0, count: 1 << 20))
  expectDataError(containing: ["more than 1000 bytes"]) { _ = try Gzip.decompress(compressed, limit: 1000) }
  #expect(try Gzip.decompress(compressed, limit: 1 << 20).count == 1 << 20)
}

@Test func gzipReadNamesAMissingFile() {
  expectDataError(containing: ["/nonexistent/file.gz", "no such file"]) { _ = try Gzip.read(path: "/nonexistent/file.gz") }
}
