// Aggregated sparsity (ReLU Strikes Back, check 5): s_agg(1) is the first token's sparsity, the curve never rises
// and stays in [0, 1]; on activations that reuse neurons between neighbouring tokens the real order keeps more
// neurons unused than a shuffled order (t 8..64) and than the independence prediction.

import Testing
@testable import LatheTechniques
import LatheTensor

/// Activations [tokens, width] whose active set drifts slowly: each token keeps most of the last one's neurons.
private func driftingActivations(tokens: Int, width: Int, active: Int, keep: Double, seed: UInt64) -> [Float] {
  var generator = SeededGenerator(seed: seed)
  var current = Set((0..<width).shuffled(using: &generator).prefix(active))
  var out = [Float](repeating: 0, count: tokens * width)
  for t in 0..<tokens {
    if t > 0 {
      for n in current where Double.random(in: 0..<1, using: &generator) > keep {
        current.remove(n)
        var fresh = Int.random(in: 0..<width, using: &generator)
        while current.contains(fresh) { fresh = Int.random(in: 0..<width, using: &generator) }
        current.insert(fresh)
      }
    }
    for n in current { out[t * width + n] = Float(n % 7 + 1) }
  }
  return out
}

@Test func aggregatedSparsityStartsAtTheFirstTokensSparsityAndNeverRises() throws {
  let (tokens, width) = (128, 512)
  let a = driftingActivations(tokens: tokens, width: width, active: 40, keep: 0.95, seed: 1)
  let curve = try AggregatedSparsity.curve(a, tokens: tokens, width: width)
  #expect(curve.count == tokens)
  #expect(curve[0] == 1 - 40.0 / 512.0)
  #expect(zip(curve, curve.dropFirst()).allSatisfy { $0 >= $1 })
  #expect(curve.allSatisfy { (0...1).contains($0) })
}

@Test func reuseKeepsMoreNeuronsUnusedThanShuffledOrIndependentTokens() throws {
  let (tokens, width) = (128, 512)
  let a = driftingActivations(tokens: tokens, width: width, active: 40, keep: 0.95, seed: 2)
  let real = try AggregatedSparsity.curve(a, tokens: tokens, width: width)
  let shuffled = try AggregatedSparsity.shuffled(a, tokens: tokens, width: width, seed: 3)
  let independent = try AggregatedSparsity.independence(a, tokens: tokens, width: width)
  for t in 8...64 {
    #expect(real[t - 1] >= shuffled[t - 1] - 0.01, "t \(t)")
    #expect(real[t - 1] > independent[t - 1], "t \(t)")
  }
  // Shuffling keeps the last point: every token seen is every token seen.
  #expect(abs(real[tokens - 1] - shuffled[tokens - 1]) < 1e-12)
  #expect(throws: TechniqueError.self) { try AggregatedSparsity.curve([1, 0, 1], tokens: 2, width: 2) }
}
