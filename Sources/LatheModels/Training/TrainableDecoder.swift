// The Llama-family decoder as an autograd module: the same configuration (per-layer head counts and FFN widths, GQA,
// both RoPE layouts, optional query/key norms, tied or untied embeddings, an activation per layer) as the inference
// model, its weights f32 Variables named as in GGUF files. `init(model:)` dequantises a loaded model;
// `init(config:seed:)` draws a fresh one; `runnable()` and `write(into:)` go back to the fast inference form.
// Each layer is a handful of fused nodes (Variable+Decoder.swift): x·Wᵀ, RMSNorm, RoPE, grouped attention, the gated
// activation, so that a step costs its matrix products.

import Foundation
import LatheNN
import LatheTensor

public final class TrainableDecoder: Module {
  /// One decoder layer's parameters.
  public final class Block {
    public let attentionNorm: Variable, query: Variable, key: Variable, value: Variable, output: Variable
    public let ffnNorm: Variable, gate: Variable, up: Variable, down: Variable
    public let queryNorm: Variable?, keyNorm: Variable?
    public var activation: FFNActivation

    init(_ named: (String, Tensor) -> Variable, layer l: Int, tensors: [String: Tensor], activation: FFNActivation) throws {
      func take(_ name: String) throws -> Variable {
        let key = "blk.\(l).\(name).weight"
        guard let t = tensors[key] else { throw TensorError.invalidArgument(op: "trainable", reason: "no tensor \(key)") }
        return named(key, t)
      }
      attentionNorm = try take("attn_norm"); query = try take("attn_q"); key = try take("attn_k"); value = try take("attn_v")
      output = try take("attn_output"); ffnNorm = try take("ffn_norm"); gate = try take("ffn_gate"); up = try take("ffn_up")
      down = try take("ffn_down")
      queryNorm = tensors["blk.\(l).attn_q_norm.weight"] == nil ? nil : try take("attn_q_norm")
      keyNorm = tensors["blk.\(l).attn_k_norm.weight"] == nil ? nil : try take("attn_k_norm")
      self.activation = activation
    }

    /// The parameters in GGUF order: the two norms, the seven matrices, the query/key norms.
    public var parameters: [Variable] {
      [attentionNorm, ffnNorm, query, key, value, output, gate, up, down] + [queryNorm, keyNorm].compactMap { $0 }
    }
    public var matrices: [(String, Variable)] {
      zip(LlamaLayer.matrixNames, [query, key, value, output, gate, up, down]).map { ($0, $1) }
    }
  }

  public let config: LlamaConfig
  public let embedding: Variable, outputNorm: Variable
  /// The output projection when it is not tied to the embedding.
  public let outputWeight: Variable?
  public let blocks: [Block]
  public var tokenizer: BPETokenizer?
  public var name: String
  /// GGUF metadata of the model this came from, carried to `runnable()` (chat template, token types).
  public var ggufMetadata: [(key: String, value: GGUFValue)] = []
  /// Per-layer gradient checkpointing: keep only each layer's input and recompute the layer in the backward pass.
  public var checkpointing = false
  /// Low-rank adapters (LoRA) by matrix, "blk.3.attn_q": x·Wᵀ + scale·(x·Aᵀ)·Bᵀ with A [rank, in], B [out, rank].
  public var adapters: [String: Adapter] = [:]

  public struct Adapter {
    public let a: Variable, b: Variable, scale: Float
    public init(a: Variable, b: Variable, scale: Float) { self.a = a; self.b = b; self.scale = scale }
    /// scale·B·A [out, in], the change the adapter makes to its matrix.
    public func delta() throws -> Tensor { try b.value.matmul(a.value).binary(.multiply, scalar: scale) }
  }

