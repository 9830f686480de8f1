// Choosing the next token from logits: greedy at temperature 0, else softmax(logits / T) cut to the top k and the
// smallest set whose probability reaches p, then one draw from a counter-based stream, so a seed gives the same
// text whatever the thread count.

import Foundation
import LatheTensor

public struct Sampler: Equatable, Sendable {
  public var temperature: Double
  public var topK: Int
  public var topP: Double
  public var seed: UInt64
  /// Draws made so far (the index into the seed's stream).
  public private(set) var step: UInt64 = 0

  public init(temperature: Double = 0, topK: Int = 0, topP: Double = 1, seed: UInt64 = 0) throws {
    guard temperature >= 0, temperature.isFinite else { throw TensorError.invalidArgument(op: "sampler", reason: "temperature must be >= 0, got \(temperature)") }
    guard topK >= 0 else { throw TensorError.invalidArgument(op: "sampler", reason: "topK must be >= 0 (0: no cut), got \(topK)") }
    guard topP > 0, topP <= 1 else { throw TensorError.invalidArgument(op: "sampler", reason: "topP must be in (0, 1], got \(topP)") }
    self.temperature = temperature; self.topK = topK; self.topP = topP; self.seed = seed
  }

  public static func argmax(_ logits: [Float]) -> Int {
    var best = 0
    for i in logits.indices where logits[i] > logits[best] { best = i }
    return best
  }

  public mutating func next(_ logits: [Float]) -> Int {
    defer { step += 1 }
    if temperature == 0 || topK == 1 { return Sampler.argmax(logits) }
    // Tokens whose probability is below e^-30 of the most likely one cannot be drawn in practice; leaving them out
    // keeps the sort short (the cut is the same for every run, so seeded draws stay reproducible).
    let best = Double(logits[Sampler.argmax(logits)])
    var order = logits.indices.filter { (best - Double(logits[$0])) / temperature < 30 }
    order.sort { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
    if topK > 0 && topK < order.count { order = Array(order.prefix(topK)) }
    let top = Double(logits[order[0]])
    var weights = order.map { Foundation.exp((Double(logits[$0]) - top) / temperature) }
    let total = weights.reduce(0, +)
    var cut = weights.count, running = 0.0
    for i in weights.indices {
      running += weights[i] / total
      if running >= topP { cut = i + 1; break }
    }
    weights = Array(weights.prefix(cut))
    let mass = weights.reduce(0, +)
    let u = Double(CounterRandom.bits(seed: seed, index: step) >> 11) * 0x1p-53 * mass
    var acc = 0.0
    for i in weights.indices {
      acc += weights[i]
      if u < acc { return order[i] }
    }
    return order[cut - 1]
  }
}
