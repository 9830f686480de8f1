// RunaheadCosts: the per-layer cost model of the KV-Runahead simulator (kv-runahead.md, "TTFT model"), fitted from
// measured phase timings or derived from a model's dimensions.

import LatheModels

/// What went wrong in a KV-Runahead computation that takes user input (a partition, a length, costs, samples).
public struct RunaheadError: Error, CustomStringConvertible, Equatable {
  public var message: String
  public init(_ message: String) { self.message = message }
  public var description: String { "runahead: \(message)" }
}

/// Seconds each phase of one decoder layer takes on one process, and what a link between two processes costs.
/// All times are seconds, sizes bytes, bandwidth bytes per second:
///
///     t_pre(c)    = preConstant + prePerToken · c                 (norm, QKV, RoPE of c tokens)
///     t_att(c, S) = attentionConstant + attentionPerEntry · E(c, S) (c queries against S keys)
///     t_post(c)   = postConstant + postPerToken · c                (out-projection, residual, norm, FFN)
///     comm(n)     = latency + n · kvBytesPerToken / bandwidth      (n tokens' K and V of one layer; free if nil)
///
/// with E(c, S) = c·S score entries when diagonal blocks are computed densely (the paper's bound assumes this), or
/// c·(S − c/2) when fully masked tiles are skipped. `head` is t_head(1), the final norm and LM head of one token.
///
///     var costs = RunaheadCosts(layers: 30, kvBytesPerToken: 1536, attentionPerEntry: 1e-9)
///     costs.bandwidth = 10e9
public struct RunaheadCosts: Codable, Sendable, Equatable {
  public var layers: Int
  /// B_kv: bytes of one token's key and value in one layer (2 · kv heads · head dimension · bytes per element).
  public var kvBytesPerToken: Int
  public var preConstant: Double, prePerToken: Double
  public var attentionConstant: Double, attentionPerEntry: Double
  public var postConstant: Double, postPerToken: Double
  public var head: Double
  /// Tiles above the causal diagonal are skipped (c·(S − c/2) entries) rather than computed and masked (c·S).
  public var skipsMaskedTiles: Bool
  /// λ: seconds each message pays before its first byte arrives.
  public var latency: Double
  /// BW in bytes per second; nil means shared memory, where a message costs only its latency.
  public var bandwidth: Double?

  public init(layers: Int, kvBytesPerToken: Int, preConstant: Double = 0, prePerToken: Double = 0,
              attentionConstant: Double = 0, attentionPerEntry: Double = 0, postConstant: Double = 0,
              postPerToken: Double = 0, head: Double = 0, skipsMaskedTiles: Bool = false, latency: Double = 0,
              bandwidth: Double? = nil) {
    self.layers = layers; self.kvBytesPerToken = kvBytesPerToken
    self.preConstant = preConstant; self.prePerToken = prePerToken
    self.attentionConstant = attentionConstant; self.attentionPerEntry = attentionPerEntry
    self.postConstant = postConstant; self.postPerToken = postPerToken; self.head = head
    self.skipsMaskedTiles = skipsMaskedTiles; self.latency = latency; self.bandwidth = bandwidth
  }

  /// Costs from FLOP counts at a sustained `flopsPerSecond`, for documentation and first guesses (measure for real
  /// numbers: `calibrated`). Per token and layer: pre 2·d·(n_q + 2·n_kv)·d_head, post 2·(n_q·d_head·d + 3·d·ffn);
  /// per score entry 4·n_q·d_head (QKᵀ and PV, one multiply-add each per head dimension); head 2·d·vocab.
  ///
  ///     RunaheadCosts(layers: 30, dimension: 576, queryHeads: 9, kvHeads: 3, headDimension: 64, ffnWidth: 1536,
  ///                   vocabularySize: 49152, bytesPerElement: 4, flopsPerSecond: 20e9).kvBytesPerToken == 1536
  public init(layers: Int, dimension: Int, queryHeads: Int, kvHeads: Int, headDimension: Int, ffnWidth: Int,
              vocabularySize: Int, bytesPerElement: Int, flopsPerSecond: Double) {
    let d = Double(dimension), q = Double(queryHeads * headDimension), kv = Double(kvHeads * headDimension)
    self.init(layers: layers, kvBytesPerToken: 2 * kvHeads * headDimension * bytesPerElement,
              prePerToken: 2 * d * (q + 2 * kv) / flopsPerSecond,
              attentionPerEntry: 4 * q / flopsPerSecond,
              postPerToken: 2 * (q * d + 3 * d * Double(ffnWidth)) / flopsPerSecond,
              head: 2 * d * Double(vocabularySize) / flopsPerSecond)
  }

  /// `init(layers:dimension:...)` for a Llama-family configuration; per-layer head counts and FFN widths (OpenELM)
  /// are averaged, B_kv is taken from the widest layer.
  public init(_ config: LlamaConfig, bytesPerElement: Int = 4, flopsPerSecond: Double) {
    let n = Double(config.layerCount)
    func mean(_ v: [Int]) -> Int { Int((Double(v.reduce(0, +)) / n).rounded()) }
    self.init(layers: config.layerCount, dimension: config.dimension, queryHeads: mean(config.headCounts),
              kvHeads: mean(config.kvHeadCounts), headDimension: config.headDimension, ffnWidth: mean(config.ffnWidths),
              vocabularySize: config.vocabularySize, bytesPerElement: bytesPerElement, flopsPerSecond: flopsPerSecond)
    kvBytesPerToken = 2 * (config.kvHeadCounts.max() ?? 1) * config.headDimension * bytesPerElement
  }

  /// t_pre(c): seconds for the part of a layer that needs nothing from other processes.
  public func pre(_ tokens: Double) -> Double { preConstant + prePerToken * tokens }
  /// t_post(c).
  public func post(_ tokens: Double) -> Double { postConstant + postPerToken * tokens }
  /// E(c, S): score entries `queries` rows against `keys` keys compute (the queries are the last rows of the keys).
  public func scoreEntries(queries: Double, keys: Double) -> Double {
    skipsMaskedTiles ? queries * (keys - queries / 2) : queries * keys
  }
  /// t_att(c, S).
  public func attention(queries: Double, keys: Double) -> Double {
    attentionConstant + attentionPerEntry * scoreEntries(queries: queries, keys: keys)
  }
  /// comm(n): seconds one message with `tokens` tokens' K and V of one layer takes on a link.
  public func message(tokens: Double) -> Double {
    latency + (bandwidth.map { tokens * Double(kvBytesPerToken) / $0 } ?? 0)
  }

  /// Checks what the simulator divides by or multiplies with.
  func validate() throws {
    guard layers >= 1 else { throw RunaheadError("costs: layers must be at least 1, got \(layers)") }
    guard kvBytesPerToken >= 0 else { throw RunaheadError("costs: kvBytesPerToken must not be negative, got \(kvBytesPerToken)") }
    let named = [("preConstant", preConstant), ("prePerToken", prePerToken), ("attentionConstant", attentionConstant),
                 ("attentionPerEntry", attentionPerEntry), ("postConstant", postConstant), ("postPerToken", postPerToken),
                 ("head", head), ("latency", latency)]
    for (name, v) in named where !(v.isFinite && v >= 0) {
      throw RunaheadError("costs: \(name) must be a finite number of seconds ≥ 0, got \(v)")
    }
    if let bandwidth, !(bandwidth.isFinite && bandwidth > 0) {
      throw RunaheadError("costs: bandwidth must be positive bytes per second (or none for shared memory), got \(bandwidth)")
    }
  }
}
