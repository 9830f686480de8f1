// The exhaustive seed search: for every block w and every window j, t* = U_j⁺w, t̂ = quant(t*), and
// err_j = ||w||² − t*ᵀG_j t* + dᵀG_j d with d = t̂ − t* (w − U_j t* is orthogonal to range(U_j)); the first seed
// with the smallest error wins. Ill-conditioned windows (cond > 10³) are scored by explicit reconstruction in
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
      var t: Float = 0
      for i in 0..<c { t = t.addingProduct(bases.pinv[(j * p + k) * c + i], w[i]) }
      return t
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
    var best = SIMD16<Float>(repeating: .infinity), bestJ = SIMD16<Int32>(repeating: 0)
    var t = [SIMD16<Float>](repeating: .zero, count: p), d = [SIMD16<Float>](repeating: .zero, count: p)
    var hat = [SIMD16<Float>](repeating: .zero, count: p)
    let rangeRule = rule == .range
    let seven = SIMD16<Float>(repeating: 7), minusEight = SIMD16<Float>(repeating: -8)
    bases.pinv.withUnsafeBufferPointer { pinv in
      bases.gram.withUnsafeBufferPointer { gram in
        w.withUnsafeBufferPointer { w in
          t.withUnsafeMutableBufferPointer { t in
            d.withUnsafeMutableBufferPointer { d in
             hat.withUnsafeMutableBufferPointer { hat in
              for j in 0..<seedCount {
                let u = pinv.baseAddress! + j * p * c
                var m = SIMD16<Float>.zero
                for k in 0..<p {
                  var s = SIMD16<Float>.zero
                  for i in 0..<c { s = s.addingProduct(SIMD16(repeating: u[k * c + i]), w[i]) }
                  t[k] = s
                  m = m.replacing(with: abs(s), where: abs(s) .> m)
                }
                // The exponent per lane from m's exponent bits (see SeedQuantizer.exponent).
                let bits = unsafeBitCast(m, to: SIMD16<Int32>.self)
                let big = (bits &>> 23) &- 127                    // floor(log2 m) for normal m
                var e: SIMD16<Int32>
                if rangeRule {
                  let low = big &- 2
                  let bound = unsafeBitCast((low &+ 127) &<< 23, to: SIMD16<Float>.self) * 7.5
                  e = low.replacing(with: low &+ 1, where: m .> bound)
                } else {
                  e = big
                }
                e = e.replacing(with: -8, where: e .< -8).replacing(with: 7, where: e .> 7)
                let down = unsafeBitCast((127 &- e) &<< 23, to: SIMD16<Float>.self)
                let up = unsafeBitCast((127 &+ e) &<< 23, to: SIMD16<Float>.self)
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
                  var quadD = SIMD16<Float>.zero, quadT = SIMD16<Float>.zero
                  for a in 0..<p {
                    var rowD = SIMD16<Float>.zero, rowT = SIMD16<Float>.zero
                    for b in 0..<p {
                      rowD = rowD.addingProduct(SIMD16(repeating: gj[a * p + b]), d[b])
                      rowT = rowT.addingProduct(SIMD16(repeating: gj[a * p + b]), t[b])
                    }
                    quadD = quadD.addingProduct(rowD, d[a]); quadT = quadT.addingProduct(rowT, t[a])
                  }
                  score = quadD - quadT
                }
                let better = score .< best
                best = best.replacing(with: score, where: better)
                bestJ = bestJ.replacing(with: Int32(j), where: better)
              }
             }
            }
          }
        }
      }
    }
    for lane in 0..<lanes {
      offsets[g * 16 + lane] = bestJ[lane]
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
