// compare(models, text): each model against the first on the same tokens, teacher-forced: perplexity, mean
// KL(first ‖ model) of the next-token distributions, top-1 agreement with the first, bits per weight, bytes, and
// decode tokens/s measured on the model itself.

import Foundation
import LatheModels
import LatheTensor

public struct ComparisonRow: Sendable {
  public var name: String
  public var perplexity: Double, kl: Double, top1Agreement: Double
  /// Bits per weight over the decoder linears (what compression targets), and over every tensor of the model.
  public var bitsPerWeightLinears: Double, bitsPerWeightFile: Double, bytes: Int
  public var decodeTokensPerSecond: Double
}

public enum ModelComparison {
  /// Rows in the order of `models`; the first is the reference (KL 0, agreement 1). `tokens` are scored in one
  /// window (at most the context); decode speed is the best of two runs of `decodeTokens` greedy tokens after a
  /// 16-token prompt. `progress(done, total)` counts models.
  public static func compare(_ models: [(name: String, model: LlamaModel)], tokens: [Int], decodeTokens: Int = 32,
                             progress: (Int, Int) throws -> Void = { _, _ in }) throws -> [ComparisonRow] {
    guard let first = models.first else { throw TensorError.invalidArgument(op: "compare", reason: "needs at least one model") }
    guard tokens.count >= 2 else { throw TensorError.invalidArgument(op: "compare", reason: "needs at least 2 tokens of text, got \(tokens.count)") }
    let vocab = first.model.config.vocabularySize
    for m in models where m.model.config.vocabularySize != vocab {
      throw TensorError.invalidArgument(op: "compare", reason: "\(m.name) has a vocabulary of \(m.model.config.vocabularySize), the first model \(vocab)")
    }
    let window = Array(tokens.prefix(first.model.config.contextLength))
    let positions = window.count - 1
    /// Log-probabilities of every position but the last, row by row.
    func logProbabilities(_ model: LlamaModel) throws -> [Double] {
      let logits = try model.forward(window, cache: try model.makeCache(capacity: window.count), allLogits: true)
      var out = [Double](repeating: 0, count: positions * vocab)
      for p in 0..<positions {
        let row = p * vocab
        var m = -Double.infinity
        for j in 0..<vocab { m = Swift.max(m, Double(logits[row + j])) }
        var sum = 0.0
        for j in 0..<vocab { sum += Foundation.exp(Double(logits[row + j]) - m) }
        let lse = m + Foundation.log(sum)
        for j in 0..<vocab { out[row + j] = Double(logits[row + j]) - lse }
      }
      return out
    }
    let reference = try logProbabilities(first.model)
    var rows: [ComparisonRow] = []
    for (i, entry) in models.enumerated() {
      let lp = i == 0 ? reference : try logProbabilities(entry.model)
      var nll = 0.0, kl = 0.0, agree = 0
      for p in 0..<positions {
        let row = p * vocab
        nll -= lp[row + window[p + 1]]
        var best = 0, bestRef = 0
        for j in 0..<vocab {
          let r = reference[row + j]
          kl += Foundation.exp(r) * (r - lp[row + j])
          if lp[row + j] > lp[row + best] { best = j }
          if r > reference[row + bestRef] { bestRef = j }
        }
        if best == bestRef { agree += 1 }
      }
      var speed = 0.0
      for _ in 0..<2 {
        var sampler = try Sampler()
        let (cache, logits) = try entry.model.prefill(Array(window.prefix(16)), extra: decodeTokens)
        let g = try entry.model.decode(cache: cache, logits: logits, maxTokens: decodeTokens, sampler: &sampler)
        speed = Swift.max(speed, g.decodeTokensPerSecond)
      }
      let bytes = entry.model.byteCount
      rows.append(ComparisonRow(name: entry.name, perplexity: Foundation.exp(nll / Double(positions)), kl: Swift.max(0, kl / Double(positions)),
                                top1Agreement: Double(agree) / Double(positions),
                                bitsPerWeightLinears: entry.model.linearBitsPerWeight,
                                bitsPerWeightFile: entry.model.fileBitsPerWeight, bytes: bytes,
                                decodeTokensPerSecond: speed))
      try progress(i + 1, models.count)
    }
    return rows
  }
}
