// lora(rank:, alpha:, targets:, seed:): low-rank adaptation (Hu et al., 2021) as a training method for decoders.
// Each targeted matrix W [out, in] of every layer gets A [rank, in] (seeded, uniform in ±1/√in, as Kaiming-uniform
// with a = √5 draws PyTorch's default Linear init) and B [out, rank] at zero; the layer computes
// x·Wᵀ + (alpha/rank)·(x·Aᵀ)·Bᵀ, so at the start the output is unchanged. Training moves A and B only: the base
// weights are frozen (and stay so; freeze(t, frozen: false) trains them again). `compress(t)` (or runnable(t), which
// always folds them) merges the adapters into W.

import Foundation
import LatheModels
import LatheNN
import LatheTensor

public final class LoRA: FinalizingTechnique {
  public let rank: Int
  public let alpha: Double
  public let targets: [String]
  public let seed: UInt64
  /// Adapter parameters the last training added (A and B of every targeted matrix).
  public private(set) var adapterParameters = 0

  public init(rank: Int, alpha: Double, targets: [String], seed: UInt64) throws {
    guard rank >= 1, rank <= 4096 else { throw TechniqueError("lora: rank must be in 1...4096, got \(rank)") }
    guard alpha.isFinite, alpha > 0 else { throw TechniqueError("lora: alpha must be positive, got \(alpha)") }
    let known = LlamaLayer.matrixNames
    let expanded = targets == ["all"] ? known : targets
    guard !expanded.isEmpty else { throw TechniqueError("lora: targets must name at least one matrix (\(known.joined(separator: ", ")) or \"all\")") }
    for t in expanded where !known.contains(t) {
      var message = "lora: unknown target \"\(t)\"; the matrices are \(known.joined(separator: ", ")) (or \"all\")"
      if let near = known.first(where: { $0.hasSuffix("_" + t) || t.hasPrefix($0.split(separator: "_").last.map(String.init) ?? "") }) {
        message += "; did you mean \"\(near)\"?"
      }
      throw TechniqueError(message)
    }
    self.rank = rank; self.alpha = alpha; self.targets = expanded; self.seed = seed
  }

  public var entry: TechniqueEntry { LoRA.entry }
  public var description: String {
    "lora(rank: \(rank), alpha: \(TechniqueArgument.number(alpha)), targets: [\(targets.map { "\"\($0)\"" }.joined(separator: ", "))], seed: \(seed))"
  }
  public var fields: [(String, TechniqueArgument)] {
    [("rank", .int(rank)), ("alpha", .float(alpha)), ("targets", .list(targets.map { .string($0) })), ("adapterParameters", .int(adapterParameters))]
  }

  public static let entry = TechniqueEntry(
    name: "lora", roles: [.trainingMethod],
    parameters: [TechniqueParameter("rank", .int(8), "r: the rank of each adapter B·A"),
                 TechniqueParameter("alpha", .float(16), "the adapter's output is scaled by alpha / rank"),
                 TechniqueParameter("targets", .list([.string("attn_q"), .string("attn_v")]),
                                    "the matrices of every layer that get adapters: attn_q, attn_k, attn_v, attn_output, ffn_gate, ffn_up, ffn_down, or \"all\""),
                 TechniqueParameter("seed", .int(0), "draws A")],
    doc: "Low-rank adaptation for train(t, text, lora(...), recipe): each targeted matrix W gets W + (alpha/rank)·B·A with B at zero (the output is unchanged at the start); only A and B train, the base is frozen. runnable(t) and compress(t) fold the adapters into W.",
    example: "train(t, corpus(\"lee\", split: \"train\"), lora(rank: 8, targets: [\"attn_q\", \"attn_v\"]), recipe(steps: 50, seq: 128, batch: 4))",
    make: { a in
      let targets: [String]
      switch a["targets"] {
      case .string(let s): targets = [s]
      case .list(let items):
        targets = try items.map {
          guard case .string(let s) = $0 else { throw TechniqueError("lora: targets must be matrix names, got \($0.typeName)") }
          return s
        }
      default: throw TechniqueError("lora: targets must be a list of matrix names, got \(a["targets"].typeName)")
      }
      return try LoRA(rank: try a.int("rank"), alpha: try a.double("alpha"), targets: targets,
                      seed: UInt64(bitPattern: Int64(try a.int("seed"))))
    },
    decode: { bytes in try Techniques.parse(String(decoding: bytes, as: UTF8.self)) })

  func decoder(_ model: Module) throws -> TrainableDecoder {
    guard let d = model as? TrainableDecoder else {
      throw TechniqueError("lora: adapts a language model (load(...) or trainable(...)), not \(model.summary)")
    }
    return d
  }

  /// Adds an adapter to every targeted matrix that has none yet, and freezes the base weights.
  public func prepare(_ model: Module) throws {
    let d = try decoder(model)
    var added = 0
    for (l, block) in d.blocks.enumerated() {
      for (name, w) in block.matrices where targets.contains(name) {
        let key = "blk.\(l).\(name)"
        if d.adapters[key] != nil { continue }
        let out = w.shape[0], inner = w.shape[1]
        let bound = 1 / Float(inner).squareRoot()
        let a = try Tensor.rand([rank, inner], seed: seed &+ UInt64(l * 16 + (LlamaLayer.matrixNames.firstIndex(of: name) ?? 0)))
          .binary(.multiply, scalar: 2 * bound).binary(.subtract, scalar: bound)
        d.adapters[key] = .init(a: Variable(a, requiresGrad: true, name: key + ".lora_a"),
                                b: Variable(try Tensor.zeros([out, rank]), requiresGrad: true, name: key + ".lora_b"),
                                scale: Float(alpha / Double(rank)))
        added += (out + inner) * rank
      }
    }
    let adapterIDs = Set(d.adapterParameters.map { ObjectIdentifier($0) })
    for p in d.parameters where !adapterIDs.contains(ObjectIdentifier(p)) { p.frozen = true }
    adapterParameters = added == 0 ? adapterParameters : added
  }

  /// Only the adapters of the targeted matrices train.
  public func trainableParameters(of model: Module, _ parameters: [Variable]) throws -> [Variable]? {
    let d = try decoder(model)
    return d.adapters.filter { key, _ in targets.contains { key.hasSuffix("." + $0) } }.sorted { $0.key < $1.key }
      .flatMap { [$0.value.a, $0.value.b] }
  }

  /// The decoder with its adapters merged into the matrices (the model itself is left as it is).
  public func finalize(_ model: Module) throws -> Module {
    let d = try decoder(model)
    let merged = try TrainableDecoder(model: try d.runnable())
    return merged
  }
}
