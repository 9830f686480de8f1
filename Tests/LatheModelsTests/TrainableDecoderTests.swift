// The trainable decoder against a float64 forward written here as plain loops (embedding, RMSNorm, q/k norms, RoPE
// in both layouts, grouped attention with the causal cut, an additive mask and key padding, the gated feed-forward,
// tied and untied output): its f32 logits agree with the reference, and its analytic gradient of every parameter
// with central differences of the reference.

import Foundation
import Testing
@testable import LatheModels
import LatheNN
import LatheTensor

/// A float64 decoder forward over the same named weights.
struct DecoderReference {
  let config: LlamaConfig
  var weights: [String: [Double]]
  let activations: [FFNActivation]

  func rms(_ x: [Double], _ w: [Double], _ eps: Double) -> [Double] {
    let ms = x.reduce(0) { $0 + $1 * $1 } / Double(x.count)
    let r = 1 / (ms + eps).squareRoot()
    return zip(x, w).map { $0 * r * $1 }
  }
  /// y = W·x for W [rows, cols] row-major.
  func apply(_ w: [Double], _ x: [Double], rows: Int) -> [Double] {
    let cols = x.count
    return (0..<rows).map { r in (0..<cols).reduce(0) { $0 + w[r * cols + $1] * x[$1] } }
  }
  func rope(_ v: inout [Double], heads: Int, position: Int) {
    let hd = config.headDimension, half = hd / 2
    let (step, partner) = config.ropeStyle == .halves ? (1, half) : (2, 1)
    for h in 0..<heads {
      for i in 0..<half {
        let angle = Double(position) * pow(config.ropeBase, -2 * Double(i) / Double(hd))
        let j = h * hd + i * step, a = v[j], b = v[j + partner]
        v[j] = a * cos(angle) - b * sin(angle)
        v[j + partner] = a * sin(angle) + b * cos(angle)
      }
    }
  }
  func act(_ kind: FFNActivation, _ x: Double) -> Double {
    switch kind {
    case .silu: return x / (1 + exp(-x))
    case .relu: return max(x, 0)
    case .gelu: return 0.5 * x * (1 + tanh(0.7978845608 * (x + 0.044715 * x * x * x)))
    }
  }

  /// Logits [B][T][vocab].
  func logits(_ ids: [[Int]], mask: [[Double]]?, padding: [[Bool]]?) -> [[[Double]]] {
    let d = config.dimension, hd = config.headDimension, eps = Double(config.rmsEpsilon), vocab = config.vocabularySize
    let embedding = weights["token_embd.weight"]!
    return ids.enumerated().map { b, sequence in
      let t = sequence.count
      var x = sequence.map { Array(embedding[($0 * d)..<(($0 + 1) * d)]) }
      for l in 0..<config.layerCount {
        let p = "blk.\(l).", heads = config.headCounts[l], kv = config.kvHeadCounts[l], group = heads / kv
        let w = { (name: String) in weights[p + name + ".weight"]! }
        let h = x.map { rms($0, w("attn_norm"), eps) }
        var q = h.map { apply(w("attn_q"), $0, rows: heads * hd) }
        var k = h.map { apply(w("attn_k"), $0, rows: kv * hd) }
        let v = h.map { apply(w("attn_v"), $0, rows: kv * hd) }
        if config.queryKeyNorm {
          for i in 0..<t {
            for hh in 0..<heads { q[i].replaceSubrange((hh * hd)..<((hh + 1) * hd), with: rms(Array(q[i][(hh * hd)..<((hh + 1) * hd)]), w("attn_q_norm"), eps)) }
            for hh in 0..<kv { k[i].replaceSubrange((hh * hd)..<((hh + 1) * hd), with: rms(Array(k[i][(hh * hd)..<((hh + 1) * hd)]), w("attn_k_norm"), eps)) }
          }
        }
        for i in 0..<t { rope(&q[i], heads: heads, position: i); rope(&k[i], heads: kv, position: i) }
        var attended = [[Double]](repeating: [Double](repeating: 0, count: heads * hd), count: t)
        for hh in 0..<heads {
          let kh = hh / group
          for i in 0..<t {
            var scores = [Double](repeating: -.infinity, count: t)
            for j in 0...i where !(padding?[b][j] ?? false) {
              var s = 0.0
              for c in 0..<hd { s += q[i][hh * hd + c] * k[j][kh * hd + c] }
              scores[j] = s / Double(hd).squareRoot() + (mask?[i][j] ?? 0)
            }
            let top = scores.max()!
            guard top > -.infinity else { continue }
            let e = scores.map { exp($0 - top) }, sum = e.reduce(0, +)
            for j in 0..<t where e[j] > 0 { for c in 0..<hd { attended[i][hh * hd + c] += e[j] / sum * v[j][kh * hd + c] } }
          }
        }
        for i in 0..<t {
          let o = apply(w("attn_output"), attended[i], rows: d)
          for c in 0..<d { x[i][c] += o[c] }
          let f = rms(x[i], w("ffn_norm"), eps)
          let ffn = config.ffnWidths[l]
          let gate = apply(w("ffn_gate"), f, rows: ffn), up = apply(w("ffn_up"), f, rows: ffn)
          let down = apply(w("ffn_down"), zip(gate, up).map { act(activations[l], $0) * $1 }, rows: d)
          for c in 0..<d { x[i][c] += down[c] }
        }
      }
      let out = weights["output.weight"] ?? embedding
      return x.map { apply(out, rms($0, weights["output_norm.weight"]!, eps), rows: vocab) }
    }
  }
}

