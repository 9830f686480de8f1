// Layers, losses, optimizers and the training loop on small problems the tests make themselves.

import Foundation
import Testing
import LatheTensor
@testable import LatheNN

/// Two Gaussian blobs per class around the corners of a square: separable by an MLP, not by one line for 4 classes.
func blobs(_ n: Int, seed: UInt64) throws -> (Tensor, Tensor) {
  let centers: [(Float, Float)] = [(-2, -2), (2, 2), (-2, 2), (2, -2)]
  let noise = try Tensor.randn([n, 2], seed: seed).scalars
  var xs: [Float] = [], ys: [Float] = []
  for i in 0..<n {
    let c = i % 4
    xs += [centers[c].0 + 0.5 * noise[2 * i], centers[c].1 + 0.5 * noise[2 * i + 1]]
    ys.append(Float(c))
  }
  return (try Tensor(xs, shape: [n, 2]), try Tensor(ys, shape: [n]))
}

@Test func mlpLearnsBlobs() throws {
  let (x, y) = try blobs(400, seed: 1)
  let (tx, ty) = try blobs(200, seed: 2)
  let model = try Sequential.mlp([2, 32, 4], seed: 3)
  #expect(model.parameterCount == 2 * 32 + 32 + 32 * 4 + 4)
  var recipe = Recipe()
  recipe.epochs = 20; recipe.batch = 32; recipe.lr = 1e-2; recipe.seed = 4
  let record = try Trainer.train(model, images: x, labels: y, recipe: recipe)
  #expect(record.steps == 20 * 13)
  #expect((record.losses.last ?? 9) < (record.losses.first ?? 0) / 4, "loss \(record.losses.first ?? 0) → \(record.losses.last ?? 0)")
  let (accuracy, _) = try Trainer.evaluate(model, images: tx, labels: ty)
  #expect(accuracy > 0.95, "test accuracy \(accuracy)")
}

@Test func trainingIsReproducibleFromTheSeed() throws {
  let (x, y) = try blobs(64, seed: 5)
  func run() throws -> [Float] {
    var recipe = Recipe()
    recipe.epochs = 2; recipe.batch = 16; recipe.seed = 6
    recipe.makeOptimizer = { SGD(momentum: 0.9, nesterov: true, weightDecay: 1e-4) }
    return try Trainer.train(try Sequential.mlp([2, 8, 4], seed: 7), images: x, labels: y, recipe: recipe).losses
  }
  #expect(try run() == run())
}

@Test func crossEntropyMatchesTheFormula() throws {
  let logits = Variable(try Tensor([2, 1, 0, 0, 0, 3], shape: [2, 3]), requiresGrad: true)
  let loss = try Loss.crossEntropy(logits, labels: try Tensor([0, 2], shape: [2]))
  let e: (Double) -> Double = Foundation.exp, l: (Double) -> Double = Foundation.log
  let expected = (-(2 - l(e(2) + e(1) + 1)) - (3 - l(2 + e(3)))) / 2
  #expect(Swift.abs(Double(loss.value.scalars[0]) - expected) < 1e-5)
  try loss.backward()
  // d/dlogits = (softmax − onehot) / N
  let p0 = try Tensor([2, 1, 0], shape: [3]).softmax().scalars
  #expect(Swift.abs((logits.grad?.scalars[0] ?? 0) - (p0[0] - 1) / 2) < 1e-5)
  let smoothed = try Loss.crossEntropy(logits, labels: try Tensor([0, 2], shape: [2]), smoothing: 0.1)
  #expect(smoothed.value.scalars[0] > loss.value.scalars[0])
  #expect(throws: TensorError.self) { try Loss.crossEntropy(logits, labels: try Tensor([0, 7], shape: [2])) }
}

@Test func schedulesAndClipping() throws {
  let cosine = Schedule.cosine(warmup: 10, minimum: 0)
  #expect(cosine.rate(base: 1, step: 0, total: 100) == 0.1)
  #expect(Swift.abs(cosine.rate(base: 1, step: 55, total: 100) - 0.5) < 1e-5)
  #expect(cosine.rate(base: 1, step: 100, total: 100) < 1e-6)
  #expect(Schedule.step(every: 10, gamma: 0.5).rate(base: 1, step: 25, total: 100) == 0.25)
  let p = Variable(try Tensor.zeros([2]), requiresGrad: true)
  p.grad = try Tensor([3, 4], shape: [2])
  #expect(try GradientClipping.clip([p], maxNorm: 1) == 5)
  #expect(p.grad?.scalars == [0.6, 0.8])
}

@Test func linearChecksItsInput() throws {
  let layer = try Linear(4, 3, seed: 0)
  #expect(try layer.forward(Variable(try Tensor.zeros([5, 4]))).shape == [5, 3])
  #expect(throws: TensorError.self) { try layer.forward(Variable(try Tensor.zeros([5, 3]))) }
  #expect(throws: TensorError.self) { try Linear(0, 3, seed: 0) }
}

