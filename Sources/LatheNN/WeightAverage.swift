// Exponential moving average of weights: shadow ← d·shadow + (1 − d)·w after every step.

import LatheTensor

public final class WeightAverage {
  private var shadow: [ObjectIdentifier: Tensor] = [:]
  public init() {}

  public func update(_ parameters: [Variable], decay: Float) throws {
    for p in parameters {
      let id = ObjectIdentifier(p)
      shadow[id] = try shadow[id].map { try $0.binary(.multiply, scalar: decay).add(p.value.binary(.multiply, scalar: 1 - decay)) }
        ?? p.value.copied()
    }
  }

  /// Puts the averaged weights into the parameters.
  public func apply(to parameters: [Variable]) throws {
    for p in parameters { if let s = shadow[ObjectIdentifier(p)] { p.value = s } }
  }
}