struct TrainableDecoderTests {
  struct Case: CustomTestStringConvertible, Sendable {
    let halves: Bool, tied: Bool, queryKeyNorm: Bool, masked: Bool, activation: FFNActivation
    var testDescription: String {
      "\(halves ? "halves" : "adjacent") \(tied ? "tied" : "untied")\(queryKeyNorm ? " qk-norm" : "")\(masked ? " mask+padding" : "") \(activation)"
    }
  }

  static let cases = [Case(halves: false, tied: true, queryKeyNorm: false, masked: true, activation: .silu),
                      Case(halves: true, tied: false, queryKeyNorm: false, masked: true, activation: .silu),
                      Case(halves: true, tied: true, queryKeyNorm: true, masked: false, activation: .gelu),
                      Case(halves: false, tied: false, queryKeyNorm: true, masked: true, activation: .silu)]

  /// d 16, 2 layers, GQA 4/2 of head dimension 4, FFN 24, vocab 11; weights redrawn larger than the init's 0.02 so
  /// that attention is far from uniform.
  static func tiny(_ c: Case) throws -> TrainableDecoder {
    var config = try LlamaConfig(vocabularySize: 11, dimension: 16, contextLength: 32, headCounts: [4, 4], kvHeadCounts: [2, 2],
                                 ffnWidths: [24, 24], headDimension: 4, ropeBase: 100, rmsEpsilon: 1e-5, tiedEmbeddings: c.tied)
    config.ropeStyle = c.halves ? .halves : .adjacentPairs
    config.queryKeyNorm = c.queryKeyNorm
    let decoder = try TrainableDecoder(config: config, activations: [c.activation, .silu], seed: 7)
    for (i, p) in decoder.parameters.enumerated() {
      let noise = try Tensor.randn(p.shape, seed: 100 + UInt64(i))
      p.value = p.shape.count == 1 ? try noise.binary(.multiply, scalar: 0.2).binary(.add, scalar: 1) : try noise.binary(.multiply, scalar: 0.4)
    }
    return decoder
  }

  static let ids = [[1, 4, 9, 2, 7], [3, 3, 10, 0, 5]]

