// The losses against float64 references of their formulas, written as scalar loops: the f32 value must agree
// (|engine − reference| ≤ 1e-5 + 1e-5·|reference|) and the analytic gradient with central differences (step 1e-6)
// of the reference, each element within 1e-3 relative of max(|reference|, 1e-2 · the largest |element|), as in
// LatheTensorTests/ReferenceGradientTests.swift.

import Foundation
import Testing
import LatheTensor
@testable import LatheNN

/// Checks a scalar loss of `inputs` (all differentiated): value, then each input's gradient.
func checkLossAgainstReference(_ name: String, _ inputs: [Tensor], engine: ([Variable]) throws -> Variable,
                               reference: ([[Double]]) -> Double, sourceLocation: SourceLocation = #_sourceLocation) throws {
  let variables = inputs.map { Variable($0, requiresGrad: true) }
  let y = try engine(variables)
  var refs = inputs.map { $0.scalars.map(Double.init) }
  let expected = reference(refs)
  let got = Double(try #require(y.value.scalars.first, sourceLocation: sourceLocation))
  #expect(y.value.count == 1 && Swift.abs(got - expected) <= 1e-5 * (1 + Swift.abs(expected)),
          "\(name): \(got), float64 reference \(expected)", sourceLocation: sourceLocation)
  try y.backward()
  let h = 1e-6
  for k in inputs.indices {
    let analytic = try #require(variables[k].grad, sourceLocation: sourceLocation).scalars.map(Double.init)
    var numeric: [Double] = []
    for j in refs[k].indices {
      let saved = refs[k][j]
      refs[k][j] = saved + h
      let plus = reference(refs)
      refs[k][j] = saved - h
      let minus = reference(refs)
      refs[k][j] = saved
      numeric.append((plus - minus) / (2 * h))
    }
    let scale = 1e-2 * (numeric.map(Swift.abs).max() ?? 0)
    let worst = zip(analytic, numeric).map { Swift.abs($0 - $1) / Swift.max(Swift.abs($1), scale, 1e-9) }.max() ?? 0
    #expect(worst <= 1e-3, "\(name): gradient of input \(k) differs from the float64 reference by \(worst)\n analytic \(analytic.prefix(6))\n numeric  \(numeric.prefix(6))",
            sourceLocation: sourceLocation)
  }
}

/// log softmax of each row of a row-major [rows, columns] array.
func logSoftmaxRows(_ x: [Double], columns c: Int) -> [Double] {
  stride(from: 0, to: x.count, by: c).flatMap { start -> [Double] in
    let row = x[start..<(start + c)], m = row.max() ?? 0
    let logSum = Foundation.log(row.reduce(0) { $0 + Foundation.exp($1 - m) }) + m
    return row.map { $0 - logSum }
  }
}

@Test func lossesMatchTheFloat64Reference() throws {
  let (n, c) = (4, 5)
  let logits = try Tensor.randn([n, c], seed: 1).binary(.multiply, scalar: 2)
  let labels = [3, 0, 4, 4]
  for smoothing in [0.0, 0.1] {
    // −(1/N) Σᵢ Σ_c qᵢc log softmax(xᵢ)_c, q = (1 − s)·onehot + s/C.
    try checkLossAgainstReference("crossentropy smoothing \(smoothing)", [logits], engine: {
      try Loss.crossEntropy($0[0], labels: try Tensor(labels.map(Float.init), shape: [n]), smoothing: Float(smoothing))
    }, reference: { r in
      let logP = logSoftmaxRows(r[0], columns: c)
      var total = 0.0
      for i in 0..<n { for j in 0..<c { total -= ((j == labels[i] ? 1 - smoothing : 0) + smoothing / Double(c)) * logP[i * c + j] } }
      return total / Double(n)
    })
  }
  let targets = try Tensor.rand([n, c], seed: 2)
  let rowSums = stride(from: 0, to: n * c, by: c).map { targets.scalars[$0..<($0 + c)].reduce(0, +) }
  let soft = try Tensor(targets.scalars.enumerated().map { $0.element / rowSums[$0.offset / c] }, shape: [n, c])
  try checkLossAgainstReference("soft crossentropy", [logits], engine: { try Loss.softCrossEntropy($0[0], targets: soft) }, reference: { r in
    let logP = logSoftmaxRows(r[0], columns: c), q = soft.scalars.map(Double.init)
    return -zip(q, logP).reduce(0) { $0 + $1.0 * $1.1 } / Double(n)
  })
  // T²/N Σ p·(log p − log q), p = softmax(teacher/T), q = softmax(student/T).
  let teacher = try Tensor.randn([n, c], seed: 3).binary(.multiply, scalar: 3)
  for t in [1.0, 2.5] {
    try checkLossAgainstReference("kl temperature \(t)", [logits], engine: { try Loss.kl($0[0], teacherLogits: teacher, temperature: Float(t)) },
                                  reference: { r in
      let logP = logSoftmaxRows(teacher.scalars.map { Double($0) / t }, columns: c), logQ = logSoftmaxRows(r[0].map { $0 / t }, columns: c)
      return t * t / Double(n) * zip(logP, logQ).reduce(0) { $0 + Foundation.exp($1.0) * ($1.0 - $1.1) }
    })
  }
  // mean over rows of 1 − a·b / (√(|a|² + ε)·√(|b|² + ε)), ε = 1e-8.
  let a = try Tensor.randn([3, 4], seed: 4), b = try Tensor.randn([3, 4], seed: 5)
  try checkLossAgainstReference("cosine", [a, b], engine: { try Loss.cosine($0[0], $0[1]) }, reference: { r in
    (0..<3).reduce(0.0) { total, i in
      let x = r[0][(i * 4)..<(i * 4 + 4)], y = r[1][(i * 4)..<(i * 4 + 4)]
      let dot = zip(x, y).reduce(0) { $0 + $1.0 * $1.1 }
      let nx = (x.reduce(0) { $0 + $1 * $1 } + 1e-8).squareRoot(), ny = (y.reduce(0) { $0 + $1 * $1 } + 1e-8).squareRoot()
      return total + 1 - dot / (nx * ny)
    } / 3
  })
  let target = try Tensor.randn([3, 4], seed: 6)
  let targetValues = target.scalars.map(Double.init)
  try checkLossAgainstReference("mse", [a], engine: { try Loss.mse($0[0], target) }, reference: { r in
    var total = 0.0
    for (p, q) in zip(r[0], targetValues) { total += (p - q) * (p - q) }
    return total / 12
  })
}
