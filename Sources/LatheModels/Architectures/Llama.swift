// The Llama family: RMSNorm, rotary positions (adjacent pairs, the file's base), grouped-query attention, SwiGLU
// feed-forward, tied or separate output. Head counts and FFN widths are per layer, so OpenELM's layer-wise scaling
// is a configuration of this same code.
//
// Prefill runs every projection through cblas_sgemm on weights dequantised a slice at a time into one scratch
// buffer; decoding one token runs fused matrix-vector kernels over the quantised blocks (QuantKernels), on the pool.
// Attention reads a preallocated KV cache (KVCache) that grows only when a sequence outgrows it. A chunk forward
// (forwardChunk) runs tokens at an absolute offset and takes each layer's keys and values from its caller instead,
// for parallel prefill.

import CBLAS
import Foundation
import LatheTensor

public final class LlamaModel: @unchecked Sendable {
  public let config: LlamaConfig
  public var layers: [LlamaLayer]
  /// [vocab, dimension]; also the output projection when the embeddings are tied. A tensor, or a technique's
  /// packed matrix (`compressed(with:embeddings: true)`): rows are decoded for the lookup, and a tied head runs it.
  public var tokenEmbedding: LinearWeight
  public var outputNorm: Tensor
  /// [vocab, dimension] when not tied.
  public var outputWeight: Tensor?
  public var tokenizer: BPETokenizer?
  public var name: String
  /// The GGUF metadata the model was loaded with (tokenizer keys and all), kept so a written file carries it.
  public var ggufMetadata: [(key: String, value: GGUFValue)] = []
  /// Threads for the kernels (the pool's and OpenBLAS's); 1 runs everything on the calling thread.
  public var threads: Int = ThreadPool.shared.threadCount
  /// The GGUF file the weights were loaded from, for another process to load the same model (parallel prefill).
  /// nil for a model built any other way, copies included (a technique replaces matrices of a copy).
  public var ggufPath: String?
  /// The identity of `ggufPath`'s file when the model was loaded from it.
  public var ggufIdentity: FileIdentity?
  /// For a model cut from another (droplayers), the layer of that model each of its layers is: KV prediction's
  /// layer map follows it.
  public var sourceLayers: [Int]?

  public init(config: LlamaConfig, layers: [LlamaLayer], tokenEmbedding: LinearWeight, outputNorm: Tensor, outputWeight: Tensor? = nil,
              tokenizer: BPETokenizer? = nil, name: String = "llama") throws {
    self.config = config; self.layers = layers; self.tokenEmbedding = tokenEmbedding; self.outputNorm = outputNorm
    self.outputWeight = outputWeight; self.tokenizer = tokenizer; self.name = name
    try checkShapes()
  }

  public convenience init(config: LlamaConfig, layers: [LlamaLayer], tokenEmbedding: Tensor, outputNorm: Tensor, outputWeight: Tensor? = nil,
                          tokenizer: BPETokenizer? = nil, name: String = "llama") throws {
    try self.init(config: config, layers: layers, tokenEmbedding: .tensor(tokenEmbedding), outputNorm: outputNorm,
                  outputWeight: outputWeight, tokenizer: tokenizer, name: name)
  }

  var output: LinearWeight { outputWeight.map(LinearWeight.tensor) ?? tokenEmbedding }

