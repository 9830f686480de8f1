// One forward call over T tokens: the buffers and steps (RMSNorm, projections, RoPE, attention, SwiGLU) and the hooks
// a technique plugs in (ForwardHooks). A few tokens run the matrix-vector kernels over the quantised blocks; more
// run cblas_sgemm on weights dequantised a slice at a time into one scratch buffer.

import CBLAS
import Foundation
import LatheTensor

/// The keys and values one layer of a chunk forward attends over: rows 0..<length, [length, kvHeads·headDimension]
/// floats each, post-RoPE; rows offset..<offset+tokens are the chunk's own.
public struct ChunkAttentionInput {
  public var keys: UnsafePointer<Float>, values: UnsafePointer<Float>
  public var length: Int
  public init(keys: UnsafePointer<Float>, values: UnsafePointer<Float>, length: Int) {
    self.keys = keys; self.values = values; self.length = length
  }
}

/// What a technique can plug into a forward pass. Every hook is off by default, and a pass with none set runs the
/// same code as before they existed.
public struct ForwardHooks {
  /// Where `observe` sees a layer's activations.
  public enum Point: String, Sendable, CaseIterable {
    /// The normalised input of attention, [T, d].
    case attentionInput
    /// The normalised input of the feed-forward, [T, d].
    case ffnInput
    /// act(gate)·up, the input of the down projection, [T, ffn]: where relufied models are sparse.
    case ffnHidden
    /// The residual stream after the layer, [T, d].
    case layerOutput
  }
  /// One observation: rows × width floats, row-major, valid only during the call.
  public struct Activation {
    public let layer: Int, point: Point
    public let values: UnsafePointer<Float>
    public let rows: Int, width: Int
  }

  /// Sees each layer's activations at every point (sparsity statistics, calibration, distillation targets).
  public var observe: ((Activation) throws -> Void)?
  /// Receives each layer's keys and values before RoPE ([T, kvHeads·headDimension] each), as KV prediction trains on.
  public var preRopeKeysValues: ((_ layer: Int, _ keys: UnsafePointer<Float>, _ values: UnsafePointer<Float>, _ rows: Int, _ width: Int) throws -> Void)?
  /// The tokens' positions for RoPE (default: the cache rows they are written to, start..<start+T): tree drafts and
  /// streams give several tokens one position.
  public var positions: [Int]?
  /// An additive attention mask [T, start + T] over every cached row (0 to see a row, −∞ to hide it), in place of
  /// the causal one.
  public var mask: [Float]?
  /// The decoder layers to run, in order (default: all).
  public var layers: [Int]?
  /// Runs even a few rows' projections through sgemm (k query rows in one step), not one matrix-vector product per
  /// row; for more than ForwardPass.matvecTokens rows that is the path anyway.
  public var batchedRows = false
  /// Speculative streams (multi-stream attention): rows added at one layer's input that run the layers from there on.
  public var streams: Streams?
  /// With `allLogits`, logits for the first `headRows` rows only (a draft tree's main rows, not its stream rows).
  public var headRows: Int?

  /// Stream rows: at the input of `layer`, each main row r of `rows` gets `count` stream rows, stream j (1...count)
  /// entering as r's hidden state plus `embeddings` row j−1. From `layer` on the pass runs R = T + rows.count·count
  /// rows (main rows first, then stream rows in (r, j) order) at `positions`, attending under `mask`, an additive
  /// [R, start + R] mask over the cached rows, the main rows and the stream rows. Stream keys and values sit in
  /// the cache rows after the main rows only during the call: the cache's count ends at start + T. The logits
  /// (`allLogits`) are R rows.
  public struct Streams {
    public var layer: Int, count: Int
    /// [count, dimension], row-major.
    public var embeddings: [Float]
    public var rows: [Int]
    /// RoPE positions of the stream rows, [rows.count · count] in (r, j) order.
    public var positions: [Int]
    public var mask: [Float]
    /// Sees the main rows' hidden states entering `layer` ([T, dimension]) before the streams are added.
    public var observe: ((UnsafePointer<Float>, Int) throws -> Void)?
    /// Tree pruning: given the main rows' hidden states entering `layer` ([T, dimension]), the rows that do get
    /// streams (some of `rows`, in their order), with their positions and mask in the form of `positions` and `mask`;
    /// the others' streams are not run. Buffers and cache room are sized for all of `rows`.
    public var select: ((_ hidden: UnsafePointer<Float>, _ rows: Int) throws -> Selection)?

    public struct Selection {
      public var rows: [Int], positions: [Int], mask: [Float]
      public init(rows: [Int], positions: [Int], mask: [Float]) { self.rows = rows; self.positions = positions; self.mask = mask }
    }

