// Training KV prediction (the paper's step): the aux runs the whole window, the maps predict every base layer's keys
// and values from its cache, and the frozen base runs the window attending only to the predicted keys and values
// (its own key and value projections unused). Loss = CE(base) + λA·CE(aux) + λC·Σ_layers L1(predicted, real), z-loss
// on both logit sets; the real keys and values come from a plain base forward. Gradients reach the aux and the maps
// through the base; the base's weights are never written.

import CBLAS
import Foundation
import LatheModels
import LatheNN
import LatheTensor

extension KVPredict {
  /// The maps as trainable variables, and back.
  struct MapVariables {
    var keyWeights: [Variable], keyBiases: [Variable], valueWeights: [Variable], valueBiases: [Variable]
    init(_ maps: Maps) throws {
      func v(_ t: Tensor, _ name: String) throws -> Variable { Variable(try t.copied(as: .f32), requiresGrad: true, name: name) }
      keyWeights = try maps.keyWeights.enumerated().map { try v($1, "kvp.\($0).k.weight") }
      keyBiases = try maps.keyBiases.enumerated().map { try v($1, "kvp.\($0).k.bias") }
      valueWeights = try maps.valueWeights.enumerated().map { try v($1, "kvp.\($0).v.weight") }
      valueBiases = try maps.valueBiases.enumerated().map { try v($1, "kvp.\($0).v.bias") }
    }
    var all: [Variable] { keyWeights + keyBiases + valueWeights + valueBiases }
    func write(into maps: inout Maps) throws {
      maps.keyWeights = try keyWeights.map { try $0.value.copied(as: .f32) }
      maps.keyBiases = try keyBiases.map { try $0.value.copied(as: .f32) }
      maps.valueWeights = try valueWeights.map { try $0.value.copied(as: .f32) }
      maps.valueBiases = try valueBiases.map { try $0.value.copied(as: .f32) }
    }
  }

  /// The consistency term: the sum over layers of the mean absolute error of keys and of values, each mean over the
  /// (batch, position, width) entries where `valid` ([B, T], 1 for a real token) is 1 (all of them when nil).
  ///
  ///     let lc = try KVPredict.consistencyLoss(predicted, targets, valid: nil)      // 0 when predicted == targets
  public static func consistencyLoss(_ predicted: [(keys: Variable, values: Variable)], _ targets: [(keys: Tensor, values: Tensor)],
                                     valid: Tensor?) throws -> Variable {
    guard predicted.count == targets.count, !predicted.isEmpty else {
      throw TensorError.invalidArgument(op: "kvpredict consistency", reason: "\(predicted.count) predicted layers for \(targets.count) targets")
    }
    var total: Variable? = nil
    for (p, t) in zip(predicted, targets) {
      for (x, y) in [(p.keys, t.keys), (p.values, t.values)] {
        guard x.shape == y.shape, x.shape.count >= 2 else { throw TensorError.shapeMismatch(op: "kvpredict consistency", lhs: x.shape, rhs: y.shape) }
        var error = try x.subtract(Variable(y)).unary(.abs)            // [B, T, width…]
        let b = x.shape[0], tokens = x.shape[1], width = x.value.count / Swift.max(1, b * tokens)
        error = try error.reshaped(to: [b, tokens, width])
        var entries = Double(b * tokens * width)
        if let valid {
          guard valid.shape == [b, tokens] else { throw TensorError.shapeMismatch(op: "kvpredict consistency mask", lhs: valid.shape, rhs: [b, tokens]) }
          let mask = try valid.reshaped(to: [b, tokens, 1])
          error = try error.multiply(Variable(mask))
          entries = Double(try valid.contiguous().scalars.reduce(0) { $0 + ($1 != 0 ? 1 : 0) }) * Double(width)
        }
        let term = try error.sum().scaled(by: Float(1 / Swift.max(1, entries)))
        total = try total.map { try $0.add(term) } ?? term
      }
    }
    guard let total else { throw TensorError.invalidArgument(op: "kvpredict consistency", reason: "no layers") }
    return total
  }

