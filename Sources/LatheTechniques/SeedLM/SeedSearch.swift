// The exhaustive seed search: for every block w and every window j, t* = U_j⁺w, t̂ = quant(t*), and
// err_j = ||w||² − t*ᵀG_j t* + dᵀG_j d = ||w||² + t̂ᵀG_j(t̂ − 2t*) with d = t̂ − t* (w − U_j t* is orthogonal to
// range(U_j)); the first seed with the smallest error wins. Ill-conditioned windows (cond > 10³) are scored by explicit reconstruction in
// Float64 instead, never skipped. SIMD lanes run across 16 blocks, seeds in the outer loop, groups of blocks on
// the pool.

import Foundation
import LatheTensor

public struct SeedSearch: Sendable {
  public let bases: SeedBases
  public let rule: SeedLM.ExponentRule
  /// Windows 0..<seedCount are searched (all of them unless an ablation asks for fewer).
  public let seedCount: Int

  public init(bases: SeedBases, rule: SeedLM.ExponentRule, seedCount: Int) {
    self.bases = bases; self.rule = rule; self.seedCount = Swift.min(seedCount, bases.count)
  }

  public struct Result: Sendable {
    /// Per block: the register state (the stored seed), the offset of its window, the exponent, P mantissas.
    public var states: [UInt16], offsets: [Int32], exponents: [Int8], mantissas: [Int8]
    /// Per block: the squared reconstruction error of the chosen seed.
    public var errors: [Float]
  }

  /// Searches `blocks` blocks of C consecutive values of `values`.
  public func run(_ values: [Float], blocks: Int, threads: Int, progress: (Int, Int) throws -> Void) throws -> Result {
    let c = bases.block, p = bases.coeffs
    precondition(values.count >= blocks * c)
    var result = Result(states: .init(repeating: 0, count: blocks), offsets: .init(repeating: 0, count: blocks),
                        exponents: .init(repeating: 0, count: blocks), mantissas: .init(repeating: 0, count: blocks * p),
                        errors: .init(repeating: 0, count: blocks))
    let groups = (blocks + 15) / 16
    let batch = Swift.max(1, threads) * 8
    var done = 0
    try values.withUnsafeBufferPointer { v in
      try result.offsets.withUnsafeMutableBufferPointer { offsets in
        try result.errors.withUnsafeMutableBufferPointer { errors in
          let vp = UnsafeShared(v.baseAddress!), op = UnsafeShared(offsets.baseAddress!), ep = UnsafeShared(errors.baseAddress!)
          while done < groups {
            let end = Swift.min(groups, done + batch), first = done
            let body: (Int) -> Void = { g in self.searchGroup(first + g, values: vp.pointer, blocks: blocks, offsets: op.pointer, errors: ep.pointer) }
            if threads <= 1 { for g in 0..<(end - first) { body(g) } } else { ThreadPool.shared.parallelFor(end - first, body) }
            done = end
            try progress(Swift.min(blocks, done * 16), blocks)
          }
        }
      }
    }
    // The winners' codes, recomputed with the same arithmetic the kernel used.
    for b in 0..<blocks {
      let j = Int(result.offsets[b])
      let t = coefficients(window: j, block: Array(values[(b * c)..<((b + 1) * c)]))
      let (q, e) = SeedQuantizer.quantize(t, rule: rule)
      result.states[b] = bases.stateForOffset[j]
      result.exponents[b] = Int8(e)
      for k in 0..<p { result.mantissas[b * p + k] = q[k] }
    }
    return result
  }

  /// t* = U_j⁺ w in f32, accumulated by fused multiply-adds in the kernel's order.
  public func coefficients(window j: Int, block w: [Float]) -> [Float] {
    let c = bases.block, p = bases.coeffs
    return (0..<p).map { k in
      var even: Float = 0, odd: Float = 0
      for i in stride(from: 0, to: c, by: 2) { even = even.addingProduct(bases.pinv[(j * p + k) * c + i], w[i]) }
      for i in stride(from: 1, to: c, by: 2) { odd = odd.addingProduct(bases.pinv[(j * p + k) * c + i], w[i]) }
      return even + odd
    }
  }

