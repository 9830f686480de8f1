// Optimizers (SGD with momentum/Nesterov/weight decay, AdamW), learning-rate schedules and gradient clipping.

import Foundation
import LatheTensor

public protocol Optimizer: AnyObject {
  /// One update of every parameter that has a gradient, at learning rate `lr`; then the gradients are cleared.
  func step(_ parameters: [Variable], lr: Float) throws
  var summary: String { get }
}

public final class SGD: Optimizer {
  public let momentum: Float, nesterov: Bool, weightDecay: Float
  private var velocity: [ObjectIdentifier: Tensor] = [:]
  public init(momentum: Float = 0, nesterov: Bool = false, weightDecay: Float = 0) {
    self.momentum = momentum; self.nesterov = nesterov; self.weightDecay = weightDecay
  }
  public var summary: String { "sgd(momentum: \(momentum), nesterov: \(nesterov), weightDecay: \(weightDecay))" }

  public func step(_ parameters: [Variable], lr: Float) throws {
    for p in parameters {
      guard var g = p.grad else { continue }
      if weightDecay != 0 { g = try g.add(p.value.binary(.multiply, scalar: weightDecay)) }
      if momentum != 0 {
        let id = ObjectIdentifier(p)
        let v = try velocity[id].map { try $0.binary(.multiply, scalar: momentum).add(g) } ?? g
        velocity[id] = v
        g = nesterov ? try g.add(v.binary(.multiply, scalar: momentum)) : v
      }
      p.value = try p.value.subtract(g.binary(.multiply, scalar: lr))
      p.grad = nil
    }
  }
}

/// Adam with decoupled weight decay (Loshchilov & Hutter): p ← p − lr·(m̂/(√v̂+ε) + wd·p).
public final class AdamW: Optimizer {
  public let beta1: Float, beta2: Float, eps: Float, weightDecay: Float
  private var m: [ObjectIdentifier: Tensor] = [:], v: [ObjectIdentifier: Tensor] = [:]
  private var t = 0
  public init(beta1: Float = 0.9, beta2: Float = 0.999, eps: Float = 1e-8, weightDecay: Float = 0.01) {
    self.beta1 = beta1; self.beta2 = beta2; self.eps = eps; self.weightDecay = weightDecay
  }
  public var summary: String { "adamw(beta1: \(beta1), beta2: \(beta2), weightDecay: \(weightDecay))" }

  public func step(_ parameters: [Variable], lr: Float) throws {
    t += 1
    let c1 = 1 - Foundation.pow(beta1, Float(t)), c2 = 1 - Foundation.pow(beta2, Float(t))
    let (b1, b2, eps, wd) = (beta1, beta2, self.eps, weightDecay)
    for p in parameters {
      guard let gradient = p.grad else { continue }
      let id = ObjectIdentifier(p)
      // One pass over each parameter, in place (a language model's 135M parameters would otherwise make ten
      // temporaries of its size a step): m ← β1·m + (1−β1)·g, v ← β2·v + (1−β2)·g², p ← p − lr·(m̂/(√v̂ + ε) + wd·p).
      var mt = try m[id] ?? Tensor.zeros(gradient.shape), vt = try v[id] ?? Tensor.zeros(gradient.shape)
      m[id] = nil; v[id] = nil                      // unique, so the pointers below write in place
      let g = try gradient.contiguous()
      var value = p.value
      p.value = try Tensor.zeros([0])              // `value` holds the only reference while it is written
      let mp = try mt.mutablePointer(), vp = try vt.mutablePointer(), xp = try value.mutablePointer(), gp = g.readPointer()
      let n = g.count, chunk = 1 << 15
      // Elementwise, so chunks over the pool give the same bits at any thread count.
      ThreadPool.shared.parallelFor((n + chunk - 1) / chunk) { c in
        for i in (c * chunk)..<Swift.min(n, (c + 1) * chunk) {
          let gi = gp[i]
          let mi = mp[i] * b1 + gi * (1 - b1), vi = vp[i] * b2 + gi * gi * (1 - b2)
          mp[i] = mi; vp[i] = vi
          let update = (mi / c1) / ((vi / c2).squareRoot() + eps)
          xp[i] = xp[i] - (update + xp[i] * wd) * lr
        }
      }
      p.value = value
      m[id] = mt; v[id] = vt
      p.grad = nil
    }
  }
}

/// Learning rate at a step: constant, linear warm-up then cosine decay, or step decay.
public enum Schedule: Equatable {
  case constant
  case cosine(warmup: Int, minimum: Float)
  case step(every: Int, gamma: Float)

  public func rate(base: Float, step: Int, total: Int) -> Float {
    switch self {
    case .constant: return base
    case .cosine(let w, let minimum):
      if step < w { return base * Float(step + 1) / Float(Swift.max(w, 1)) }
      let progress = Float(step - w) / Float(Swift.max(total - w, 1))
      return minimum + (base - minimum) * 0.5 * (1 + Foundation.cos(Float.pi * Swift.min(progress, 1)))
    case .step(let every, let gamma):
      return base * Foundation.pow(gamma, Float(step / Swift.max(every, 1)))
    }
  }
}

public enum GradientClipping {
  /// Scales every gradient so their global L2 norm is at most `maxNorm`; returns the norm before clipping.
  @discardableResult
  public static func clip(_ parameters: [Variable], maxNorm: Float) throws -> Float {
    // Sums of squares read in place, in chunks whose partial sums add up in order (the same bits at any thread
    // count); a language model's gradients are hundreds of MB, which copying out (`scalars`) cost a second a step.
    var total: Double = 0
    let chunk = 1 << 16
    for p in parameters {
      guard let g = try p.grad?.contiguous() else { continue }
      let gp = g.readPointer(), n = g.count, parts = (n + chunk - 1) / chunk
      var partial = [Double](repeating: 0, count: parts)
      partial.withUnsafeMutableBufferPointer { out in
        guard let o = out.baseAddress else { return }
        ThreadPool.shared.parallelFor(parts) { c in
          var s: Double = 0
          for i in (c * chunk)..<Swift.min(n, (c + 1) * chunk) { s += Double(gp[i] * gp[i]) }
          o[c] = s
        }
      }
      total += partial.reduce(0, +)
    }
    let norm = Float(total.squareRoot())
    if norm > maxNorm && norm > 0 {
      for p in parameters { p.grad = try p.grad?.binary(.multiply, scalar: maxNorm / norm) }
    }
    return norm
  }
}
