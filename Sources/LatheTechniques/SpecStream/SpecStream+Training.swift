// Training Speculative Streaming (the paper's Eq. 5) on prompt-and-answer pairs: the layers below N − N_s are frozen
// and run once per example (their output cached); each step runs the top N_s layers on (1 + γ)·T rows, the main rows
// and γ stream rows per position whose stream targets fall in the answer, under the stream mask, and the loss is
// α_0·CE(next token) + Σ_j α_j·CE(stream j: the token 1 + j ahead), each a mean over the answer's targets. Trained:
// LoRA adapters on every matrix of the top N_s layers, the stream embeddings P_j, and the pruning adapter o_θ (its
// early-exit logits H(o_θ(x)) on the cached hidden states, next-token loss). The model given is not written: the
// run gives the tuned model (adapters merged) and the value keeps the embeddings and the pruner.

import Foundation
import LatheModels
import LatheNN
import LatheTensor

extension SpecStream {
  /// The pruning adapter o_θ(x) = x + (x·Aᵀ)·Bᵀ, A [θ, d], B [d, θ]: early-exit logits H(o_θ(x)) at the input of
  /// the stream layers.
  public struct Pruner: Sendable {
    public var a: [Float], b: [Float]
    public let rank: Int, dimension: Int
  }

  /// One step's terms: the next-token loss, each stream's, the pruner's.
  public struct TrainingTerms: Sendable {
    public var next: Float = .nan, streams: [Float] = [], prune: Float = .nan
  }

  /// Held-out scores: each group's mean loss and argmax accuracy over the answer targets (next token first, then
  /// stream 1..γ), and the pruner's.
  public struct Evaluation: Sendable {
    public var losses: [Double], accuracies: [Double], pruneAccuracy: Double
  }

  /// Everything a step needs: the decoder (frozen but for the adapters), the trained variables, the cached inputs.
  public final class Session {
    public let decoder: TrainableDecoder
    public let embeddings: Variable
    public let pruneA: Variable?, pruneB: Variable?
    let spec: SpecStream
    let first: Int, γ: Int
    /// The hidden states entering layer `first` of each example, [T, d].
    public private(set) var inputs: [Tensor] = []
    /// The root mean square of those states: P_j = scale · embeddings[j].
    public private(set) var embeddingScale: Float = 1
    public let examples: [AnswerExample]