@Test func transformerPiecesLearnAndDifferentiate() throws {
  // Multi-head attention: shapes, and its gradient reaches every projection.
  let attention = try MultiHeadAttention(dim: 8, heads: 2, causal: true, seed: 1)
  let x = Variable(try Tensor.randn([2, 5, 8], seed: 2), requiresGrad: true)
  let y = try attention.forward(x)
  #expect(y.shape == [2, 5, 8])
  try y.multiply(Variable(try Tensor.randn([2, 5, 8], seed: 3))).sum().backward()
  #expect(attention.parameters.allSatisfy { $0.grad != nil } && x.grad?.shape == [2, 5, 8])
  // Causal: the first token's output does not depend on later tokens.
  var changed = x.value
  try changed.mutablePointer()[8 * 4] += 10                        // token 4 of sample 0
  let a = try attention.forward(Variable(x.value)).value.indexed([.index(0), .index(0)]).scalars
  let b = try attention.forward(Variable(changed)).value.indexed([.index(0), .index(0)]).scalars
  #expect(a == b)
  // A small ViT learns to tell bright from dark 8×8 images.
  let n = 64
  let images = try Tensor.rand([n, 1, 8, 8], seed: 4)
  var labels: [Float] = [], shifted = try images.copied()
  let p = try shifted.mutablePointer()
  for i in 0..<n { let bright = i % 2; labels.append(Float(bright)); if bright == 1 { for j in 0..<64 { p[i * 64 + j] += 1 } } }
  let vit = try VisionTransformer(image: 8, channels: 1, patch: 4, dim: 16, depth: 1, heads: 2, classes: 2, seed: 5)
  var recipe = Recipe()
  recipe.epochs = 15; recipe.batch = 16; recipe.lr = 3e-3; recipe.seed = 6
  let record = try Trainer.train(vit, images: shifted, labels: try Tensor(labels, shape: [n]), recipe: recipe)
  #expect((record.losses.last ?? 1) < 0.2, "ViT loss \(record.losses.first ?? 0) → \(record.losses.last ?? 0)")
  let (accuracy, _) = try Trainer.evaluate(vit, images: shifted, labels: try Tensor(labels, shape: [n]))
  #expect(accuracy > 0.95)
}

@Test func architecturesRoundTripWithTheirState() throws {
  let models: [Module] = [
    try Sequential.mlp([4, 8, 3], activation: .gelu, seed: 1),
    Sequential([try Conv2d(1, 2, kernel: 3, stride: 1, padding: 1, groups: 1, seed: 2), Activation(.relu), try Pool2d(.average, kernel: 2),
                Flatten(), try Linear(8, 3, bias: false, seed: 3)]),
    try VisionTransformer(image: 4, channels: 1, patch: 2, dim: 8, depth: 2, heads: 2, classes: 3, seed: 4),
  ]
  let inputs = [try Tensor.randn([2, 4], seed: 5), try Tensor.randn([2, 1, 4, 4], seed: 6), try Tensor.randn([2, 1, 4, 4], seed: 7)]
  for (model, x) in zip(models, inputs) {
    let json = try #require(Architecture.json(model))
    let copy = try Architecture.build(json: json)
    let names = model.namedParameters.map(\.name)
    #expect(Set(names).count == names.count, "parameter names are unique: \(names.prefix(6))")
    try copy.load(state: model.namedParameters.map { ($0.name, $0.variable.value) })
    #expect(try copy.forward(Variable(x)).value.scalars == model.forward(Variable(x)).value.scalars, "\(model.summary)")
  }
}

@Test func embeddingDropoutAndBatchNormLayers() throws {
  let e = try Embedding(vocab: 5, dim: 3, seed: 1)
  let rows = try e.forward(Variable(try Tensor([4, 0], shape: [2])))
  #expect(rows.shape == [2, 3] && rows.value.scalars == Array(e.table.value.scalars[12..<15]) + Array(e.table.value.scalars[0..<3]))
  let d = try Dropout(0.5, seed: 2)
  let x = Variable(try Tensor.ones([1000]))
  let trained = try d.forward(x).value.scalars
  #expect(trained.contains(0) && trained.contains(2))
  #expect(try Autograd.noGrad { try d.forward(x) }.value.scalars == x.value.scalars)   // identity at inference
  let bn = try BatchNorm2d(2)
  let batch = Variable(try Tensor.randn([8, 2, 3, 3], seed: 3).binary(.multiply, scalar: 3).binary(.add, scalar: 5))
  let y = try bn.forward(batch).value
  expectChannelStatistics(y)
  #expect(bn.runningMean.scalars.allSatisfy { Swift.abs($0 - 0.5) < 0.2 })               // 0.1 of a batch mean near 5
  let inference = try Autograd.noGrad { try bn.forward(batch) }.value
  #expect(inference.shape == [8, 2, 3, 3] && inference.scalars != y.scalars)
  let json = try #require(Architecture.json(Sequential([e, d, bn])))
  #expect(json.contains("embedding") && json.contains("dropout") && json.contains("batchnorm2d"))
}

func expectChannelStatistics(_ y: Tensor) {
  let perChannel = (try? y.permuted([1, 0, 2, 3]).reshaped(to: [2, -1])) ?? y
  let means = (try? perChannel.reduce(.mean, axis: 1).scalars) ?? []
  #expect(means.allSatisfy { Swift.abs($0) < 1e-4 }, "normalised channel means \(means)")
}
