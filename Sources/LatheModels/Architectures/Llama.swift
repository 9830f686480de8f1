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

/// One transformer block's weights: matrices [out, in] (tensors in any dtype the matvec and dequantize paths read,
/// or a technique's packed form) and the norm vectors.
public struct LlamaLayer {
  public var attentionNorm: Tensor, ffnNorm: Tensor
  public var query: LinearWeight, key: LinearWeight, value: LinearWeight, output: LinearWeight
  public var gate: LinearWeight, up: LinearWeight, down: LinearWeight
  /// [headDimension] each, when the configuration has queryKeyNorm.
  public var queryNorm: Tensor?, keyNorm: Tensor?
  public init(attentionNorm: Tensor, query: Tensor, key: Tensor, value: Tensor, output: Tensor,
              ffnNorm: Tensor, gate: Tensor, up: Tensor, down: Tensor, queryNorm: Tensor? = nil, keyNorm: Tensor? = nil) {
    self.attentionNorm = attentionNorm; self.query = .tensor(query); self.key = .tensor(key); self.value = .tensor(value)
    self.output = .tensor(output); self.ffnNorm = ffnNorm; self.gate = .tensor(gate); self.up = .tensor(up); self.down = .tensor(down)
    self.queryNorm = queryNorm; self.keyNorm = keyNorm
  }

  /// The names of the seven matrices, llama.cpp's (`attn_q` … `ffn_down`), in a fixed order.
  public static let matrixNames = ["attn_q", "attn_k", "attn_v", "attn_output", "ffn_gate", "ffn_up", "ffn_down"]

  public var matrices: [(String, LinearWeight)] {
    zip(LlamaLayer.matrixNames, [query, key, value, output, gate, up, down]).map { ($0, $1) }
  }

  /// Replaces the matrix named `name` (one of `matrixNames`).
  public mutating func setMatrix(_ name: String, _ weight: LinearWeight) {
    switch name {
    case "attn_q": query = weight
    case "attn_k": key = weight
    case "attn_v": value = weight
    case "attn_output": output = weight
    case "ffn_gate": gate = weight
    case "ffn_up": up = weight
    default: down = weight
    }
  }
}

/// Keys and values of every layer for positions 0..<count, f32, [capacity, kvHeads·headDimension] per layer.
public final class KVCache: @unchecked Sendable {
  public private(set) var capacity: Int
  /// Positions filled so far.
  public internal(set) var count = 0
  let widths: [Int]
  var keys: [Storage], values: [Storage]

  public init(config: LlamaConfig, capacity: Int) throws {
    let capacity = Swift.max(1, Swift.min(capacity, config.contextLength))
    self.capacity = capacity
    widths = config.kvHeadCounts.map { $0 * config.headDimension }
    keys = try widths.map { try Storage(byteCount: capacity * $0 * 4, op: "kv cache", zeroed: false) }
    values = try widths.map { try Storage(byteCount: capacity * $0 * 4, op: "kv cache", zeroed: false) }
  }

  /// Bytes held by the cache.
  public var byteCount: Int { (keys + values).reduce(0) { $0 + $1.byteCount } }

  /// Makes room for `needed` positions, copying what is there (capacity at least doubles).
  func reserve(_ needed: Int, limit: Int) throws {
    guard needed > capacity else { return }
    guard needed <= limit else {
      throw TensorError.invalidArgument(op: "kv cache", reason: "\(needed) positions exceed the model's context of \(limit)")
    }
    let newCapacity = Swift.min(limit, Swift.max(needed, capacity * 2))
    for l in 0..<widths.count {
      let k = try Storage(byteCount: newCapacity * widths[l] * 4, op: "kv cache", zeroed: false)
      let v = try Storage(byteCount: newCapacity * widths[l] * 4, op: "kv cache", zeroed: false)
      k.bytes.copyMemory(from: keys[l].bytes, byteCount: count * widths[l] * 4)
      v.bytes.copyMemory(from: values[l].bytes, byteCount: count * widths[l] * 4)
      keys[l] = k; values[l] = v
    }
    capacity = newCapacity
  }

  /// Forgets positions from `position` on (the next token is written there).
  public func truncate(to position: Int) { count = Swift.max(0, Swift.min(count, position)) }