  func checkShapes() throws {
    let d = config.dimension, hd = config.headDimension
    func expect(_ t: Tensor, _ shape: [Int], _ what: String) throws {
      guard t.shape == shape else {
        throw TensorError.invalidArgument(op: "llama", reason: "\(what) has shape \(t.shape), the configuration needs \(shape)")
      }
      guard t.isContiguous else { throw TensorError.invalidArgument(op: "llama", reason: "\(what) must be contiguous") }
    }
    func expect(_ w: LinearWeight, _ shape: [Int], _ what: String) throws {
      switch w {
      case .tensor(let t): try expect(t, shape, what)
      case .compressed(let c):
        guard c.shape == shape else {
          throw TensorError.invalidArgument(op: "llama", reason: "\(what) has shape \(c.shape), the configuration needs \(shape)")
        }
      }
    }
    guard layers.count == config.layerCount else {
      throw TensorError.invalidArgument(op: "llama", reason: "\(layers.count) layers of weights for a \(config.layerCount)-layer configuration")
    }
    try expect(tokenEmbedding, [config.vocabularySize, d], "token embedding")
    try expect(outputNorm, [d], "output norm")
    if let o = outputWeight { try expect(o, [config.vocabularySize, d], "output") }
    for (l, layer) in layers.enumerated() {
      let h = config.headCounts[l], kv = config.kvHeadCounts[l], f = config.ffnWidths[l]
      try expect(layer.attentionNorm, [d], "layer \(l) attention norm")
      try expect(layer.query, [h * hd, d], "layer \(l) query")
      try expect(layer.key, [kv * hd, d], "layer \(l) key")
      try expect(layer.value, [kv * hd, d], "layer \(l) value")
      try expect(layer.output, [d, h * hd], "layer \(l) attention output")
      try expect(layer.ffnNorm, [d], "layer \(l) ffn norm")
      try expect(layer.gate, [f, d], "layer \(l) gate")
      try expect(layer.up, [f, d], "layer \(l) up")
      try expect(layer.down, [d, f], "layer \(l) down")
      if config.queryKeyNorm {
        guard let qn = layer.queryNorm, let kn = layer.keyNorm else {
          throw TensorError.invalidArgument(op: "llama", reason: "layer \(l) needs query and key norms (queryKeyNorm is on)")
        }
        try expect(qn, [hd], "layer \(l) query norm")
        try expect(kn, [hd], "layer \(l) key norm")
      }
    }
  }

  /// Parameters, counting each tied matrix once.
  public var parameterCount: Int { allWeights.reduce(0) { $0 + $1.count } }

  /// Every weight, in a fixed order: the embedding, the output norm, the output matrix when not tied, then per layer
  /// the two norms, the seven matrices and the query/key norms when present.
  public var allWeights: [LinearWeight] {
    var all = [tokenEmbedding, .tensor(outputNorm)] + (outputWeight.map { [.tensor($0)] } ?? [])
    for layer in layers {
      all += [.tensor(layer.attentionNorm), .tensor(layer.ffnNorm)] + layer.matrices.map(\.1)
      all += [layer.queryNorm, layer.keyNorm].compactMap { $0.map(LinearWeight.tensor) }
    }
    return all
  }

  /// Every weight by its GGUF name (`token_embd.weight`, `blk.0.ffn_down.weight`), in `allWeights`' order.
  public var namedWeights: [(name: String, weight: LinearWeight)] {
    var all: [(String, LinearWeight)] = [("token_embd.weight", tokenEmbedding), ("output_norm.weight", .tensor(outputNorm))]
    if let outputWeight { all.append(("output.weight", .tensor(outputWeight))) }
    for (l, layer) in layers.enumerated() {
      let p = "blk.\(l)."
      all += [(p + "attn_norm.weight", .tensor(layer.attentionNorm)), (p + "ffn_norm.weight", .tensor(layer.ffnNorm))]
      all += layer.matrices.map { (p + $0.0 + ".weight", $0.1) }
      if let q = layer.queryNorm { all.append((p + "attn_q_norm.weight", .tensor(q))) }
      if let k = layer.keyNorm { all.append((p + "attn_k_norm.weight", .tensor(k))) }
    }
    return all
  }

  /// Bits per weight of the decoder layers' linear matrices (what weight compression targets).
  public var linearBitsPerWeight: Double {
    let matrices = layers.flatMap { $0.matrices.map(\.1) }
    let weights = matrices.reduce(0) { $0 + $1.count }
    return weights == 0 ? 0 : Double(matrices.reduce(0) { $0 + $1.byteCount } * 8) / Double(weights)
  }

  /// Bits per weight over every tensor as stored: embedding, norms and matrices (the file's weights).
  public var fileBitsPerWeight: Double { parameterCount == 0 ? 0 : Double(byteCount * 8) / Double(parameterCount) }

  /// Bytes of all weights as stored.
  public var byteCount: Int { allWeights.reduce(0) { $0 + $1.byteCount } }

  /// Weight bytes one decoding step reads: every layer's norms and matrices, the output norm, the output matrix
  /// (the embedding when tied) and one row of the embedding.
  public var bytesReadPerToken: Int {
    let embedding = tokenEmbedding.byteCount
    let row = embedding / Swift.max(1, tokenEmbedding.shape.first ?? 1)
    // byteCount holds the embedding once and the output matrix when there is one; a tied head reads the embedding.
    return byteCount - embedding + row + (outputWeight == nil ? embedding : 0)
  }

