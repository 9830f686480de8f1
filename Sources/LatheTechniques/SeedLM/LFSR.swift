// SeedLM's pseudo-random bases (../shared/techniques/seedlm.md): a K-bit Fibonacci LFSR, the whole cycle from
// state 1 normalised to [-1, 1], every basis a C×P window of that cycle, and each window's pseudo-inverse (SVD in
// Float64) and Gram matrix, computed once per (K, C, P) and shared.

import Foundation
import LatheTensor

public struct LFSR: Sendable, Equatable {
  public let bits: Int
  public let taps: [Int]

  /// The maximal-length tap sets of the paper's Table 6 (bit 0 = LSB), plus K = 9 for small tests.
  public static let tapTable: [Int: [Int]] = [
    3: [0, 1], 4: [0, 1], 5: [0, 2], 8: [0, 2, 3, 4], 9: [0, 4], 10: [0, 3], 12: [0, 1, 2, 8], 14: [0, 1, 2, 12],
    15: [0, 1], 16: [0, 1, 3, 12],
  ]

  public init(bits: Int) throws {
    guard let taps = LFSR.tapTable[bits] else {
      throw SeedLMError.invalid("lfsr", "no maximal tap set for \(bits) bits (have \(LFSR.tapTable.keys.sorted()))")
    }
    self.bits = bits; self.taps = taps
  }

  /// One step: b = XOR of the tap bits; s ← (s >> 1) | (b << (K − 1)).
  @inline(__always) public func step(_ s: UInt32) -> UInt32 {
    var b: UInt32 = 0
    for t in taps { b ^= (s >> UInt32(t)) & 1 }
    return (s >> 1) | (b << UInt32(bits - 1))
  }

  /// The `count` states after `seed` (the seed itself is not one of them).
  public func states(after seed: UInt32, count: Int) -> [UInt32] {
    var s = seed, out: [UInt32] = []
    out.reserveCapacity(count)
    for _ in 0..<count { s = step(s); out.append(s) }
    return out
  }

  /// V(seed) ∈ Z^{C×P}, row-major: the next C·P states.
  public func matrix(seed: UInt32, rows: Int, cols: Int) -> [[UInt32]] {
    let s = states(after: seed, count: rows * cols)
    return (0..<rows).map { r in Array(s[(r * cols)..<((r + 1) * cols)]) }
  }

  /// The period 2^K − 1.
  public var period: Int { (1 << bits) - 1 }
}

/// Everything the search and the decoder share for one (K, C, P): the normalised cycle, the offset ↔ state maps,
/// and per window its pseudo-inverse U⁺ (P×C, f32), its Gram matrix G = UᵀU (P×P, f32) and whether it is
/// ill-conditioned (cond > 10³: the search scores those seeds by explicit reconstruction in Float64).
public final class SeedBases: @unchecked Sendable {
  public let lfsr: LFSR
  public let block: Int, coeffs: Int
  /// u[i], i in 0..<N + C·P (the cycle, then its start again so every window is contiguous).
  public let cycle: [Float]
  /// The cycle split by residue mod P: strided[r][m] = u[r + m·P]. Column k of window j, u[j + k + i·P] for
  /// i in 0..<C, is then the contiguous run strided[(j + k) % P][(j + k) / P ..< + C] (for SIMD loads in decoding).
  public let strided: [UnsafeMutablePointer<Float>]
  /// cycle as doubles (the same values; for explicit reconstruction).
  let cycleDouble: [Double]
  /// The register state that produces window j, and its inverse.
  public let stateForOffset: [UInt16], offsetForState: [Int32]
  /// U⁺ of window j at pinv[j·P·C ..< (j+1)·P·C], row-major P×C.
  public let pinv: [Float]
  /// G of window j at gram[j·P·P ..< (j+1)·P·P].
  public let gram: [Float]
  public let illConditioned: [Bool]
  public let conditionNumbers: [Double]

  public var count: Int { lfsr.period }

  nonisolated(unsafe) private static var cache: [String: SeedBases] = [:]
  private static let lock = NSLock()

  /// The shared tables for (K, C, P), built once (about a second for K = 16).
  public static func shared(bits: Int, block: Int, coeffs: Int) throws -> SeedBases {
    let key = "\(bits)/\(block)/\(coeffs)"
    lock.lock(); defer { lock.unlock() }
    if let b = cache[key] { return b }
    let b = try SeedBases(bits: bits, block: block, coeffs: coeffs)
    cache[key] = b
    return b
  }

