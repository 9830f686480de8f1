// medusa(heads:, topK:): Medusa heads (Cai et al., 2024), the baseline Speculative Streaming is measured against.
// Head k reads the model's last hidden state h (after the output norm) and predicts the token 1 + k ahead:
// logits_k = W_k·(h + SiLU(U_k·h)), U_k [d, d] (zero at the start) and W_k [vocab, d] (a copy of the model's output
// projection at the start): d² + d·vocab parameters a head. The draft tree and its verification are the ones
// specstream uses (SpecStream.treeDecode), the heads drafting where the streams would. Trained on the frozen model's
// hidden states over prompt-and-answer pairs (Medusa-1), each head's cross-entropy on the answer's tokens.

import CBLAS
import Foundation
import LatheModels
import LatheNN
import LatheTensor

public final class Medusa: DecodingStrategy {
  public let heads: Int, topK: Int
  /// Per head: U [d, d] and W [vocab, d], row-major; nil until trained.
  public internal(set) var weights: [(u: [Float], w: [Float])]?
  public private(set) var totals = SpecStream.Counters()
  /// The last serial prefill's final hidden state at the prompt's last position.
  var prefillHidden: PrefillRows?

  public init(heads: Int = 4, topK: Int = 3) throws {
    guard (1...8).contains(heads) else { throw TechniqueError("medusa: heads must be 1 to 8, got \(heads)") }
    guard (1...8).contains(topK) else { throw TechniqueError("medusa: topK must be 1 to 8, got \(topK)") }
    self.heads = heads; self.topK = topK
  }

  public var entry: TechniqueEntry { Medusa.entry }
  public var description: String { "medusa(heads: \(heads), topK: \(topK))" }
  public var fields: [(String, TechniqueArgument)] {
    [("heads", .int(heads)), ("topK", .int(topK)), ("state", .string(weights == nil ? "untrained" : "trained"))] + totals.fields
  }
  public func saved() throws -> [UInt8]? { weights == nil ? Array(description.utf8) : nil }

  public static let entry = TechniqueEntry(
    name: "medusa", roles: [.decodingStrategy],
    parameters: [TechniqueParameter("heads", .int(4), "extra heads on the last hidden state; head k drafts the token 1 + k ahead"),
                 TechniqueParameter("topK", .int(3), "k: draft tokens per head, a tree of 1 + k + k^2 + ... nodes")],
    doc: "Medusa heads for generate(m, p, t) once train(m, pairs, t, recipe) has trained them: each head (a residual SiLU block and its own vocabulary projection, d^2 + d*vocab parameters) drafts one more token ahead from the last hidden state, and the same draft tree as specstream is verified in one call, so the text is exactly greedy. The generation reports calls, cr, accepted, meanBeta and treeSizes.",
    example: "medusa(heads: 4, topK: 3)",
    make: { a in try Medusa(heads: try a.int("heads"), topK: try a.int("topK")) },
    decode: { bytes in try Techniques.parse(String(decoding: bytes, as: UTF8.self)) })

  /// A copy with another draft width sharing the trained heads.
  public func variant(topK: Int) throws -> Medusa {
    let copy = try Medusa(heads: heads, topK: topK)
    copy.weights = weights
    return copy
  }

  /// The parameters the heads add to a model: heads·(d² + d·vocab).
  public func extraParameters(dimension d: Int, vocabulary v: Int) -> Int { heads * (d * d + d * v) }

  // MARK: hidden states and heads

  /// `rows` hidden states (before the output norm) through the model's output norm.
  static func normed(_ model: LlamaModel, _ hidden: [Float], rows: Int) throws -> [Float] {
    let d = model.config.dimension, eps = model.config.rmsEpsilon
    let w = try model.outputNorm.contiguous().scalars
    var out = hidden
    for r in 0..<rows {
      var sum: Float = 0
      for c in 0..<d { sum += hidden[r * d + c] * hidden[r * d + c] }
      let scale = 1 / (sum / Float(d) + eps).squareRoot()
      for c in 0..<d { out[r * d + c] = hidden[r * d + c] * scale * w[c] }
    }
    return out
  }

