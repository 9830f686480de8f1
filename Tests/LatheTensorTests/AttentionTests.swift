// The fused attention kernel against softmax(QKᵀ/√d + causal mask)V in Float64, and FastExp against the true e^x.

import Foundation
import Testing
@testable import LatheTensor

/// Deterministic values in [−scale, scale).
private func noise(_ count: Int, seed: UInt64, scale: Float) -> [Float] {
  var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
  return (0..<count).map { _ in
    state ^= state << 13; state ^= state >> 7; state ^= state << 17
    return (Float(state >> 40) / Float(1 << 24) * 2 - 1) * scale
  }
}

private struct Case: CustomTestStringConvertible {
  let headDim: Int, kvHeads: Int, ratio: Int, rows: Int, start: Int
  var testDescription: String { "hd \(headDim), GQA \(ratio), rows \(rows), start \(start)" }
}

/// Runs the fused kernel on random queries, keys and values; checks sampled rows of every head against the Float64
/// reference (within 1e-5 of the row's largest output), and that 1 and 2 threads give the same bits.
private func check(_ c: Case) {
  let heads = c.kvHeads * c.ratio, hd = c.headDim, T = c.rows, length = c.start + T
  let qStride = heads * hd + 8, kvStride = c.kvHeads * hd + 4          // strides wider than the rows, as in a model
  // Scores of a few units, as in a trained model: the softmax is neither flat nor one-hot.
  let q = noise(T * qStride, seed: UInt64(T * 31 + hd), scale: 2)
  let k = noise(length * kvStride, seed: UInt64(length * 7 + c.ratio), scale: 2)
  let v = noise(length * kvStride, seed: UInt64(length * 13 + 5), scale: 1)
  func run(threads: Int) -> [Float] {
    var out = [Float](repeating: .nan, count: T * qStride)
    q.withUnsafeBufferPointer { qp in k.withUnsafeBufferPointer { kp in v.withUnsafeBufferPointer { vp in
      out.withUnsafeMutableBufferPointer { op in
        FusedAttention.causal(queries: qp.baseAddress!, queryStride: qStride, keys: kp.baseAddress!,
                              values: vp.baseAddress!, kvStride: kvStride, output: op.baseAddress!,
                              outputStride: qStride, rows: T, start: c.start, heads: heads, kvHeads: c.kvHeads,
                              headDim: hd, threads: threads)
      }
    } } }
    return out
  }
  let one = run(threads: 1), two = run(threads: 2)
  #expect(one.elementsEqual(two, by: { $0.bitPattern == $1.bitPattern }), "1 and 2 threads differ: \(c.testDescription)")
  // Rows on both sides of every tile edge, the first and the last.
  var sample: Set<Int> = [0, T - 1, T / 2]
  for edge in stride(from: 0, through: T, by: FusedAttention.queryTile) { for d in -1...1 where edge + d >= 0 && edge + d < T { sample.insert(edge + d) } }
  let scale = 1 / Double(hd).squareRoot()
  var worst = 0.0
  for t in sample.sorted() {
    let visible = c.start + t + 1
    for h in 0..<heads {
      let kvHead = h / c.ratio
      var scores = [Double](repeating: 0, count: visible)
      for j in 0..<visible {
        var s = 0.0
        for d in 0..<hd { s += Double(q[t * qStride + h * hd + d]) * Double(k[j * kvStride + kvHead * hd + d]) }
        scores[j] = s * scale
      }
      let top = scores.max() ?? 0
      let weights = scores.map { Foundation.exp($0 - top) }
      let total = weights.reduce(0, +)
      var expected = [Double](repeating: 0, count: hd)
      for j in 0..<visible { for d in 0..<hd { expected[d] += weights[j] / total * Double(v[j * kvStride + kvHead * hd + d]) } }
      let size = expected.map(abs).max() ?? 1
      for d in 0..<hd {
        let got = Double(one[t * qStride + h * hd + d])
        worst = max(worst, abs(got - expected[d]) / size)
      }
    }
  }
  #expect(worst <= 1e-5, "largest relative error \(worst): \(c.testDescription)")
}