  /// The decoder of a loaded model: every weight dequantised to f32 (packed and compressed forms included).
  /// `sharingWeights`: f32 weights are used as they are, not copied (a frozen decoder that is never written).
  public convenience init(model: LlamaModel, sharingWeights: Bool = false) throws {
    var tensors: [String: Tensor] = [:]
    // Copies even of f32 weights unless shared: training updates these tensors in place, and the model may share
    // its weights with others (droplayers keeps the layers of the model it came from).
    for (name, weight) in model.namedWeights {
      let dense = try weight.denseF32()
      tensors[name] = !sharingWeights && dense.storage === weight.tensor?.storage ? try dense.copied(as: .f32) : dense
    }
    try self.init(config: model.config, tensors: tensors, activations: model.layers.map(\.activation),
                  tokenizer: model.tokenizer, name: model.name)
    ggufMetadata = model.ggufMetadata
  }

  /// A fresh decoder: matrices from N(0, 0.02²) (the output projections of each layer scaled by 1/√(2·layers), as
  /// GPT-2 does), the embedding N(0, 0.02²), norms at 1; every draw from `seed`.
  public convenience init(config: LlamaConfig, activations: [FFNActivation]? = nil, seed: UInt64, tokenizer: BPETokenizer? = nil,
                          name: String = "llama") throws {
    let d = config.dimension, hd = config.headDimension
    var tensors: [String: Tensor] = [:]
    var draw: UInt64 = 0
    func normal(_ shape: [Int], std: Float) throws -> Tensor {
      draw += 1
      return try Tensor.randn(shape, seed: seed &+ draw &* 0x9E37_79B9_7F4A_7C15).binary(.multiply, scalar: std)
    }
    let residualStd = 0.02 / Float(2 * config.layerCount).squareRoot()
    tensors["token_embd.weight"] = try normal([config.vocabularySize, d], std: 0.02)
    tensors["output_norm.weight"] = try Tensor.ones([d])
    if !config.tiedEmbeddings { tensors["output.weight"] = try normal([config.vocabularySize, d], std: 0.02) }
    for l in 0..<config.layerCount {
      let p = "blk.\(l).", h = config.headCounts[l], kv = config.kvHeadCounts[l], f = config.ffnWidths[l]
      tensors[p + "attn_norm.weight"] = try Tensor.ones([d]); tensors[p + "ffn_norm.weight"] = try Tensor.ones([d])
      tensors[p + "attn_q.weight"] = try normal([h * hd, d], std: 0.02)
      tensors[p + "attn_k.weight"] = try normal([kv * hd, d], std: 0.02)
      tensors[p + "attn_v.weight"] = try normal([kv * hd, d], std: 0.02)
      tensors[p + "attn_output.weight"] = try normal([d, h * hd], std: residualStd)
      tensors[p + "ffn_gate.weight"] = try normal([f, d], std: 0.02)
      tensors[p + "ffn_up.weight"] = try normal([f, d], std: 0.02)
      tensors[p + "ffn_down.weight"] = try normal([d, f], std: residualStd)
      if config.queryKeyNorm {
        tensors[p + "attn_q_norm.weight"] = try Tensor.ones([hd]); tensors[p + "attn_k_norm.weight"] = try Tensor.ones([hd])
      }
    }
    try self.init(config: config, tensors: tensors, activations: activations ?? Array(repeating: .silu, count: config.layerCount),
                  tokenizer: tokenizer, name: name)
  }

  init(config: LlamaConfig, tensors: [String: Tensor], activations: [FFNActivation], tokenizer: BPETokenizer?, name: String) throws {
    guard activations.count == config.layerCount else {
      throw TensorError.invalidArgument(op: "trainable", reason: "\(activations.count) activations for \(config.layerCount) layers")
    }
    func named(_ key: String, _ t: Tensor) -> Variable { Variable(t, requiresGrad: true, name: key) }
    func take(_ key: String) throws -> Variable {
      guard let t = tensors[key] else { throw TensorError.invalidArgument(op: "trainable", reason: "no tensor \(key)") }
      return named(key, try t.contiguous())
    }
    self.config = config
    embedding = try take("token_embd.weight")
    outputNorm = try take("output_norm.weight")
    outputWeight = tensors["output.weight"] == nil ? nil : try take("output.weight")
    let dense = try tensors.mapValues { try $0.contiguous() }
    blocks = try (0..<config.layerCount).map { l in try Block(named, layer: l, tensors: dense, activation: activations[l]) }
    self.tokenizer = tokenizer; self.name = name
    try checkShapes()
  }