  @Test(arguments: cases) func decoderGradientsMatchAFloat64Reference(_ c: Case) throws {
    let decoder = try Self.tiny(c)
    let t = Self.ids[0].count
    var maskRows = [[Double]](repeating: [Double](repeating: 0, count: t), count: t)
    for i in 0..<t { for j in 0..<t { maskRows[i][j] = Double((i * 7 + j * 3) % 5) * 0.3 - 0.6 } }
    let padding = [[false, false, false, false, false], [false, true, false, false, false]]
    let mask = c.masked ? try Tensor(maskRows.flatMap { $0.map(Float.init) }, shape: [t, t]) : nil
    let keyPadding = c.masked ? try Tensor(padding.flatMap { $0.map { $0 ? Float(1) : 0 } }, shape: [2, t]) : nil
    let idTensor = try Tensor(Self.ids.flatMap { $0.map(Float.init) }, shape: [2, t])
    // loss = Σ logits ∘ R for a fixed R.
    let vocab = decoder.config.vocabularySize
    let r = try Tensor.randn([2, t, vocab], seed: 99)
    let rd = r.scalars.map(Double.init)
    let logits = try decoder.logits(idTensor, mask: mask, keyPadding: keyPadding)
    try logits.multiply(Variable(r)).sum().backward()

    var reference = DecoderReference(config: decoder.config, weights: [:], activations: decoder.blocks.map(\.activation))
    for p in decoder.parameters { reference.weights[p.name!] = p.value.scalars.map(Double.init) }
    func referenceLoss(_ ref: DecoderReference) -> Double {
      let out = ref.logits(Self.ids, mask: c.masked ? maskRows : nil, padding: c.masked ? padding : nil)
      return out.joined().joined().enumerated().reduce(0) { $0 + $1.element * rd[$1.offset] }
    }
    // The forward.
    let expected = reference.logits(Self.ids, mask: c.masked ? maskRows : nil, padding: c.masked ? padding : nil).joined().joined()
    for (a, b) in zip(logits.value.scalars, expected) {
      #expect(abs(Double(a) - b) <= 1e-5 + 1e-5 * abs(b), "logit \(a) against the reference's \(b)")
    }
    // The gradient of every parameter tensor, on up to 12 entries each, against central differences (step 1e-6).
    var worst = 0.0, worstName = ""
    for (i, p) in decoder.parameters.enumerated() {
      let name = p.name!, n = p.value.count
      let grad = try #require(p.grad, "\(name) has no gradient").scalars
      let picks = n <= 12 ? Array(0..<n) : (0..<12).map { (($0 * 7919 + i * 104_729) % n) }
      let scale = max(grad.map { abs(Double($0)) }.max() ?? 0, 1e-3)
      for j in picks {
        var plus = reference, minus = reference
        plus.weights[name]![j] += 1e-6; minus.weights[name]![j] -= 1e-6
        let numeric = (referenceLoss(plus) - referenceLoss(minus)) / 2e-6
        let error = abs(Double(grad[j]) - numeric) / max(abs(numeric), scale)
        if error > worst { worst = error; worstName = "\(name)[\(j)]: \(grad[j]) against \(numeric)" }
      }
    }
    #expect(worst <= 1e-5, "largest relative gradient error \(worst) at \(worstName)")
    print("decoder gradcheck \(c.testDescription): largest relative error \(worst) (\(worstName))")
  }
}

/// Training a tiny decoder on a fixed token stream: AdamW lowers the loss and is reproducible bit for bit; frozen
/// layers stay as they were; checkpointing changes nothing; the f32 GGUF file round-trips exactly and the
/// quantised ones hold the quantise-then-dequantise weights.
struct DecoderTrainingTests {
  static func config(tied: Bool = true) throws -> LlamaConfig {
    try LlamaConfig(vocabularySize: 13, dimension: 32, contextLength: 64, headCounts: [4, 4], kvHeadCounts: [2, 2],
                    ffnWidths: [64, 64], headDimension: 8, ropeBase: 10_000, rmsEpsilon: 1e-5, tiedEmbeddings: tied)
  }
  /// A stream with structure to learn: a repeating pattern with a little seeded noise.
  static let tokens: [Int] = (0..<400).map { i in (i * 5 + (i / 7) % 3) % 13 }

  static func recipe(steps: Int, seed: UInt64 = 3) -> Recipe {
    var r = Recipe()
    r.steps = steps; r.sequence = 16; r.batch = 4; r.lr = 1e-2; r.seed = seed
    return r
  }

  static func weights(_ d: TrainableDecoder) -> [[Float]] { d.parameters.map(\.value.scalars) }

  @Test func adamWLowersTheLossAndRepeatsBitForBit() throws {
    let a = try TrainableDecoder(config: try Self.config(), seed: 1), b = try TrainableDecoder(config: try Self.config(), seed: 1)
    let first = try LanguageModelTrainer.train(a, tokens: Self.tokens, recipe: Self.recipe(steps: 30))
    let second = try LanguageModelTrainer.train(b, tokens: Self.tokens, recipe: Self.recipe(steps: 30))
    #expect(first.losses.last! < first.losses.first! - 0.5, "losses \(first.losses)")
    #expect(first.losses == second.losses)
    #expect(Self.weights(a) == Self.weights(b), "the same seed gave different weights")
    // One step on one fixed batch lowers that batch's loss.
    let c = try TrainableDecoder(config: try Self.config(), seed: 2)
    let ids = try Tensor(Self.tokens.prefix(16).map(Float.init), shape: [1, 16]), targets = Array(Self.tokens[1...16])
    func loss() throws -> Float {
      try Autograd.noGrad { try Variable.tokenCrossEntropy(c.logits(ids).reshaped(to: [16, 13]), targets: targets).value.scalars[0] }
    }
    let before = try loss()
    try Variable.tokenCrossEntropy(c.logits(ids).reshaped(to: [16, 13]), targets: targets).backward()
    try AdamW().step(c.parameters, lr: 1e-2)
    #expect(try loss() < before)
  }

