// The SmolLM2 model and prompts the parallel-prefill tests share, and the comparison of caches.

import Foundation
import Testing
import LatheModels
import LatheParallel
import LatheTestSupport

enum SmolLM2Parallel {
  static let path = TestPaths.packageRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path

  /// The model, or a recorded failure: the model is required (scripts/setup fetches it).
  nonisolated(unsafe) static let loaded: Result<LlamaModel, Error> = Result { try LlamaModel(path: path) }
  static func model() throws -> LlamaModel {
    do { return try loaded.get() } catch {
      Issue.record("models/SmolLM2-135M-Instruct.Q4_1.gguf is missing or unreadable (run scripts/setup): \(error)")
      throw error
    }
  }

  static let text = """
    The river had carried the village's grain to the market town for three hundred years, and in all that time no one \
    had thought to ask where the water itself came from. Then a dry summer left the mill wheel still, and the miller's \
    daughter walked upstream to find out. She followed the stream past the last farms, through a wood of birches and \
    up a valley where the path gave out among stones.
    """

  /// The first `count` tokens of data/corpus/lee_background.cor (news text), for timing longer prompts.
  static func corpusPrompt(_ count: Int) throws -> [Int]? {
    let file = TestPaths.packageRoot.appendingPathComponent("data/corpus/lee_background.cor").path
    guard let text = try? String(contentsOfFile: file, encoding: .utf8) else { return nil }
    let ids = try #require(try model().tokenizer).encode(String(text.prefix(count * 8)), parseSpecial: false)
    return ids.count >= count ? Array(ids.prefix(count)) : nil
  }

  /// The first `count` tokens of the text.
  static func prompt(_ count: Int) throws -> [Int] {
    let ids = try #require(try model().tokenizer).encode(text, parseSpecial: false)
    try #require(ids.count >= count, "the test text has only \(ids.count) tokens")
    return Array(ids.prefix(count))
  }
}

/// The largest |a - b| over every layer's keys and values of two caches holding the same positions.
func maxCacheDifference(_ a: KVCache, _ b: KVCache, layers: Int, rows: Int? = nil) -> Float {
  var worst: Float = 0
  for l in 0..<layers {
    let x = a.rows(layer: l), y = b.rows(layer: l)
    let n = rows.map { $0 * a.layerWidths[l] } ?? Swift.min(x.keys.count, y.keys.count)
    for i in 0..<n {
      worst = Swift.max(worst, abs(x.keys[i] - y.keys[i]), abs(x.values[i] - y.values[i]))
    }
  }
  return worst
}