  func checkShapes() throws {
    let d = config.dimension, hd = config.headDimension, v = config.vocabularySize
    func expect(_ x: Variable, _ shape: [Int]) throws {
      guard x.shape == shape else { throw TensorError.shapeMismatch(op: "trainable \(x.name ?? "weight")", lhs: x.shape, rhs: shape) }
    }
    try expect(embedding, [v, d]); try expect(outputNorm, [d])
    if let outputWeight { try expect(outputWeight, [v, d]) }
    for (l, b) in blocks.enumerated() {
      let h = config.headCounts[l], kv = config.kvHeadCounts[l], f = config.ffnWidths[l]
      try expect(b.attentionNorm, [d]); try expect(b.ffnNorm, [d])
      try expect(b.query, [h * hd, d]); try expect(b.key, [kv * hd, d]); try expect(b.value, [kv * hd, d])
      try expect(b.output, [d, h * hd]); try expect(b.gate, [f, d]); try expect(b.up, [f, d]); try expect(b.down, [d, f])
      if let qn = b.queryNorm { try expect(qn, [hd]) }
      if let kn = b.keyNorm { try expect(kn, [hd]) }
      if config.queryKeyNorm != (b.queryNorm != nil && b.keyNorm != nil) {
        throw TensorError.invalidArgument(op: "trainable", reason: "layer \(l): query/key norms must be present exactly when the configuration has them")
      }
    }
  }

  /// The parameters in GGUF order (as LlamaModel.namedWeights): embedding, output norm, output, then layer by layer.
  public var parameters: [Variable] {
    [embedding, outputNorm] + (outputWeight.map { [$0] } ?? []) + blocks.flatMap(\.parameters) + adapterParameters
  }

  /// The adapters' A and B, in matrix order.
  public var adapterParameters: [Variable] { adapters.sorted { $0.key < $1.key }.flatMap { [$0.value.a, $0.value.b] } }

  /// Folds every adapter into its matrix (W += scale·B·A) and removes the adapters.
  public func mergeAdapters() throws {
    for block in blocks.indices {
      for (name, w) in blocks[block].matrices {
        guard let adapter = adapters["blk.\(block).\(name)"] else { continue }
        w.value = try w.value.add(adapter.delta())
      }
    }
    adapters = [:]
  }

  public var summary: String {
    "decoder \(config.layerCount) layers, d \(config.dimension), heads \(config.headCounts.first ?? 0)/\(config.kvHeadCounts.first ?? 0), "
      + "ffn \(config.ffnWidths.first ?? 0), vocab \(config.vocabularySize)  \(parameterCount) parameters"
  }

