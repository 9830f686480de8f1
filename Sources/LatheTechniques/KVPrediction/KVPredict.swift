// kvpredict(aux:, layerMap:, init:, ...): KV Prediction (Horton et al., 2024). A small auxiliary model runs all but
// the last prompt token; per base layer i, two affine maps turn the keys and values of aux layer j_i (before RoPE)
// into the base's; the predicted keys are rotated at their absolute positions and written into the base's cache,
// and the base runs the last prompt token alone, attending to them. Decoding is the base's own, so the aux runs
// once per prompt. The maps are fitted in closed form (`fit`: ridge least squares on cache pairs, our L2 stand-in
// for the paper's L1 term) or trained with the aux through the frozen base (KVPredict+Training.swift).

import CBLAS
import Foundation
import LatheModels
import LatheTensor

public final class KVPredict: PrefillStrategy, FittingTechnique {
  public enum LayerMap: Equatable, Sendable {
    /// For an aux cut from the base (droplayers): the last kept layer at or before each base layer; otherwise
    /// base layer i takes aux layer ⌊i·n_A/n_B⌋.
    case auto
    case layers([Int])
  }
  public enum Initial: String, Sendable { case random, identity }

  public let aux: LlamaModel
  public let layerMap: LayerMap
  public let initial: Initial
  /// Loss weights: the aux's own cross-entropy, the consistency term (nil: 1/n_B) and the z-loss of both logit sets.
  public let lambdaA: Double, lambdaC: Double?, zLoss: Double
  public let trainAux: Bool
  /// Tokens of cache pairs `fit` collects, the ridge strength (relative to the mean diagonal of XᵀX), the seed of
  /// the random maps.
  public let fitTokens: Int, ridge: Double, seed: Int
  /// The per-layer maps, made for the first base the value meets (random or identity), then fitted or trained.
  public internal(set) var maps: Maps?
  /// "untrained", "fitted" or "trained".
  public internal(set) var state = "untrained"
  /// Forward calls of the aux over this value's life (one per prefill of two or more tokens).
  public private(set) var auxCalls = 0

  /// Affine maps per base layer: keys and values of base layer i = W·(aux layer map[i]'s) + b, W [w_B, w_A].
  public struct Maps {
    public var layerMap: [Int]
    public var keyWeights: [Tensor], keyBiases: [Tensor], valueWeights: [Tensor], valueBiases: [Tensor]
    /// Multiply-accumulates of the maps for one token.
    public var macsPerToken: Int { (keyWeights + valueWeights).reduce(0) { $0 + $1.count } }
    public var parameterCount: Int { macsPerToken + (keyBiases + valueBiases).reduce(0) { $0 + $1.count } }
  }

  public init(aux: LlamaModel, layerMap: LayerMap = .auto, initial: Initial = .random, lambdaA: Double = 1, lambdaC: Double? = nil,
              zLoss: Double = 1e-4, trainAux: Bool = true, fitTokens: Int = 20_000, ridge: Double = 1e-3, seed: Int = 0) throws {
    guard lambdaA.isFinite, lambdaA >= 0 else { throw TechniqueError("kvpredict: lambdaA must be >= 0, got \(lambdaA)") }
    if let c = lambdaC { guard c.isFinite, c >= 0 else { throw TechniqueError("kvpredict: lambdaC must be >= 0 or none, got \(c)") } }
    guard zLoss.isFinite, zLoss >= 0 else { throw TechniqueError("kvpredict: zLoss must be >= 0, got \(zLoss)") }
    guard (1...10_000_000).contains(fitTokens) else { throw TechniqueError("kvpredict: fitTokens must be 1 to 10000000, got \(fitTokens)") }
    guard ridge.isFinite, ridge >= 0 else { throw TechniqueError("kvpredict: ridge must be >= 0, got \(ridge)") }
    guard !aux.config.queryKeyNorm else {
      throw TechniqueError("kvpredict: the aux has query/key norms; KV prediction runs Llama models without them")
    }
    if case .layers(let l) = layerMap {
      if let bad = l.first(where: { $0 < 0 || $0 >= aux.config.layerCount }) {
        throw TechniqueError("kvpredict: layerMap names aux layer \(bad); the aux has layers 0..<\(aux.config.layerCount)")
      }
    }
    self.aux = aux; self.layerMap = layerMap; self.initial = initial; self.lambdaA = lambdaA; self.lambdaC = lambdaC
    self.zLoss = zLoss; self.trainAux = trainAux; self.fitTokens = fitTokens; self.ridge = ridge; self.seed = seed
  }