  public init(bits: Int, block: Int, coeffs: Int) throws {
    lfsr = try LFSR(bits: bits)
    guard block >= 1, block <= 64, coeffs >= 1, coeffs <= block else {
      throw SeedLMError.invalid("block/coeffs", "need 1 <= coeffs <= block <= 64, got block \(block), coeffs \(coeffs)")
    }
    self.block = block; self.coeffs = coeffs
    let n = lfsr.period, window = block * coeffs
    let half = Double(1 << (bits - 1)), scale = half - 1
    var states = [UInt32](repeating: 0, count: n)
    var s: UInt32 = 1
    for i in 0..<n { s = lfsr.step(s); states[i] = s }
    var u = [Double](repeating: 0, count: n + window)
    for i in 0..<(n + window) { u[i] = (Double(states[i % n]) - half) / scale }
    cycleDouble = u
    cycle = u.map(Float.init)
    var forOffset = [UInt16](repeating: 0, count: n), forState = [Int32](repeating: -1, count: 1 << bits)
    for j in 0..<n {
      let state = states[(j - 1 + n) % n]           // c[j−1]; c[N−1] is state 1, the state for offset 0
      forOffset[j] = UInt16(truncatingIfNeeded: state)
      forState[Int(state)] = Int32(j)
    }
    stateForOffset = forOffset; offsetForState = forState
    var pinv = [Float](repeating: 0, count: n * window), gram = [Float](repeating: 0, count: n * coeffs * coeffs)
    var ill = [Bool](repeating: false, count: n), conds = [Double](repeating: 0, count: n)
    for j in 0..<n {
      // Ctrl-C while the tables are built (a second in release): nothing is cached, nothing is left allocated.
      if j % 2048 == 0 { try Cancellation.check("seedlm") }
      let (p, g, cond) = SeedBases.pseudoInverse(u, start: j, rows: block, cols: coeffs)
      for i in 0..<window { pinv[j * window + i] = Float(p[i]) }
      for i in 0..<(coeffs * coeffs) { gram[j * coeffs * coeffs + i] = Float(g[i]) }
      conds[j] = cond
      ill[j] = !(cond <= 1e3)
    }
    self.pinv = pinv; self.gram = gram; illConditioned = ill; conditionNumbers = conds
    // Allocated last: a throw above leaves no table behind (deinit does not run for a failed init).
    strided = (0..<coeffs).map { r in
      let values = stride(from: r, to: u.count, by: coeffs).map { Float(u[$0]) } + [Float](repeating: 0, count: block + 16)
      let table = UnsafeMutablePointer<Float>.allocate(capacity: values.count)
      table.initialize(from: values, count: values.count)
      return table
    }
  }

  deinit { for table in strided { table.deallocate() } }

  /// U (C×P) of window j in Float64, row-major.
  public func window(_ j: Int) -> [Double] { Array(cycleDouble[j..<(j + block * coeffs)]) }

  /// U⁺ (P×C) and G (P×P) of the C×P window starting at u[start], and its condition number, by one-sided Jacobi
  /// SVD in Float64: U·V = W with orthogonal columns, σ = column norms, U⁺ = V Σ⁻² Wᵀ.
  static func pseudoInverse(_ u: [Double], start: Int, rows c: Int, cols p: Int) -> ([Double], [Double], Double) {
    var w = [Double](repeating: 0, count: c * p)             // column-major: w[col * c + row]
    for r in 0..<c { for k in 0..<p { w[k * c + r] = u[start + r * p + k] } }
    var v = [Double](repeating: 0, count: p * p)
    for k in 0..<p { v[k * p + k] = 1 }
    for _ in 0..<60 {
      var rotated = false
      for a in 0..<p {
        for b in (a + 1)..<p {
          var alpha = 0.0, beta = 0.0, gamma = 0.0
          for r in 0..<c { alpha += w[a * c + r] * w[a * c + r]; beta += w[b * c + r] * w[b * c + r]; gamma += w[a * c + r] * w[b * c + r] }
          if abs(gamma) <= 1e-15 * (alpha * beta).squareRoot() { continue }
          rotated = true
          let zeta = (beta - alpha) / (2 * gamma)
          let t = (zeta >= 0 ? 1.0 : -1.0) / (abs(zeta) + (1 + zeta * zeta).squareRoot())
          let cs = 1 / (1 + t * t).squareRoot(), sn = cs * t
          for r in 0..<c {
            let x = w[a * c + r], y = w[b * c + r]
            w[a * c + r] = cs * x - sn * y; w[b * c + r] = sn * x + cs * y
          }
          for r in 0..<p {
            let x = v[r * p + a], y = v[r * p + b]
            v[r * p + a] = cs * x - sn * y; v[r * p + b] = sn * x + cs * y
          }
        }
      }
      if !rotated { break }
    }
    var sigma2 = [Double](repeating: 0, count: p)
    for k in 0..<p { for r in 0..<c { sigma2[k] += w[k * c + r] * w[k * c + r] } }
    let maxSigma = sigma2.max()!.squareRoot(), minSigma = sigma2.min()!.squareRoot()
    // U⁺ = V Σ⁻¹ Qᵀ with Q = W Σ⁻¹, so U⁺[i][r] = Σ_k V[i][k] W[k][r] / σ_k².
    var pinv = [Double](repeating: 0, count: p * c)
    for i in 0..<p {
      for r in 0..<c {
        var s = 0.0
        for k in 0..<p where sigma2[k] > maxSigma * maxSigma * 1e-28 { s += v[i * p + k] * w[k * c + r] / sigma2[k] }
        pinv[i * c + r] = s
      }
    }
    var gram = [Double](repeating: 0, count: p * p)
    for a in 0..<p { for b in 0..<p {
      var s = 0.0
      for r in 0..<c { s += u[start + r * p + a] * u[start + r * p + b] }
      gram[a * p + b] = s
    } }
    return (pinv, gram, minSigma > 0 ? maxSigma / minSigma : .infinity)
  }
}

public enum SeedLMError: Error, CustomStringConvertible, Equatable {
  case invalid(String, String)
  public var description: String {
    switch self { case .invalid(let field, let reason): return "seedlm: \(field): \(reason)" }
  }
}