  /// Writes positions position..<position+rows of layer `layer` from `keys` and `values` ([rows, width] floats each,
  /// width = kvHeads·headDimension of that layer), growing the cache as needed (up to `limit` positions). The count
  /// is left alone: set it with `setCount` once every layer is written.
  public func write(layer: Int, at position: Int, rows: Int, keys k: UnsafePointer<Float>, values v: UnsafePointer<Float>,
                    limit: Int) throws {
    guard layer >= 0, layer < widths.count, position >= 0, rows >= 0 else {
      throw TensorError.invalidArgument(op: "kv cache", reason: "cannot write layer \(layer), positions \(position)..<\(position + rows)")
    }
    try reserve(position + rows, limit: limit)
    let width = widths[layer]
    (keys[layer].floats() + position * width).update(from: k, count: rows * width)
    (values[layer].floats() + position * width).update(from: v, count: rows * width)
  }

  /// Sets the number of filled positions (after `write`), at most the capacity.
  public func setCount(_ positions: Int) throws {
    guard positions >= 0, positions <= capacity else {
      throw TensorError.invalidArgument(op: "kv cache", reason: "\(positions) positions do not fit a capacity of \(capacity)")
    }
    count = positions
  }

  /// Floats per position of each layer's keys (and values): kvHeads·headDimension.
  public var layerWidths: [Int] { widths }

  /// Copies of layer `layer`'s keys and values for positions 0..<count ([count, width] each, row-major).
  public func rows(layer: Int) -> (keys: [Float], values: [Float]) {
    let n = count * widths[layer]
    return (Array(UnsafeBufferPointer(start: keys[layer].floats(), count: n)),
            Array(UnsafeBufferPointer(start: values[layer].floats(), count: n)))
  }

  /// A copy holding the same positions (for branching a prefix).
  public func copy() throws -> KVCache {
    let c = try KVCache(widths: widths, capacity: capacity)
    for l in 0..<widths.count {
      c.keys[l].bytes.copyMemory(from: keys[l].bytes, byteCount: count * widths[l] * 4)
      c.values[l].bytes.copyMemory(from: values[l].bytes, byteCount: count * widths[l] * 4)
    }
    c.count = count
    return c
  }

