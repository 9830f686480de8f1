// Attention layers: multi-head self-attention, a pre-norm transformer block, and a small ViT builder.

import LatheTensor

/// LayerNorm over the last axis with learned scale and shift.
public final class LayerNorm: Module {
  public let weight: Variable, bias: Variable
  public let features: Int
  public init(_ features: Int) throws {
    self.features = features
    weight = Variable(try Tensor.ones([features]), requiresGrad: true, name: "weight")
    bias = Variable(try Tensor.zeros([features]), requiresGrad: true, name: "bias")
  }
  public var parameters: [Variable] { [weight, bias] }
  public var summary: String { "LayerNorm(\(features))" }
  public func forward(_ x: Variable) throws -> Variable { try x.layerNorm(weight: weight, bias: bias) }
}

/// Multi-head self-attention over [N, T, D]: projections to queries, keys and values, attention per head,
/// then an output projection (Vaswani et al. 2017).
public final class MultiHeadAttention: Module {
  public let dim: Int, heads: Int, causal: Bool
  let query: Linear, key: Linear, value: Linear, output: Linear

  public init(dim: Int, heads: Int, causal: Bool = false, seed: UInt64) throws {
    guard heads > 0, dim % heads == 0 else {
      throw TensorError.invalidArgument(op: "attention", reason: "dim \(dim) must be a multiple of heads \(heads)")
    }
    self.dim = dim; self.heads = heads; self.causal = causal
    query = try Linear(dim, dim, seed: seed); key = try Linear(dim, dim, seed: seed &+ 10)
    value = try Linear(dim, dim, seed: seed &+ 20); output = try Linear(dim, dim, seed: seed &+ 30)
  }

  public var parameters: [Variable] { [query, key, value, output].flatMap(\.parameters) }
  public var summary: String { "MultiHeadAttention(\(dim), heads \(heads)\(causal ? ", causal" : ""))" }

  public func forward(_ x: Variable) throws -> Variable {
    guard x.shape.count == 3, x.shape[2] == dim else { throw TensorError.shapeMismatch(op: "attention", lhs: x.shape, rhs: [dim, dim]) }
    let n = x.shape[0], t = x.shape[1], hd = dim / heads
    // [N, T, D] → [N·H, T, D/H]
    func split(_ v: Variable) throws -> Variable { try v.reshaped(to: [n, t, heads, hd]).permuted([0, 2, 1, 3]).reshaped(to: [n * heads, t, hd]) }
    let attended = try Variable.scaledDotProductAttention(try split(query.forward(x)), try split(key.forward(x)),
                                                           try split(value.forward(x)), causal: causal)
    let merged = try attended.reshaped(to: [n, heads, t, hd]).permuted([0, 2, 1, 3]).reshaped(to: [n, t, dim])
    return try output.forward(merged)
  }
}

/// Pre-norm transformer block: x + attention(norm(x)), then x + mlp(norm(x)) with a GELU MLP of `hidden` units.
public final class TransformerBlock: Module {
  let norm1: LayerNorm, attention: MultiHeadAttention, norm2: LayerNorm, up: Linear, down: Linear
  public init(dim: Int, heads: Int, hidden: Int, causal: Bool = false, seed: UInt64) throws {
    norm1 = try LayerNorm(dim); attention = try MultiHeadAttention(dim: dim, heads: heads, causal: causal, seed: seed)
    norm2 = try LayerNorm(dim); up = try Linear(dim, hidden, seed: seed &+ 40); down = try Linear(hidden, dim, seed: seed &+ 50)
  }
  public var parameters: [Variable] { norm1.parameters + attention.parameters + norm2.parameters + up.parameters + down.parameters }
  public var summary: String { "TransformerBlock(\(attention.dim), heads \(attention.heads), mlp \(up.outFeatures))" }
  public func forward(_ x: Variable) throws -> Variable {
    let h = try x.add(attention.forward(norm1.forward(x)))
    return try h.add(down.forward(up.forward(norm2.forward(h)).unary(.gelu)))
  }
}

/// A small Vision Transformer (Dosovitskiy et al. 2021): patches by a strided convolution, learned position
/// embeddings, transformer blocks, mean pooling over patches, and a linear classifier.
public final class VisionTransformer: Module {
  let patchEmbed: Conv2d, position: Variable, blocks: [TransformerBlock], norm: LayerNorm, head: Linear
  public let image: Int, patch: Int, dim: Int, channels: Int, depth: Int, heads: Int, classes: Int

  public init(image: Int, channels: Int, patch: Int, dim: Int, depth: Int, heads: Int, classes: Int, seed: UInt64) throws {
    guard patch > 0, image % patch == 0, depth >= 1 else {
      throw TensorError.invalidArgument(op: "vit", reason: "image \(image) must be a multiple of patch \(patch), depth >= 1")
    }
    self.image = image; self.patch = patch; self.dim = dim
    self.channels = channels; self.depth = depth; self.heads = heads; self.classes = classes
    patchEmbed = try Conv2d(channels, dim, kernel: patch, stride: patch, seed: seed)
    let tokens = (image / patch) * (image / patch)
    position = Variable(try Tensor.randn([tokens, dim], seed: seed &+ 1).binary(.multiply, scalar: 0.02), requiresGrad: true, name: "position")
    blocks = try (0..<depth).map { try TransformerBlock(dim: dim, heads: heads, hidden: 2 * dim, seed: seed &+ 100 &* UInt64($0 + 1)) }
    norm = try LayerNorm(dim)
    head = try Linear(dim, classes, seed: seed &+ 7)
  }

  public var parameters: [Variable] {
    patchEmbed.parameters + [position] + blocks.flatMap(\.parameters) + norm.parameters + head.parameters
  }
  public var summary: String {
    "ViT(image \(image), patch \(patch), dim \(dim), depth \(blocks.count), heads \(blocks.first?.summary ?? ""))  \(parameterCount) parameters"
  }

  public func forward(_ x: Variable) throws -> Variable {
    let p = try patchEmbed.forward(x)                                   // [N, D, H/p, W/p]
    let n = p.shape[0]
    var h = try p.reshaped(to: [n, dim, -1]).swappedAxes(1, 2).add(position)   // [N, T, D]
    for block in blocks { h = try block.forward(h) }
    return try head.forward(try norm.forward(h).mean(axis: 1))
  }
}