  /// A value with the same settings and aux, and maps of its own (copies of `maps`).
  func sibling(maps: Maps?, state: String) throws -> KVPredict {
    let k = try KVPredict(aux: aux, layerMap: layerMap, initial: initial, lambdaA: lambdaA, lambdaC: lambdaC, zLoss: zLoss,
                          trainAux: trainAux, fitTokens: fitTokens, ridge: ridge, seed: seed)
    k.maps = maps
    k.state = state
    return k
  }

  // MARK: layer maps

  /// The paper's rule for a layer-pruned aux (the index in the aux of the last kept layer at or before each base
  /// layer) when `sourceLayers` says which base layers the aux kept, else ⌊i·n_A/n_B⌋. Length n_B, non-decreasing,
  /// in [0, n_A).
  ///
  ///     KVPredict.autoLayerMap(baseLayers: 30, auxLayers: 15, sourceLayers: [0, 2, …, 28]) == [0, 0, 1, 1, …, 14, 14]
  public static func autoLayerMap(baseLayers: Int, auxLayers: Int, sourceLayers: [Int]?) -> [Int] {
    guard auxLayers > 0 else { return [] }
    if let kept = sourceLayers, kept.count == auxLayers, zip(kept, kept.dropFirst()).allSatisfy({ $0 < $1 }),
       kept.allSatisfy({ $0 >= 0 && $0 < baseLayers }) {
      return (0..<baseLayers).map { i in Swift.max(0, (kept.lastIndex { $0 <= i }) ?? 0) }
    }
    return (0..<baseLayers).map { Swift.min(auxLayers - 1, $0 * auxLayers / baseLayers) }
  }

  /// The map for `base`: the given list (length n_B) or the automatic one.
  public func resolvedLayerMap(for base: LlamaModel) throws -> [Int] {
    switch layerMap {
    case .auto:
      return KVPredict.autoLayerMap(baseLayers: base.config.layerCount, auxLayers: aux.config.layerCount, sourceLayers: aux.sourceLayers)
    case .layers(let l):
      guard l.count == base.config.layerCount else {
        throw TechniqueError("kvpredict: layerMap has \(l.count) entries; the base has \(base.config.layerCount) layers")
      }
      return l
    }
  }

  /// Checks that `base` and the aux can pair: one vocabulary, one head size, no query/key norms.
  func check(_ base: LlamaModel) throws {
    guard base.config.vocabularySize == aux.config.vocabularySize else {
      throw TechniqueError("kvpredict: the aux's vocabulary has \(aux.config.vocabularySize) tokens, the base's \(base.config.vocabularySize)")
    }
    guard !base.config.queryKeyNorm else {
      throw TechniqueError("kvpredict: the base has query/key norms; KV prediction runs Llama models without them")
    }
  }