    /// The decoder of `model` with adapters on the top N_s layers, and every example's cached input to them.
    public init(_ spec: SpecStream, model: LlamaModel, examples: [AnswerExample], seed: UInt64 = 0, onExample: () throws -> Void = {}) throws {
      let n = model.config.layerCount, d = model.config.dimension
      guard spec.msaLayers < n else {
        throw TechniqueError("train: specstream's msaLayers \(spec.msaLayers) leaves no frozen layer below them (the model has \(n))")
      }
      guard !examples.isEmpty else { throw TechniqueError("train: specstream needs at least one example") }
      for e in examples { try e.check(vocabulary: model.config.vocabularySize, context: model.config.contextLength, op: "train") }
      self.spec = spec; self.examples = examples
      first = n - spec.msaLayers; γ = spec.streams
      decoder = try TrainableDecoder(model: model, sharingWeights: true)
      for p in decoder.parameters { p.frozen = true }
      for l in first..<n {
        for (name, w) in decoder.blocks[l].matrices {
          let key = "blk.\(l).\(name)", out = w.shape[0], inner = w.shape[1]
          let bound = 1 / Float(inner).squareRoot()
          let a = try Tensor.rand([spec.loraRank, inner], seed: seed &+ UInt64(l * 16 + (LlamaLayer.matrixNames.firstIndex(of: name) ?? 0)))
            .binary(.multiply, scalar: 2 * bound).binary(.subtract, scalar: bound)
          decoder.adapters[key] = .init(a: Variable(a, requiresGrad: true, name: key + ".lora_a"),
                                        b: Variable(try Tensor.zeros([out, spec.loraRank]), requiresGrad: true, name: key + ".lora_b"),
                                        scale: 2)
        }
      }
      // The frozen layers run once per example (inference kernels), their output kept.
      var cached: [Tensor] = [], squares = 0.0, entries = 0
      for e in examples {
        let cache = try model.makeCache(capacity: e.tokens.count)
        var hooks = ForwardHooks()
        hooks.layers = Array(0..<first)
        var hidden: Tensor? = nil
        let last = first - 1
        hooks.observe = { a in
          guard a.layer == last, a.point == .layerOutput else { return }
          hidden = try Tensor(Array(UnsafeBufferPointer(start: a.values, count: a.rows * a.width)), shape: [a.rows, a.width])
        }
        _ = try model.forward(e.tokens, cache: cache, logits: false, hooks: hooks)
        guard let hidden else { throw TechniqueError("train: specstream saw no hidden states at layer \(last)") }
        cached.append(hidden)
        for v in try hidden.contiguous().scalars { squares += Double(v) * Double(v) }
        entries += hidden.count
        try onExample()
      }
      inputs = cached
      let scale = Swift.max(Float((squares / Double(Swift.max(1, entries))).squareRoot()), 1e-6)
      embeddingScale = scale
      // The trained variable is P / scale (scale: the RMS of the hidden states the streams start from), so that an
      // optimiser step moves P in proportion to those states, whatever their size.
      let start = try spec.embeddings.map { try Tensor($0.map { $0 / scale }, shape: [spec.streams, d]) }
        ?? Tensor.zeros([spec.streams, d])
      guard start.shape == [spec.streams, d] else { throw TechniqueError("train: specstream's stream embeddings do not fit dimension \(d)") }
      embeddings = Variable(try start.copied(as: .f32), requiresGrad: true, name: "specstream.embeddings")
      if spec.pruneRank > 0 {
        let bound = 1 / Float(d).squareRoot(), θ = spec.pruneRank
        let a = try spec.pruner.map { try Tensor($0.a, shape: [θ, d]) }
          ?? Tensor.rand([θ, d], seed: seed &+ 0x5052_554E).binary(.multiply, scalar: 2 * bound).binary(.subtract, scalar: bound)
        let b = try spec.pruner.map { try Tensor($0.b, shape: [d, θ]) } ?? Tensor.zeros([d, θ])
        pruneA = Variable(try a.copied(as: .f32), requiresGrad: true, name: "specstream.prune_a")
        pruneB = Variable(try b.copied(as: .f32), requiresGrad: true, name: "specstream.prune_b")
      } else {
        pruneA = nil; pruneB = nil
      }
    }

    /// The trained variables: adapters, stream embeddings, pruner.
    public var parameters: [Variable] { decoder.adapterParameters + [embeddings] + [pruneA, pruneB].compactMap { $0 } }

    /// The weight of stream j's loss (1-based): alpha[j] when the list has one per stream, else alpha[1].
    func weight(stream j: Int) -> Float {
      let alpha = spec.alpha
      if alpha.count == 1 + γ { return Float(alpha[j]) }
      return alpha.count > 1 ? Float(alpha[1]) : 0
    }

    /// The final hidden states (before the output norm) of example `i`'s rows through the stream layers, [1, R, d]:
    /// its T main rows, then γ stream rows for each position of `streamsAt` in (position, stream) order.
    public func hidden(example i: Int, streamsAt positions: [Int]) throws -> Variable {
      let x0 = inputs[i], t = x0.shape[0], d = x0.shape[1], s = positions.count, rows = t + s * γ
      var x = Variable(try x0.reshaped(to: [1, t, d]))
      if s > 0 {
        let base = try x0.gatheredRows(positions.flatMap { Array(repeating: $0, count: γ) }).reshaped(to: [1, s * γ, d])
        let ids = try Tensor((0..<(s * γ)).map { Float($0 % γ) }, shape: [1, s * γ])
        x = try Variable.concat([x, Variable(base).add(Variable.embedding(ids, table: embeddings).scaled(by: embeddingScale))], axis: 1)
      }
      let mask = try Tensor(SpecStream.streamMask(mainRows: t, start: 0, streams: γ, rows: positions, sees: { $1 <= $0 }), shape: [rows, rows])
      let rope = Array(0..<t) + positions.flatMap { p in (1...γ).map { p + (spec.streamPosition == "offset" ? $0 : 0) } }
      for l in first..<decoder.config.layerCount {
        try Cancellation.check("train")
        x = try decoder.layer(l, x, mask: mask, keyPadding: nil, causal: false, positions: rope)
      }
      return x
    }

