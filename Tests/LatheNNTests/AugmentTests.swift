// Augmentation is replayable (parameters recovered from the seed), losses on soft targets, weight averaging.

import Foundation
import Testing
import LatheTensor
@testable import LatheNN

@Test func cropAndFlipFollowTheRecoveredParameters() throws {
  let images = try Tensor.arange(0, 2 * 1 * 5 * 5).reshaped(to: [2, 1, 5, 5])
  let labels = try Tensor([0, 1], shape: [2])
  var aug = Augmentation()
  aug.cropPadding = 2; aug.flip = true; aug.seed = 9
  let (out, targets) = try aug.apply(images: images, labels: labels, samples: [40, 41], epoch: 3, classes: 2)
  #expect(targets.scalars == [1, 0, 0, 1])
  let src = images.scalars, got = out.scalars
  for (b, sample) in [40, 41].enumerated() {
    let p = aug.parameters(sample: sample, epoch: 3, height: 5, width: 5)
    for y in 0..<5 { for x in 0..<5 {
      let xx = p.flipped ? 4 - x : x, sy = y + p.dy, sx = xx + p.dx
      let expected: Float = (0..<5).contains(sy) && (0..<5).contains(sx) ? src[b * 25 + sy * 5 + sx] : 0
      #expect(got[b * 25 + y * 5 + x] == expected)
    } }
  }
  // Same seed, epoch and sample: same choices; another epoch: (almost surely) others somewhere.
  #expect(aug.parameters(sample: 7, epoch: 1, height: 5, width: 5) == aug.parameters(sample: 7, epoch: 1, height: 5, width: 5))
  #expect((0..<20).contains { aug.parameters(sample: $0, epoch: 1, height: 5, width: 5) != aug.parameters(sample: $0, epoch: 2, height: 5, width: 5) })
}

@Test func resizedCropMixupAndCutmix() throws {
  let images = try Tensor.rand([4, 1, 8, 8], seed: 1), labels = try Tensor([0, 1, 2, 3], shape: [4])
  var aug = Augmentation()
  aug.resizedCrop = (0.3...1.0, 0.75...1.333)
  for s in 0..<50 {
    let box = try #require(aug.parameters(sample: s, epoch: 0, height: 8, width: 8).box)
    #expect(box.y >= 0 && box.x >= 0 && box.y + box.h <= 8 && box.x + box.w <= 8 && box.h >= 1 && box.w >= 1)
  }
  let (resized, _) = try aug.apply(images: images, labels: labels, samples: [0, 1, 2, 3], epoch: 0, classes: 4)
  #expect(resized.shape == [4, 1, 8, 8] && resized.scalars.allSatisfy { $0 >= 0 && $0 <= 1 })
  for kind in ["mixup", "cutmix"] {
    var m = Augmentation()
    if kind == "mixup" { m.mixupAlpha = 0.4 } else { m.cutmixAlpha = 1.0 }
    let (_, targets) = try m.apply(images: images, labels: labels, samples: [5, 6, 7, 8], epoch: 0, classes: 4)
    let rows = try targets.reduce(.sum, axis: 1).scalars
    #expect(rows.allSatisfy { Swift.abs($0 - 1) < 1e-5 }, "\(kind) targets sum to 1: \(rows)")
    #expect(targets.scalars.contains { $0 > 0 && $0 < 1 } || targets.scalars.filter { $0 == 1 }.count == 4)
  }
}

@Test func softTargetsCosineAndAveraging() throws {
  let logits = Variable(try Tensor.randn([3, 4], seed: 2), requiresGrad: true)
  let labels = try Tensor([1, 0, 3], shape: [3])
  var oneHot = try Tensor.zeros([3, 4])
  let p = try oneHot.mutablePointer()
  for (i, k) in [1, 0, 3].enumerated() { p[i * 4 + k] = 1 }
  #expect(Swift.abs(try Loss.softCrossEntropy(logits, targets: oneHot).value.scalars[0] - Loss.crossEntropy(logits, labels: labels).value.scalars[0]) < 1e-6)
  try checkCosine()
  let w = Variable(try Tensor([0], shape: [1]), requiresGrad: true)
  let avg = WeightAverage()
  for step in 1...3 { w.value = try Tensor([Float(step)], shape: [1]); try avg.update([w], decay: 0.5) }
  try avg.apply(to: [w])
  #expect(w.value.scalars == [2.25])                 // 1 → 0.5·1 + 0.5·2 = 1.5 → 0.5·1.5 + 0.5·3 = 2.25
}

func checkCosine() throws {
  let a = Variable(try Tensor([1, 0, 0, 1], shape: [2, 2])), b = Variable(try Tensor([1, 0, 1, 0], shape: [2, 2]))
  #expect(Swift.abs(try Loss.cosine(a, b).value.scalars[0] - 0.5) < 1e-6)   // pairs: cos 1 and cos 0
}