  /// The maps for `base`, made on first use: random (PyTorch Linear's U(±1/√w_A), seeded) or identity (the
  /// leading min(w_A, w_B) diagonal, bias 0).
  public func maps(for base: LlamaModel) throws -> Maps {
    try check(base)
    let map = try resolvedLayerMap(for: base)
    let baseWidths = base.config.kvHeadCounts.map { $0 * base.config.headDimension }
    let auxWidths = aux.config.kvHeadCounts.map { $0 * aux.config.headDimension }
    if let maps {
      guard maps.layerMap == map, maps.keyWeights.map({ $0.shape }) == zip(baseWidths, map).map({ [$0, auxWidths[$1]] }) else {
        throw TechniqueError("kvpredict: its maps were made for a base of another shape (\(maps.keyWeights.count) layers)")
      }
      return maps
    }
    var rng = SeededGenerator(seed: UInt64(bitPattern: Int64(seed)) &+ 0x4B56_5044)
    func weight(_ rows: Int, _ cols: Int) throws -> Tensor {
      var w = [Float](repeating: 0, count: rows * cols)
      switch initial {
      case .identity: for r in 0..<Swift.min(rows, cols) { w[r * cols + r] = 1 }
      case .random:
        let bound = 1 / Float(cols).squareRoot()
        for i in w.indices { w[i] = (Float(rng.unit()) * 2 - 1) * bound }
      }
      return try Tensor(w, shape: [rows, cols])
    }
    func bias(_ rows: Int, _ cols: Int) throws -> Tensor {
      let bound = 1 / Float(cols).squareRoot()
      return try Tensor((0..<rows).map { _ in initial == .identity ? 0 : (Float(rng.unit()) * 2 - 1) * bound }, shape: [rows])
    }
    var made = Maps(layerMap: map, keyWeights: [], keyBiases: [], valueWeights: [], valueBiases: [])
    for (i, j) in map.enumerated() {
      made.keyWeights.append(try weight(baseWidths[i], auxWidths[j])); made.keyBiases.append(try bias(baseWidths[i], auxWidths[j]))
      made.valueWeights.append(try weight(baseWidths[i], auxWidths[j])); made.valueBiases.append(try bias(baseWidths[i], auxWidths[j]))
    }
    maps = made
    return made
  }

  // MARK: prefill

  public var minimumPromptTokens: Int { 1 }

  public func prefill(_ model: LlamaModel, _ prompt: [Int], room: Int, interrupt: @escaping () throws -> Void) throws -> PrefillOutcome {
    .predicted(try predict(model, prompt, room: room))
  }

  /// The aux's keys and values before RoPE for `tokens` at positions 0..<count, per aux layer ([count, w_A] each).
  func auxKeysValues(_ tokens: ArraySlice<Int>) throws -> [(keys: [Float], values: [Float])] {
    var out = [(keys: [Float], values: [Float])](repeating: ([], []), count: aux.config.layerCount)
    var hooks = ForwardHooks()
    hooks.preRopeKeysValues = { layer, k, v, rows, width in
      out[layer] = (Array(UnsafeBufferPointer(start: k, count: rows * width)), Array(UnsafeBufferPointer(start: v, count: rows * width)))
    }
    _ = try aux.forward(Array(tokens), cache: try aux.makeCache(capacity: tokens.count), logits: false, hooks: hooks)
    auxCalls += 1
    return out
  }

  /// y [rows, w_B] = x [rows, w_A]·Wᵀ + b.
  static func apply(_ w: Tensor, _ b: Tensor, to x: [Float], rows: Int) throws -> [Float] {
    var y = [Float](repeating: 0, count: rows * w.shape[0])
    try y.withUnsafeMutableBufferPointer { yp in
      guard let out = yp.baseAddress else { return }
      try apply(w, b, to: x, rows: rows, into: out)
    }
    return y
  }

  /// The same into `out` ([rows, w_B] floats).
  static func apply(_ w: Tensor, _ b: Tensor, to x: [Float], rows: Int, into out: UnsafeMutablePointer<Float>) throws {
    guard x.count >= rows * w.shape[1] else {
      throw TechniqueError("kvpredict: \(x.count / Swift.max(1, w.shape[1])) aux rows of width \(w.shape[1]) for \(rows) positions")
    }
    try x.withUnsafeBufferPointer { xp in
      guard let p = xp.baseAddress else { return }
      try apply(w, b, to: p, width: w.shape[1], rows: rows, into: out)
    }
  }

