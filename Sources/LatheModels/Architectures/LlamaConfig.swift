// The Llama family's configuration: dimensions, head counts and FFN widths per layer (so OpenELM's layer-wise
// scaling is a configuration of the same code), RoPE and norm settings; and what one token costs in MACs.

import Foundation
import LatheTensor

public struct LlamaConfig: Equatable, Sendable, CustomStringConvertible {
  public var architecture = "llama"
  public var vocabularySize: Int
  public var dimension: Int
  public var contextLength: Int
  /// Per layer: query heads, key/value heads, feed-forward width.
  public var headCounts: [Int], kvHeadCounts: [Int], ffnWidths: [Int]
  public var headDimension: Int
  public var ropeBase: Double
  public var rmsEpsilon: Float
  public var tiedEmbeddings: Bool
  /// How rotary embedding pairs dimensions: GGUF's Llama weights rotate adjacent pairs (2i, 2i+1); Hugging Face
  /// Llama and OpenELM checkpoints rotate halves (j, j + h/2).
  public var ropeStyle: RopeStyle = .adjacentPairs
  /// OpenELM: RMSNorm over each query and key head (weights per layer, shared by its heads) before RoPE.
  public var queryKeyNorm = false

  public enum RopeStyle: String, Sendable { case adjacentPairs = "adjacent", halves }

  public var layerCount: Int { headCounts.count }

  public init(vocabularySize: Int, dimension: Int, contextLength: Int, headCounts: [Int], kvHeadCounts: [Int], ffnWidths: [Int],
              headDimension: Int, ropeBase: Double = 10_000, rmsEpsilon: Float = 1e-5, tiedEmbeddings: Bool = true) throws {
    self.vocabularySize = vocabularySize; self.dimension = dimension; self.contextLength = contextLength
    self.headCounts = headCounts; self.kvHeadCounts = kvHeadCounts; self.ffnWidths = ffnWidths
    self.headDimension = headDimension; self.ropeBase = ropeBase; self.rmsEpsilon = rmsEpsilon; self.tiedEmbeddings = tiedEmbeddings
    try validate()
  }

  func validate() throws {
    func fail(_ field: String, _ reason: String) -> Error { TensorError.invalidArgument(op: "llama config", reason: "\(field): \(reason)") }
    guard vocabularySize > 0, vocabularySize <= 1 << 24 else { throw fail("vocabularySize", "\(vocabularySize) is not in 1...16777216") }
    guard dimension > 0, dimension <= 1 << 16 else { throw fail("dimension", "\(dimension) is not in 1...65536") }
    guard contextLength > 0 else { throw fail("contextLength", "must be positive, got \(contextLength)") }
    guard !headCounts.isEmpty, headCounts.count <= 1024, kvHeadCounts.count == headCounts.count, ffnWidths.count == headCounts.count else {
      throw fail("layers", "head counts (\(headCounts.count)), kv head counts (\(kvHeadCounts.count)) and ffn widths (\(ffnWidths.count)) must be 1...1024 per layer")
    }
    guard headDimension > 0, headDimension % 2 == 0, headDimension <= 1024 else { throw fail("headDimension", "\(headDimension) must be even, 2...1024") }
    for (l, (h, kv)) in zip(headCounts, kvHeadCounts).enumerated() where h <= 0 || kv <= 0 || h % kv != 0 || h > 4096 {
      throw fail("layer \(l)", "\(h) query heads must be a positive multiple of \(kv) key/value heads")
    }
    for (l, f) in ffnWidths.enumerated() where f <= 0 || f > 1 << 20 { throw fail("layer \(l)", "ffn width \(f) is not in 1...1048576") }
    guard ropeBase > 0, ropeBase.isFinite, rmsEpsilon > 0, rmsEpsilon.isFinite else { throw fail("rope/rms", "base and epsilon must be positive") }
  }

  public var description: String {
    func span(_ v: [Int]) -> String {
      guard let first = v.first, let last = v.last else { return "none" }
      return Set(v).count == 1 ? "\(first)" : "\(first)…\(last)"
    }
    let heads = span(headCounts), kv = span(kvHeadCounts), ffn = span(ffnWidths)
    return "\(architecture): \(layerCount) layers, d \(dimension), heads \(heads)/\(kv) of \(headDimension), ffn \(ffn), vocab \(vocabularySize), context \(contextLength), rope base \(ropeBase)"
  }
}

extension LlamaConfig {
  /// Multiply-accumulates of one token that attends to `length` positions (itself and the length − 1 before it), per
  /// decoder layer: the four attention projections, the scores and the weighted sum (2·n_q·d_head·length), the
  /// SwiGLU feed-forward (3·d·ffn); and the output head (d·vocab), once. Norms, RoPE and softmax are not counted.
  public func tokenMACs(length: Int) -> (layers: [(projections: Int, attention: Int, ffn: Int)], head: Int) {
    let layers = (0..<layerCount).map { l -> (projections: Int, attention: Int, ffn: Int) in
      let q = headCounts[l] * headDimension, kv = kvHeadCounts[l] * headDimension
      return (dimension * q + 2 * dimension * kv + q * dimension, 2 * q * length, 3 * dimension * ffnWidths[l])
    }
    return (layers, dimension * vocabularySize)
  }
}