    /// The loss of example `i` and its terms. `streamRows` runs the stream rows even when every α_j is 0 (tests).
    public func loss(example i: Int, streamRows: Bool? = nil) throws -> (Variable, TrainingTerms) {
      let e = examples[i], x0 = inputs[i]
      let tokens = e.tokens, t = tokens.count, d = x0.shape[1]
      let wantStreams = streamRows ?? (1...γ).contains { weight(stream: $0) > 0 }
      var mainRows: [Int] = [], mainTargets: [Int] = []
      for p in 0..<(t - 1) where p + 1 >= e.answerStart { mainRows.append(p); mainTargets.append(tokens[p + 1]) }
      // Positions whose streams have a target in the answer.
      let positions = wantStreams ? (0..<(t - 1)).filter { p in (1...γ).contains { p + 1 + $0 < t && p + 1 + $0 >= e.answerStart } } : []
      let x = try hidden(example: i, streamsAt: positions)
      func crossEntropy(_ h: Variable, rows: [Int], targets: [Int]) throws -> Variable {
        let picked = try h.selected(at: rows.flatMap { r in (r * d)..<(r * d + d) }).reshaped(to: [rows.count, d])
        return try Variable.tokenCrossEntropy(decoder.head(picked), targets: targets)
      }
      var terms = TrainingTerms()
      let next = try crossEntropy(x, rows: mainRows, targets: mainTargets)
      terms.next = next.value.scalars.first ?? .nan
      var total = try next.scaled(by: Float(spec.alpha[0]))
      for j in 1...γ {
        var rowsJ: [Int] = [], targetsJ: [Int] = []
        for (k, p) in positions.enumerated() where p + 1 + j < t && p + 1 + j >= e.answerStart {
          rowsJ.append(t + k * γ + (j - 1)); targetsJ.append(tokens[p + 1 + j])
        }
        guard !rowsJ.isEmpty, weight(stream: j) > 0 || streamRows == true else { terms.streams.append(.nan); continue }
        let term = try crossEntropy(x, rows: rowsJ, targets: targetsJ)
        terms.streams.append(term.value.scalars.first ?? .nan)
        if weight(stream: j) > 0 { total = try total.add(term.scaled(by: weight(stream: j))) }
      }
      if let pruneA, let pruneB {
        let h = Variable(try x0.reshaped(to: [1, t, d]))
        let adapted = try h.add(h.linear(pruneA).linear(pruneB))
        let prune = try crossEntropy(adapted, rows: mainRows, targets: mainTargets)
        terms.prune = prune.value.scalars.first ?? .nan
        total = try total.add(prune)
      }
      return (total, terms)
    }

    /// Mean losses and argmax accuracies over the answer targets of `indices` (no gradients).
    public func evaluate(_ indices: [Int]) throws -> Evaluation {
      var loss = [Double](repeating: 0, count: 1 + γ), right = loss, count = loss
      var pruneRight = 0.0, pruneCount = 0.0
      try Autograd.noGrad {
        for i in indices {
          let e = examples[i], x0 = inputs[i], tokens = e.tokens, t = tokens.count, d = x0.shape[1]
          let positions = Array(0..<(t - 1))
          let x = try hidden(example: i, streamsAt: positions)
          let logits = try decoder.head(x).value.contiguous().scalars
          let vocab = decoder.config.vocabularySize
          func score(_ row: Int, _ target: Int, _ g: Int) {
            let z = Array(logits[(row * vocab)..<((row + 1) * vocab)])
            loss[g] += SpecStream.logSumExp(z) - Double(z[target]); count[g] += 1
            if Sampler.argmax(z) == target { right[g] += 1 }
          }
          for p in positions {
            if p + 1 >= e.answerStart { score(p, tokens[p + 1], 0) }
            for j in 1...γ where p + 1 + j < t && p + 1 + j >= e.answerStart { score(t + p * γ + j - 1, tokens[p + 1 + j], j) }
          }
          if let pruneA, let pruneB {
            let h = Variable(try x0.reshaped(to: [1, t, d]))
            let early = try decoder.head(h.add(h.linear(pruneA).linear(pruneB))).value.contiguous().scalars
            for p in positions where p + 1 >= e.answerStart {
              if Sampler.argmax(Array(early[(p * vocab)..<((p + 1) * vocab)])) == tokens[p + 1] { pruneRight += 1 }
              pruneCount += 1
            }
          }
        }
      }
      return Evaluation(losses: zip(loss, count).map { $1 > 0 ? $0 / $1 : .nan },
                        accuracies: zip(right, count).map { $1 > 0 ? $0 / $1 : .nan },
                        pruneAccuracy: pruneCount > 0 ? pruneRight / pruneCount : .nan)
    }
  }