  /// The same from `x` ([rows, width] floats, width = w_A).
  static func apply(_ w: Tensor, _ b: Tensor, to x: UnsafePointer<Float>, width: Int, rows: Int, into out: UnsafeMutablePointer<Float>) throws {
    let outWidth = w.shape[0], inWidth = w.shape[1]
    guard width == inWidth else { throw TechniqueError("kvpredict: aux rows of width \(width) for a map that takes \(inWidth)") }
    let bias = try b.contiguous(), weight = try w.contiguous()
    let bp = bias.readPointer()
    for r in 0..<rows { (out + r * outWidth).update(from: bp, count: outWidth) }
    guard rows > 0 else { return }
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(rows), Int32(outWidth), Int32(inWidth), 1, x, Int32(inWidth),
                weight.readPointer(), Int32(inWidth), 1, out, Int32(outWidth))
  }

  /// KV prediction of a prompt for `base`: the aux on tokens 0..<T−1, the maps, the predicted keys rotated at
  /// positions 0..<T−1 and written into a new base cache (room: free positions after the prompt), and the base on
  /// the last token.
  public func predict(_ base: LlamaModel, _ prompt: [Int], room: Int) throws -> PredictedPrefill {
    guard !prompt.isEmpty else { throw TechniqueError("kvpredict: the prompt is empty") }
    guard prompt.count <= Swift.min(base.config.contextLength, aux.config.contextLength) else {
      throw TechniqueError("kvpredict: \(prompt.count) tokens exceed the context (base \(base.config.contextLength), aux \(aux.config.contextLength))")
    }
    if let bad = prompt.first(where: { $0 < 0 || $0 >= base.config.vocabularySize }) {
      throw TechniqueError("kvpredict: token id \(bad) is outside the vocabulary 0..<\(base.config.vocabularySize)")
    }
    let maps = try maps(for: base)
    let started = DispatchTime.now().uptimeNanoseconds
    func seconds(since t: UInt64) -> Double { Double(DispatchTime.now().uptimeNanoseconds - t) / 1e9 }
    let n = prompt.count - 1
    let cache = try base.makeCache(capacity: prompt.count + room)
    var result = PredictedPrefill(cache: cache, logits: [], firstToken: 0)
    if n > 0 {
      // The maps run inside the aux's forward, as soon as each aux layer has its keys and values (no copies, the
      // rows still in cache), writing straight into the base's cache rows; the keys are then rotated there.
      let angles = base.rotaryAngles(rows: n, start: 0)
      let targets = Dictionary(grouping: maps.layerMap.indices, by: { maps.layerMap[$0] })
      var mapNanoseconds: UInt64 = 0
      var hooks = ForwardHooks()
      hooks.preRopeKeysValues = { layer, k, v, rows, width in
        let mapStart = DispatchTime.now().uptimeNanoseconds
        defer { mapNanoseconds += DispatchTime.now().uptimeNanoseconds - mapStart }
        for i in targets[layer] ?? [] {
          try cache.withRows(layer: i, rows: rows, limit: base.config.contextLength) { keys, values in
            try KVPredict.apply(maps.keyWeights[i], maps.keyBiases[i], to: k, width: width, rows: rows, into: keys)
            try KVPredict.apply(maps.valueWeights[i], maps.valueBiases[i], to: v, width: width, rows: rows, into: values)
            base.rotateKeys(keys, heads: base.config.kvHeadCounts[i], angles: angles)
          }
        }
      }
      _ = try aux.forward(Array(prompt[0..<n]), cache: try aux.makeCache(capacity: n), logits: false, hooks: hooks)
      auxCalls += 1
      try cache.setCount(n)
      result.mapSeconds = Double(mapNanoseconds) / 1e9
      result.auxSeconds = seconds(since: started) - result.mapSeconds
      result.auxCalls = 1
    }
    let baseStart = DispatchTime.now().uptimeNanoseconds
    result.logits = try base.forward([prompt[n]], cache: cache)
    result.baseSeconds = seconds(since: baseStart)
    result.firstToken = Sampler.argmax(result.logits)
    result.ttft = seconds(since: started)
    result.auxTokens = n
    result.baseTokens = 1
    result.flops = flops(base, promptTokens: prompt.count, maps: maps)
    result.baseFlops = KVPredict.prefillFlops(base, promptTokens: prompt.count)
    return result
  }

  /// FLOPs (2 × MACs) of the decoder layers' matrices for one token: the paper's accounting (2 · parameters).
  public static func layerFlopsPerToken(_ m: LlamaModel) -> Int {
    2 * m.config.tokenMACs(length: 1).layers.reduce(0) { $0 + $1.projections + $1.ffn }
  }

  /// A plain prefill of `promptTokens`: the layers for every token and the output head once.
  public static func prefillFlops(_ m: LlamaModel, promptTokens: Int) -> Int {
    promptTokens * layerFlopsPerToken(m) + 2 * m.config.tokenMACs(length: 1).head
  }

  /// KV prediction's prefill: the aux's layers and the maps for T−1 tokens (no aux head), the base for one token.
  public func flops(_ base: LlamaModel, promptTokens: Int, maps: Maps) -> Int {
    let n = promptTokens - 1
    return n * (KVPredict.layerFlopsPerToken(aux) + 2 * maps.macsPerToken) + KVPredict.prefillFlops(base, promptTokens: 1)
  }

  // MARK: fit

  /// Ridge least squares of every map on cache pairs of `fitTokens` tokens of the text (windows of 256 tokens):
  /// W, b minimise Σ‖[x, 1]·[W, b]ᵀ − y‖² + λ‖[W, b]‖², λ = ridge · mean diagonal of XᵀX. The aux is not changed.
  public func fit(model: TechniqueArgument, data: TechniqueArgument) throws -> any Technique {
    guard case .object(let o) = model, let base = o as? LlamaModel else {
      throw TechniqueError("fit: kvpredict fits its maps for a base model: fit(base, text, kvp)")
    }
    guard case .string(let text) = data else { throw TechniqueError("fit: kvpredict fits on text: fit(base, text, kvp)") }
    guard let tokenizer = base.tokenizer else { throw TechniqueError("fit: the base model has no tokenizer") }
    let tokens = Array(tokenizer.encode(text, parseSpecial: false, addBOS: false).prefix(fitTokens))
    guard tokens.count >= 2 else { throw TechniqueError("fit: kvpredict needs at least 2 tokens of text, got \(tokens.count)") }
    return try fitted(base, tokens: tokens)
  }

  /// The value with maps fitted on `tokens` (a new value; this one is unchanged).
  public func fitted(_ base: LlamaModel, tokens: [Int]) throws -> KVPredict {
    let current = try maps(for: base)
    let map = current.layerMap
    let auxWidths = aux.config.kvHeadCounts.map { $0 * aux.config.headDimension }
    let baseWidths = base.config.kvHeadCounts.map { $0 * base.config.headDimension }
    let used = Array(Set(map)).sorted()
    // Gram matrices [x, 1]ᵀ[x, 1] per aux layer (keys, values) and cross products [x, 1]ᵀ y per base layer.
    var gramK: [Int: [Double]] = [:], gramV: [Int: [Double]] = [:]
    for j in used { gramK[j] = [Double](repeating: 0, count: (auxWidths[j] + 1) * (auxWidths[j] + 1)); gramV[j] = gramK[j] }
    var crossK = map.indices.map { i in [Double](repeating: 0, count: (auxWidths[map[i]] + 1) * baseWidths[i]) }
    var crossV = crossK
    for start in Swift.stride(from: 0, to: tokens.count, by: 256) {
      let window = tokens[start..<Swift.min(tokens.count, start + 256)]
      let rows = window.count
      let auxKV = try auxKeysValues(window)
      var baseKV = [(keys: [Float], values: [Float])](repeating: ([], []), count: base.config.layerCount)
      var hooks = ForwardHooks()
      hooks.preRopeKeysValues = { layer, k, v, r, width in
        baseKV[layer] = (Array(UnsafeBufferPointer(start: k, count: r * width)), Array(UnsafeBufferPointer(start: v, count: r * width)))
      }
      _ = try base.forward(Array(window), cache: try base.makeCache(capacity: rows), logits: false, hooks: hooks)
      var augmented: [Int: (keys: [Double], values: [Double])] = [:]
      for j in used {
        let w = auxWidths[j]
        func widen(_ x: [Float]) -> [Double] {
          var out = [Double](repeating: 1, count: rows * (w + 1))
          for r in 0..<rows { for c in 0..<w { out[r * (w + 1) + c] = Double(x[r * w + c]) } }
          return out
        }
        let xk = widen(auxKV[j].keys), xv = widen(auxKV[j].values)
        augmented[j] = (xk, xv)
        KVPredict.addTransposeProduct(xk, xk, rows: rows, left: w + 1, right: w + 1, into: &gramK[j, default: []])
        KVPredict.addTransposeProduct(xv, xv, rows: rows, left: w + 1, right: w + 1, into: &gramV[j, default: []])
      }
      for (i, j) in map.enumerated() {
        guard let x = augmented[j] else { continue }
        KVPredict.addTransposeProduct(x.keys, baseKV[i].keys.map(Double.init), rows: rows, left: auxWidths[j] + 1, right: baseWidths[i], into: &crossK[i])
        KVPredict.addTransposeProduct(x.values, baseKV[i].values.map(Double.init), rows: rows, left: auxWidths[j] + 1, right: baseWidths[i], into: &crossV[i])
      }
      try Cancellation.check("fit")
    }
    var out = current
    for (i, j) in map.enumerated() {
      let n = auxWidths[j] + 1, m = baseWidths[i]
      for (gram, cross, keys) in [(gramK[j] ?? [], crossK[i], true), (gramV[j] ?? [], crossV[i], false)] {
        let solution = try KVPredict.ridgeSolve(gram, cross, n: n, m: m, ridge: ridge)     // [n, m]: rows of Wᵀ, then b
        var w = [Float](repeating: 0, count: m * (n - 1)), b = [Float](repeating: 0, count: m)
        for r in 0..<m {
          for c in 0..<(n - 1) { w[r * (n - 1) + c] = Float(solution[c * m + r]) }
          b[r] = Float(solution[(n - 1) * m + r])
        }
        if keys {
          out.keyWeights[i] = try Tensor(w, shape: [m, n - 1]); out.keyBiases[i] = try Tensor(b, shape: [m])
        } else {
          out.valueWeights[i] = try Tensor(w, shape: [m, n - 1]); out.valueBiases[i] = try Tensor(b, shape: [m])
        }
      }
    }
    return try sibling(maps: out, state: "fitted")
  }

  /// out [left, right] += aᵀ [left, rows] · b [rows, right] (a, b row-major [rows, left] and [rows, right]).
  static func addTransposeProduct(_ a: [Double], _ b: [Double], rows: Int, left: Int, right: Int, into out: inout [Double]) {
    a.withUnsafeBufferPointer { ap in
      b.withUnsafeBufferPointer { bp in
        out.withUnsafeMutableBufferPointer { op in
          cblas_dgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(left), Int32(right), Int32(rows), 1, ap.baseAddress, Int32(left),
                      bp.baseAddress, Int32(right), 1, op.baseAddress, Int32(right))
        }
      }
    }
  }

  /// Solves (G + λI)·X = C for X [n, m] by Cholesky, G [n, n] symmetric positive semi-definite, λ = ridge ·
  /// trace(G)/n (at least 1e-8 so that a constant column still solves).
  static func ridgeSolve(_ gram: [Double], _ cross: [Double], n: Int, m: Int, ridge: Double) throws -> [Double] {
    var a = gram
    let trace = (0..<n).reduce(0.0) { $0 + gram[$1 * n + $1] }
    let lambda = Swift.max(1e-8, ridge * trace / Double(n))
    for i in 0..<n { a[i * n + i] += lambda }
    // Cholesky a = L·Lᵀ in place (lower triangle).
    for j in 0..<n {
      var d = a[j * n + j]
      for k in 0..<j { d -= a[j * n + k] * a[j * n + k] }
      guard d > 0, d.isFinite else { throw TechniqueError("fit: the cache pairs are degenerate (the ridge system is not positive definite)") }
      let l = d.squareRoot()
      a[j * n + j] = l
      for i in (j + 1)..<Swift.max(j + 1, n) {
        var s = a[i * n + j]
        for k in 0..<j { s -= a[i * n + k] * a[j * n + k] }
        a[i * n + j] = s / l
      }
    }
    var x = cross
    for col in 0..<m {
      for i in 0..<n {        // L·y = c
        var s = x[i * m + col]
        for k in 0..<i { s -= a[i * n + k] * x[k * m + col] }
        x[i * m + col] = s / a[i * n + i]
      }
      for i in Swift.stride(from: n - 1, through: 0, by: -1) {     // Lᵀ·x = y
        var s = x[i * m + col]
        for k in (i + 1)..<Swift.max(i + 1, n) { s -= a[k * n + i] * x[k * m + col] }
        x[i * m + col] = s / a[i * n + i]
      }
    }
    return x
  }

  // MARK: consistency

  /// Mean absolute error between predicted and real pre-RoPE keys and values of `base` on `tokens` (one window
  /// per 256 tokens), averaged over layers, keys and values: the consistency term's L1, held out when the tokens are.
  public func consistencyError(_ base: LlamaModel, tokens: [Int]) throws -> Double {
    let maps = try maps(for: base)
    var total = 0.0, count = 0
    for start in Swift.stride(from: 0, to: tokens.count, by: 256) {
      let window = tokens[start..<Swift.min(tokens.count, start + 256)]
      let auxKV = try auxKeysValues(window)
      var hooks = ForwardHooks()
      var errors = 0.0, entries = 0
      hooks.preRopeKeysValues = { layer, k, v, rows, width in
        let j = maps.layerMap[layer]
        let keys = try KVPredict.apply(maps.keyWeights[layer], maps.keyBiases[layer], to: auxKV[j].keys, rows: rows)
        let values = try KVPredict.apply(maps.valueWeights[layer], maps.valueBiases[layer], to: auxKV[j].values, rows: rows)
        for e in 0..<(rows * width) { errors += Double(Swift.abs(keys[e] - k[e])) + Double(Swift.abs(values[e] - v[e])) }
        entries += 2 * rows * width
      }
      _ = try base.forward(Array(window), cache: try base.makeCache(capacity: window.count), logits: false, hooks: hooks)
      total += errors; count += entries
    }
    return total / Double(Swift.max(1, count))
  }

  // MARK: the table

  public var entry: TechniqueEntry { KVPredict.entry }
  public var description: String {
    let map: String
    switch layerMap {
    case .auto: map = "\"auto\""
    case .layers(let l): map = "[" + l.map(String.init).joined(separator: ", ") + "]"
    }
    return "kvpredict(aux: \(aux.name), layerMap: \(map), init: \"\(initial.rawValue)\", lambdaA: \(TechniqueArgument.number(lambdaA)), "
      + "lambdaC: \(lambdaC.map(TechniqueArgument.number) ?? "none"), zLoss: \(TechniqueArgument.number(zLoss)), trainAux: \(trainAux))"
      + (state == "untrained" ? "" : " (\(state))")
  }
  public var fields: [(String, TechniqueArgument)] {
    var f: [(String, TechniqueArgument)] = [("aux", .object(aux)), ("init", .string(initial.rawValue)), ("lambdaA", .float(lambdaA)),
                                            ("lambdaC", lambdaC.map { .float($0) } ?? .none), ("zLoss", .float(zLoss)),
                                            ("trainAux", .bool(trainAux)), ("state", .string(state)), ("auxCalls", .int(auxCalls))]
    if let maps {
      f.append(("layerMap", .list(maps.layerMap.map { .int($0) })))
      f.append(("mapParameters", .int(maps.parameterCount)))
    } else if case .layers(let l) = layerMap {
      f.append(("layerMap", .list(l.map { .int($0) })))
    } else {
      f.append(("layerMap", .string("auto")))
    }
    return f
  }
  /// It holds a model, which a notebook keeps by itself.
  public func saved() throws -> [UInt8]? { nil }

  public static let entry = TechniqueEntry(
    name: "kvpredict", roles: [.prefillStrategy, .fittedAnalyser, .trainingMethod],
    parameters: [TechniqueParameter(required: "aux", "the auxiliary model (same vocabulary), e.g. compress(base, droplayers(keep: 0.5))"),
                 TechniqueParameter("layerMap", .string("auto"), "\"auto\" or one aux layer per base layer"),
                 TechniqueParameter("init", .string("random"), "the maps before fit or train: \"random\" or \"identity\""),
                 TechniqueParameter("lambdaA", .float(1), "weight of the aux's own cross-entropy in train"),
                 TechniqueParameter("lambdaC", .none, "weight of the consistency (L1) term in train; none: 1/n_B"),
                 TechniqueParameter("zLoss", .float(1e-4), "z-loss weight on both logit sets in train"),
                 TechniqueParameter("trainAux", .bool(true), "whether train updates the aux (else the maps only)"),
                 TechniqueParameter("fitTokens", .int(20_000), "tokens of cache pairs fit collects"),
                 TechniqueParameter("ridge", .float(1e-3), "ridge strength of fit, relative to the mean diagonal of XᵀX"),
                 TechniqueParameter("seed", .int(0), "seed of the random maps")],
    doc: "KV Prediction: the aux model runs all but the last prompt token, an affine map per base layer turns its keys and values (before RoPE) into the base's, and the base makes the first token in one step attending to the predicted cache, then decodes alone. prefill(base, p, kvp) and generate take it; fit(base, text, kvp) fits the maps by ridge least squares; train(base, text, kvp, recipe) trains the aux and maps through the frozen base (three-term loss). The cache value reports flops, baseFlops, auxCalls and baseTokens.",
    example: "let kvp = kvpredict(aux: compress(m, droplayers(keep: 0.5)))",
    make: { a in
      let map: LayerMap
      switch a["layerMap"] {
      case .string("auto"): map = .auto
      case .list(let items):
        map = .layers(try items.map { v -> Int in
          guard case .int(let i) = v else { throw TechniqueError("kvpredict: layerMap holds aux layer numbers, got \(v.typeName)") }
          return i
        })
      default: throw TechniqueError("kvpredict: layerMap must be \"auto\" or a list of aux layers, got \(a["layerMap"].typeName)")
      }
      let initName = try a.string("init")
      guard let initial = Initial(rawValue: initName) else { throw TechniqueError("kvpredict: init must be \"random\" or \"identity\", got \"\(initName)\"") }
      let lambdaC: Double?
      if case .none = a["lambdaC"] { lambdaC = nil } else { lambdaC = try a.double("lambdaC") }
      return try KVPredict(aux: try a.object("aux", LlamaModel.self, "a language model"), layerMap: map, initial: initial,
                           lambdaA: try a.double("lambdaA"), lambdaC: lambdaC, zLoss: try a.double("zLoss"), trainAux: try a.bool("trainAux"),
                           fitTokens: try a.int("fitTokens"), ridge: try a.double("ridge"), seed: try a.int("seed"))
    },
    decode: { _ in throw TechniqueError("load: a kvpredict(...) value holds a model and is not saved by itself") })
}

/// What KV prediction's prefill gives: the base's cache (T−1 predicted rows and the last token's own), the first
/// token's logits, timings and counters.
public struct PredictedPrefill {
  public var cache: KVCache, logits: [Float], firstToken: Int
  /// Seconds in all (time to first token), in the aux, in the maps (with rotation and cache writes), in the base.
  public var ttft = 0.0, auxSeconds = 0.0, mapSeconds = 0.0, baseSeconds = 0.0
  /// FLOPs of this prefill and of a plain base prefill of the same prompt (KVPredict.flops, prefillFlops).
  public var flops = 0, baseFlops = 0
  public var auxCalls = 0, auxTokens = 0, baseTokens = 0
}

