// A model's architecture as JSON, so a saved model (architecture + state) loads back as a model.

import Foundation
import LatheTensor

public enum Architecture {
  /// The architecture of `module`, or nil when it holds a layer this format does not describe.
  public static func describe(_ module: Module) -> [String: Any]? {
    switch module {
    case let m as Sequential:
      let layers = m.layers.map(describe)
      guard layers.allSatisfy({ $0 != nil }) else { return nil }
      return ["kind": "sequential", "layers": layers.compactMap { $0 }]
    case let m as Linear: return ["kind": "linear", "in": m.inFeatures, "out": m.outFeatures, "bias": m.bias != nil]
    case let m as Conv2d:
      return ["kind": "conv2d", "in": m.inChannels, "out": m.outChannels, "kernel": m.kernel, "stride": m.stride,
              "padding": m.padding, "dilation": m.dilation, "groups": m.groups, "bias": m.bias != nil]
    case let m as Pool2d: return ["kind": "pool2d", "pool": m.kind.rawValue, "kernel": m.kernel, "stride": m.stride]
    case let m as Activation: return ["kind": "activation", "function": m.kernel.rawValue]
    case is Flatten: return ["kind": "flatten"]
    case let m as LayerNorm: return ["kind": "layernorm", "features": m.features]
    case let m as Embedding: return ["kind": "embedding", "vocab": m.vocab, "dim": m.dim]
    case let m as Dropout: return ["kind": "dropout", "p": Double(m.p), "seed": Int(truncatingIfNeeded: m.seed)]
    case let m as BatchNorm2d: return ["kind": "batchnorm2d", "channels": m.channels]
    case let m as GroupNorm: return ["kind": "groupnorm", "groups": m.groups, "channels": m.channels]
    case let m as MultiHeadAttention: return ["kind": "mha", "dim": m.dim, "heads": m.heads, "causal": m.causal]
    case let m as VisionTransformer:
      return ["kind": "vit", "image": m.image, "channels": m.channels, "patch": m.patch, "dim": m.dim, "depth": m.depth,
              "heads": m.heads, "classes": m.classes]
    default: return nil
    }
  }

  /// A fresh module of the described architecture (weights from seed 0: load a state into it next).
  public static func build(_ spec: [String: Any]) throws -> Module {
    func int(_ key: String) throws -> Int {
      guard let v = (spec[key] as? NSNumber)?.intValue else { throw TensorError.invalidArgument(op: "architecture", reason: "\(key) is missing") }
      return v
    }
    let bias = (spec["bias"] as? Bool) ?? true
    switch spec["kind"] as? String {
    case "sequential":
      guard let layers = spec["layers"] as? [[String: Any]] else { throw TensorError.invalidArgument(op: "architecture", reason: "layers are missing") }
      return Sequential(try layers.map(build))
    case "linear": return try Linear(try int("in"), try int("out"), bias: bias, seed: 0)
    case "conv2d":
      return try Conv2d(try int("in"), try int("out"), kernel: try int("kernel"), stride: try int("stride"), padding: try int("padding"),
                        dilation: try int("dilation"), groups: try int("groups"), bias: bias, seed: 0)
    case "pool2d":
      guard let kind = Pool2d.Kind(rawValue: spec["pool"] as? String ?? "") else { throw TensorError.invalidArgument(op: "architecture", reason: "unknown pool") }
      return try Pool2d(kind, kernel: try int("kernel"), stride: try int("stride"))
    case "activation":
      guard let k = UnaryKernel(rawValue: spec["function"] as? String ?? "") else { throw TensorError.invalidArgument(op: "architecture", reason: "unknown activation") }
      return Activation(k)
    case "flatten": return Flatten()
    case "layernorm": return try LayerNorm(try int("features"))
    case "embedding": return try Embedding(vocab: try int("vocab"), dim: try int("dim"), seed: 0)
    case "dropout":
      return try Dropout(Float((spec["p"] as? NSNumber)?.doubleValue ?? 0), seed: UInt64(truncatingIfNeeded: (spec["seed"] as? NSNumber)?.intValue ?? 0))
    case "batchnorm2d": return try BatchNorm2d(try int("channels"))
    case "groupnorm": return try GroupNorm(groups: try int("groups"), channels: try int("channels"))
    case "mha": return try MultiHeadAttention(dim: try int("dim"), heads: try int("heads"), causal: (spec["causal"] as? Bool) ?? false, seed: 0)
    case "vit":
      return try VisionTransformer(image: try int("image"), channels: try int("channels"), patch: try int("patch"), dim: try int("dim"),
                                   depth: try int("depth"), heads: try int("heads"), classes: try int("classes"), seed: 0)
    case let other: throw TensorError.invalidArgument(op: "architecture", reason: "unknown layer kind \(other ?? "none")")
    }
  }

  public static func json(_ module: Module) -> String? {
    guard let spec = describe(module), let data = try? JSONSerialization.data(withJSONObject: spec, options: [.sortedKeys]) else { return nil }
    return String(decoding: data, as: UTF8.self)
  }

  public static func build(json: String) throws -> Module {
    guard let data = json.data(using: .utf8), let spec = try? JSONSerialization.jsonObject(with: data) as? [String: Any] else {
      throw TensorError.invalidArgument(op: "architecture", reason: "not a JSON object")
    }
    return try build(spec)
  }
}
