// Matrix-vector timings of the baselines against Q4_1 on SmolLM2's 576×1536 shape (ffn_down: 1536 = 12 groups of 128), run when LATHE_TIME_BASELINES=1
// (meaningful in a release build: swift build -c release --build-tests -Xswiftc -enable-testing).

import Foundation
import Testing
@testable import LatheTechniques
import LatheModels
import LatheTensor

@Test(.enabled(if: ProcessInfo.processInfo.environment["LATHE_TIME_BASELINES"] == "1"))
func baselineMatvecTimings() throws {
  let w = try gaussian(576, 1536, seed: 21)
  let x = try Tensor.randn([1536], seed: 22).scalars
  var y = [Float](repeating: 0, count: 1536)
  /// Best of 200 runs, in microseconds.
  func best(_ body: (UnsafePointer<Float>, UnsafeMutablePointer<Float>) throws -> Void) throws -> Double {
    var fastest = Double.infinity
    try x.withUnsafeBufferPointer { xp in
      try y.withUnsafeMutableBufferPointer { yp in
        guard let xb = xp.baseAddress, let yb = yp.baseAddress else { return }
        for _ in 0..<200 {
          let start = DispatchTime.now().uptimeNanoseconds
          try body(xb, yb)
          fastest = Swift.min(fastest, Double(DispatchTime.now().uptimeNanoseconds - start) / 1000)
        }
      }
    }
    return fastest
  }
  let q4 = try w.copied(as: .q4_1)
  var lines: [String] = []
  for threads in [1, 2] {
    lines.append("q4_1, \(threads) thread(s): \(String(format: "%.1f", try best { try q4.matvec($0, into: $1, threads: threads) })) µs")
    let compressors: [any MatrixCompressor] = [
      try RTN(bits: 4, group: 32), try RTN(bits: 4, group: 128), try RTN(bits: 4, group: 32, symmetric: true),
      try RTN(bits: 4, group: 128, symmetric: true), try RTN(bits: 3, group: 128, symmetric: true),
      try KMeans(bits: 4), try KMeans(bits: 3),
    ]
    for compressor in compressors {
      let m = try compressor.compress(w) { _, _ in }
      let t = try best { try m.matvec($0, into: $1, threads: threads) }
      lines.append("\(compressor), \(threads) thread(s): \(String(format: "%.1f", t)) µs")
    }
  }
  print("matvec 576×1536, best of 200:\n  " + lines.joined(separator: "\n  "))
}
