// The baselines on a real SmolLM2 matrix: relative errors of round-to-nearest and k-means on blk.0.ffn_down.

import Foundation
import Testing
@testable import LatheTechniques
import LatheModels
import LatheTensor
import LatheTestSupport

@Test func baselinesOnSmolLM2FFNDownHaveTheExpectedErrors() throws {
  let path = TestPaths.packageRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
  guard let file = try? GGUFFile(path: path) else {
    Issue.record("models/SmolLM2-135M-Instruct.Q4_1.gguf is missing or unreadable: run scripts/setup")
    return
  }
  let w = try file.tensor("blk.0.ffn_down.weight", dequantize: true)       // [576, 1536], Q4_1 → f32
  #expect(w.shape == [576, 1536])
  // The file's weights are Q4_1 (asymmetric 4-bit, f16 scale and minimum per 32): rtn(bits: 4, group: 32) is that
  // same rule, so it gives them back exactly.
  let compressors: [(any MatrixCompressor, ClosedRange<Double>)] = [
    (try RTN(bits: 4, group: 128, symmetric: true), 0.08...0.16), (try RTN(bits: 4, group: 32, symmetric: true), 0.06...0.12),
    (try RTN(bits: 3, group: 128, symmetric: true), 0.17...0.32), (try RTN(bits: 4, group: 128), 0.08...0.14),
    (try RTN(bits: 4, group: 32), 0...1e-7), (try RTN(bits: 3, group: 128), 0.17...0.28),
    (try KMeans(bits: 4), 0.10...0.16), (try KMeans(bits: 3), 0.19...0.28),
  ]
  var lines: [String] = []
  for (compressor, band) in compressors {
    let m = try compressor.compress(w) { _, _ in }
    let e = try relativeError(m, w)
    lines.append("\(compressor): \(String(format: "%.4f", e)) at \(String(format: "%.4f", m.bitsPerWeight)) bits/weight")
    #expect(band.contains(e), "\(compressor): \(e)")
  }
  print("blk.0.ffn_down.weight [576, 1536], relative Frobenius error:\n  " + lines.joined(separator: "\n  "))
}