  /// Parameter counts per dtype (or technique, for compressed matrices).
  public var dtypeCounts: [(String, Int)] {
    var counts: [String: Int] = [:]
    for w in allWeights { counts[w.kind, default: 0] += w.count }
    return counts.sorted { $0.value > $1.value || ($0.value == $1.value && $0.key < $1.key) }.map { ($0.key, $0.value) }
  }

  /// Moves every dense weight into one storage (see Tensor.packed: huge pages for the decoding kernels' reads).
  public func packWeights() throws {
    let dense = allWeights.compactMap(\.tensor)
    let packed = try Tensor.packed(dense, op: "load")
    var i = 0
    func next() -> Tensor { defer { i += 1 }; return packed[i] }
    func next(_ w: LinearWeight) -> LinearWeight { w.tensor == nil ? w : .tensor(next()) }
    tokenEmbedding = next(tokenEmbedding); outputNorm = next()
    if outputWeight != nil { outputWeight = next() }
    for l in layers.indices {
      layers[l].attentionNorm = next(); layers[l].ffnNorm = next()
      for (name, w) in layers[l].matrices { layers[l].setMatrix(name, next(w)) }
      if layers[l].queryNorm != nil { layers[l].queryNorm = next() }
      if layers[l].keyNorm != nil { layers[l].keyNorm = next() }
    }
  }

  /// A copy sharing every weight (tensors are values with shared storage; packed matrices are immutable), for a
  /// technique to replace some matrices of.
  public func copy(name: String? = nil) throws -> LlamaModel {
    let m = try LlamaModel(config: config, layers: layers, tokenEmbedding: tokenEmbedding, outputNorm: outputNorm,
                           outputWeight: outputWeight, tokenizer: tokenizer, name: name ?? self.name)
    m.ggufMetadata = ggufMetadata
    m.threads = threads
    m.sourceLayers = sourceLayers
    return m
  }

  /// Whether every projection the forward pass multiplies by (the layers' matrices and the output) is a plain f32
  /// tensor, which the batched path uses in place.
  public var projectionsAreF32: Bool {
    output.tensor?.dtype == .f32 && layers.allSatisfy { l in
      [l.query, l.key, l.value, l.output, l.gate, l.up, l.down].allSatisfy { $0.tensor?.dtype == .f32 }
    }
  }

  public func makeCache(capacity: Int) throws -> KVCache { try KVCache(config: config, capacity: capacity) }

  /// Runs `tokens` at the cache's next positions, appending their keys and values. Returns the logits of the last
  /// token ([vocab]) or, with `allLogits`, of every token ([tokens.count × vocab], row-major).
  /// `logits: false` skips the output head and returns [] (a prompt whose cache is all that is wanted); with no
  /// `observe` hook it also skips the last layer's attention and feed-forward, which only the head reads.
  public func forward(_ tokens: [Int], cache: KVCache, allLogits: Bool = false, logits: Bool = true,
                      hooks: ForwardHooks = ForwardHooks()) throws -> [Float] {
    guard !tokens.isEmpty else { throw TensorError.invalidArgument(op: "forward", reason: "no tokens") }
    for t in tokens where t < 0 || t >= config.vocabularySize {
      throw TensorError.invalidArgument(op: "forward", reason: "token id \(t) is outside the vocabulary 0..<\(config.vocabularySize)")
    }
    guard cache.widths == config.kvHeadCounts.map({ $0 * config.headDimension }) else {
      throw TensorError.invalidArgument(op: "forward", reason: "the KV cache belongs to a model of another shape")
    }
    // Stream rows' keys and values sit after the main rows during the call.
    try cache.reserve(cache.count + (hooks.streams?.totalRows(tokens: tokens.count) ?? tokens.count), limit: config.contextLength)
    if !hooks.isEmpty { try check(hooks, tokens: tokens.count, length: cache.count + tokens.count) }
    var run = try ForwardPass(model: self, tokens: tokens, cache: cache, start: cache.count, hooks: hooks)
    defer { run.release() }
    return try run.compute(allLogits: allLogits, logits: logits)
  }