  @Test func frozenLayersStayBitwiseEqual() throws {
    let d = try TrainableDecoder(config: try Self.config(tied: false), seed: 4)
    for p in d.blocks[0].parameters { p.frozen = true }
    let before = d.blocks[0].parameters.map(\.value.scalars), otherBefore = d.blocks[1].parameters.map(\.value.scalars)
    _ = try LanguageModelTrainer.train(d, tokens: Self.tokens, recipe: Self.recipe(steps: 5))
    #expect(d.blocks[0].parameters.map(\.value.scalars) == before)
    #expect(d.blocks[1].parameters.map(\.value.scalars) != otherBefore)
    #expect(d.parameters.allSatisfy { $0.grad == nil }, "gradients left behind")
  }

  @Test func checkpointingGivesTheSameTraining() throws {
    let a = try TrainableDecoder(config: try Self.config(), seed: 5), b = try TrainableDecoder(config: try Self.config(), seed: 5)
    var r = Self.recipe(steps: 4)
    let plain = try LanguageModelTrainer.train(a, tokens: Self.tokens, recipe: r)
    r.checkpoint = true
    let checkpointed = try LanguageModelTrainer.train(b, tokens: Self.tokens, recipe: r)
    #expect(plain.losses == checkpointed.losses)
    #expect(Self.weights(a) == Self.weights(b))
  }

  @Test func accumulationOfMicroBatchesMatchesOneLargeBatch() throws {
    let a = try TrainableDecoder(config: try Self.config(), seed: 6), b = try TrainableDecoder(config: try Self.config(), seed: 6)
    var r = Self.recipe(steps: 3)
    r.optimizerName = "sgd"; r.makeOptimizer = { SGD() }
    r.batch = 4
    let whole = try LanguageModelTrainer.train(a, tokens: Self.tokens, recipe: r)
    r.batch = 2; r.accumulate = 2
    let accumulated = try LanguageModelTrainer.train(b, tokens: Self.tokens, recipe: r)
    for (x, y) in zip(whole.losses, accumulated.losses) { #expect(abs(x - y) <= 1e-5 * abs(x), "\(whole.losses) against \(accumulated.losses)") }
    for (x, y) in zip(Self.weights(a).joined(), Self.weights(b).joined()) { #expect(abs(x - y) <= 1e-5 + 1e-4 * abs(x)) }
  }

  @Test func runnableAndGGUFRoundTrip() throws {
    let d = try TrainableDecoder(config: try Self.config(tied: false), seed: 7)
    _ = try LanguageModelTrainer.train(d, tokens: Self.tokens, recipe: Self.recipe(steps: 3))
    let model = try d.runnable()
    let ids = Array(Self.tokens.prefix(20))
    let cache = try model.makeCache(capacity: ids.count)
    let inference = try model.forward(ids, cache: cache, allLogits: true)
    let trained = try Autograd.noGrad { try d.logits(try Tensor(ids.map(Float.init), shape: [20])) }.value.scalars
    for (x, y) in zip(inference, trained) { #expect(abs(x - y) <= 1e-5 + 1e-5 * abs(y)) }

    let dir = FileManager.default.temporaryDirectory.appendingPathComponent("decoder-gguf-\(getpid())")
    try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    defer { try? FileManager.default.removeItem(at: dir) }
    let f32 = dir.appendingPathComponent("f32.gguf").path
    try model.writeGGUF(to: f32, type: .f32)
    let back = try LlamaModel(path: f32)
    for ((name, a), (_, b)) in zip(model.namedWeights, back.namedWeights) {
      #expect(try a.denseF32().scalars == b.denseF32().scalars, "\(name) changed in the f32 round trip")
    }
    for type in [GGMLType.q8_0, .q4_1] {
      let path = dir.appendingPathComponent("\(type.name).gguf").path
      try model.writeGGUF(to: path, type: type)
      let q = try LlamaModel(path: path)
      let dtype: DType = type == .q8_0 ? .q8_0 : .q4_1
      for ((name, a), (_, b)) in zip(model.namedWeights, q.namedWeights) where a.shape.count == 2 {
        let expected = try a.denseF32().copied(as: dtype).copied(as: .f32).scalars
        #expect(try b.denseF32().scalars == expected, "\(name) in \(type.name) is not the quantise-then-dequantise reference")
      }
    }
  }
}