@Test(arguments: [
  Case(headDim: 64, kvHeads: 3, ratio: 3, rows: 1, start: 0),
  Case(headDim: 64, kvHeads: 3, ratio: 3, rows: 2, start: 0),
  Case(headDim: 64, kvHeads: 3, ratio: 3, rows: 63, start: 0),
  Case(headDim: 64, kvHeads: 3, ratio: 3, rows: 64, start: 0),
  Case(headDim: 64, kvHeads: 3, ratio: 3, rows: 65, start: 0),
  Case(headDim: 64, kvHeads: 2, ratio: 1, rows: 129, start: 0),
  Case(headDim: 128, kvHeads: 1, ratio: 4, rows: 300, start: 0),
  Case(headDim: 128, kvHeads: 2, ratio: 1, rows: 17, start: 0),
  Case(headDim: 64, kvHeads: 1, ratio: 4, rows: 1000, start: 0),
  // Chunks: queries that start at an offset, over keys that include the prefix (parallel prefill, decode steps).
  Case(headDim: 64, kvHeads: 3, ratio: 3, rows: 1, start: 4099),
  Case(headDim: 64, kvHeads: 3, ratio: 3, rows: 5, start: 700),
  Case(headDim: 128, kvHeads: 1, ratio: 4, rows: 100, start: 333),
  Case(headDim: 64, kvHeads: 2, ratio: 1, rows: 64, start: 511),
  Case(headDim: 64, kvHeads: 1, ratio: 3, rows: 200, start: 1024),
  // Decode-shaped blocks: one or a few queries per head, over keys split into 512-key ranges.
  Case(headDim: 128, kvHeads: 1, ratio: 4, rows: 1, start: 2000),
  Case(headDim: 64, kvHeads: 2, ratio: 4, rows: 2, start: 1500),
  Case(headDim: 64, kvHeads: 3, ratio: 1, rows: 8, start: 100),
  // The direct path for up to FusedAttention.directQueries rows: odd and even rows per KV head, a head of 128 (two
  // 64-column blocks of accumulators), one of 48 (16-column blocks), one of 40 (not a multiple of 16: tiles instead),
  // and a range end that is not a multiple of the key tile.
  Case(headDim: 64, kvHeads: 3, ratio: 1, rows: 3, start: 1029),
  Case(headDim: 128, kvHeads: 2, ratio: 3, rows: 4, start: 515),
  Case(headDim: 48, kvHeads: 2, ratio: 3, rows: 1, start: 777),
  Case(headDim: 40, kvHeads: 1, ratio: 4, rows: 2, start: 300),
])
private func fusedAttentionMatchesTheReference(_ c: Case) { check(c) }

/// The longest case: 4,100 tokens, not a multiple of either tile.
@Test(arguments: [64, 128])
func fusedAttentionMatchesTheReferenceAt4100Tokens(headDim: Int) {
  check(Case(headDim: headDim, kvHeads: 1, ratio: 3, rows: 4100, start: 0))
}

// MARK: - FastExp

/// |got − e^x| in units in the last place of the float nearest e^x (subnormal ulps below Float.leastNormalMagnitude).
private func ulps(_ got: Float, _ x: Float) -> Double {
  let exact = Foundation.exp(Double(x))
  let nearest = Float(exact)
  let ulp = Double(nearest == 0 ? Float.leastNonzeroMagnitude : nearest.ulp)
  return abs(Double(got) - exact) / ulp
}

@Test func fastExpIsWithinTwoUlpOverItsRange() {
  var worst = 0.0, worstAt: Float = 0
  var inputs: [Float] = []
  let n = 400_000
  for i in 0...n { inputs.append(-88 + 176 * Float(i) / Float(n)) }
  for i in 0..<20_000 { let x = Float(i) * 1e-6; inputs.append(x); inputs.append(-x) }        // near 0
  inputs += [-88, 88, -87.33654, 88.72283, -0.5, 0.5, 1, -1, Float.ulpOfOne, -Float.ulpOfOne]
  var lanes = FastExp.V(repeating: 0)
  for start in stride(from: 0, to: inputs.count, by: 16) {
    let count = min(16, inputs.count - start)
    for l in 0..<16 { lanes[l] = inputs[start + min(l, count - 1)] }
    let vector = FastExp.exp(lanes)
    for l in 0..<count {
      let x = inputs[start + l], scalar = FastExp.exp(x)
      if scalar.bitPattern != vector[l].bitPattern {
        Issue.record("lane \(l) of exp(\(x)): SIMD \(vector[l]), scalar twin \(scalar)")
        return
      }
      let e = ulps(scalar, x)
      if e > worst { worst = e; worstAt = x }
    }
  }
  #expect(worst <= 2, "\(worst) ulp at x = \(worstAt)")
}

@Test func fastExpEdges() {
  #expect(FastExp.exp(0) == 1)
  #expect(FastExp.exp(-Float.infinity) == 0)
  #expect(FastExp.exp(-200) == 0)
  #expect(FastExp.exp(Float.infinity) == .infinity)
  #expect(FastExp.exp(89) == .infinity)
  #expect(FastExp.exp(Float.nan).isNaN)
  #expect(FastExp.exp(88.7).isFinite)
  let v = FastExp.exp(FastExp.V(repeating: -.infinity))
  #expect(v == FastExp.V(repeating: 0))
  #expect(FastExp.exp(FastExp.V(repeating: 0)) == FastExp.V(repeating: 1))
}
