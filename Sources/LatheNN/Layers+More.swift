// Embedding, Dropout and BatchNorm2d layers. Dropout and BatchNorm behave as in training while the graph is
// recorded (train) and as at inference inside no-grad regions (evaluate, Autograd.noGrad).

import Foundation
import LatheTensor

/// Rows of a learned table [vocab, dim] at integer ids: [..] → [.., dim]. Initialised N(0, 1) from a seed.
public final class Embedding: Module {
  public let table: Variable
  public let vocab: Int, dim: Int
  public init(vocab: Int, dim: Int, seed: UInt64) throws {
    guard vocab > 0, dim > 0 else { throw TensorError.invalidArgument(op: "embedding", reason: "vocab and dim must be positive") }
    self.vocab = vocab; self.dim = dim
    table = Variable(try Tensor.randn([vocab, dim], seed: seed), requiresGrad: true, name: "weight")
  }
  public var parameters: [Variable] { [table] }
  public var summary: String { "Embedding(\(vocab), \(dim))" }
  public func forward(_ x: Variable) throws -> Variable { try Variable.embedding(x.value, table: table) }
}

/// Zeroes inputs with probability p while training (scaling the rest by 1/(1−p)); the identity at inference.
/// Each call draws a fresh mask from (seed, call number), so a training run is reproducible.
public final class Dropout: Module {
  public let p: Float, seed: UInt64
  private var calls: UInt64 = 0
  public init(_ p: Float, seed: UInt64) throws {
    guard p >= 0 && p < 1 else { throw TensorError.invalidArgument(op: "dropout", reason: "p must be in [0, 1), got \(p)") }
    self.p = p; self.seed = seed
  }
  public var parameters: [Variable] { [] }
  public var summary: String { "Dropout(\(p))" }
  public func forward(_ x: Variable) throws -> Variable {
    guard Autograd.isRecording else { return x }
    calls += 1
    return try x.dropout(p, seed: seed &+ calls &* 0x9E37_79B9_7F4A_7C15)
  }
}

/// BatchNorm over the channels of [N, C, H, W] (Ioffe & Szegedy): batch statistics while training, which also
/// update running averages (momentum 0.1); the running averages at inference.
public final class BatchNorm2d: Module {
  public let weight: Variable, bias: Variable
  public private(set) var runningMean: Tensor, runningVariance: Tensor
  public let channels: Int, momentum: Float, eps: Float
  public init(_ channels: Int, momentum: Float = 0.1, eps: Float = 1e-5) throws {
    guard channels > 0 else { throw TensorError.invalidArgument(op: "batchnorm", reason: "channels must be positive") }
    self.channels = channels; self.momentum = momentum; self.eps = eps
    weight = Variable(try Tensor.ones([channels]), requiresGrad: true, name: "weight")
    bias = Variable(try Tensor.zeros([channels]), requiresGrad: true, name: "bias")
    runningMean = try Tensor.zeros([channels]); runningVariance = try Tensor.ones([channels])
  }
  public var parameters: [Variable] { [weight, bias] }
  public var summary: String { "BatchNorm2d(\(channels))" }

  public func forward(_ x: Variable) throws -> Variable {
    guard x.shape.count == 4, x.shape[1] == channels else {
      throw TensorError.shapeMismatch(op: "batchnorm", lhs: x.shape, rhs: [channels])
    }
    let shape = [1, channels, 1, 1]
    if Autograd.isRecording {
      // Per-channel batch statistics (biased variance for normalising, unbiased for the running estimate).
      let perChannel = try x.value.permuted([1, 0, 2, 3]).reshaped(to: [channels, -1])
      let n = Float(perChannel.shape[1])
      let mean = try perChannel.reduce(.mean, axis: 1), variance = try perChannel.reduce(.variance, axis: 1)
      runningMean = try runningMean.binary(.multiply, scalar: 1 - momentum).add(mean.binary(.multiply, scalar: momentum))
      let unbiased = try variance.binary(.multiply, scalar: n / Swift.max(n - 1, 1))
      runningVariance = try runningVariance.binary(.multiply, scalar: 1 - momentum).add(unbiased.binary(.multiply, scalar: momentum))
      return try x.batchNorm(weight: weight, bias: bias, eps: eps)
    }
    let scale = try runningVariance.binary(.add, scalar: eps).unary(.sqrt).binary(.divide, scalar: 1, scalarOnLeft: true)
    let normalized = try x.subtract(Variable(try runningMean.reshaped(to: shape))).multiply(Variable(try scale.reshaped(to: shape)))
    return try normalized.multiply(weight.reshaped(to: shape)).add(bias.reshaped(to: shape))
  }
}

/// GroupNorm over [N, C, ...]: the channels in `groups` groups, each normalised over its channels and positions,
/// then a learned per-channel scale and shift. The same in training and evaluation (no running statistics).
public final class GroupNorm: Module {
  public let weight: Variable, bias: Variable
  public let groups: Int, channels: Int, eps: Float
  public init(groups: Int, channels: Int, eps: Float = 1e-5) throws {
    guard groups > 0, channels > 0, channels % groups == 0 else {
      throw TensorError.invalidArgument(op: "groupnorm", reason: "channels (\(channels)) must be a positive multiple of groups (\(groups))")
    }
    self.groups = groups; self.channels = channels; self.eps = eps
    weight = Variable(try Tensor.ones([channels]), requiresGrad: true, name: "weight")
    bias = Variable(try Tensor.zeros([channels]), requiresGrad: true, name: "bias")
  }
  public var parameters: [Variable] { [weight, bias] }
  public var summary: String { "GroupNorm(\(groups), \(channels))" }

  public func forward(_ x: Variable) throws -> Variable {
    guard x.shape.count >= 2, x.shape[1] == channels else {
      throw TensorError.shapeMismatch(op: "groupnorm", lhs: x.shape, rhs: [channels])
    }
    return try x.groupNorm(groups: groups, weight: weight, bias: bias, eps: eps)
  }
}