    public init(layer: Int, count: Int, embeddings: [Float], rows: [Int], positions: [Int], mask: [Float]) {
      self.layer = layer; self.count = count; self.embeddings = embeddings; self.rows = rows; self.positions = positions
      self.mask = mask
    }
    /// Rows of a pass of `tokens` main rows once the streams are in.
    public func totalRows(tokens: Int) -> Int { tokens + rows.count * count }
  }

  public init(observe: ((Activation) throws -> Void)? = nil, positions: [Int]? = nil, mask: [Float]? = nil, layers: [Int]? = nil,
              batchedRows: Bool = false) {
    self.observe = observe; self.positions = positions; self.mask = mask; self.layers = layers; self.batchedRows = batchedRows
  }

  var isEmpty: Bool {
    observe == nil && preRopeKeysValues == nil && positions == nil && mask == nil && layers == nil && !batchedRows && streams == nil && headRows == nil
  }
}

/// The buffers and steps of one forward call over T tokens.
struct ForwardPass {
  typealias Exchange = (Int, UnsafePointer<Float>, UnsafePointer<Float>) throws -> ChunkAttentionInput
  /// nil for a chunk forward, whose keys and values come from its exchange.
  let model: LlamaModel, config: LlamaConfig, cache: KVCache?, tokens: [Int]
  /// Rows in flight: the tokens, then (from the streams' layer on) the tokens and their stream rows.
  var T: Int
  /// The stream mask of the rows `Streams.select` chose.
  var selectedMask: [Float]?
  let start: Int, threads: Int, tokenCount: Int
  let hooks: ForwardHooks
  var buffers: [UnsafeMutablePointer<Float>] = []
  let x, h, q, k, v, attention, projected, gate, up: UnsafeMutablePointer<Float>
  let cosines, sines: UnsafeMutablePointer<Float>
  /// Dequantised weight slices for the sgemm path.
  let weightSlice: UnsafeMutablePointer<Float>, weightSliceCount: Int

  /// Up to this many tokens, projections run the matrix-vector kernels once per token; beyond it, dequantising the
  /// weights for sgemm costs less (a 5-token prompt: 53 ms through sgemm, the dequantisation of every weight
  /// included, against about 6 ms a token through the kernels).
  static let matvecTokens = 6

  init(model: LlamaModel, tokens: [Int], cache: KVCache?, start: Int, hooks: ForwardHooks = ForwardHooks()) throws {
    self.model = model; config = model.config; self.cache = cache; self.tokens = tokens; self.hooks = hooks
    self.T = tokens.count; tokenCount = tokens.count; self.start = start; threads = Swift.max(1, model.threads)
    let T = hooks.streams?.totalRows(tokens: tokens.count) ?? tokens.count
    let d = config.dimension, hd = config.headDimension
    let maxHeads = config.headCounts.max() ?? 1, maxKV = config.kvHeadCounts.max() ?? 1, maxFFN = config.ffnWidths.max() ?? 1
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
    // f32 weights go to the products as they are: no slice to dequantise into (4 MB of fresh pages a call).
    let sgemm = T > ForwardPass.matvecTokens || hooks.batchedRows || hooks.streams != nil
    weightSliceCount = sgemm && !model.projectionsAreF32 ? Swift.max(1 << 20, 32 * Swift.max(d, maxFFN, maxHeads * hd)) : 0
    weightSlice = make(weightSliceCount)
    buffers = list
  }

  func release() { for b in buffers { b.deallocate() } }

