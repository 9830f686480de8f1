// SeedLM (Shafipour et al., ICLR 2025; ../shared/techniques/seedlm.md): each block of C weights is stored as a
// K-bit LFSR seed, a shared 4-bit exponent and P 4-bit coefficients, w ≈ U(seed)·(q·2^e). Data-free: every seed
// is tried for every block and the one with the smallest quantised reconstruction error is kept.

import Foundation
import LatheModels
import LatheTensor

public struct SeedLM: MatrixCompressor, Equatable {
  public enum ExponentRule: String, Sendable {
    /// e = ceil(log2(max|t| / 7.5)): max|t|/2^e fills the code range [-8, 7] (the spec's rule).
    case range
    /// e = max floor(log2|t_i|), as printed in the paper (reaches only the codes −2…2).
    case paper
  }

  public let block: Int, coeffs: Int, lfsrBits: Int
  public let exponent: ExponentRule
  /// Seeds searched: nil is all 2^K − 1 (the method); a number restricts the search to the first offsets (an
  /// ablation, reported as not faithful).
  public let seeds: Int?

  /// `seedlm(bits: 4)` is (C, P, K) = (8, 3, 16); `bits: 3` is (12, 4, 16).
  public init(bits: Int? = 4, block: Int? = nil, coeffs: Int? = nil, lfsr: Int = 16, exponent: ExponentRule = .range, seeds: Int? = nil) throws {
    let defaults: (Int, Int)
    switch bits {
    case 4?, nil: defaults = (8, 3)
    case 3?: defaults = (12, 4)
    default: throw SeedLMError.invalid("bits", "the paper's configurations are 3 and 4 bits, got \(bits!); give block: and coeffs: for others")
    }
    self.block = block ?? defaults.0; self.coeffs = coeffs ?? defaults.1; lfsrBits = lfsr
    self.exponent = exponent; self.seeds = seeds
    guard LFSR.tapTable[lfsr] != nil else { throw SeedLMError.invalid("lfsr", "no maximal tap set for \(lfsr) bits (have \(LFSR.tapTable.keys.sorted()))") }
    guard self.block >= 1, self.block <= 64, self.coeffs >= 1, self.coeffs <= self.block, self.coeffs <= 8 else {
      throw SeedLMError.invalid("block/coeffs", "need 1 <= coeffs <= min(block, 8), block <= 64; got block \(self.block), coeffs \(self.coeffs)")
    }
    if let seeds, seeds < 1 || seeds > (1 << lfsr) - 1 { throw SeedLMError.invalid("seeds", "must be in 1...\((1 << lfsr) - 1), got \(seeds)") }
  }

  /// Bits per block: seed K + exponent 4 + 4 per coefficient.
  public var bitsPerBlock: Int { lfsrBits + 4 + 4 * coeffs }
  public var bitsPerWeight: Double { Double(bitsPerBlock) / Double(block) }
  public var faithful: Bool { seeds == nil }

  public var description: String {
    let b = bitsPerWeight == bitsPerWeight.rounded() ? "\(Int(bitsPerWeight))" : String(format: "%.3f", bitsPerWeight)
    return "seedlm(bits: \(b), block: \(block), coeffs: \(coeffs), lfsr: \(lfsrBits), exponent: \"\(exponent.rawValue)\""
      + (seeds.map { ", seeds: \($0)" } ?? "") + ")"
  }

  public func bases() throws -> SeedBases { try SeedBases.shared(bits: lfsrBits, block: block, coeffs: coeffs) }

  public func compress(_ matrix: Tensor, progress: (Int, Int) throws -> Void) throws -> any CompressedMatrix {
    try compressMatrix(matrix, progress: progress)
  }

  /// The SeedMatrix of a dense matrix [rows, cols]: flattened row-major, zero-padded to whole blocks.
  public func compressMatrix(_ matrix: Tensor, threads: Int = ThreadPool.shared.threadCount,
                             progress: (Int, Int) throws -> Void = { _, _ in }) throws -> SeedMatrix {
    guard matrix.rank == 2 else { throw SeedLMError.invalid("matrix", "needs a matrix [rows, cols], got shape \(matrix.shape)") }
    let values = try matrix.contiguous().scalars
    let bases = try bases()
    let search = SeedSearch(bases: bases, rule: exponent, seedCount: seeds ?? bases.count)
    let blocks = (values.count + block - 1) / block
    var padded = values
    padded.append(contentsOf: [Float](repeating: 0, count: blocks * block - values.count))
    let result = try search.run(padded, blocks: blocks, threads: threads, progress: progress)
    return try SeedMatrix(technique: self, shape: matrix.shape, seeds: result.states, exponents: result.exponents, mantissas: result.mantissas)
  }

