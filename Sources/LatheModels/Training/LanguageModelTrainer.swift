// Next-token training of a decoder on text: windows of `sequence + 1` tokens cut from the token stream without
// overlap, visited in a seeded order epoch after epoch, `batch` windows a micro-batch and `accumulate` micro-batches
// an optimiser step; mean cross-entropy (plus the recipe's z-loss), changed by training methods in order, then
// clipping, the schedule's rate and the optimiser. Every step reports its loss, tokens per second, rate and the
// process's peak resident memory during the step.

import CBLAS
import Foundation
import LatheNN
import LatheTensor

public struct LanguageModelStep {
  public var step = 0, total = 0
  public var loss: Float = 0
  public var tokensPerSecond = 0.0
  public var learningRate: Float = 0
  /// The process's peak resident set size during the step (VmHWM after resetting it), in bytes; 0 where unknown.
  public var peakResidentBytes = 0
  public init(step: Int = 0, total: Int = 0, loss: Float = 0, tokensPerSecond: Double = 0, learningRate: Float = 0, peakResidentBytes: Int = 0) {
    self.step = step; self.total = total; self.loss = loss; self.tokensPerSecond = tokensPerSecond; self.learningRate = learningRate
    self.peakResidentBytes = peakResidentBytes
  }
}

/// The windows of a training run in a seeded order, epoch after epoch (a fresh permutation of the starts each
/// epoch, seeded by the recipe's seed and the epoch).
public struct WindowOrder {
  let starts: [Int], seed: UInt64
  var order: [Int] = [], epoch = 0, cursor = 0
  public init(starts: [Int], seed: UInt64) { self.starts = starts; self.seed = seed }
  public mutating func next() -> Int {
    if cursor == order.count {
      order = Trainer.permutation(starts.count, seed: seed &+ UInt64(epoch) &* 0x9E37_79B9)
      epoch += 1; cursor = 0
    }
    cursor += 1
    return starts[order[cursor - 1]]
  }
}

public enum LanguageModelTrainer {
  /// The windows (start offsets) of `tokens` for `sequence` inputs and their next-token targets.
  public static func windowStarts(tokenCount: Int, sequence: Int) -> [Int] {
    guard sequence > 0, tokenCount > sequence else { return [] }
    return Array(Swift.stride(from: 0, to: tokenCount - sequence, by: sequence))
  }

  /// Mean next-token NLL of `tokens` in non-overlapping windows of `sequence` + 1 tokens, `batch` windows a forward
  /// pass, without a graph: the held-out loss (its exp the held-out perplexity). Returns the NLL and the tokens scored.
  public static func heldOutNLL(_ decoder: TrainableDecoder, tokens: [Int], sequence: Int, batch: Int) throws -> (nll: Double, tokens: Int) {
    let starts = windowStarts(tokenCount: tokens.count, sequence: sequence)
    guard !starts.isEmpty else {
      throw TensorError.invalidArgument(op: "train", reason: "the held-out text has \(tokens.count) tokens, too few for one window of seq \(sequence) + 1")
    }
    let vocab = decoder.config.vocabularySize
    var total = 0.0, count = 0
    try Autograd.noGrad {
      for first in Swift.stride(from: 0, to: starts.count, by: batch) {
        let group = starts[first..<Swift.min(starts.count, first + batch)]
        var ids = [Float](), targets = [Int]()
        for s in group { for i in 0..<sequence { ids.append(Float(tokens[s + i])); targets.append(tokens[s + i + 1]) } }
        let logits = try decoder.logits(try Tensor(ids, shape: [group.count, sequence])).reshaped(to: [group.count * sequence, vocab])
        let mean = try Variable.tokenCrossEntropy(logits, targets: targets).value.scalars.first ?? .nan
        total += Double(mean) * Double(targets.count)
        count += targets.count
        try Cancellation.check("train")
      }
    }
    return (total / Double(count), count)
  }