  /// The last step's terms, for the run record.
  public struct TrainingTerms {
    public var base: Float = 0, aux: Float = 0, consistency: Float = 0
  }

  /// One training run: `recipe.steps` optimiser steps (default one pass over the windows) of `recipe.batch` windows
  /// of `recipe.sequence` + 1 tokens, in a seeded order. Updates the aux (when trainAux) and the maps in place; the
  /// base is read only.
  public func train(_ base: LlamaModel, tokens: [Int], recipe: Recipe,
                    onStep: (LanguageModelStep, TrainingTerms) throws -> Void = { _, _ in }) throws -> TrainRecord {
    let seq = recipe.sequence, batch = recipe.batch
    guard seq > 1, batch > 0 else { throw TechniqueError("train: kvpredict needs seq >= 2 and batch >= 1, got \(seq), \(batch)") }
    guard seq <= Swift.min(base.config.contextLength, aux.config.contextLength) else {
      throw TechniqueError("train: seq \(seq) is more than the models' context")
    }
    if let bad = tokens.first(where: { $0 < 0 || $0 >= base.config.vocabularySize }) {
      throw TechniqueError("train: token id \(bad) is outside the vocabulary 0..<\(base.config.vocabularySize)")
    }
    let starts = LanguageModelTrainer.windowStarts(tokenCount: tokens.count, sequence: seq)
    guard !starts.isEmpty else { throw TechniqueError("train: the text has \(tokens.count) tokens, too few for one window of seq \(seq) + 1") }
    let total = recipe.steps ?? Swift.max(1, recipe.epochs * starts.count / batch)
    var current = try maps(for: base)
    let map = current.layerMap
    let mapVariables = try MapVariables(current)
    let baseDecoder = try TrainableDecoder(model: base, sharingWeights: true)
    for p in baseDecoder.parameters { p.frozen = true }
    let auxDecoder = try TrainableDecoder(model: aux)
    if !trainAux { for p in auxDecoder.parameters { p.frozen = true } }
    let parameters = (trainAux ? auxDecoder.parameters : []) + mapVariables.all
    let optimizer = recipe.makeOptimizer()
    let vocab = base.config.vocabularySize, hd = base.config.headDimension
    let lambdaC = Float(self.lambdaC ?? 1 / Double(base.config.layerCount))
    BLASThreads.set(ThreadPool.shared.threadCount)
    var record = TrainRecord()
    var windowOrder = WindowOrder(starts: starts, seed: recipe.seed)
    let started = DispatchTime.now().uptimeNanoseconds
    for step in 0..<total {
      let stepStart = DispatchTime.now().uptimeNanoseconds
      Memory.resetPeakResident()
      var windows: [Int] = []
      for _ in 0..<batch { windows.append(windowOrder.next()) }
      var ids = [Float](), targets = [Int]()
      for s in windows { for i in 0..<seq { ids.append(Float(tokens[s + i])); targets.append(tokens[s + i + 1]) } }
      let input = try Tensor(ids, shape: [batch, seq])
      let (terms, loss) = try stepLoss(base: base, baseDecoder: baseDecoder, auxDecoder: auxDecoder, maps: mapVariables, map: map,
                                       input: input, windows: windows.map { Array(tokens[$0..<($0 + seq)]) }, targets: targets,
                                       lambdaC: lambdaC, vocab: vocab, headDimension: hd)
      try loss.backward()
      try Cancellation.check("train")
      if let clip = recipe.clipNorm { try GradientClipping.clip(parameters, maxNorm: clip) }
      let lr = recipe.schedule.rate(base: recipe.lr, step: step, total: total)
      try Autograd.noGrad { try optimizer.step(parameters, lr: lr) }
      for p in parameters + baseDecoder.parameters + auxDecoder.parameters { p.grad = nil }
      let value = loss.value.scalars.first ?? .nan
      record.losses.append(value)
      record.steps += 1
      record.examples += batch * seq
      let seconds = Double(DispatchTime.now().uptimeNanoseconds - stepStart) / 1e9
      try onStep(LanguageModelStep(step: step + 1, total: total, loss: value, tokensPerSecond: Double(batch * seq) / Swift.max(seconds, 1e-9),
                                   learningRate: lr, peakResidentBytes: Memory.peakResident()), terms)
    }
    record.seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
    try mapVariables.write(into: &current)
    maps = current
    if trainAux { try auxDecoder.write(into: aux) }
    state = "trained"
    return record
  }