  /// Logits [B, T, vocab] of token ids [B, T] (or [T]: one sequence, logits [T, vocab]), causal, with an optional
  /// additive mask ([T, T] or [B, T, T]) and key padding ([B, T], nonzero for padding).
  public func logits(_ ids: Tensor, mask: Tensor? = nil, keyPadding: Tensor? = nil, route: KeyValueRoute? = nil) throws -> Variable {
    let single = ids.rank == 1
    guard ids.rank == 1 || ids.rank == 2, ids.count > 0 else {
      throw TensorError.invalidShape(op: "decoder", shape: ids.shape, reason: "needs token ids [batch, tokens] or [tokens]")
    }
    let batch = single ? 1 : ids.shape[0], t = ids.shape[ids.rank - 1]
    guard t <= config.contextLength else {
      throw TensorError.invalidArgument(op: "decoder", reason: "\(t) tokens is more than the context length \(config.contextLength)")
    }
    var x = try Variable.embedding(ids.reshaped(to: [batch, t]), table: embedding)
    for l in blocks.indices {
      try Cancellation.check("decoder")
      if !checkpointing || !Autograd.isRecording || route != nil {
        x = try layer(l, x, mask: mask, keyPadding: keyPadding, route: route)
        continue
      }
      // Gradient checkpointing: the layer runs without a graph; its backward runs it again with one, from the
      // saved input, and passes the gradient through (the parameters' gradients add up in the inner backward).
      let input = x.value
      let owned = blocks[l].parameters + adapters.filter { $0.key.hasPrefix("blk.\(l).") }.values.flatMap { [$0.a, $0.b] }
      let output = try Autograd.noGrad { try layer(l, Variable(input), mask: mask, keyPadding: keyPadding).value }
      let wantsInput = x.requiresGrad
      x = Variable.custom(output, inputs: [x] + owned) { [unowned self] g in
        let leaf = Variable(input, requiresGrad: wantsInput)
        let y = try self.layer(l, leaf, mask: mask, keyPadding: keyPadding)
        if y.requiresGrad { try y.backward(seed: g) }
        return [leaf.grad] + owned.map { _ in nil }
      }
    }
    let out = try head(x)
    return single ? try out.reshaped(to: [t, config.vocabularySize]) : out
  }

  /// The output norm and the vocabulary projection of hidden states [..., d]: logits [..., vocab].
  public func head(_ x: Variable) throws -> Variable {
    try x.rmsNormRows(weight: outputNorm, eps: config.rmsEpsilon).linear(outputWeight ?? embedding)
  }

  /// Decoder layer `l` on x [B, T, d]: x + attention(norm(x)), then that plus the gated feed-forward of its norm.
  /// `causal: false` leaves who sees whom to `mask` alone; `positions` gives each row its RoPE position (default
  /// 0..<T).
  public func layer(_ l: Int, _ input: Variable, mask: Tensor?, keyPadding: Tensor?, route: KeyValueRoute? = nil, causal: Bool = true,
                    positions: [Int]? = nil) throws -> Variable {
    let block = blocks[l], batch = input.shape[0], t = input.shape[1]
    let hd = config.headDimension, eps = config.rmsEpsilon, halves = config.ropeStyle == .halves
    let heads = config.headCounts[l], kvHeads = config.kvHeadCounts[l]
    func project(_ x: Variable, _ w: Variable, _ name: String) throws -> Variable {
      let y = try x.linear(w)
      guard let adapter = adapters["blk.\(l).\(name)"] else { return y }
      return try y.add(x.linear(adapter.a).linear(adapter.b).scaled(by: adapter.scale))
    }
    let h = try input.rmsNormRows(weight: block.attentionNorm, eps: eps)
    var q = try project(h, block.query, "attn_q").reshaped(to: [batch, t, heads, hd])
    var k: Variable, v: Variable
    if let replace = route?.replace {
      // Keys and values from elsewhere (KV prediction): this layer's own projections are not run.
      (k, v) = try replace(l)
      guard k.shape == [batch, t, kvHeads, hd], v.shape == [batch, t, kvHeads, hd] else {
        throw TensorError.shapeMismatch(op: "decoder layer \(l) keys and values", lhs: k.shape, rhs: [batch, t, kvHeads, hd])
      }
    } else {
      k = try project(h, block.key, "attn_k").reshaped(to: [batch, t, kvHeads, hd])
      v = try project(h, block.value, "attn_v").reshaped(to: [batch, t, kvHeads, hd])
    }
    if let observe = route?.observe { try observe(l, k, v) }
    if let qn = block.queryNorm, let kn = block.keyNorm {
      q = try q.rmsNormRows(weight: qn, eps: eps)
      k = try k.rmsNormRows(weight: kn, eps: eps)
    }
    q = try q.rotaryHeads(base: config.ropeBase, halves: halves, positions: positions)
    k = try k.rotaryHeads(base: config.ropeBase, halves: halves, positions: positions)
    let attended = try Variable.groupedAttention(q, k, v, causal: causal, mask: mask, keyPadding: keyPadding)
      .reshaped(to: [batch, t, heads * hd])
    let x = try input.add(project(attended, block.output, "attn_output"))
    let f = try x.rmsNormRows(weight: block.ffnNorm, eps: eps)
    let hidden = try Variable.gatedActivation(project(f, block.gate, "ffn_gate"), project(f, block.up, "ffn_up"), block.activation.kernel)
    return try x.add(project(hidden, block.down, "ffn_down"))
  }

