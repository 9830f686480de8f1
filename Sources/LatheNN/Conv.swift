// Convolution and pooling layers over [N, C, H, W] batches.

import LatheTensor

/// Conv2d with weight [out, in/groups, k, k] (PyTorch's layout), Kaiming-uniform initialisation from a seed.
public final class Conv2d: Module {
  public let weight: Variable
  public let bias: Variable?
  public let inChannels, outChannels, kernel, stride, padding, dilation, groups: Int

  public init(_ inChannels: Int, _ outChannels: Int, kernel: Int, stride: Int = 1, padding: Int = 0, dilation: Int = 1,
              groups: Int = 1, bias: Bool = true, seed: UInt64) throws {
    guard inChannels > 0, outChannels > 0, kernel > 0, groups > 0, inChannels % groups == 0, outChannels % groups == 0 else {
      throw TensorError.invalidArgument(op: "conv2d", reason: "channels \(inChannels) → \(outChannels) must be positive multiples of groups \(groups), kernel positive")
    }
    let largest = ConvGeometry.maximumParameter
    guard kernel <= largest, stride >= 1, stride <= largest, padding >= 0, padding <= largest, dilation >= 1, dilation <= largest else {
      throw TensorError.invalidArgument(op: "conv2d", reason: "kernel, stride and dilation must be 1 to \(largest) and padding 0 to \(largest), got kernel \(kernel), stride \(stride), dilation \(dilation), padding \(padding)")
    }
    guard let fanIn = Memory.count([inChannels / groups, kernel, kernel]) else {
      throw TensorError.invalidShape(op: "conv2d", shape: [outChannels, inChannels / groups, kernel, kernel], reason: "has sizes whose product is too large")
    }
    self.inChannels = inChannels; self.outChannels = outChannels; self.kernel = kernel; self.stride = stride
    self.padding = padding; self.dilation = dilation; self.groups = groups
    let bound = 1 / Float(fanIn).squareRoot()
    weight = Variable(try Tensor.rand([outChannels, inChannels / groups, kernel, kernel], seed: seed)
      .binary(.multiply, scalar: 2 * bound).binary(.subtract, scalar: bound), requiresGrad: true, name: "weight")
    self.bias = bias ? Variable(try Tensor.rand([outChannels], seed: seed &+ 1).binary(.multiply, scalar: 2 * bound)
      .binary(.subtract, scalar: bound), requiresGrad: true, name: "bias") : nil
  }

  public var parameters: [Variable] { [weight] + (bias.map { [$0] } ?? []) }
  public var summary: String {
    var s = "Conv2d(\(inChannels) → \(outChannels), \(kernel)×\(kernel)"
    if stride != 1 { s += ", stride \(stride)" }
    if padding != 0 { s += ", padding \(padding)" }
    if dilation != 1 { s += ", dilation \(dilation)" }
    if groups != 1 { s += ", groups \(groups)" }
    return s + ")"
  }

  public func forward(_ x: Variable) throws -> Variable {
    guard x.shape.count == 4, x.shape[1] == inChannels else {
      throw TensorError.shapeMismatch(op: "conv2d", lhs: x.shape, rhs: weight.shape)
    }
    return try Variable.conv2d(x, weight, bias: bias, stride: stride, padding: padding, dilation: dilation, groups: groups)
  }
}

public final class Pool2d: Module {
  public enum Kind: String { case max, average }
  public let kind: Kind, kernel: Int, stride: Int
  public init(_ kind: Kind, kernel: Int, stride: Int? = nil) throws {
    let largest = ConvGeometry.maximumParameter
    guard kernel > 0, kernel <= largest, (stride ?? kernel) > 0, (stride ?? kernel) <= largest else {
      throw TensorError.invalidArgument(op: "pool2d", reason: "kernel \(kernel) and stride \(stride ?? kernel) must be 1 to \(largest)")
    }
    self.kind = kind; self.kernel = kernel; self.stride = stride ?? kernel
  }
  public var parameters: [Variable] { [] }
  public var summary: String { "\(kind == .max ? "MaxPool2d" : "AvgPool2d")(\(kernel)\(stride != kernel ? ", stride \(stride)" : ""))" }
  public func forward(_ x: Variable) throws -> Variable {
    kind == .max ? try x.maxPool2d(kernel: kernel, stride: stride) : try x.avgPool2d(kernel: kernel, stride: stride)
  }
}
