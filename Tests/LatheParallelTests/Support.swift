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

/// The checks every parallel prefill of `chunks` meets against the serial prefill (kv-runahead.md checks 1 and 2):
/// the whole prompt cached, every layer's keys and values within 1e-4, the logits within 1e-3, the same first
/// token, and each process's bytes sent by the spec's formulas.
func expectMatchesSerial(_ r: ParallelPrefill, method: ParallelPrefillMethod, chunks: [Int], model: LlamaModel,
                         serial: (cache: KVCache, logits: [Float]), label: String) {
  let layers = model.config.layerCount, tokens = chunks.reduce(0, +)
  #expect(r.cache.count == tokens)
  let worst = maxCacheDifference(r.cache, serial.cache, layers: layers)
  #expect(worst <= 1e-4, "\(label): keys/values differ from serial by \(worst)")
  let logitError = zip(r.logits, serial.logits).map { abs($0 - $1) }.max() ?? 0
  #expect(logitError <= 1e-3, "\(label): logits differ by \(logitError)")
  #expect(r.firstToken == Sampler.argmax(serial.logits))
  let p = chunks.count, bkv = 2 * model.config.kvHeadCounts[0] * model.config.headDimension * 4
  let ends = chunks.reduce(into: [Int]()) { $0.append(($0.last ?? 0) + $1) }
  let expectedBytes = (0..<p).map { i in
    p == 1 ? 0 : method == .runahead ? (i < p - 1 ? layers * bkv * ends[i] : 0) : layers * bkv * (p - 1) * chunks[i]
  }
  #expect(r.bytesSent == expectedBytes, "\(label)")
  #expect(r.bytesSent.reduce(0, +) == PrefillPartition.bytesSent(method, chunks: chunks, config: model.config))
}