  /// Runs hidden states [rows, dimension] entering layer `layer` through the layers layer..<N as rows after the
  /// cache: RoPE at `positions`, attention under `mask`, an additive [rows, cache.count + rows] mask over the cached
  /// rows and the rows themselves. Their keys and values are not kept (the cache's count stays). Returns their final
  /// hidden states (before the output norm), [rows, dimension]: the streams of an accepted draft node, run after the
  /// call that verified it.
  public func continueRows(_ hidden: [Float], rows: Int, fromLayer layer: Int, cache: KVCache, positions: [Int], mask: [Float]) throws -> [Float] {
    let d = config.dimension, start = cache.count, last = config.layerCount - 1
    guard rows >= 1, hidden.count == rows * d else {
      throw TensorError.invalidArgument(op: "forward rows", reason: "\(hidden.count) values are not \(rows) rows of \(d)")
    }
    guard (0..<config.layerCount).contains(layer) else {
      throw TensorError.invalidArgument(op: "forward rows", reason: "layer \(layer) is not one of 0..<\(config.layerCount)")
    }
    guard cache.widths == config.kvHeadCounts.map({ $0 * config.headDimension }) else {
      throw TensorError.invalidArgument(op: "forward rows", reason: "the KV cache belongs to a model of another shape")
    }
    try cache.reserve(start + rows, limit: config.contextLength)
    var out: [Float] = []
    var hooks = ForwardHooks(positions: positions, mask: mask, layers: Array(layer...last), batchedRows: true)
    hooks.observe = { a in
      guard a.layer == last, a.point == .layerOutput else { return }
      out = Array(UnsafeBufferPointer(start: a.values, count: a.rows * a.width))
    }
    try check(hooks, tokens: rows, length: start + rows)
    var run = try ForwardPass(model: self, tokens: Array(repeating: 0, count: rows), cache: cache, start: start, hooks: hooks)
    defer { run.release(); cache.count = start }
    try hidden.withUnsafeBufferPointer { p in
      guard let base = p.baseAddress else { return }
      _ = try run.compute(allLogits: false, logits: false, input: base)
    }
    return out
  }

  /// Logits [rows, vocab] of final hidden states [rows, dimension] (the last layer's output, before the output
  /// norm): the model's norm and head, the head's weights read once for all rows (a draft's stream rows).
  public func headLogits(hidden: [Float], rows: Int) throws -> [Float] {
    guard rows >= 1, hidden.count == rows * config.dimension else {
      throw TensorError.invalidArgument(op: "head", reason: "\(hidden.count) values are not \(rows) rows of \(config.dimension)")
    }
    var run = try ForwardPass(model: self, tokens: Array(repeating: 0, count: rows), cache: nil, start: 0,
                              hooks: ForwardHooks(batchedRows: true))
    defer { run.release() }
    return try hidden.withUnsafeBufferPointer { p in
      guard let base = p.baseAddress else { return [] }
      return try run.head(base, rows: rows)
    }
  }

  /// Rotates keys [rows, heads·headDimension] in place as the forward pass rotates the keys of positions
  /// start..<start+rows (the same angles, bit for bit): pre-RoPE keys made elsewhere (KV prediction) then attend
  /// as the model's own cached keys do.
  public func rotateKeys(_ keys: UnsafeMutablePointer<Float>, rows: Int, heads: Int, start: Int) {
    rotateKeys(keys, heads: heads, angles: rotaryAngles(rows: rows, start: start))
  }

  /// The rotary angles of positions start..<start+rows (cosines and sines, headDimension/2 per row), to rotate many
  /// layers' keys with one computation of them.
  public struct RotaryAngles: Sendable {
    public let rows: Int
    let cosines: [Float], sines: [Float]
  }

  public func rotaryAngles(rows: Int, start: Int) -> RotaryAngles {
    let half = config.headDimension / 2, rows = Swift.max(0, rows)
    var cosines = [Float](repeating: 0, count: rows * half), sines = cosines
    cosines.withUnsafeMutableBufferPointer { c in
      sines.withUnsafeMutableBufferPointer { s in
        guard let cp = c.baseAddress, let sp = s.baseAddress else { return }
        for t in 0..<rows { ForwardPass.ropeAngles(config, position: start + t, cosines: cp + t * half, sines: sp + t * half) }
      }
    }
    return RotaryAngles(rows: rows, cosines: cosines, sines: sines)
  }

  /// Rotates `angles.rows` rows of keys [rows, heads·headDimension] in place by those angles.
  public func rotateKeys(_ keys: UnsafeMutablePointer<Float>, heads: Int, angles: RotaryAngles) {
    angles.cosines.withUnsafeBufferPointer { c in
      angles.sines.withUnsafeBufferPointer { s in
        guard let cp = c.baseAddress, let sp = s.baseAddress else { return }
        ForwardPass.rotate(keys, rows: angles.rows, heads: heads, config: config, cosines: cp, sines: sp)
      }
    }
  }