  /// ||w − U_j t̂||² in Float64.
  public func explicitError(window j: Int, block w: [Float], q: [Int8], e: Int) -> Double {
    let c = bases.block, p = bases.coeffs, scale = Double(sign: .plus, exponent: e, significand: 1)
    var err = 0.0
    for i in 0..<c {
      var r = Double(w[i])
      for k in 0..<p { r -= bases.cycleDouble[j + i * p + k] * Double(q[k]) * scale }
      err += r * r
    }
    return err
  }

  /// The literal search for one block (every seed, explicit Float64 errors): the reference the tests compare to.
  public func literal(_ w: [Float]) -> (offset: Int, error: Double) {
    var best = Double.infinity, bestJ = 0
    for j in 0..<seedCount {
      let (q, e) = SeedQuantizer.quantize(coefficients(window: j, block: w), rule: rule)
      let err = explicitError(window: j, block: w, q: q, e: e)
      if err < best { best = err; bestJ = j }
    }
    return (bestJ, best)
  }

  /// One group of 16 blocks (lanes), every seed.
  func searchGroup(_ g: Int, values: UnsafePointer<Float>, blocks: Int, offsets: UnsafeMutablePointer<Int32>, errors: UnsafeMutablePointer<Float>) {
    let c = bases.block, p = bases.coeffs
    let lanes = Swift.min(16, blocks - g * 16)
    // w[i] holds element i of the 16 blocks.
    var w = [SIMD16<Float>](repeating: .zero, count: c)
    for lane in 0..<lanes { for i in 0..<c { w[i][lane] = values[(g * 16 + lane) * c + i] } }
    var norm = SIMD16<Float>.zero
    for i in 0..<c { norm = norm.addingProduct(w[i], w[i]) }
    var best = SIMD16<Float>(repeating: .infinity), bestJ = SIMD16<Float>(repeating: 0)   // seed offsets < 2^24: exact
    var t = [SIMD16<Float>](repeating: .zero, count: p), d = [SIMD16<Float>](repeating: .zero, count: p)
    var hat = [SIMD16<Float>](repeating: .zero, count: p)
    let rangeRule = rule == .range
    let seven = SIMD16<Float>(repeating: 7), minusEight = SIMD16<Float>(repeating: -8)
    let smallest = SIMD16<Float>(repeating: 0x1p-8), largest = SIMD16<Float>(repeating: 0x1p7)
    bases.pinv.withUnsafeBufferPointer { pinv in
      bases.gram.withUnsafeBufferPointer { gram in
        w.withUnsafeBufferPointer { w in
          t.withUnsafeMutableBufferPointer { t in
            d.withUnsafeMutableBufferPointer { d in
             hat.withUnsafeMutableBufferPointer { hat in
              for j in 0..<seedCount {
                let u = pinv.baseAddress! + j * p * c
                // t_k = U⁺_k·w as two chains (even and odd i) per k, interleaved over k, so the multiply-adds do
                // not wait on each other; `coefficients` sums in the same order.
                var m = SIMD16<Float>.zero
                var k = 0
                while k < p {
                  let two = k + 1 < p
                  let r0 = u + k * c, r1 = two ? r0 + c : r0
                  var e0 = SIMD16<Float>.zero, o0 = SIMD16<Float>.zero, e1 = SIMD16<Float>.zero, o1 = SIMD16<Float>.zero
                  var i = 0
                  while i + 1 < c {
                    let wa = w[i], wb = w[i + 1]
                    e0 = e0.addingProduct(SIMD16(repeating: r0[i]), wa); o0 = o0.addingProduct(SIMD16(repeating: r0[i + 1]), wb)
                    e1 = e1.addingProduct(SIMD16(repeating: r1[i]), wa); o1 = o1.addingProduct(SIMD16(repeating: r1[i + 1]), wb)
                    i += 2
                  }
                  if i < c {
                    e0 = e0.addingProduct(SIMD16(repeating: r0[i]), w[i]); e1 = e1.addingProduct(SIMD16(repeating: r1[i]), w[i])
                  }
                  let s0 = e0 + o0
                  t[k] = s0
                  m = m.replacing(with: abs(s0), where: abs(s0) .> m)
                  if two {
                    let s1 = e1 + o1
                    t[k + 1] = s1
                    m = m.replacing(with: abs(s1), where: abs(s1) .> m)
                  }
                  k += 2
                }
                // 2^e per lane from m's exponent bits, all in float lanes (integer lane selects compile to scalar
                // loops): 2^E with m = f·2^E; the range rule takes 2^(E−2), doubled when m > 7.5·2^(E−2)
                // (SeedQuantizer.exponent's rule), then clamps to [2^−8, 2^7]; 2^−e from the bits of 2^e.
                let power = unsafeBitCast(unsafeBitCast(m, to: SIMD16<UInt32>.self) & 0x7F80_0000, to: SIMD16<Float>.self)
                var up = power
                if rangeRule {
                  up = power * 0.25
                  up = up.replacing(with: up * 2, where: m .> up * 7.5)
                }
                up = up.replacing(with: smallest, where: up .< smallest).replacing(with: largest, where: up .> largest)
                let down = unsafeBitCast(SIMD16<UInt32>(repeating: 0x7F00_0000) &- unsafeBitCast(up, to: SIMD16<UInt32>.self), to: SIMD16<Float>.self)
                for k in 0..<p {
                  var q = (t[k] * down).rounded(.toNearestOrEven)
                  q = q.replacing(with: seven, where: q .> seven).replacing(with: minusEight, where: q .< minusEight)
                  hat[k] = q * up
                  d[k] = hat[k] - t[k]
                }
                let score: SIMD16<Float>
                if bases.illConditioned[j] {
                  var s = SIMD16<Float>(repeating: .infinity)
                  for lane in 0..<lanes {
                    var err = 0.0
                    for i in 0..<c {
                      var r = Double(w[i][lane])
                      for k in 0..<p { r -= bases.cycleDouble[j + i * p + k] * Double(hat[k][lane]) }
                      err += r * r
                    }
                    s[lane] = Float(err - Double(norm[lane]))
                  }
                  score = s
                } else {
                  let gj = gram.baseAddress! + j * p * p
                  // dᵀGd − t*ᵀGt* = t̂ᵀG(t̂ − 2t*) with d = t̂ − t*: one quadratic form instead of two.
                  var quad = SIMD16<Float>.zero
                  for a in 0..<p {
                    var row = SIMD16<Float>.zero
                    for b in 0..<p { row = row.addingProduct(SIMD16(repeating: gj[a * p + b]), d[b] - t[b]) }
                    quad = quad.addingProduct(row, hat[a])
                  }
                  score = quad
                }
                let better = score .< best
                best = best.replacing(with: score, where: better)
                bestJ = bestJ.replacing(with: SIMD16(repeating: Float(j)), where: better)
              }
             }
            }
          }
        }
      }
    }
    for lane in 0..<lanes {
      offsets[g * 16 + lane] = Int32(bestJ[lane])
      errors[g * 16 + lane] = Swift.max(0, best[lane] + norm[lane])
    }
  }
}

/// A pointer that may cross into pool tasks (they write disjoint parts).
struct UnsafeShared<T>: @unchecked Sendable {
  let pointer: T
  init(_ pointer: T) { self.pointer = pointer }
}

@inline(__always) private func abs(_ v: SIMD16<Float>) -> SIMD16<Float> {
  unsafeBitCast(unsafeBitCast(v, to: SIMD16<UInt32>.self) & 0x7FFF_FFFF, to: SIMD16<Float>.self)
}
