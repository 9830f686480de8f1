// Operations per token of a decoder's weight products, counted as "ReLU Strikes Back" counts them: one op per
// weight used (a multiply-add is one op), over every matrix but the input embedding (a tied head is not counted, an
// untied one is), attention's score and value products left out. A product whose input has a share s of exact zeros
// skips those weights: d_in·d_out·(1 − s). In a gated feed-forward the up projection may also skip the neurons whose
// gate output is zero (a share s_g): d·f·(1 − max(s_up, s_g)).

/// The shapes that decide a decoder's weight products per token, per layer where they vary.
public struct DecoderShape: Sendable, Equatable {
  public var dimension: Int
  /// Per layer: query width (heads · head dimension), key/value width (kvHeads · head dimension), FFN width.
  public var queryWidths: [Int], keyValueWidths: [Int], ffnWidths: [Int]
  /// Gated feed-forward (gate, up and down) or plain (up and down).
  public var gated: Bool
  /// The vocabulary of an untied output head (counted); 0 when the head is the tied input embedding.
  public var untiedHeadVocabulary: Int

  public init(dimension: Int, queryWidths: [Int], keyValueWidths: [Int], ffnWidths: [Int], gated: Bool, untiedHeadVocabulary: Int) {
    self.dimension = dimension; self.queryWidths = queryWidths; self.keyValueWidths = keyValueWidths; self.ffnWidths = ffnWidths
    self.gated = gated; self.untiedHeadVocabulary = untiedHeadVocabulary
  }

  /// The same width in every one of `layers` layers.
  public init(layers: Int, dimension: Int, queryWidth: Int, keyValueWidth: Int, ffn: Int, gated: Bool, untiedHeadVocabulary: Int) {
    self.init(dimension: dimension, queryWidths: Array(repeating: queryWidth, count: layers),
              keyValueWidths: Array(repeating: keyValueWidth, count: layers), ffnWidths: Array(repeating: ffn, count: layers),
              gated: gated, untiedHeadVocabulary: untiedHeadVocabulary)
  }

  /// A Llama-style model's shape (gated feed-forward).
  public init(_ config: LlamaConfig) {
    self.init(dimension: config.dimension, queryWidths: config.headCounts.map { $0 * config.headDimension },
              keyValueWidths: config.kvHeadCounts.map { $0 * config.headDimension }, ffnWidths: config.ffnWidths, gated: true,
              untiedHeadVocabulary: config.tiedEmbeddings ? 0 : config.vocabularySize)
  }

  public var layerCount: Int { ffnWidths.count }
}

/// Shares of exact zeros in the inputs of a layer's products (0: dense).
public struct InputSparsity: Sendable, Equatable {
  /// The input of the query, key and value projections (after the attention norm).
  public var qkv: Double
  /// The input of the gate and up projections (after the FFN norm).
  public var up: Double
  /// The input of the down projection (the activation).
  public var down: Double
  /// The share of neurons whose gate output is zero, which the up projection may skip (gated FFNs; for a ReLU gate
  /// it equals `down`).
  public var gateZeros: Double

  public init(qkv: Double = 0, up: Double = 0, down: Double = 0, gateZeros: Double? = nil) {
    self.qkv = qkv; self.up = up; self.down = down; self.gateZeros = gateZeros ?? down
  }
  public static let dense = InputSparsity()
}

public enum OpCount {
  /// Ops per token of `shape` with `sparsity` in every layer (or one per layer).
  public static func perToken(_ shape: DecoderShape, sparsity: [InputSparsity]) -> Double {
    let d = Double(shape.dimension)
    var total = Double(shape.untiedHeadVocabulary) * d
    for l in 0..<shape.layerCount {
      let s = sparsity.isEmpty ? .dense : sparsity[Swift.min(l, sparsity.count - 1)]
      let q = Double(shape.queryWidths[l]), kv = Double(shape.keyValueWidths[l]), f = Double(shape.ffnWidths[l])
      total += d * (q + 2 * kv) * (1 - s.qkv)          // query, key, value
      total += q * d                                   // attention output (its input is never sparse here)
      if shape.gated {
        total += d * f * (1 - s.up)                    // gate
        total += d * f * (1 - Swift.max(s.up, s.gateZeros))   // up, skipping the neurons the gate zeroed
      } else {
        total += d * f * (1 - s.up)
      }
      total += f * d * (1 - s.down)                    // down
    }
    return total
  }

  public static func perToken(_ shape: DecoderShape, sparsity: InputSparsity = .dense) -> Double {
    perToken(shape, sparsity: [sparsity])
  }
}