  /// The three-term loss of one batch, and its terms.
  func stepLoss(base: LlamaModel, baseDecoder: TrainableDecoder, auxDecoder: TrainableDecoder, maps: MapVariables, map: [Int],
                input: Tensor, windows: [[Int]], targets: [Int], lambdaC: Float, vocab: Int, headDimension hd: Int) throws -> (TrainingTerms, Variable) {
    let batch = input.shape[0], seq = input.shape[1]
    // Targets: the base's own keys and values before RoPE, from the inference forward.
    var real = [(keys: [Float], values: [Float])](repeating: ([], []), count: base.config.layerCount)
    for window in windows {
      var hooks = ForwardHooks()
      hooks.preRopeKeysValues = { layer, k, v, rows, width in
        real[layer].keys += UnsafeBufferPointer(start: k, count: rows * width)
        real[layer].values += UnsafeBufferPointer(start: v, count: rows * width)
      }
      _ = try base.forward(window, cache: try base.makeCache(capacity: window.count), logits: false, hooks: hooks)
    }
    var auxKV = [(Variable, Variable)?](repeating: nil, count: aux.config.layerCount)
    let auxRun = { try auxDecoder.logits(input, route: TrainableDecoder.KeyValueRoute(observe: { l, k, v in auxKV[l] = (k, v) })) }
    let auxLogits = try trainAux ? auxRun() : Autograd.noGrad(auxRun)
    var predicted: [(keys: Variable, values: Variable)] = []
    for (i, j) in map.enumerated() {
      guard let (k, v) = auxKV[j] else { throw TechniqueError("train: the aux gave no keys for layer \(j)") }
      let width = k.value.count / Swift.max(1, batch * seq)
      let kvB = base.config.kvHeadCounts[i]
      let keys = try k.reshaped(to: [batch, seq, width]).linear(maps.keyWeights[i]).add(maps.keyBiases[i]).reshaped(to: [batch, seq, kvB, hd])
      let values = try v.reshaped(to: [batch, seq, width]).linear(maps.valueWeights[i]).add(maps.valueBiases[i]).reshaped(to: [batch, seq, kvB, hd])
      predicted.append((keys, values))
    }
    let baseLogits = try baseDecoder.logits(input, route: TrainableDecoder.KeyValueRoute(replace: { l in predicted[l] }))
    let lossB = try Variable.tokenCrossEntropy(baseLogits.reshaped(to: [batch * seq, vocab]), targets: targets, zLoss: Float(zLoss))
    let lossA = try Variable.tokenCrossEntropy(auxLogits.reshaped(to: [batch * seq, vocab]), targets: targets, zLoss: Float(zLoss))
    let targetsKV = try real.enumerated().map { i, r -> (keys: Tensor, values: Tensor) in
      let shape = [batch, seq, base.config.kvHeadCounts[i], hd]
      return (try Tensor(r.keys, shape: shape), try Tensor(r.values, shape: shape))
    }
    let lossC = try KVPredict.consistencyLoss(predicted, targetsKV, valid: nil)
    var loss = try lossB.add(lossC.scaled(by: lambdaC))
    if lambdaA > 0 && trainAux { loss = try loss.add(lossA.scaled(by: Float(lambdaA))) }
    let terms = TrainingTerms(base: lossB.value.scalars.first ?? .nan, aux: lossA.value.scalars.first ?? .nan,
                              consistency: lossC.value.scalars.first ?? .nan)
    return (terms, loss)
  }
}