  /// Where a forward's keys and values go and come from (KV prediction): `observe` sees each layer's keys and values
  /// before RoPE (and before a key norm), [B, T, kvHeads, hd]; `replace` gives a layer's keys and values, in that
  /// same form, in place of its own projections. Gradient checkpointing is off for a routed forward.
  public struct KeyValueRoute {
    public var observe: ((_ layer: Int, _ keys: Variable, _ values: Variable) throws -> Void)?
    public var replace: ((_ layer: Int) throws -> (Variable, Variable))?
    public init(observe: ((Int, Variable, Variable) throws -> Void)? = nil, replace: ((Int) throws -> (Variable, Variable))? = nil) {
      self.observe = observe; self.replace = replace
    }
  }

  /// `forward` of a module: the input's values are token ids.
  public func forward(_ x: Variable) throws -> Variable { try logits(x.value) }

  /// The inference model with these weights (f32 copies, so training this decoder further leaves it unchanged).
  public func runnable(name: String? = nil) throws -> LlamaModel {
    var tensors: [String: Tensor] = [:]
    for p in parameters { if let n = p.name { tensors[n] = try p.value.copied(as: .f32) } }
    // Adapters run folded into their matrices.
    for (key, adapter) in adapters {
      let name = key + ".weight"
      if let w = tensors[name] { tensors[name] = try w.add(adapter.delta()) }
    }
    func take(_ key: String) throws -> Tensor {
      guard let t = tensors[key] else { throw TensorError.invalidArgument(op: "runnable", reason: "no tensor \(key)") }
      return t
    }
    var layers: [LlamaLayer] = []
    for (l, block) in blocks.enumerated() {
      let p = "blk.\(l)."
      var layer = LlamaLayer(attentionNorm: try take(p + "attn_norm.weight"), query: try take(p + "attn_q.weight"),
                             key: try take(p + "attn_k.weight"), value: try take(p + "attn_v.weight"),
                             output: try take(p + "attn_output.weight"), ffnNorm: try take(p + "ffn_norm.weight"),
                             gate: try take(p + "ffn_gate.weight"), up: try take(p + "ffn_up.weight"), down: try take(p + "ffn_down.weight"),
                             queryNorm: tensors[p + "attn_q_norm.weight"], keyNorm: tensors[p + "attn_k_norm.weight"])
      layer.activation = block.activation
      layers.append(layer)
    }
    let model = try LlamaModel(config: config, layers: layers, tokenEmbedding: try take("token_embd.weight"),
                               outputNorm: try take("output_norm.weight"), outputWeight: tensors["output.weight"],
                               tokenizer: tokenizer, name: name ?? self.name)
    model.ggufMetadata = ggufMetadata
    return model
  }

  /// Writes the weights back into `model` (same configuration) as f32 tensors, replacing whatever form they had.
  public func write(into model: LlamaModel) throws {
    guard model.config == config else {
      throw TensorError.invalidArgument(op: "train", reason: "the model's configuration changed: \(model.config) against \(config)")
    }
    let fresh = try runnable()
    model.layers = fresh.layers
    model.tokenEmbedding = fresh.tokenEmbedding
    model.outputNorm = fresh.outputNorm
    model.outputWeight = fresh.outputWeight
  }
}

extension FFNActivation {
  /// The elementwise kernel of this activation.
  public var kernel: UnaryKernel {
    switch self {
    case .silu: return .silu
    case .relu: return .relu
    case .gelu: return .gelu
    }
  }
}
