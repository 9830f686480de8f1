// droplayers(keep:): a model transform that keeps a subset of a decoder's layers, every k-th one from layer 0 or an
// explicit list. The result shares the kept layers' weights with the model it came from and runs as any model does
// (a cheap draft for speculative decoding, an auxiliary model for KV prediction).

import Foundation
import LatheModels

public struct DropLayers: ModelTransform, Equatable {
  public enum Keep: Equatable, Sendable {
    /// Keeps layer i when ⌈(i+1)·f⌉ > ⌈i·f⌉: a fraction f of the layers at regular intervals, layer 0 first. For
    /// f = 1/k that is 0, k, 2k, …; f = 0.75 drops 3, 7, 11, … (KV prediction's LP-0.75 model).
    case fraction(Double)
    /// Keeps exactly these layers, in this order.
    case layers([Int])
  }
  public let keep: Keep

  public init(keep: Keep) throws {
    switch keep {
    case .fraction(let f):
      guard f.isFinite, f > 0, f <= 1 else { throw TechniqueError("droplayers: keep must be a fraction in (0, 1] or a list of layers, got \(f)") }
    case .layers(let l):
      guard !l.isEmpty else { throw TechniqueError("droplayers: keep needs at least one layer") }
      guard l.allSatisfy({ $0 >= 0 }) else { throw TechniqueError("droplayers: layer numbers must be >= 0, got \(l)") }
      guard Set(l).count == l.count else { throw TechniqueError("droplayers: keep names a layer twice: \(l)") }
    }
    self.keep = keep
  }

  /// The layers kept of a model with `count` layers.
  ///
  ///     try DropLayers(keep: .fraction(0.5)).kept(of: 30) == [0, 2, 4, …, 28]
  public func kept(of count: Int) throws -> [Int] {
    switch keep {
    case .fraction(let f):
      // The rounding guard keeps products such as 6·(1/3) = 1.9999999999999998 on their whole number.
      func ceiling(_ x: Double) -> Double { (x - 1e-9).rounded(.up) }
      return (0..<count).filter { i in ceiling(Double(i + 1) * f) > ceiling(Double(i) * f) }
    case .layers(let l):
      if let bad = l.first(where: { $0 >= count }) {
        throw TechniqueError("droplayers: layer \(bad) is not one of the model's 0..<\(count)")
      }
      return l
    }
  }

  public func transform(_ model: LlamaModel, data: String?) throws -> LlamaModel {
    let kept = try kept(of: model.config.layerCount)
    var config = model.config
    config.headCounts = kept.map { model.config.headCounts[$0] }
    config.kvHeadCounts = kept.map { model.config.kvHeadCounts[$0] }
    config.ffnWidths = kept.map { model.config.ffnWidths[$0] }
    let out = try LlamaModel(config: config, layers: kept.map { model.layers[$0] }, tokenEmbedding: model.tokenEmbedding,
                             outputNorm: model.outputNorm, outputWeight: model.outputWeight, tokenizer: model.tokenizer,
                             name: model.name + " · " + description)
    out.ggufMetadata = model.ggufMetadata
    out.threads = model.threads
    out.sourceLayers = kept.map { model.sourceLayers?[$0] ?? $0 }
    return out
  }

  public var entry: TechniqueEntry { DropLayers.entry }
  public var description: String {
    switch keep {
    case .fraction(let f): return "droplayers(keep: \(TechniqueArgument.number(f)))"
    case .layers(let l): return "droplayers(keep: [\(l.map(String.init).joined(separator: ", "))])"
    }
  }
  public var fields: [(String, TechniqueArgument)] {
    switch keep {
    case .fraction(let f): return [("keep", .float(f))]
    case .layers(let l): return [("keep", .list(l.map { .int($0) }))]
    }
  }

  public static let entry = TechniqueEntry(
    name: "droplayers", roles: [.modelTransform],
    parameters: [TechniqueParameter("keep", .float(0.5), "a fraction f of the layers at regular intervals (1/k: layers 0, k, 2k, …) or a list of layers")],
    doc: "Keeps some of a decoder's layers: keep: f keeps layer i when ceil((i+1)·f) > ceil(i·f), a fraction f at regular intervals from layer 0 (0.5: 0, 2, 4, …; 0.25: 0, 4, 8, …; 0.75 drops 3, 7, 11, …); keep: a list keeps those layers in that order. The embeddings, final norm and head stay; the kept layers' weights are shared.",
    example: "let draft = compress(m, droplayers(keep: 0.5))",
    make: { a in
      switch a["keep"] {
      case .list(let items):
        return try DropLayers(keep: .layers(try items.map { v -> Int in
          guard case .int(let i) = v else { throw TechniqueError("droplayers: a keep list holds layer numbers, got \(v.typeName)") }
          return i
        }))
      default:
        return try DropLayers(keep: .fraction(try a.double("keep")))
      }
    })
}