  private init(widths: [Int], capacity: Int) throws {
    self.widths = widths; self.capacity = capacity
    keys = try widths.map { try Storage(byteCount: capacity * $0 * 4, op: "kv cache", zeroed: false) }
    values = try widths.map { try Storage(byteCount: capacity * $0 * 4, op: "kv cache", zeroed: false) }
  }
}

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
    return m
  }

  public func makeCache(capacity: Int) throws -> KVCache { try KVCache(config: config, capacity: capacity) }

  /// Runs `tokens` at the cache's next positions, appending their keys and values. Returns the logits of the last
  /// token ([vocab]) or, with `allLogits`, of every token ([tokens.count × vocab], row-major).
  public func forward(_ tokens: [Int], cache: KVCache, allLogits: Bool = false) throws -> [Float] {
    guard !tokens.isEmpty else { throw TensorError.invalidArgument(op: "forward", reason: "no tokens") }
    for t in tokens where t < 0 || t >= config.vocabularySize {
      throw TensorError.invalidArgument(op: "forward", reason: "token id \(t) is outside the vocabulary 0..<\(config.vocabularySize)")
    }
    guard cache.widths == config.kvHeadCounts.map({ $0 * config.headDimension }) else {
      throw TensorError.invalidArgument(op: "forward", reason: "the KV cache belongs to a model of another shape")
    }
    try cache.reserve(cache.count + tokens.count, limit: config.contextLength)
    var run = try ForwardPass(model: self, tokens: tokens, cache: cache, start: cache.count)
    defer { run.release() }
    return try run.compute(allLogits: allLogits)
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

/// The keys and values one layer of a chunk forward attends over: rows 0..<length, [length, kvHeads·headDimension]
/// floats each, post-RoPE; rows offset..<offset+tokens are the chunk's own.
public struct ChunkAttentionInput {
  public var keys: UnsafePointer<Float>, values: UnsafePointer<Float>
  public var length: Int
  public init(keys: UnsafePointer<Float>, values: UnsafePointer<Float>, length: Int) {
    self.keys = keys; self.values = values; self.length = length
  }
}

/// The buffers and steps of one forward call over T tokens.
struct ForwardPass {
  typealias Exchange = (Int, UnsafePointer<Float>, UnsafePointer<Float>) throws -> ChunkAttentionInput
  /// nil for a chunk forward, whose keys and values come from its exchange.
  let model: LlamaModel, config: LlamaConfig, cache: KVCache?, tokens: [Int]
  let T: Int, start: Int, threads: Int
  var buffers: [UnsafeMutablePointer<Float>] = []
  let x, h, q, k, v, attention, projected, gate, up: UnsafeMutablePointer<Float>
  let cosines, sines: UnsafeMutablePointer<Float>
  /// Dequantised weight slices for the sgemm path.
  let weightSlice: UnsafeMutablePointer<Float>, weightSliceCount: Int

  /// Up to this many tokens, projections run the matrix-vector kernels once per token; beyond it, dequantising the
  /// weights for sgemm costs less (a 5-token prompt: 53 ms through sgemm, the dequantisation of every weight
  /// included, against about 6 ms a token through the kernels).
  static let matvecTokens = 6

  init(model: LlamaModel, tokens: [Int], cache: KVCache?, start: Int) throws {
    self.model = model; config = model.config; self.cache = cache; self.tokens = tokens
    T = tokens.count; self.start = start; threads = Swift.max(1, model.threads)
    let d = config.dimension, hd = config.headDimension
    let maxHeads = config.headCounts.max()!, maxKV = config.kvHeadCounts.max()!, maxFFN = config.ffnWidths.max()!
    let scratch = T * (4 * d + 2 * maxHeads * hd + 2 * maxKV * hd + 2 * maxFFN) + T * hd
    guard scratch <= Memory.budget / 4 else { throw TensorError.outOfMemory(op: "forward", bytes: scratch * 4, budget: Memory.budget) }
    var list: [UnsafeMutablePointer<Float>] = []
    func make(_ n: Int) -> UnsafeMutablePointer<Float> {
      let p = UnsafeMutablePointer<Float>.allocate(capacity: Swift.max(n, 16))
      list.append(p)
      return p
    }
    x = make(T * d); h = make(T * d); projected = make(T * d)
    q = make(T * maxHeads * hd); attention = make(T * maxHeads * hd)
    k = make(T * maxKV * hd); v = make(T * maxKV * hd)
    gate = make(T * maxFFN); up = make(T * maxFFN)
    cosines = make(T * hd / 2); sines = make(T * hd / 2)
    weightSliceCount = T > ForwardPass.matvecTokens ? Swift.max(1 << 20, 32 * Swift.max(d, maxFFN, maxHeads * hd)) : 0
    weightSlice = make(weightSliceCount)
    buffers = list
  }

  func release() { for b in buffers { b.deallocate() } }

  mutating func compute(allLogits: Bool, logits wantLogits: Bool = true, exchange: Exchange? = nil) throws -> [Float] {
    let d = config.dimension, hd = config.headDimension
    for (t, id) in tokens.enumerated() { try model.tokenEmbedding.dequantizeRows(id..<(id + 1), into: x + t * d) }
    // Rotary angles pos·base^(-2i/hd) for each new position, in double precision.
    for t in 0..<T {
      for i in 0..<(hd / 2) {
        let angle = Double(start + t) * pow(config.ropeBase, -2 * Double(i) / Double(hd))
        cosines[t * hd / 2 + i] = Float(cos(angle)); sines[t * hd / 2 + i] = Float(sin(angle))
      }
    }
    for l in 0..<config.layerCount {
      let layer = model.layers[l]
      let heads = config.headCounts[l], kvHeads = config.kvHeadCounts[l], ffn = config.ffnWidths[l]
      try rmsNorm(x, layer.attentionNorm, into: h)
      try project(layer.query, h, into: q)
      try project(layer.key, h, into: k)
      try project(layer.value, h, into: v)
      if config.queryKeyNorm, let qn = layer.queryNorm, let kn = layer.keyNorm {
        try headNorm(q, qn, heads: heads)
        try headNorm(k, kn, heads: kvHeads)
      }
      rotate(q, heads: heads)
      rotate(k, heads: kvHeads)
      let keys: UnsafePointer<Float>, values: UnsafePointer<Float>, length: Int
      if let exchange {
        let input = try exchange(l, k, v)
        guard input.length >= start + T else {
          throw TensorError.invalidArgument(op: "forward chunk", reason: "layer \(l) attends over \(input.length) rows, fewer than the chunk's end \(start + T)")
        }
        (keys, values, length) = (input.keys, input.values, input.length)
      } else if let cache {
        let width = kvHeads * hd
        let ck = cache.keys[l].floats(), cv = cache.values[l].floats()
        (ck + start * width).update(from: k, count: T * width)
        (cv + start * width).update(from: v, count: T * width)
        (keys, values, length) = (UnsafePointer(ck), UnsafePointer(cv), start + T)
      } else {
        throw TensorError.invalidArgument(op: "forward", reason: "neither a KV cache nor an exchange")
      }
      attend(layer: l, heads: heads, kvHeads: kvHeads, keys: keys, values: values, length: length)
      try project(layer.output, attention, into: projected)
      add(projected, into: x, count: T * d)
      try rmsNorm(x, layer.ffnNorm, into: h)
      try project(layer.gate, h, into: gate)
      try project(layer.up, h, into: up)
      swiglu(count: T * ffn)
      try project(layer.down, gate, into: projected)
      add(projected, into: x, count: T * d)
    }
    cache?.count = start + T
    guard wantLogits || allLogits else { return [] }
    try rmsNorm(x, model.outputNorm, into: h)
    let vocab = config.vocabularySize
    if allLogits {
      var logits = [Float](repeating: 0, count: T * vocab)
      try logits.withUnsafeMutableBufferPointer { try project(model.output, h, into: $0.baseAddress!) }
      return logits
    }
    var logits = [Float](repeating: 0, count: vocab)
    try logits.withUnsafeMutableBufferPointer { try model.output.matvec(h + (T - 1) * d, into: $0.baseAddress!, threads: threads) }
    return logits
  }

  /// out[t] = x[t] / sqrt(mean(x[t]²) + ε) · w for each token.
  func rmsNorm(_ input: UnsafeMutablePointer<Float>, _ weight: Tensor, into out: UnsafeMutablePointer<Float>) throws {
    let d = config.dimension
    let w = try weight.dtype == .f32 ? weight : weight.copied(as: .f32)
    let wp = w.readPointer()
    for t in 0..<T {
      let row = input + t * d, o = out + t * d
      var s: Double = 0
      for j in 0..<d { s += Double(row[j]) * Double(row[j]) }
      let scale = Float(1 / (s / Double(d) + Double(config.rmsEpsilon)).squareRoot())
      for j in 0..<d { o[j] = row[j] * scale * wp[j] }
    }
  }

  /// out [T, rows] = input [T, cols] · Wᵀ for W [rows, cols]: matrix-vector kernels for one or a few tokens,
  /// otherwise sgemm over W dequantised a slice of rows at a time.
  func project(_ weight: LinearWeight, _ input: UnsafeMutablePointer<Float>, into out: UnsafeMutablePointer<Float>) throws {
    let rows = weight.shape[0], cols = weight.shape[1]
    if T <= ForwardPass.matvecTokens {
      for t in 0..<T { try weight.matvec(input + t * cols, into: out + t * rows, threads: threads) }
      return
    }
    openblas_set_num_threads(Int32(threads))
    if let w = weight.tensor, w.dtype == .f32 {
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(rows), Int32(cols), 1, input, Int32(cols),
                  w.readPointer(), Int32(cols), 0, out, Int32(rows))
      return
    }
    let sliceRows = Swift.max(1, Swift.min(rows, weightSliceCount / cols)), scratch = weightSlice
    var r0 = 0
    while r0 < rows {
      let r1 = Swift.min(rows, r0 + sliceRows)
      try dequantizeParallel(weight, r0..<r1, into: scratch)
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(r1 - r0), Int32(cols), 1, input, Int32(cols),
                  scratch, Int32(cols), 0, out + r0, Int32(rows))
      r0 = r1
    }
  }

  func dequantizeParallel(_ w: LinearWeight, _ rows: Range<Int>, into out: UnsafeMutablePointer<Float>) throws {
    let cols = w.shape[1], parts = Swift.min(threads, rows.count)
    if parts <= 1 { try w.dequantizeRows(rows, into: out); return }
    let per = (rows.count + parts - 1) / parts
    nonisolated(unsafe) var failure: Error? = nil
    ThreadPool.shared.parallelFor(parts) { p in
      let a = rows.lowerBound + p * per, b = Swift.min(rows.upperBound, a + per)
      guard a < b else { return }
      do { try w.dequantizeRows(a..<b, into: out + (a - rows.lowerBound) * cols) } catch { failure = error }
    }
    if let failure { throw failure }
  }

  /// Rotates pairs of every head of every token by its position's angles: adjacent pairs (2i, 2i+1), or the
  /// halves (i, i + hd/2).
  func rotate(_ p: UnsafeMutablePointer<Float>, heads: Int) {
    let hd = config.headDimension, half = hd / 2
    let (step, partner) = config.ropeStyle == .adjacentPairs ? (2, 1) : (1, half)
    for t in 0..<T {
      let c = cosines + t * half, s = sines + t * half
      for head in 0..<heads {
        let v = p + (t * heads + head) * hd
        for i in 0..<half {
          let j = i * step
          let a = v[j], b = v[j + partner]
          v[j] = a * c[i] - b * s[i]
          v[j + partner] = a * s[i] + b * c[i]
        }
      }
    }
  }

  /// RMSNorm over each head's hd values, times the per-layer weight (OpenELM's query/key norms).
  func headNorm(_ p: UnsafeMutablePointer<Float>, _ weight: Tensor, heads: Int) throws {
    let hd = config.headDimension
    let w = try weight.dtype == .f32 ? weight : weight.copied(as: .f32)
    let wp = w.readPointer()
    for row in 0..<(T * heads) {
      let v = p + row * hd
      var s: Double = 0
      for j in 0..<hd { s += Double(v[j]) * Double(v[j]) }
      let scale = Float(1 / (s / Double(hd) + Double(config.rmsEpsilon)).squareRoot())
      for j in 0..<hd { v[j] = v[j] * scale * wp[j] }
    }
  }

  /// Causal attention of the T new queries over key positions 0..<length (start+T for a cache; a chunk forward may
  /// pass more, scored densely and masked), one head per pool task: scores Q·Kᵀ/√hd by sgemm, softmax per row
  /// (masked past each query's own position), then scores·V.
  func attend(layer l: Int, heads: Int, kvHeads: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, length: Int) {
    let hd = config.headDimension, group = heads / kvHeads
    let qStride = heads * hd, kvStride = kvHeads * hd
    let scale = 1 / Float(hd).squareRoot()
    let scoreCount = T * length
    let (q, attention, T, start, threads) = (self.q, self.attention, self.T, self.start, self.threads)
    let body: (Int) -> Void = { head in
      let kvHead = head / group
      let scores = UnsafeMutablePointer<Float>.allocate(capacity: scoreCount)
      defer { scores.deallocate() }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(T), Int32(length), Int32(hd), scale, q + head * hd, Int32(qStride),
                  keys + kvHead * hd, Int32(kvStride), 0, scores, Int32(length))
      for t in 0..<T {
        let row = scores + t * length, visible = start + t + 1
        var m = -Float.infinity
        for j in 0..<visible { m = Swift.max(m, row[j]) }
        var sum: Float = 0
        for j in 0..<visible { let e = Foundation.exp(row[j] - m); row[j] = e; sum += e }
        let inv = 1 / sum
        for j in 0..<visible { row[j] *= inv }
        for j in visible..<length { row[j] = 0 }
      }
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(T), Int32(hd), Int32(length), 1, scores, Int32(length),
                  values + kvHead * hd, Int32(kvStride), 0, attention + head * hd, Int32(qStride))
    }
    if threads <= 1 { for head in 0..<heads { body(head) } } else { ThreadPool.shared.parallelFor(heads, body) }
  }

  func add(_ a: UnsafeMutablePointer<Float>, into x: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count { x[i] += a[i] }
  }

  /// gate ← silu(gate)·up.
  func swiglu(count: Int) {
    for i in 0..<count { let g = gate[i]; gate[i] = g / (1 + Foundation.exp(-g)) * up[i] }
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
