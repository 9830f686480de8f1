// What a model costs, layer by layer: multiply-accumulates per example (found by running one example of the input's
// shape through each layer), parameters and bytes. `flops(m, input)` and `report(m)` in the language read these.

import LatheTensor

/// One layer's counts. `path` names it as state() does ("1", "0.2"); `counted` is false for a layer whose
/// multiply-accumulates are not counted yet (attention blocks), whose macs then read 0.
public struct LayerCount: Sendable, Equatable {
  public var path: String
  public var summary: String
  public var macs: Int
  public var parameters: Int
  public var bytes: Int
  public var outputShape: [Int]
  public var counted: Bool
}

extension Module {
  /// Bytes the layer's weights take as stored: f32 parameters, or a packed layer's packed bytes.
  public var byteCount: Int {
    if let p = self as? PackedLinear { return p.byteCount }
    if let s = self as? Sequential { return s.layers.reduce(0) { $0 + $1.byteCount } }
    return parameters.reduce(0) { $0 + $1.value.count * 4 }
  }

  /// Per-layer counts for one example of shape `input` (without the batch axis: [64] for the digits MLP,
  /// [1, 28, 28] for an image), in forward order; a Sequential is opened into its layers.
  ///
  ///     try Sequential.mlp([64, 32, 10], seed: 0).layerCounts(input: [64]).map(\.macs) == [2048, 0, 320]
  public func layerCounts(input: [Int]) throws -> [LayerCount] {
    var elements = 1, overflow = false
    for n in input where !overflow { (elements, overflow) = elements.multipliedReportingOverflow(by: Swift.max(n, 0)) }
    guard !input.isEmpty, input.allSatisfy({ $0 > 0 }), !overflow, elements <= 1 << 26 else {
      throw TensorError.invalidArgument(op: "flops", reason: "input must be a positive shape of one example, got \(input)")
    }
    var out: [LayerCount] = []
    try Autograd.noGrad {
      _ = try count(Variable(try Tensor(zeros: [1] + input)), path: "", into: &out)
    }
    return out
  }

  private func count(_ x: Variable, path: String, into out: inout [LayerCount]) throws -> Variable {
    if let s = self as? Sequential {
      var h = x
      for (i, layer) in s.layers.enumerated() { h = try layer.count(h, path: path.isEmpty ? "\(i)" : "\(path).\(i)", into: &out) }
      return h
    }
    let y = try forward(x)
    var macs = 0, counted = true
    switch self {
    case let l as Linear: macs = x.value.count / l.inFeatures * l.inFeatures * l.outFeatures
    case let l as PackedLinear: macs = x.value.count / l.inFeatures * l.inFeatures * l.outFeatures
    case let c as Conv2d: macs = y.value.count * (c.inChannels / c.groups) * c.kernel * c.kernel
    case is MultiHeadAttention, is TransformerBlock, is VisionTransformer: counted = false
    default: macs = 0                      // activations, pooling, norms, reshapes: no multiply-accumulates counted
    }
    out.append(LayerCount(path: path.isEmpty ? "0" : path, summary: summary, macs: macs, parameters: parameterCount + packedCount,
                          bytes: byteCount, outputShape: Array(y.shape.dropFirst()), counted: counted))
    return y
  }

  /// Weights held packed (not trainable parameters).
  var packedCount: Int { (self as? PackedLinear).map { $0.weight.rows * $0.weight.cols + ($0.bias?.count ?? 0) } ?? 0 }
}
