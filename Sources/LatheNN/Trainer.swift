// Training and evaluation loops: seeded shuffling, mini-batches, schedules, clipping, per-step loss curve.

import Foundation
import LatheTensor

/// How to train: a value the language builds with `recipe(epochs:, batch:, optim:, schedule:, seed:)`.
public struct Recipe {
  public var epochs = 1
  public var batch = 32
  public var lr: Float = 1e-3
  public var makeOptimizer: () -> Optimizer = { AdamW() }
  public var optimizerName = "adamw"
  public var schedule: Schedule = .constant
  public var seed: UInt64 = 0
  public var labelSmoothing: Float = 0
  public var clipNorm: Float? = nil
  public var augmentation = Augmentation()
  /// Exponential moving average of the weights (decay per step); the trained model ends with the averaged weights.
  public var emaDecay: Float? = nil
  /// Language models: optimiser steps (nil: one pass over the text's windows), tokens per window, micro-batches
  /// whose gradients add up before each step, the z-loss weight, and per-layer gradient checkpointing.
  public var steps: Int? = nil
  public var sequence = 256
  public var accumulate = 1
  public var zLoss: Float = 0
  public var checkpoint = false
  public init() {}
}

public struct TrainRecord {
  /// The loss of every step, in order.
  public var losses: [Float] = []
  public var steps = 0
  public var seconds: Double = 0
  public var examples = 0
  public var examplesPerSecond: Double { seconds > 0 ? Double(examples) / seconds : 0 }
  public init() {}
}

public enum Trainer {
  /// Trains `model` on (images, labels) with cross-entropy, changed by `methods` in order (their hooks: see
  /// TrainingMethod). `onStep(step, total, loss)` may throw to stop (Ctrl-C), and reports progress.
  public static func train(_ model: Module, images: Tensor, labels: Tensor, recipe: Recipe, methods: [TrainingMethod] = [],
                           onStep: (Int, Int, Float) throws -> Void = { _, _, _ in }) throws -> TrainRecord {
    let n = images.shape.first ?? 0
    guard n > 0, labels.shape == [n] else {
      throw TensorError.shapeMismatch(op: "train", lhs: images.shape, rhs: labels.shape)
    }
    guard recipe.batch > 0, recipe.epochs > 0 else {
      throw TensorError.invalidArgument(op: "train", reason: "epochs and batch must be positive")
    }
    let optimizer = recipe.makeOptimizer()
    let stepsPerEpoch = (n + recipe.batch - 1) / recipe.batch
    let total = stepsPerEpoch * recipe.epochs
    var record = TrainRecord()
    let start = DispatchTime.now().uptimeNanoseconds
    for m in methods { try m.prepare(model) }
    var parameters = model.parameters.filter(\.requiresGrad)
    for m in methods { if let chosen = try m.trainableParameters(of: model, parameters) { parameters = chosen } }
    guard !parameters.isEmpty else {
      throw TensorError.invalidArgument(op: "train", reason: "the model has no trainable parameters (all frozen?)")
    }
    let ema = WeightAverage()
    for p in parameters { p.grad = nil }
    // Soft targets (mixup, cutmix) need the class count: the model's output width.
    let classes = recipe.augmentation.isIdentity ? 0
      : try Autograd.noGrad { try model.forward(Variable(try images.gatheredRows([0]))) }.shape.last ?? 1                  // a gradient left by an earlier grad(...) must not leak in
    for epoch in 0..<recipe.epochs {
      let order = permutation(n, seed: recipe.seed &+ UInt64(epoch) &* 0x9E37_79B9)
      for b in 0..<stepsPerEpoch {
        let rows = Array(order[(b * recipe.batch)..<Swift.min(n, (b + 1) * recipe.batch)])
        let batchImages = try images.gatheredRows(rows), y = try labels.gatheredRows(rows)
        // What the model sees this step, and the soft targets of mixing augmentations (nil: the labels).
        var inputs = batchImages, soft: Tensor? = nil
        if !recipe.augmentation.isIdentity {
          (inputs, soft) = try recipe.augmentation.apply(images: batchImages, labels: y, samples: rows, epoch: epoch, classes: classes)
        }
        for m in methods { if let t = try m.targets(inputs: inputs, labels: y) { soft = t } }
        let logits = try model.forward(Variable(inputs))
        var loss: Variable
        if let soft {
          let smoothed = recipe.labelSmoothing == 0 ? soft : try soft.binary(.multiply, scalar: 1 - recipe.labelSmoothing)
            .binary(.add, scalar: recipe.labelSmoothing / Float(soft.shape.last ?? 1))
          loss = try Loss.softCrossEntropy(logits, targets: smoothed)
        } else {
          loss = try Loss.crossEntropy(logits, labels: y, smoothing: recipe.labelSmoothing)
        }
        for m in methods { loss = try m.loss(loss, logits: logits, inputs: inputs, labels: y) }
        try loss.backward()
        if let clip = recipe.clipNorm { try GradientClipping.clip(parameters, maxNorm: clip) }
        let lr = recipe.schedule.rate(base: recipe.lr, step: record.steps, total: total)
        try Autograd.noGrad { try optimizer.step(parameters, lr: lr) }
        if let decay = recipe.emaDecay { try ema.update(parameters, decay: decay) }
        let value = loss.value.scalars.first ?? .nan
        record.losses.append(value)
        record.steps += 1
        for m in methods { try m.afterStep(model, step: record.steps) }
        record.examples += rows.count
        try onStep(record.steps, total, value)
      }
    }
    if recipe.emaDecay != nil { try ema.apply(to: parameters) }
    record.seconds = Double(DispatchTime.now().uptimeNanoseconds - start) / 1e9
    return record
  }

  /// Accuracy and mean cross-entropy of `model` on (images, labels), without recording gradients.
  public static func evaluate(_ model: Module, images: Tensor, labels: Tensor, batch: Int = 256) throws -> (accuracy: Double, loss: Double) {
    let n = images.shape.first ?? 0
    guard n > 0, labels.shape == [n] else { throw TensorError.shapeMismatch(op: "evaluate", lhs: images.shape, rhs: labels.shape) }
    var correct = 0
    var lossSum: Double = 0
    try Autograd.noGrad {
      var i = 0
      while i < n {
        let rows = Array(i..<Swift.min(n, i + batch))
        let logits = try model.forward(Variable(try images.gatheredRows(rows)))
        let y = try labels.gatheredRows(rows)
        let predicted = try logits.value.reduce(.argmax, axis: 1).scalars
        for (p, t) in zip(predicted, y.scalars) where p == t { correct += 1 }
        lossSum += Double(try Loss.crossEntropy(logits, labels: y).value.scalars.first ?? 0) * Double(rows.count)
        i += batch
      }
    }
    return (Double(correct) / Double(n), lossSum / Double(n))
  }

  /// A seeded permutation of 0..<n (Fisher–Yates on counter-based random numbers).
  public static func permutation(_ n: Int, seed: UInt64) -> [Int] {
    var order = Array(0..<n)
    if n < 2 { return order }
    for i in stride(from: n - 1, to: 0, by: -1) {
      let j = Int(CounterRandom.bits(seed: seed, index: UInt64(i)) % UInt64(i + 1))
      order.swapAt(i, j)
    }
    return order
  }
}