  /// Trains `decoder` on `tokens`; with `heldOut` tokens, their loss is taken before the first step, every `every`
  /// steps and after the last, and passed to `onEvaluate(step, nll)`.
  public static func train(_ decoder: TrainableDecoder, tokens: [Int], recipe: Recipe, methods: [TrainingMethod] = [],
                           heldOut: [Int]? = nil, every: Int = 0, onEvaluate: (Int, Double) throws -> Void = { _, _ in },
                           onStep: (LanguageModelStep) throws -> Void = { _ in }) throws -> TrainRecord {
    let seq = recipe.sequence, batch = recipe.batch, accumulate = recipe.accumulate
    guard seq > 0, batch > 0, accumulate > 0 else {
      throw TensorError.invalidArgument(op: "train", reason: "seq, batch and accumulate must be positive (got \(seq), \(batch), \(accumulate))")
    }
    guard seq <= decoder.config.contextLength else {
      throw TensorError.invalidArgument(op: "train", reason: "seq \(seq) is more than the model's context length \(decoder.config.contextLength)")
    }
    let vocab = decoder.config.vocabularySize
    if let bad = tokens.first(where: { $0 < 0 || $0 >= vocab }) {
      throw TensorError.indexOutOfRange(op: "train", index: bad, size: vocab, axis: 0)
    }
    let starts = windowStarts(tokenCount: tokens.count, sequence: seq)
    guard !starts.isEmpty else {
      throw TensorError.invalidArgument(op: "train", reason: "the text has \(tokens.count) tokens, too few for one window of seq \(seq) + 1")
    }
    let perStep = batch * accumulate
    let total = recipe.steps ?? Swift.max(1, recipe.epochs * starts.count / perStep)
    guard total > 0, total <= 10_000_000 else { throw TensorError.invalidArgument(op: "train", reason: "steps must be in 1...10000000, got \(total)") }

    let optimizer = recipe.makeOptimizer()
    for m in methods { try m.prepare(decoder) }
    var parameters = decoder.parameters.filter(\.requiresGrad)
    for m in methods { if let chosen = try m.trainableParameters(of: decoder, parameters) { parameters = chosen } }
    guard !parameters.isEmpty else {
      throw TensorError.invalidArgument(op: "train", reason: "the model has no trainable parameters (all frozen?)")
    }
    for p in decoder.parameters { p.grad = nil }
    let saved = decoder.checkpointing
    decoder.checkpointing = recipe.checkpoint
    defer { decoder.checkpointing = saved }

    BLASThreads.set(ThreadPool.shared.threadCount)      // the pool's size (LATHE_THREADS) for sgemm too
    if let heldOut, let bad = heldOut.first(where: { $0 < 0 || $0 >= vocab }) {
      throw TensorError.indexOutOfRange(op: "train", index: bad, size: vocab, axis: 0)
    }
    func evaluate(_ step: Int) throws {
      guard let heldOut else { return }
      try onEvaluate(step, try heldOutNLL(decoder, tokens: heldOut, sequence: seq, batch: batch).nll)
    }
    try evaluate(0)
    var record = TrainRecord()
    let start = DispatchTime.now().uptimeNanoseconds
    var windows = WindowOrder(starts: starts, seed: recipe.seed)
    func nextWindow() -> Int { windows.next() }
    for step in 0..<total {
      let stepStart = DispatchTime.now().uptimeNanoseconds
      Memory.resetPeakResident()
      var stepLoss: Float = 0
      for _ in 0..<accumulate {
        var ids = [Float](), targets = [Int]()
        ids.reserveCapacity(batch * seq); targets.reserveCapacity(batch * seq)
        for _ in 0..<batch {
          let s = nextWindow()
          for i in 0..<seq { ids.append(Float(tokens[s + i])); targets.append(tokens[s + i + 1]) }
        }
        let input = try Tensor(ids, shape: [batch, seq])
        let logits = try decoder.logits(input).reshaped(to: [batch * seq, vocab])
        var loss = try Variable.tokenCrossEntropy(logits, targets: targets, zLoss: recipe.zLoss)
        let labels = try Tensor(targets.map(Float.init), shape: [batch * seq])
        for m in methods { loss = try m.loss(loss, logits: logits, inputs: input, labels: labels) }
        let value = loss.value.scalars.first ?? .nan
        stepLoss += value / Float(accumulate)
        try (accumulate == 1 ? loss : loss.scaled(by: 1 / Float(accumulate))).backward()
        try Cancellation.check("train")
      }
      if let clip = recipe.clipNorm { try GradientClipping.clip(parameters, maxNorm: clip) }
      let lr = recipe.schedule.rate(base: recipe.lr, step: step, total: total)
      try Autograd.noGrad { try optimizer.step(parameters, lr: lr) }
      for p in decoder.parameters where p.grad != nil { p.grad = nil }    // frozen or unchosen ones keep no gradient
      record.losses.append(stepLoss)
      record.steps += 1
      record.examples += perStep * seq
      for m in methods { try m.afterStep(decoder, step: record.steps) }
      let seconds = Double(DispatchTime.now().uptimeNanoseconds - stepStart) / 1e9
      if (every > 0 && (step + 1) % every == 0) || step + 1 == total { try evaluate(step + 1) }
      try onStep(LanguageModelStep(step: step + 1, total: total, loss: stepLoss, tokensPerSecond: Double(perStep * seq) / Swift.max(seconds, 1e-9),
                                   learningRate: lr, peakResidentBytes: Memory.peakResident()))
    }
    record.seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    return record
  }
}
