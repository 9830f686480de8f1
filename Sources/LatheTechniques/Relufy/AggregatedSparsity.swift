// Aggregated sparsity ("ReLU Strikes Back", Sec. 5.1): of a layer's f feed-forward neurons, the share that none of
// tokens 1..t has activated, s_agg(t) = 1 − |A_t| / f, where a neuron is active when its activation is not exactly
// zero. Against two controls: the same tokens in a shuffled order (reuse between neighbours is what it removes) and
// the independence prediction mean_n (1 − p_n)^t from each neuron's frequency p_n over the sequence.

import LatheTensor

public enum AggregatedSparsity {
  /// s_agg(t) for t = 1...tokens of one sequence's activations [tokens, width], row-major, in the order given.
  public static func curve(_ activations: [Float], tokens: Int, width: Int) throws -> [Double] {
    try curve(activations, tokens: tokens, width: width, order: Array(0..<Swift.max(0, tokens)))
  }

  /// The same curve with the tokens in a seeded random order.
  public static func shuffled(_ activations: [Float], tokens: Int, width: Int, seed: UInt64) throws -> [Double] {
    var generator = SeededGenerator(seed: seed)
    return try curve(activations, tokens: tokens, width: width, order: Array(0..<Swift.max(0, tokens)).shuffled(using: &generator))
  }

  /// mean_n (1 − p_n)^t for t = 1...tokens, p_n the share of the tokens that activate neuron n.
  public static func independence(_ activations: [Float], tokens: Int, width: Int) throws -> [Double] {
    try check(activations, tokens: tokens, width: width)
    var active = [Double](repeating: 0, count: width)
    for t in 0..<tokens { for n in 0..<width where activations[t * width + n] != 0 { active[n] += 1 } }
    let p = active.map { $0 / Double(tokens) }
    return (1...tokens).map { t in p.reduce(0.0) { $0 + pow1(1 - $1, t) } / Double(width) }
  }

  static func curve(_ activations: [Float], tokens: Int, width: Int, order: [Int]) throws -> [Double] {
    try check(activations, tokens: tokens, width: width)
    var seen = [Bool](repeating: false, count: width), count = 0
    return order.map { t in
      for n in 0..<width where !seen[n] && activations[t * width + n] != 0 { seen[n] = true; count += 1 }
      return 1 - Double(count) / Double(width)
    }
  }

  static func check(_ activations: [Float], tokens: Int, width: Int) throws {
    guard tokens >= 1, width >= 1, activations.count == tokens * width else {
      throw TechniqueError("sparsity: \(activations.count) activations are not \(tokens) tokens × \(width) neurons")
    }
  }

  /// x^t by repeated squaring (t ≥ 0).
  static func pow1(_ x: Double, _ t: Int) -> Double {
    var result = 1.0, base = x, e = t
    while e > 0 { if e & 1 == 1 { result *= base }; base *= base; e >>= 1 }
    return result
  }
}