  /// Each head's logits at one normed hidden state h: W_k·(h + SiLU(U_k·h)).
  func draftLogits(_ h: [Float], dimension d: Int, vocabulary v: Int) throws -> [[Float]] {
    guard let weights else { throw TechniqueError("medusa: the heads are not trained; train(m, pairs, medusa(...), recipe) first") }
    return weights.map { head in
      var inner = [Float](repeating: 0, count: d), logits = [Float](repeating: 0, count: v)
      cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(d), Int32(d), 1, head.u, Int32(d), h, 1, 0, &inner, 1)
      for c in 0..<d { let x = inner[c]; inner[c] = h[c] + x / (1 + Foundation.exp(-x)) }
      cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(v), Int32(d), 1, head.w, Int32(d), inner, 1, 0, &logits, 1)
      return logits
    }
  }

  // MARK: decoding

  /// The plain prefill, with the prompt's last final hidden state kept: the decode of this cache drafts its first
  /// tree from it.
  public func serialPrefill(_ model: LlamaModel, _ prompt: [Int], extra: Int) throws -> (cache: KVCache, logits: [Float]) {
    let n = prompt.count, d = model.config.dimension, last = model.config.layerCount - 1
    let cache = try model.makeCache(capacity: model.cacheCapacity(prompt: n, extra: extra))
    var hidden: [Float] = []
    let hooks = ForwardHooks(observe: { a in
      guard a.layer == last, a.point == .layerOutput, a.rows >= 1 else { return }
      hidden = Array(UnsafeBufferPointer(start: a.values + (a.rows - 1) * d, count: d))
    })
    let logits = try model.forward(prompt, cache: cache, hooks: hooks)
    prefillHidden = PrefillRows(cache: cache, count: n, hidden: hidden)
    return (cache, logits)
  }

  public func decode(_ model: LlamaModel, context: [Int], cache: KVCache, logits: [Float]?, maxTokens: Int, sampler: inout Sampler,
                     stop: [String], onToken: (Int, String) throws -> Void) throws -> DecodingResult {
    let d = model.config.dimension, vocab = model.config.vocabularySize
    guard let weights, weights.count == heads, weights.allSatisfy({ $0.u.count == d * d && $0.w.count == vocab * d }) else {
      throw TechniqueError(self.weights == nil ? "medusa: the heads are not trained; train(m, pairs, medusa(...), recipe) first"
                                               : "medusa: the heads were trained for another model shape (d \(d), vocabulary \(vocab))")
    }
    var counters = SpecStream.Counters()
    let last = model.config.layerCount - 1
    var first: [[Float]] = []
    if let h = prefillHidden?.rows(for: cache), h.count == d { first = try draftLogits(try Medusa.normed(model, h, rows: 1), dimension: d, vocabulary: vocab) }
    prefillHidden = nil
    let result = try SpecStream.treeDecode(name: "medusa", model, context: context, cache: cache, logits: logits, maxTokens: maxTokens,
                                           sampler: sampler, stop: stop, levels: heads, topK: topK, rowsPerNode: { _ in 1 },
                                           first: first, override: nil, counters: &counters, onToken: onToken) { tree, _ in
      let n = tree.count, start = cache.count
      var hooks = ForwardHooks(positions: tree.depths.map { start + $0 }, mask: SpecStream.treeMask(tree, start: start), batchedRows: true)
      var hidden: [Float] = []
      hooks.observe = { a in
        guard a.layer == last, a.point == .layerOutput else { return }
        hidden = Array(UnsafeBufferPointer(start: a.values, count: n * d))
      }
      let main = try model.forward(tree.tokens, cache: cache, allLogits: true, hooks: hooks)
      return SpecStream.TreeStep(main: main, survivors: Array(0..<n)) { node in
        try self.draftLogits(try Medusa.normed(model, Array(hidden[(node * d)..<((node + 1) * d)]), rows: 1), dimension: d, vocabulary: vocab)
      }
    }
    totals.add(counters)
    return DecodingResult(generation: result, counters: counters.fields)
  }

  // MARK: training

  /// Trains the heads on `model`'s normed last hidden states over the examples (the model frozen, run once per
  /// example): `recipe.steps` steps (default `recipe.epochs` passes) of `recipe.batch` examples; head k's loss is
  /// the cross-entropy of the token 1 + k ahead at every answer target, the step's loss their sum.
  public func train(_ model: LlamaModel, examples: [AnswerExample], recipe: Recipe, onCached: () throws -> Void = {},
                    onStep: (LanguageModelStep, [Float]) throws -> Void = { _, _ in }) throws -> TrainRecord {
    guard !examples.isEmpty, recipe.batch >= 1 else { throw TechniqueError("train: medusa needs examples and batch >= 1") }
    let d = model.config.dimension, vocab = model.config.vocabularySize, last = model.config.layerCount - 1
    for e in examples { try e.check(vocabulary: vocab, context: model.config.contextLength, op: "train") }
    BLASThreads.set(ThreadPool.shared.threadCount)
    // Normed hidden states of the positions some head has a target for, with each head's target (−1: none).
    var cached: [(hidden: Tensor, targets: [[Int]])] = []
    for e in examples {
      let t = e.tokens.count
      let positions = (0..<(t - 1)).filter { p in (1...heads).contains { p + 1 + $0 < t && p + 1 + $0 >= e.answerStart } }
      var hidden: [Float] = []
      var hooks = ForwardHooks()
      hooks.observe = { a in
        guard a.layer == last, a.point == .layerOutput else { return }
        for p in positions { hidden += UnsafeBufferPointer(start: a.values + p * d, count: d) }
      }
      _ = try model.forward(e.tokens, cache: try model.makeCache(capacity: t), logits: false, hooks: hooks)
      guard !positions.isEmpty else { continue }
      let targets = (1...heads).map { k in positions.map { p in p + 1 + k < t && p + 1 + k >= e.answerStart ? e.tokens[p + 1 + k] : -1 } }
      cached.append((try Tensor(try Medusa.normed(model, hidden, rows: positions.count), shape: [positions.count, d]), targets))
      try onCached()
    }
    guard !cached.isEmpty else { throw TechniqueError("train: medusa: no example has an answer long enough for a head's target") }
    let head = try model.outputWeight ?? model.tokenEmbedding.denseF32()
    let u = try (0..<heads).map { k in Variable(try Tensor.zeros([d, d]), requiresGrad: true, name: "medusa.\(k).u") }
    let w = try (0..<heads).map { k in Variable(try head.copied(as: .f32), requiresGrad: true, name: "medusa.\(k).w") }
    let parameters = u + w
    let optimizer = recipe.makeOptimizer()
    let total = recipe.steps ?? Swift.max(1, recipe.epochs * cached.count / recipe.batch)
    var order = WindowOrder(starts: Array(0..<cached.count), seed: recipe.seed)
    var record = TrainRecord()
    let started = DispatchTime.now().uptimeNanoseconds
    for step in 0..<total {
      let stepStart = DispatchTime.now().uptimeNanoseconds
      let picked = (0..<recipe.batch).map { _ in cached[order.next()] }
      let h = Variable(try Variable.concat(picked.map { Variable($0.hidden) }, axis: 0).value)
      var loss: Variable? = nil, terms: [Float] = []
      for k in 0..<heads {
        let targets = picked.flatMap { $0.targets[k] }
        guard targets.contains(where: { $0 >= 0 }) else { terms.append(.nan); continue }
        let logits = try h.add(h.linear(u[k]).unary(.silu)).linear(w[k])
        let term = try Variable.tokenCrossEntropy(logits, targets: targets)
        terms.append(term.value.scalars.first ?? .nan)
        loss = try loss.map { try $0.add(term) } ?? term
      }
      guard let loss else { continue }
      try loss.backward()
      try Cancellation.check("train")
      if let clip = recipe.clipNorm { try GradientClipping.clip(parameters, maxNorm: clip) }
      let lr = recipe.schedule.rate(base: recipe.lr, step: step, total: total)
      try Autograd.noGrad { try optimizer.step(parameters, lr: lr) }
      for p in parameters { p.grad = nil }
      let value = loss.value.scalars.first ?? .nan
      record.losses.append(value); record.steps += 1; record.examples += recipe.batch
      let seconds = Double(DispatchTime.now().uptimeNanoseconds - stepStart) / 1e9
      try onStep(LanguageModelStep(step: step + 1, total: total, loss: value, tokensPerSecond: Double(h.shape[0]) / Swift.max(seconds, 1e-9),
                                   learningRate: lr), terms)
    }
    record.seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
    weights = try zip(u, w).map { (try $0.value.contiguous().scalars, try $1.value.contiguous().scalars) }
    return record
  }
}