  /// Trains on `examples`: `recipe.steps` steps (default `recipe.epochs` passes) of `recipe.batch` examples in a
  /// seeded order. Keeps the stream embeddings and the pruner in this value and returns the tuned model (the
  /// adapters merged into the top layers), the run record and the last step's terms.
  public func train(_ model: LlamaModel, examples: [AnswerExample], recipe: Recipe, onCached: () throws -> Void = {},
                    onStep: (LanguageModelStep, TrainingTerms) throws -> Void = { _, _ in }) throws -> (model: LlamaModel, record: TrainRecord) {
    guard recipe.batch >= 1 else { throw TechniqueError("train: specstream needs batch >= 1, got \(recipe.batch)") }
    BLASThreads.set(ThreadPool.shared.threadCount)
    let session = try Session(self, model: model, examples: examples, seed: recipe.seed, onExample: onCached)
    let record = try train(session, recipe: recipe, onStep: onStep)
    let tuned = try session.decoder.runnable(name: model.name + "+specstream")
    return (tuned, record)
  }

  /// The steps of a run on a prepared session; writes the embeddings and the pruner into this value.
  public func train(_ session: Session, recipe: Recipe, onStep: (LanguageModelStep, TrainingTerms) throws -> Void = { _, _ in }) throws -> TrainRecord {
    let count = session.examples.count, batch = recipe.batch
    let total = recipe.steps ?? Swift.max(1, recipe.epochs * count / batch)
    let parameters = session.parameters
    let optimizer = recipe.makeOptimizer()
    var order = WindowOrder(starts: Array(0..<count), seed: recipe.seed)
    var record = TrainRecord()
    let started = DispatchTime.now().uptimeNanoseconds
    for step in 0..<total {
      let stepStart = DispatchTime.now().uptimeNanoseconds
      var value: Float = 0, tokens = 0
      var terms = TrainingTerms()
      for _ in 0..<batch {
        let i = order.next()
        let (loss, t) = try session.loss(example: i)
        try loss.scaled(by: 1 / Float(batch)).backward()
        value += (loss.value.scalars.first ?? .nan) / Float(batch)
        tokens += session.examples[i].tokens.count
        terms = t
      }
      try Cancellation.check("train")
      if let clip = recipe.clipNorm { try GradientClipping.clip(parameters, maxNorm: clip) }
      let lr = recipe.schedule.rate(base: recipe.lr, step: step, total: total)
      try Autograd.noGrad { try optimizer.step(parameters, lr: lr) }
      for p in parameters { p.grad = nil }
      record.losses.append(value)
      record.steps += 1
      record.examples += batch
      let seconds = Double(DispatchTime.now().uptimeNanoseconds - stepStart) / 1e9
      try onStep(LanguageModelStep(step: step + 1, total: total, loss: value, tokensPerSecond: Double(tokens) / Swift.max(seconds, 1e-9),
                                   learningRate: lr, peakResidentBytes: 0), terms)
    }
    record.seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
    embeddings = try session.embeddings.value.contiguous().scalars.map { $0 * session.embeddingScale }
    if let a = session.pruneA, let b = session.pruneB {
      pruner = Pruner(a: try a.value.contiguous().scalars, b: try b.value.contiguous().scalars, rank: pruneRank,
                      dimension: session.decoder.config.dimension)
    }
    state = "trained"
    return record
  }

  /// A copy with another draft width, pruning threshold or stream placement that shares what this one learned
  /// (embeddings, pruner).
  public func variant(topK: Int? = nil, pruneThreshold: Double? = nil, streamsOn: String? = nil) throws -> SpecStream {
    let copy = try SpecStream(streams: streams, msaLayers: msaLayers, topK: topK ?? self.topK, alpha: alpha, pruneRank: pruneRank,
                              pruneThreshold: pruneThreshold ?? self.pruneThreshold, streamInit: streamInit, streamPosition: streamPosition,
                              loraRank: loraRank, streamsOn: streamsOn ?? self.streamsOn)
    copy.embeddings = embeddings; copy.pruner = pruner; copy.state = state
    return copy
  }

  /// The parameters it adds to a model of hidden size d: γ·d stream embeddings and 2·θ·d for the pruning adapter
  /// (the LoRA adapters are the task's fine-tuning, not counted, as in the paper's Table 1).
  public func extraParameters(dimension d: Int) -> Int { streams * d + 2 * pruneRank * d }
}
