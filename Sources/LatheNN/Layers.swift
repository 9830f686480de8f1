// Layers: Linear, activations, Flatten and Sequential, with PyTorch's layouts and initialisation.

import Foundation
import LatheTensor

/// y = x·Wᵀ + b, with W [out, in] as in PyTorch; Kaiming-uniform initialisation from a seed.
public final class Linear: Module {
  public let weight: Variable
  public let bias: Variable?
  public let inFeatures: Int, outFeatures: Int

  public init(_ inFeatures: Int, _ outFeatures: Int, bias: Bool = true, seed: UInt64) throws {
    guard inFeatures > 0, outFeatures > 0 else {
      throw TensorError.invalidArgument(op: "linear", reason: "sizes must be positive, got \(inFeatures) → \(outFeatures)")
    }
    self.inFeatures = inFeatures; self.outFeatures = outFeatures
    let bound = 1 / Float(inFeatures).squareRoot()
    let w = try Tensor.rand([outFeatures, inFeatures], seed: seed).binary(.multiply, scalar: 2 * bound).binary(.subtract, scalar: bound)
    weight = Variable(w, requiresGrad: true, name: "weight")
    if bias {
      let b = try Tensor.rand([outFeatures], seed: seed &+ 1).binary(.multiply, scalar: 2 * bound).binary(.subtract, scalar: bound)
      self.bias = Variable(b, requiresGrad: true, name: "bias")
    } else {
      self.bias = nil
    }
  }

  public var parameters: [Variable] { [weight] + (bias.map { [$0] } ?? []) }
  public var summary: String { "Linear(\(inFeatures) → \(outFeatures)\(bias == nil ? ", no bias" : ""))" }

  public func forward(_ x: Variable) throws -> Variable {
    guard x.shape.last == inFeatures else {
      throw TensorError.shapeMismatch(op: "linear", lhs: x.shape, rhs: [outFeatures, inFeatures])
    }
    let y = try x.matmul(weight.transposed())
    return try bias.map { try y.add($0) } ?? y
  }
}

public final class Activation: Module {
  public let kernel: UnaryKernel
  public init(_ kernel: UnaryKernel) { self.kernel = kernel }
  public var parameters: [Variable] { [] }
  public var summary: String { kernel.rawValue.prefix(1).uppercased() + kernel.rawValue.dropFirst() + "()" }
  public func forward(_ x: Variable) throws -> Variable { try x.unary(kernel) }
}

/// [N, ...] → [N, product of the rest].
public final class Flatten: Module {
  public init() {}
  public var parameters: [Variable] { [] }
  public var summary: String { "Flatten()" }
  public func forward(_ x: Variable) throws -> Variable {
    guard let n = x.shape.first else { return x }
    return try x.reshaped(to: [n, x.value.count / Swift.max(n, 1)])
  }
}

/// Layers applied in order.
public final class Sequential: Module {
  public let layers: [Module]
  public init(_ layers: [Module]) { self.layers = layers }
  public var parameters: [Variable] { layers.flatMap(\.parameters) }
  public var summary: String {
    "Sequential(\n" + layers.map { "  " + $0.summary }.joined(separator: "\n") + "\n)  \(parameterCount) parameters"
  }
  public func forward(_ x: Variable) throws -> Variable {
    var h = x
    for layer in layers { h = try layer.forward(h) }
    return h
  }

  /// Flatten, then Linear layers of the given widths with `activation` between them (none after the last).
  public static func mlp(_ widths: [Int], activation: UnaryKernel = .relu, seed: UInt64) throws -> Sequential {
    guard widths.count >= 2 else { throw TensorError.invalidArgument(op: "mlp", reason: "needs at least 2 widths, got \(widths)") }
    var layers: [Module] = [Flatten()]
    for i in 0..<(widths.count - 1) {
      layers.append(try Linear(widths[i], widths[i + 1], seed: seed &+ UInt64(i) &* 1000))
      if i < widths.count - 2 { layers.append(Activation(activation)) }
    }
    return Sequential(layers)
  }
}
