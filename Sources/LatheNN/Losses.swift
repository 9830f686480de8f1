// Losses: cross-entropy (with label smoothing), KL to soft targets with temperature, mean squared error.

import LatheTensor

public enum Loss {
  /// Mean over the batch of −Σ q·log softmax(logits), q = one-hot labels smoothed by `smoothing` (Szegedy et al.).
  /// `logits` [N, C]; `labels` [N] of class ids (i32 or f32).
  public static func crossEntropy(_ logits: Variable, labels: Tensor, smoothing: Float = 0) throws -> Variable {
    guard logits.shape.count == 2, labels.shape == [logits.shape[0]] else {
      throw TensorError.shapeMismatch(op: "crossentropy", lhs: logits.shape, rhs: labels.shape)
    }
    let n = logits.shape[0], c = logits.shape[1]
    var target = try Tensor.full([n, c], smoothing / Float(c))
    let q = try target.mutablePointer()
    for (i, label) in labels.scalars.enumerated() {
      guard let k = Int(exactly: label), k >= 0 && k < c else {
        throw TensorError.invalidArgument(op: "crossentropy", reason: "label \(label) is not a class of 0..<\(c)")
      }
      q[i * c + k] += 1 - smoothing
    }
    return try logits.logSoftmax().multiply(Variable(target)).sum().scaled(by: -1 / Float(Swift.max(n, 1)))
  }

  /// KL(softmax(teacher/T) ‖ softmax(student/T)) · T², averaged over the batch (Hinton et al. distillation).
  public static func kl(_ student: Variable, teacherLogits: Tensor, temperature: Float = 1) throws -> Variable {
    let t = temperature
    let p = try teacherLogits.binary(.divide, scalar: t).softmax()
    let logP = try teacherLogits.binary(.divide, scalar: t).softmax(log: true)
    let logQ = try student.scaled(by: 1 / t).logSoftmax()
    let n = Float(Swift.max(student.shape.first ?? 1, 1))
    let pv = Variable(p)
    return try pv.multiply(Variable(logP).subtract(logQ)).sum().scaled(by: t * t / n)
  }

  /// Cross-entropy against soft targets [N, C] (rows summing to 1): mixup, cutmix, distillation targets.
  public static func softCrossEntropy(_ logits: Variable, targets: Tensor) throws -> Variable {
    guard logits.shape == targets.shape, logits.shape.count == 2 else {
      throw TensorError.shapeMismatch(op: "crossentropy", lhs: logits.shape, rhs: targets.shape)
    }
    return try logits.logSoftmax().multiply(Variable(targets)).sum().scaled(by: -1 / Float(Swift.max(logits.shape[0], 1)))
  }

  /// 1 − cos(a, b) along the last axis, averaged.
  public static func cosine(_ a: Variable, _ b: Variable, eps: Float = 1e-8) throws -> Variable {
    let dot = try a.multiply(b).sum(axis: -1)
    let na = try a.multiply(a).sum(axis: -1).shifted(by: eps).power(0.5), nb = try b.multiply(b).sum(axis: -1).shifted(by: eps).power(0.5)
    return try dot.divide(na.multiply(nb)).negated().shifted(by: 1).mean()
  }

  public static func mse(_ prediction: Variable, _ target: Tensor) throws -> Variable {
    let d = try prediction.subtract(Variable(target))
    return try d.multiply(d).mean()
  }
}