  /// `input`: hidden states [T, d] to start from in place of the tokens' embeddings.
  mutating func compute(allLogits: Bool, logits wantLogits: Bool = true, exchange: Exchange? = nil, input: UnsafePointer<Float>? = nil) throws -> [Float] {
    let d = config.dimension, hd = config.headDimension
    if let input {
      x.update(from: input, count: T * d)
    } else {
      for (t, id) in tokens.enumerated() { try model.tokenEmbedding.dequantizeRows(id..<(id + 1), into: x + t * d) }
    }
    for t in 0..<T {
      ForwardPass.ropeAngles(config, position: hooks.positions?[t] ?? start + t, cosines: cosines + t * hd / 2, sines: sines + t * hd / 2)
    }
    let observe = hooks.observe
    let order = hooks.layers ?? Array(0..<config.layerCount)
    // Without logits or an observer nothing reads the last layer's output: once its keys and values are stored (or
    // exchanged), its attention and feed-forward are skipped (KV prediction's aux, a prompt cached for later).
    let keysValuesOnly = !wantLogits && !allLogits && observe == nil
    for (index, l) in order.enumerated() {
      try Cancellation.check("forward")          // Ctrl-C between layers: a 512-token window stops within one layer
      if let streams = hooks.streams, l == streams.layer { try insert(streams) }
      let layer = model.layers[l]
      let heads = config.headCounts[l], kvHeads = config.kvHeadCounts[l], ffn = config.ffnWidths[l]
      try rmsNorm(x, layer.attentionNorm, into: h)
      if let observe { try observe(.init(layer: l, point: .attentionInput, values: h, rows: T, width: d)) }
      try project(layer.query, h, into: q)
      try project(layer.key, h, into: k)
      try project(layer.value, h, into: v)
      if config.queryKeyNorm, let qn = layer.queryNorm, let kn = layer.keyNorm {
        try headNorm(q, qn, heads: heads)
        try headNorm(k, kn, heads: kvHeads)
      }
      if let write = hooks.preRopeKeysValues { try write(l, k, v, T, kvHeads * hd) }
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
        let ck = cache.keys[l], cv = cache.values[l]
        (ck + start * width).update(from: k, count: T * width)
        (cv + start * width).update(from: v, count: T * width)
        (keys, values, length) = (UnsafePointer(ck), UnsafePointer(cv), start + T)
      } else {
        throw TensorError.invalidArgument(op: "forward", reason: "neither a KV cache nor an exchange")
      }
      if keysValuesOnly && index == order.count - 1 { break }
      attend(layer: l, heads: heads, kvHeads: kvHeads, keys: keys, values: values, length: length)
      try Cancellation.check("attention")
      try project(layer.output, attention, into: projected)
      add(projected, into: x, count: T * d)
      try rmsNorm(x, layer.ffnNorm, into: h)
      if let observe { try observe(.init(layer: l, point: .ffnInput, values: h, rows: T, width: d)) }
      try project(layer.gate, h, into: gate)
      try project(layer.up, h, into: up)
      gatedActivation(layer.activation, count: T * ffn)
      if let observe { try observe(.init(layer: l, point: .ffnHidden, values: gate, rows: T, width: ffn)) }
      try project(layer.down, gate, into: projected)
      add(projected, into: x, count: T * d)
      if let observe { try observe(.init(layer: l, point: .layerOutput, values: x, rows: T, width: d)) }
    }
    cache?.count = start + tokenCount
    guard wantLogits || allLogits else { return [] }
    try rmsNorm(x, model.outputNorm, into: h)
    let vocab = config.vocabularySize
    if allLogits {
      if let rows = hooks.headRows { T = Swift.max(1, Swift.min(rows, T)) }
      var logits = [Float](repeating: 0, count: T * vocab)
      try logits.withUnsafeMutableBufferPointer { try project(model.output, h, into: $0.baseAddress!) }
      return logits
    }
    var logits = [Float](repeating: 0, count: vocab)
    try logits.withUnsafeMutableBufferPointer { try model.output.matvec(h + (tokenCount - 1) * d, into: $0.baseAddress!, threads: threads) }
    return logits
  }

  /// The output norm and head over `rows` final hidden states [rows, d] (before the output norm): logits [rows, vocab].
  mutating func head(_ hidden: UnsafePointer<Float>, rows: Int) throws -> [Float] {
    T = rows
    x.update(from: hidden, count: rows * config.dimension)
    try rmsNorm(x, model.outputNorm, into: h)
    var logits = [Float](repeating: 0, count: rows * config.vocabularySize)
    try logits.withUnsafeMutableBufferPointer { out in
      guard let p = out.baseAddress else { return }
      try project(model.output, h, into: p)
    }
    return logits
  }

  /// Adds the stream rows after the main rows (stream j of main row r: x_r + embedding j) and their RoPE angles;
  /// from here on the pass runs every row.
  mutating func insert(_ streams: ForwardHooks.Streams) throws {
    let d = config.dimension, hd = config.headDimension
    try streams.observe?(x, T)
    var rows = streams.rows, positions = streams.positions
    if let select = streams.select {
      let chosen = try select(x, T), all = Set(streams.rows), width = start + T + chosen.rows.count * streams.count
      func fail(_ reason: String) -> TensorError { .invalidArgument(op: "forward streams", reason: reason) }
      guard chosen.rows.count <= streams.rows.count, Set(chosen.rows).count == chosen.rows.count, chosen.rows.allSatisfy({ all.contains($0) }) else {
        throw fail("the selected stream rows \(chosen.rows) are not some of \(streams.rows)")
      }
      guard chosen.positions.count == chosen.rows.count * streams.count else { throw fail("\(chosen.positions.count) positions for the selected stream rows") }
      if let bad = chosen.positions.first(where: { $0 < 0 || $0 >= config.contextLength }) { throw fail("stream position \(bad) is outside the context") }
      guard chosen.mask.count == (T + chosen.rows.count * streams.count) * width, !chosen.mask.contains(where: { $0.isNaN || $0 == .infinity }) else {
        throw fail("the selected stream mask has \(chosen.mask.count) entries, not \(T + chosen.rows.count * streams.count) × \(width) finite or −inf")
      }
      rows = chosen.rows; positions = chosen.positions; selectedMask = chosen.mask
    }
    var row = T
    for r in rows {
      for j in 0..<streams.count {
        for c in 0..<d { x[row * d + c] = x[r * d + c] + streams.embeddings[j * d + c] }
        ForwardPass.ropeAngles(config, position: positions[row - T], cosines: cosines + row * hd / 2, sines: sines + row * hd / 2)
        row += 1
      }
    }
    T = row
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
    if T <= ForwardPass.matvecTokens && !hooks.batchedRows {
      for t in 0..<T { try weight.matvec(input + t * cols, into: out + t * rows, threads: threads) }
      return
    }
    if let w = weight.tensor, w.dtype == .f32 {
      try sgemmInTokenBlocks(input, w.readPointer(), rows: rows, cols: cols, into: out, outStride: rows)
      return
    }
    let sliceRows = Swift.max(1, Swift.min(rows, weightSliceCount / cols)), scratch = weightSlice
    var r0 = 0
    while r0 < rows {
      if r0 > 0 { try Cancellation.check("forward") }   // the LM head of a 512-token window: 27 slices, ~150 ms
      let r1 = Swift.min(rows, r0 + sliceRows)
      try dequantizeParallel(weight, r0..<r1, into: scratch)
      try sgemmInTokenBlocks(input, scratch, rows: r1 - r0, cols: cols, into: out + r0, outStride: rows)
      r0 = r1
    }
  }

  /// out[t, 0..<rows] = input[t] · Wᵀ by sgemm over blocks of tokens of at most about 2³⁰ FLOP each (10-20 ms on
  /// one core), with a Ctrl-C check before each: a 3,500-token prompt's FFN projections are ~6 GFLOP apiece, too
  /// long to run between two checks. Within a block the output features go to the pool in chunks whose size
  /// depends only on the shape, each chunk one sgemm on one OpenBLAS thread: a product's bits are the same at any
  /// thread count and however busy the process is (with AVX-512 kernels, OpenBLAS's own split of a product over
  /// its threads changes its last bits). Each output row is the same whatever the token blocking.
  func sgemmInTokenBlocks(_ input: UnsafePointer<Float>, _ w: UnsafePointer<Float>, rows: Int, cols: Int,
                          into out: UnsafeMutablePointer<Float>, outStride: Int) throws {
    let block = Swift.max(256, (1 << 29) / Swift.max(1, rows * cols))
    let chunk = ForwardPass.featureChunk(rows), chunks = (rows + chunk - 1) / chunk
    var t0 = 0
    while t0 < T {
      try Cancellation.check("forward")
      let n = Swift.min(block, T - t0)
      let body: (Int) -> Void = { c in
        let r0 = c * chunk, r = Swift.min(chunk, rows - r0)
        if n <= FewRows.maxRows {
          FewRows.multiply(input + t0 * cols, rows: n, w + r0 * cols, features: r, cols: cols, into: out + t0 * outStride + r0, outStride: outStride)
          return
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(r), Int32(cols), 1, input + t0 * cols, Int32(cols),
                    w + r0 * cols, Int32(cols), 0, out + t0 * outStride + r0, Int32(outStride))
      }
      if threads <= 1 || chunks == 1 {
        BLASThreads.single { for c in 0..<chunks { body(c) } }
      } else {
        ThreadPool.shared.parallelFor(chunks, body)
      }
      t0 += n
    }
  }

  /// Output features per sgemm of a projection with `rows` of them: at least 128, about a sixteenth of the rows
  /// (a multiple of 64), so that two threads share the chunks evenly and each sgemm stays large.
  static func featureChunk(_ rows: Int) -> Int { Swift.max(128, ((rows + 15) / 16 + 63) / 64 * 64) }

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
    ForwardPass.rotate(p, rows: T, heads: heads, config: config, cosines: cosines, sines: sines)
  }

  /// Rotary angles position·base^(-2i/hd), i < hd/2, computed in double precision.
  static func ropeAngles(_ config: LlamaConfig, position: Int, cosines: UnsafeMutablePointer<Float>, sines: UnsafeMutablePointer<Float>) {
    let hd = config.headDimension
    for i in 0..<(hd / 2) {
      let angle = Double(position) * pow(config.ropeBase, -2 * Double(i) / Double(hd))
      cosines[i] = Float(cos(angle)); sines[i] = Float(sin(angle))
    }
  }

  /// Rotates `rows` rows of `heads` heads by the angles of each row (`cosines`/`sines`: hd/2 per row).
  static func rotate(_ p: UnsafeMutablePointer<Float>, rows T: Int, heads: Int, config: LlamaConfig,
                     cosines: UnsafePointer<Float>, sines: UnsafePointer<Float>) {
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

  /// Attention of the T new queries over key positions 0..<length (start+T for a cache; a chunk forward may pass
  /// more): causal through the fused kernel (FusedAttention), or under the hooks' additive mask densely, one head
  /// per pool task: scores Q·Kᵀ/√hd by sgemm, the mask added, softmax per row, then scores·V.
  func attend(layer l: Int, heads: Int, kvHeads: Int, keys: UnsafePointer<Float>, values: UnsafePointer<Float>, length: Int) {
    let hd = config.headDimension, group = heads / kvHeads
    let qStride = heads * hd, kvStride = kvHeads * hd
    let scale = 1 / Float(hd).squareRoot()
    let (q, attention, T, start, threads) = (self.q, self.attention, self.T, self.start, self.threads)
    let streaming = T > tokenCount
    guard let mask = streaming ? selectedMask ?? hooks.streams?.mask : hooks.mask else {
      FusedAttention.causal(queries: q, queryStride: qStride, keys: keys, values: values, kvStride: kvStride,
                            output: attention, outputStride: qStride, rows: T, start: start, heads: heads,
                            kvHeads: kvHeads, headDim: hd, threads: threads)
      return
    }
    // Queries in blocks of `block` rows: the scores of one block at a time (block × length floats, not T × length),
    // and a Ctrl-C check between blocks (Cancellation.requested; the caller throws after the heads return).
    let block = 256
    let body: (Int) -> Void = { head in
      let kvHead = head / group
      let scores = UnsafeMutablePointer<Float>.allocate(capacity: Swift.min(T, block) * length)
      defer { scores.deallocate() }
      for first in stride(from: 0, to: T, by: block) {
        if Cancellation.requested { return }
        let rows = Swift.min(block, T - first)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(length), Int32(hd), scale, q + first * qStride + head * hd,
                    Int32(qStride), keys + kvHead * hd, Int32(kvStride), 0, scores, Int32(length))
        // The caller's additive mask over every row in place of the causal cut (validated: [T, length]).
        mask.withUnsafeBufferPointer { m in
          guard let base = m.baseAddress else { return }         // validated: T × length entries, never empty
          for r in 0..<rows {
            let row = scores + r * length, add = base + (first + r) * length
            var top = -Float.infinity
            for j in 0..<length { row[j] += add[j]; top = Swift.max(top, row[j]) }
            var sum: Float = 0
            for j in 0..<length { let e = top == -.infinity ? 0 : Foundation.exp(row[j] - top); row[j] = e; sum += e }
            let inv = sum > 0 ? 1 / sum : 0
            for j in 0..<length { row[j] *= inv }
          }
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(rows), Int32(hd), Int32(length), 1, scores, Int32(length),
                    values + kvHead * hd, Int32(kvStride), 0, attention + first * qStride + head * hd, Int32(qStride))
      }
    }
    if threads <= 1 { BLASThreads.single { for head in 0..<heads { body(head) } } } else { ThreadPool.shared.parallelFor(heads, body) }
  }

  func add(_ a: UnsafeMutablePointer<Float>, into x: UnsafeMutablePointer<Float>, count: Int) {
    for i in 0..<count { x[i] += a[i] }
  }

  /// gate ← act(gate)·up.
  func gatedActivation(_ activation: FFNActivation, count: Int) {
    switch activation {
    case .silu: for i in 0..<count { let g = gate[i]; gate[i] = g / (1 + Foundation.exp(-g)) * up[i] }
    case .relu: for i in 0..<count { gate[i] = Swift.max(gate[i], 0) * up[i] }
    case .gelu:
      for i in 0..<count {
        let g = gate[i]
        gate[i] = 0.5 * g * (1 + Foundation.tanh(0.7978845608 * (g + 0.044715 * g * g * g))) * up[i]
      }
    }
  }
}