  /// The hooks fit this call: one position per token inside the context, a mask of [tokens, length], known layers.
  func check(_ hooks: ForwardHooks, tokens: Int, length: Int) throws {
    func fail(_ reason: String) -> Error { TensorError.invalidArgument(op: "forward", reason: reason) }
    if let p = hooks.positions {
      guard p.count == tokens else { throw fail("\(p.count) positions for \(tokens) tokens") }
      if let bad = p.first(where: { $0 < 0 || $0 >= config.contextLength }) {
        throw fail("position \(bad) is outside the context 0..<\(config.contextLength)")
      }
    }
    if let m = hooks.mask {
      guard m.count == tokens * length else { throw fail("the mask has \(m.count) entries, not \(tokens) × \(length)") }
      guard !m.contains(where: { $0.isNaN || $0 == .infinity }) else { throw fail("the mask holds NaN or +inf") }
    }
    if let l = hooks.layers {
      if let bad = l.first(where: { $0 < 0 || $0 >= config.layerCount }) { throw fail("layer \(bad) is not one of 0..<\(config.layerCount)") }
      guard Set(l).count == l.count else { throw fail("layers names a layer twice: \(l)") }
    }
    if let s = hooks.streams {
      let rows = s.totalRows(tokens: tokens), all = length - tokens + rows
      guard (hooks.layers ?? Array(0..<config.layerCount)).contains(s.layer) else { throw fail("the streams' layer \(s.layer) does not run") }
      guard s.count >= 1, s.embeddings.count == s.count * config.dimension else {
        throw fail("\(s.embeddings.count) stream embedding values for \(s.count) streams of \(config.dimension)")
      }
      if let bad = s.rows.first(where: { $0 < 0 || $0 >= tokens }) { throw fail("stream row \(bad) is not one of the \(tokens) tokens") }
      guard s.positions.count == s.rows.count * s.count else { throw fail("\(s.positions.count) stream positions for \(s.rows.count * s.count) stream rows") }
      if let bad = s.positions.first(where: { $0 < 0 || $0 >= config.contextLength }) {
        throw fail("stream position \(bad) is outside the context 0..<\(config.contextLength)")
      }
      guard all <= config.contextLength else { throw fail("\(all) rows with the streams exceed the context of \(config.contextLength)") }
      guard s.mask.count == rows * all else { throw fail("the stream mask has \(s.mask.count) entries, not \(rows) × \(all)") }
      guard !s.mask.contains(where: { $0.isNaN || $0 == .infinity }) else { throw fail("the stream mask holds NaN or +inf") }
    }
  }

  /// Runs `tokens` as positions offset..<offset+tokens.count of a longer sequence (RoPE at those absolute positions),
  /// with no KV cache of its own: in each layer, once the chunk's keys and values are computed (post-RoPE, only the
  /// kvHeads heads, [tokens.count, kvHeads·headDimension] each), `exchange(layer, keys, values)` returns the rows
  /// attention reads. Query r sees rows 0...offset+r of them; any rows past the chunk (up to `length`) are scored and
  /// masked, as a dense block. Returns the last token's logits, or [] when `logits` is false.
  ///
  ///     let logits = try model.forwardChunk(ids[4..<9], offset: 4) { layer, k, v in ... return ChunkAttentionInput(...) }
  public func forwardChunk<C: Collection<Int>>(_ tokens: C, offset: Int, logits: Bool = true,
                                               exchange: (Int, UnsafePointer<Float>, UnsafePointer<Float>) throws -> ChunkAttentionInput) throws -> [Float] {
    let tokens = Array(tokens)
    guard !tokens.isEmpty else { throw TensorError.invalidArgument(op: "forward chunk", reason: "no tokens") }
    for t in tokens where t < 0 || t >= config.vocabularySize {
      throw TensorError.invalidArgument(op: "forward chunk", reason: "token id \(t) is outside the vocabulary 0..<\(config.vocabularySize)")
    }
    guard offset >= 0, offset + tokens.count <= config.contextLength else {
      throw TensorError.invalidArgument(op: "forward chunk", reason: "positions \(offset)..<\(offset + tokens.count) exceed the model's context of \(config.contextLength)")
    }
    var run = try ForwardPass(model: self, tokens: tokens, cache: nil, start: offset)
    defer { run.release() }
    return try withoutActuallyEscaping(exchange) { try run.compute(allLogits: false, logits: logits, exchange: $0) }
  }
}
