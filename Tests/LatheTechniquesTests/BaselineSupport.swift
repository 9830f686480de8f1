// Helpers for the baseline compressor tests: Gaussian matrices, errors, and kernel-against-twin comparisons.

import Testing
@testable import LatheTechniques
import LatheModels
import LatheTensor

/// A [rows, cols] matrix of N(0, std²) values (element i depends only on seed and i).
func gaussian(_ rows: Int, _ cols: Int, seed: UInt64, std: Float = 0.02) throws -> Tensor {
  var t = try Tensor.randn([rows, cols], seed: seed)
  let p = try t.mutablePointer()
  for i in 0..<t.count { p[i] *= std }
  return t
}

/// ‖W − W'‖_F / ‖W‖_F, with W' the compressed matrix dequantised.
func relativeError(_ compressed: any CompressedMatrix, _ original: Tensor) throws -> Double {
  let restored = try compressed.dequantized(), a = original.scalars, b = restored.scalars
  var diff = 0.0, norm = 0.0
  for i in 0..<a.count { let d = Double(a[i]) - Double(b[i]); diff += d * d; norm += Double(a[i]) * Double(a[i]) }
  return (diff / norm).squareRoot()
}

/// The largest |y − reference| over the rows, relative to the largest |reference|.
func maxRelativeDifference(_ y: [Float], _ reference: [Float]) -> Double {
  var worst = 0.0, scale = 0.0
  for i in 0..<y.count {
    worst = Swift.max(worst, Double(Swift.abs(y[i] - reference[i])))
    scale = Swift.max(scale, Double(Swift.abs(reference[i])))
  }
  return worst / Swift.max(scale, 1e-30)
}

/// matvec (at `threads`), its scalar twin, and dequantizeRows followed by a plain dot, on one seeded x.
func products(_ m: any CompressedMatrix, threads: Int, seed: UInt64 = 7,
              twin: (UnsafePointer<Float>, UnsafeMutablePointer<Float>) throws -> Void) throws -> (fast: [Float], twin: [Float], dense: [Float]) {
  let x = try Tensor.randn([m.cols], seed: seed).scalars
  var fast = [Float](repeating: .nan, count: m.rows), reference = fast, dense = fast
  try x.withUnsafeBufferPointer { xp in
    let xb = try #require(xp.baseAddress)
    try fast.withUnsafeMutableBufferPointer { try m.matvec(xb, into: try #require($0.baseAddress), threads: threads) }
    try reference.withUnsafeMutableBufferPointer { try twin(xb, try #require($0.baseAddress)) }
    let w = try m.dequantized().scalars
    for r in 0..<m.rows {
      var s: Float = 0
      for j in 0..<m.cols { s += w[r * m.cols + j] * xp[j] }
      dense[r] = s
    }
  }
  return (fast, reference, dense)
}

/// The error a call throws, as text ("" when it does not throw).
func thrownMessage(_ body: () throws -> Void) -> String {
  do { try body(); return "" } catch { return "\(error)" }
}