  public func unpack(_ bytes: [UInt8], shape: [Int]) throws -> any CompressedMatrix {
    try SeedMatrix.unpack(bytes, technique: self, shape: shape)
  }
}

/// The coefficient quantiser: t̂ = q·2^e with q_i ∈ [−8, 7] and one e ∈ [−8, 7] per block.
public enum SeedQuantizer {
  /// The exponent for coefficients whose largest magnitude is `m`, exactly as a Float64 evaluation of the rule gives.
  @inline(__always)
  public static func exponent(maxMagnitude m: Float, rule: SeedLM.ExponentRule) -> Int {
    guard m > 0, m.isFinite else { return -8 }
    let e: Int
    switch rule {
    case .range:
      // ceil(log2(m / 7.5)): the smallest e with m <= 7.5·2^e (7.5·2^e is exact in Float).
      var k = Int(m.exponent) - 2                    // m = f·2^E, f in [1, 2): m/7.5 in [2^(E−3), 2^(E−2))
      while Float(7.5) * Float(sign: .plus, exponent: k, significand: 1) < m { k += 1 }
      while Float(7.5) * Float(sign: .plus, exponent: k - 1, significand: 1) >= m { k -= 1 }
      e = k
    case .paper:
      e = Int(m.exponent)                            // floor(log2 m)
    }
    return Swift.min(7, Swift.max(-8, e))
  }

  /// q_i = clamp(round-half-even(t_i·2^−e), −8, 7) and e for one block's coefficients.
  public static func quantize(_ t: [Float], rule: SeedLM.ExponentRule) -> (q: [Int8], e: Int) {
    let m = t.map { Swift.abs($0) }.max() ?? 0
    if m == 0 { return ([Int8](repeating: 0, count: t.count), -8) }
    let e = exponent(maxMagnitude: m, rule: rule)
    let scale = Float(sign: .plus, exponent: -e, significand: 1)
    return (t.map { Int8(Swift.min(7, Swift.max(-8, ($0 * scale).rounded(.toNearestOrEven)))) }, e)
  }
}

extension SeedLM {
  public var entry: TechniqueEntry { SeedLM.entry }
  public var fields: [(String, TechniqueArgument)] {
    [("bits", .float(bitsPerWeight)), ("block", .int(block)), ("coeffs", .int(coeffs)), ("lfsr", .int(lfsrBits)),
     ("exponent", .string(exponent.rawValue)), ("seeds", seeds.map { .int($0) } ?? .none)]
  }

  public static let entry = TechniqueEntry(
    name: "seedlm", roles: [.compressor],
    parameters: [TechniqueParameter("bits", .int(4), "4 is (block 8, coeffs 3), 3 is (12, 4); ignored when block and coeffs are both given"),
                 TechniqueParameter("block", TechniqueArgument.none, "weights per block (C)"),
                 TechniqueParameter("coeffs", TechniqueArgument.none, "4-bit coefficients per block (P)"),
                 TechniqueParameter("lfsr", .int(16), "seed bits (K)"),
                 TechniqueParameter("exponent", .string("range"), "\"range\" (the spec's rule) or \"paper\""),
                 TechniqueParameter("seeds", TechniqueArgument.none, "restricts the search to the first seeds (an ablation)")],
    doc: "SeedLM: each block of weights as an LFSR seed, a 4-bit exponent and 4-bit coefficients; bits 4 is (block 8, coeffs 3), bits 3 is (12, 4). seeds: restricts the search (an ablation).",
    example: "seedlm(bits: 4)",
    make: { a in
      let text = try a.string("exponent")
      guard let rule = ExponentRule(rawValue: text) else {
        throw TechniqueError("seedlm: exponent must be \"range\" or \"paper\", got \"\(text)\"")
      }
      let block = try a.optionalInt("block"), coeffs = try a.optionalInt("coeffs")
      // A description prints the bits a (block, coeffs) pair gives, which may be fractional: they decide then.
      let bits: Int?
      if block != nil, coeffs != nil, case .float(let x) = a["bits"], x != x.rounded() { bits = nil } else { bits = try a.int("bits") }
      do {
        return try SeedLM(bits: block != nil && coeffs != nil && bits != 3 && bits != 4 ? nil : bits, block: block, coeffs: coeffs,
                          lfsr: try a.int("lfsr"), exponent: rule, seeds: try a.optionalInt("seeds"))
      } catch let e as SeedLMError { throw TechniqueError(e.description) }
    })
}
