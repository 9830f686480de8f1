// The exhaustive seed search: for every block w and every window j, t* = U_j⁺w, t̂ = quant(t*), and
// err_j = ||w||² − t*ᵀG_j t* + dᵀG_j d = ||w||² + t̂ᵀG_j(t̂ − 2t*) with d = t̂ − t* (w − U_j t* is orthogonal to
// range(U_j)); the first seed with the smallest error wins. Ill-conditioned windows (cond > 10³) are scored by
// explicit reconstruction in Float64 instead, never skipped (in a second pass, so the hot loop has no branch).
// SIMD lanes run across 16 blocks, seeds in the outer loop, groups of blocks on the pool.

import Foundation
import LatheTensor

public struct SeedSearch: Sendable {
  public let bases: SeedBases
  public let rule: SeedLM.ExponentRule
  /// Windows 0..<seedCount are searched (all of them unless an ablation asks for fewer).
  public let seedCount: Int

  /// The searched windows split into runs of well-conditioned ones (the branch-free kernel) and the
  /// ill-conditioned ones (scored afterwards in Float64).
  let wellRuns: [Range<Int>], illWindows: [Int]

  public init(bases: SeedBases, rule: SeedLM.ExponentRule, seedCount: Int) {
    self.bases = bases; self.rule = rule; self.seedCount = Swift.min(seedCount, bases.count)
    var runs: [Range<Int>] = [], ill: [Int] = [], start = 0
    for j in 0..<self.seedCount where bases.illConditioned[j] {
      if start < j { runs.append(start..<j) }
      ill.append(j); start = j + 1
    }
    if start < self.seedCount { runs.append(start..<self.seedCount) }
    wellRuns = runs; illWindows = ill
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
            try Cancellation.check("seedlm")
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

  /// One group of 16 blocks (lanes), every seed: the well-conditioned runs through a kernel unrolled for the
  /// shape (8×3 and 12×4, the 4- and 3-bit configurations) or the general loop, then the ill-conditioned windows by
  /// explicit Float64 reconstruction. Ties go to the lowest window in both passes.
  func searchGroup(_ g: Int, values: UnsafePointer<Float>, blocks: Int, offsets: UnsafeMutablePointer<Int32>, errors: UnsafeMutablePointer<Float>) {
    let c = bases.block, p = bases.coeffs
    let lanes = Swift.min(16, blocks - g * 16)
    withUnsafeTemporaryAllocation(of: SIMD16<Float>.self, capacity: c + 3 * p) { scratch in
      let w = scratch.baseAddress!, t = w + c, hat = t + p, d = hat + p
      for i in 0..<(c + 3 * p) { w[i] = .zero }
      for lane in 0..<lanes { for i in 0..<c { w[i][lane] = values[(g * 16 + lane) * c + i] } }
      var norm = SIMD16<Float>.zero
      for i in 0..<c { norm = norm.addingProduct(w[i], w[i]) }
      var best = SIMD16<Float>(repeating: .infinity), bestJ = SIMD16<Float>(repeating: 0)   // offsets < 2^24: exact
      let rangeRule = rule == .range
      bases.pinv.withUnsafeBufferPointer { pinv in
        bases.gram.withUnsafeBufferPointer { gram in
          let pinv = pinv.baseAddress!, gram = gram.baseAddress!
          // Pieces of at most 4096 windows, so that Ctrl-C (Cancellation.requested) stops a group within one piece;
          // an interrupted search leaves its lanes unfinished and `run` throws.
          for whole in wellRuns { for start in stride(from: whole.lowerBound, to: whole.upperBound, by: 4096) {
            if Cancellation.requested { return }
            let run = start..<Swift.min(whole.upperBound, start + 4096)
            if c == 8 && p == 3 {
              SeedSearch.kernel8x3(w, run: run, pinv: pinv, gram: gram, rangeRule: rangeRule, best: &best, bestJ: &bestJ)
            } else if c == 12 && p == 4 {
              SeedSearch.kernel12x4(w, run: run, pinv: pinv, gram: gram, rangeRule: rangeRule, best: &best, bestJ: &bestJ)
            } else {
              for j in run {
                quantizeLanes(j, w: w, pinv: pinv, rangeRule: rangeRule, t: t, hat: hat, d: d)
                let gj = gram + j * p * p
                // dᵀGd − t*ᵀGt* = t̂ᵀG(t̂ − 2t*) with d = t̂ − t*: one quadratic form instead of two.
                var quad = SIMD16<Float>.zero
                for a in 0..<p {
                  var row = SIMD16<Float>.zero
                  for b in 0..<p { row = row.addingProduct(SIMD16(repeating: gj[a * p + b]), d[b] - t[b]) }
                  quad = quad.addingProduct(row, hat[a])
                }
                let better = quad .< best
                best = best.replacing(with: quad, where: better)
                bestJ = bestJ.replacing(with: SIMD16(repeating: Float(j)), where: better)
              }
            }
          } }
          for j in illWindows {
            quantizeLanes(j, w: w, pinv: pinv, rangeRule: rangeRule, t: t, hat: hat, d: d)
            for lane in 0..<lanes {
              var err = 0.0
              for i in 0..<c {
                var r = Double(w[i][lane])
                for k in 0..<p { r -= bases.cycleDouble[j + i * p + k] * Double(hat[k][lane]) }
                err += r * r
              }
              let score = Float(err - Double(norm[lane]))
              if score < best[lane] || (score == best[lane] && Float(j) < bestJ[lane]) { best[lane] = score; bestJ[lane] = Float(j) }
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

  /// t* = U_j⁺w, its quantised t̂ and d = t̂ − t* in 16 lanes, for any shape (the order of `coefficients`).
  func quantizeLanes(_ j: Int, w: UnsafeMutablePointer<SIMD16<Float>>, pinv: UnsafePointer<Float>, rangeRule: Bool,
                     t: UnsafeMutablePointer<SIMD16<Float>>, hat: UnsafeMutablePointer<SIMD16<Float>>, d: UnsafeMutablePointer<SIMD16<Float>>) {
    let c = bases.block, p = bases.coeffs
    let u = pinv + j * p * c
    var m = SIMD16<Float>.zero
    for k in 0..<p {
      var even = SIMD16<Float>.zero, odd = SIMD16<Float>.zero
      for i in stride(from: 0, to: c, by: 2) { even = even.addingProduct(SIMD16(repeating: u[k * c + i]), w[i]) }
      for i in stride(from: 1, to: c, by: 2) { odd = odd.addingProduct(SIMD16(repeating: u[k * c + i]), w[i]) }
      t[k] = even + odd
      m = laneMax(m, abs(t[k]))
    }
    let (up, down) = SeedSearch.scales(m, rangeRule: rangeRule)
    for k in 0..<p {
      hat[k] = SeedSearch.quantized(t[k], up: up, down: down)
      d[k] = hat[k] - t[k]
    }
  }

  /// 2^e and 2^−e per lane from the largest |t| (SeedQuantizer.exponent's rule), all in float lanes (integer lane
  /// selects compile to scalar loops): 2^E with m = f·2^E; the range rule takes 2^(E−2), doubled when
  /// m > 7.5·2^(E−2), then clamps to [2^−8, 2^7]; 2^−e from the bits of 2^e.
  @inline(__always) static func scales(_ m: SIMD16<Float>, rangeRule: Bool) -> (up: SIMD16<Float>, down: SIMD16<Float>) {
    let power = unsafeBitCast(unsafeBitCast(m, to: SIMD16<UInt32>.self) & 0x7F80_0000, to: SIMD16<Float>.self)
    var up = power
    if rangeRule {
      up = power * 0.25
      up = up.replacing(with: up * 2, where: m .> up * 7.5)
    }
    up = laneMin(laneMax(up, SIMD16(repeating: 0x1p-8)), SIMD16(repeating: 0x1p7))
    let down = unsafeBitCast(SIMD16<UInt32>(repeating: 0x7F00_0000) &- unsafeBitCast(up, to: SIMD16<UInt32>.self), to: SIMD16<Float>.self)
    return (up, down)
  }

  /// t̂ = clamp(round(t·2^−e), −8, 7)·2^e.
  @inline(__always) static func quantized(_ t: SIMD16<Float>, up: SIMD16<Float>, down: SIMD16<Float>) -> SIMD16<Float> {
    // Round half to even by the 1.5·2^23 trick (exact for |x| < 2^22; larger values are clamped anyway):
    // SIMD16's rounded(_:) goes lane by lane and splits the vectors.
    let magic = SIMD16<Float>(repeating: 0x1.8p23)
    let q = (t * down + magic) - magic
    return laneMin(laneMax(q, SIMD16(repeating: -8)), SIMD16(repeating: 7)) * up
  }

  /// One coefficient, U⁺ row r·w, as an even and an odd chain of multiply-adds (the order of `coefficients`).
  @inline(__always) static func row8(_ r: UnsafePointer<Float>, _ w0: SIMD16<Float>, _ w1: SIMD16<Float>, _ w2: SIMD16<Float>, _ w3: SIMD16<Float>,
                                     _ w4: SIMD16<Float>, _ w5: SIMD16<Float>, _ w6: SIMD16<Float>, _ w7: SIMD16<Float>) -> SIMD16<Float> {
    var e = SIMD16(repeating: r[0]) * w0, o = SIMD16(repeating: r[1]) * w1
    e = e.addingProduct(SIMD16(repeating: r[2]), w2); o = o.addingProduct(SIMD16(repeating: r[3]), w3)
    e = e.addingProduct(SIMD16(repeating: r[4]), w4); o = o.addingProduct(SIMD16(repeating: r[5]), w5)
    e = e.addingProduct(SIMD16(repeating: r[6]), w6); o = o.addingProduct(SIMD16(repeating: r[7]), w7)
    return e + o
  }

  /// The 4-bit shape (C = 8, P = 3) with every loop unrolled and the 16 lanes' blocks in registers. Two windows per
  /// step, written out twice (the optimizer does not inline a helper here): their dependency chains, about 100 cycles
  /// each, interleave, where one window at a time left the FMA pipes idle.
  static func kernel8x3(_ w: UnsafeMutablePointer<SIMD16<Float>>, run: Range<Int>, pinv: UnsafePointer<Float>, gram: UnsafePointer<Float>,
                        rangeRule: Bool, best: inout SIMD16<Float>, bestJ: inout SIMD16<Float>) {
    let w0 = w[0], w1 = w[1], w2 = w[2], w3 = w[3], w4 = w[4], w5 = w[5], w6 = w[6], w7 = w[7]
    var b = best, bj = bestJ
    let smallest = SIMD16<Float>(repeating: 0x1p-8), largest = SIMD16<Float>(repeating: 0x1p7)
    let seven = SIMD16<Float>(repeating: 7), minusEight = SIMD16<Float>(repeating: -8)
    let magic = SIMD16<Float>(repeating: 0x1.8p23), bias = SIMD16<UInt32>(repeating: 0x7F00_0000)
    var j = run.lowerBound
    while j < run.upperBound {
      let next = j + 1 < run.upperBound ? j + 1 : j               // an odd run scores its last window twice
      let uA = pinv + (j) * 24
      let t0A = row8(uA, w0, w1, w2, w3, w4, w5, w6, w7)
      let t1A = row8(uA + 8, w0, w1, w2, w3, w4, w5, w6, w7)
      let t2A = row8(uA + 16, w0, w1, w2, w3, w4, w5, w6, w7)
      let mA = laneMax(laneMax(abs(t0A), abs(t1A)), abs(t2A))
      let powerA = unsafeBitCast(unsafeBitCast(mA, to: SIMD16<UInt32>.self) & 0x7F80_0000, to: SIMD16<Float>.self)
      var upA = powerA
      if rangeRule {
        upA = powerA * 0.25
        upA = upA.replacing(with: upA * 2, where: mA .> upA * 7.5)
      }
      upA = laneMin(laneMax(upA, smallest), largest)
      let downA = unsafeBitCast(bias &- unsafeBitCast(upA, to: SIMD16<UInt32>.self), to: SIMD16<Float>.self)
      let h0A = codeClamp((t0A * downA + magic) - magic, seven, minusEight) * upA
      let h1A = codeClamp((t1A * downA + magic) - magic, seven, minusEight) * upA
      let h2A = codeClamp((t2A * downA + magic) - magic, seven, minusEight) * upA
      let v0A = (h0A - t0A) - t0A, v1A = (h1A - t1A) - t1A, v2A = (h2A - t2A) - t2A
      let gA = gram + (j) * 9
      var r0A = SIMD16(repeating: gA[0]) * v0A, r1A = SIMD16(repeating: gA[3]) * v0A, r2A = SIMD16(repeating: gA[6]) * v0A
      r0A = r0A.addingProduct(SIMD16(repeating: gA[1]), v1A); r1A = r1A.addingProduct(SIMD16(repeating: gA[4]), v1A); r2A = r2A.addingProduct(SIMD16(repeating: gA[7]), v1A)
      r0A = r0A.addingProduct(SIMD16(repeating: gA[2]), v2A); r1A = r1A.addingProduct(SIMD16(repeating: gA[5]), v2A); r2A = r2A.addingProduct(SIMD16(repeating: gA[8]), v2A)
      let quadA = (r0A * h0A).addingProduct(r1A, h1A).addingProduct(r2A, h2A)
      let uB = pinv + (next) * 24
      let t0B = row8(uB, w0, w1, w2, w3, w4, w5, w6, w7)
      let t1B = row8(uB + 8, w0, w1, w2, w3, w4, w5, w6, w7)
      let t2B = row8(uB + 16, w0, w1, w2, w3, w4, w5, w6, w7)
      let mB = laneMax(laneMax(abs(t0B), abs(t1B)), abs(t2B))
      let powerB = unsafeBitCast(unsafeBitCast(mB, to: SIMD16<UInt32>.self) & 0x7F80_0000, to: SIMD16<Float>.self)
      var upB = powerB
      if rangeRule {
        upB = powerB * 0.25
        upB = upB.replacing(with: upB * 2, where: mB .> upB * 7.5)
      }
      upB = laneMin(laneMax(upB, smallest), largest)
      let downB = unsafeBitCast(bias &- unsafeBitCast(upB, to: SIMD16<UInt32>.self), to: SIMD16<Float>.self)
      let h0B = codeClamp((t0B * downB + magic) - magic, seven, minusEight) * upB
      let h1B = codeClamp((t1B * downB + magic) - magic, seven, minusEight) * upB
      let h2B = codeClamp((t2B * downB + magic) - magic, seven, minusEight) * upB
      let v0B = (h0B - t0B) - t0B, v1B = (h1B - t1B) - t1B, v2B = (h2B - t2B) - t2B
      let gB = gram + (next) * 9
      var r0B = SIMD16(repeating: gB[0]) * v0B, r1B = SIMD16(repeating: gB[3]) * v0B, r2B = SIMD16(repeating: gB[6]) * v0B
      r0B = r0B.addingProduct(SIMD16(repeating: gB[1]), v1B); r1B = r1B.addingProduct(SIMD16(repeating: gB[4]), v1B); r2B = r2B.addingProduct(SIMD16(repeating: gB[7]), v1B)
      r0B = r0B.addingProduct(SIMD16(repeating: gB[2]), v2B); r1B = r1B.addingProduct(SIMD16(repeating: gB[5]), v2B); r2B = r2B.addingProduct(SIMD16(repeating: gB[8]), v2B)
      let quadB = (r0B * h0B).addingProduct(r1B, h1B).addingProduct(r2B, h2B)
      // In window order, so that ties go to the lower one.
      let betterA = quadA .< b
      b = b.replacing(with: quadA, where: betterA)
      bj = bj.replacing(with: SIMD16(repeating: Float(j)), where: betterA)
      let betterB = quadB .< b
      b = b.replacing(with: quadB, where: betterB)
      bj = bj.replacing(with: SIMD16(repeating: Float(next)), where: betterB)
      j += 2
    }
    best = b; bestJ = bj
  }

  /// One coefficient of the 3-bit shape (C = 12), in the order of `coefficients`.
  @inline(__always) static func row12(_ r: UnsafePointer<Float>, _ w: UnsafeMutablePointer<SIMD16<Float>>) -> SIMD16<Float> {
    var e = SIMD16(repeating: r[0]) * w[0], o = SIMD16(repeating: r[1]) * w[1]
    e = e.addingProduct(SIMD16(repeating: r[2]), w[2]); o = o.addingProduct(SIMD16(repeating: r[3]), w[3])
    e = e.addingProduct(SIMD16(repeating: r[4]), w[4]); o = o.addingProduct(SIMD16(repeating: r[5]), w[5])
    e = e.addingProduct(SIMD16(repeating: r[6]), w[6]); o = o.addingProduct(SIMD16(repeating: r[7]), w[7])
    e = e.addingProduct(SIMD16(repeating: r[8]), w[8]); o = o.addingProduct(SIMD16(repeating: r[9]), w[9])
    e = e.addingProduct(SIMD16(repeating: r[10]), w[10]); o = o.addingProduct(SIMD16(repeating: r[11]), w[11])
    return e + o
  }

  /// The 3-bit shape (C = 12, P = 4), unrolled; the blocks are read through `w` (the compiler keeps them in
  /// registers or L1).
  static func kernel12x4(_ w: UnsafeMutablePointer<SIMD16<Float>>, run: Range<Int>, pinv: UnsafePointer<Float>, gram: UnsafePointer<Float>,
                         rangeRule: Bool, best: inout SIMD16<Float>, bestJ: inout SIMD16<Float>) {
    var b = best, bj = bestJ
    let smallest = SIMD16<Float>(repeating: 0x1p-8), largest = SIMD16<Float>(repeating: 0x1p7)
    let seven = SIMD16<Float>(repeating: 7), minusEight = SIMD16<Float>(repeating: -8)
    let magic = SIMD16<Float>(repeating: 0x1.8p23), bias = SIMD16<UInt32>(repeating: 0x7F00_0000)
    for j in run {
      let u = pinv + j * 48
      let t0 = row12(u, w), t1 = row12(u + 12, w), t2 = row12(u + 24, w), t3 = row12(u + 36, w)
      let m = laneMax(laneMax(abs(t0), abs(t1)), laneMax(abs(t2), abs(t3)))
      let power = unsafeBitCast(unsafeBitCast(m, to: SIMD16<UInt32>.self) & 0x7F80_0000, to: SIMD16<Float>.self)
      var up = power
      if rangeRule {
        up = power * 0.25
        up = up.replacing(with: up * 2, where: m .> up * 7.5)
      }
      up = laneMin(laneMax(up, smallest), largest)
      let down = unsafeBitCast(bias &- unsafeBitCast(up, to: SIMD16<UInt32>.self), to: SIMD16<Float>.self)
      let h0 = codeClamp((t0 * down + magic) - magic, seven, minusEight) * up
      let h1 = codeClamp((t1 * down + magic) - magic, seven, minusEight) * up
      let h2 = codeClamp((t2 * down + magic) - magic, seven, minusEight) * up
      let h3 = codeClamp((t3 * down + magic) - magic, seven, minusEight) * up
      let v0 = (h0 - t0) - t0, v1 = (h1 - t1) - t1, v2 = (h2 - t2) - t2, v3 = (h3 - t3) - t3
      let g = gram + j * 16
      var r0 = SIMD16(repeating: g[0]) * v0, r1 = SIMD16(repeating: g[4]) * v0
      var r2 = SIMD16(repeating: g[8]) * v0, r3 = SIMD16(repeating: g[12]) * v0
      r0 = r0.addingProduct(SIMD16(repeating: g[1]), v1); r1 = r1.addingProduct(SIMD16(repeating: g[5]), v1)
      r2 = r2.addingProduct(SIMD16(repeating: g[9]), v1); r3 = r3.addingProduct(SIMD16(repeating: g[13]), v1)
      r0 = r0.addingProduct(SIMD16(repeating: g[2]), v2); r1 = r1.addingProduct(SIMD16(repeating: g[6]), v2)
      r2 = r2.addingProduct(SIMD16(repeating: g[10]), v2); r3 = r3.addingProduct(SIMD16(repeating: g[14]), v2)
      r0 = r0.addingProduct(SIMD16(repeating: g[3]), v3); r1 = r1.addingProduct(SIMD16(repeating: g[7]), v3)
      r2 = r2.addingProduct(SIMD16(repeating: g[11]), v3); r3 = r3.addingProduct(SIMD16(repeating: g[15]), v3)
      let quad = (r0 * h0).addingProduct(r1, h1).addingProduct(r2, h2).addingProduct(r3, h3)
      let better = quad .< b
      b = b.replacing(with: quad, where: better)
      bj = bj.replacing(with: SIMD16(repeating: Float(j)), where: better)
    }
    best = b; bestJ = bj
  }
}

/// A pointer that may cross into pool tasks (they write disjoint parts).
struct UnsafeShared<T>: @unchecked Sendable {
  let pointer: T
  init(_ pointer: T) { self.pointer = pointer }
}

/// Lane-wise max and min as compare-and-select (the standard library's pointwiseMax/Min go lane by lane through
/// Float.maximum's NaN handling and do not vectorize: 10x slower here).
@inline(__always) private func laneMax(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> { a.replacing(with: b, where: b .> a) }
@inline(__always) private func laneMin(_ a: SIMD16<Float>, _ b: SIMD16<Float>) -> SIMD16<Float> { a.replacing(with: b, where: b .< a) }

/// clamp(q, −8, 7) for integer-valued lanes as q − relu(q − 7) + relu(−8 − q), relu(y) = (y + |y|)/2: exact for these
/// small integers, and free of selects (a compare-and-select clamp in the search kernels compiled to a lane-by-lane
/// sequence of mask shifts and extracts: 2x slower; shorter arithmetic forms split the vectors into pieces).
@inline(__always) private func codeClamp(_ q: SIMD16<Float>, _ seven: SIMD16<Float>, _ minusEight: SIMD16<Float>) -> SIMD16<Float> {
  let over = q - seven, under = minusEight - q
  return q - (over + abs(over)) * 0.5 + (under + abs(under)) * 0.5
}

@inline(__always) private func abs(_ v: SIMD16<Float>) -> SIMD16<Float> {
  unsafeBitCast(unsafeBitCast(v, to: SIMD16<UInt32>.self) & 0x7FFF_FFFF, to: SIMD16<Float>.self)
}
