// A Llama-family model from a Hugging Face checkpoint directory: config.json (model_type "llama" or "openelm") and
// safetensors weights under the transformers names; and a model written back as a "llama" checkpoint.
//
// Both layouts rotate halves (j, j + h/2). GGUF files of Llama models rotate adjacent pairs because llama.cpp's
// converter reorders the query and key rows of each head; writing such a model as a checkpoint undoes that order.

import Foundation
import LatheTensor

/// OpenELM's layer-wise scaling rules (configuration_openelm.py in the apple/OpenELM-* checkpoints).
public enum OpenELM {
  /// max(D, ⌊v + D/2⌋ // D · D), plus D when that falls below 0.9·v (so rounding never loses more than 10%).
  ///
  ///     OpenELM.makeDivisible(857.6, divisor: 256)   // 1024 (768 < 0.9 · 857.6)
  public static func makeDivisible(_ v: Double, divisor: Int) -> Int {
    let d = Double(divisor)
    var result = Swift.max(d, ((v + d / 2).rounded(.down) / d).rounded(.down) * d)
    if result < 0.9 * v { result += d }
    return Int(exactly: result) ?? Int.max
  }

  /// Feed-forward width of a layer: make_divisible(multiplier · dimension, divisor).
  public static func ffnWidth(multiplier: Double, dimension: Int, divisor: Int) -> Int {
    makeDivisible(multiplier * Double(dimension), divisor: divisor)
  }

  /// numpy.linspace(first, last, count) with each value rounded to 2 decimals, as the configuration does with a
  /// (min, max) pair of multipliers.
  public static func multipliers(_ first: Double, _ last: Double, count: Int) -> [Double] {
    (0..<count).map { i in
      let v = count == 1 ? first : (i == count - 1 ? last : first + (last - first) * Double(i) / Double(count - 1))
      return (v * 100).rounded(.toNearestOrEven) / 100
    }
  }
}

/// The keys of a config.json, read with errors that name the key.
struct HuggingFaceConfigReader {
  let json: [String: Any], path: String

  func fail(_ key: String, _ reason: String) -> ModelFormatError { .malformed(path: path, field: key, reason: reason) }

  /// The value, treating JSON null as absent.
  func value(_ key: String) -> Any? { json[key] is NSNull ? nil : json[key] }

  func integer(_ v: Any, _ key: String) throws -> Int {
    guard let i = Safetensors.exactInteger(v), i > 0, i <= 1 << 30 else {
      throw fail(key, "must be a positive integer, got \(v)")
    }
    return i
  }

  func int(_ key: String, default fallback: Int? = nil) throws -> Int {
    guard let v = value(key) else {
      if let fallback { return fallback }
      throw fail(key, "is missing")
    }
    return try integer(v, key)
  }

  func double(_ key: String, default fallback: Double) throws -> Double {
    guard let v = value(key) else { return fallback }
    guard !Safetensors.isJSONBool(v), let n = v as? NSNumber, n.doubleValue.isFinite, n.doubleValue > 0 else {
      throw fail(key, "must be a positive number, got \(v)")
    }
    return n.doubleValue
  }

  func bool(_ key: String, default fallback: Bool) throws -> Bool {
    guard let v = value(key) else { return fallback }
    guard Safetensors.isJSONBool(v), let b = v as? Bool else { throw fail(key, "must be true or false, got \(v)") }
    return b
  }

  func string(_ key: String) -> String? { value(key) as? String }

  /// One positive integer for every layer, or a list with one per layer.
  func ints(_ key: String, layers: Int) throws -> [Int]? {
    guard let v = value(key) else { return nil }
    if let list = v as? [Any] {
      guard list.count == layers else { throw fail(key, "has \(list.count) entries for \(layers) layers") }
      return try list.map { try integer($0, key) }
    }
    return Array(repeating: try integer(v, key), count: layers)
  }

  /// One positive number, or a list of them.
  func numbers(_ key: String) throws -> [Double]? {
    guard let v = value(key) else { return nil }
    let list = (v as? [Any]) ?? [v]
    return try list.map {
      guard !Safetensors.isJSONBool($0), let n = $0 as? NSNumber, n.doubleValue.isFinite, n.doubleValue > 0 else {
        throw fail(key, "must be a positive number or a list of them, got \(v)")
      }
      return n.doubleValue
    }
  }
}

extension LlamaConfig {
  /// Parses a config.json (`model_type` "llama" or "openelm").
  public init(huggingFace data: Data, path: String = "config.json") throws {
    guard let object = try? JSONSerialization.jsonObject(with: data), let json = object as? [String: Any] else {
      throw ModelFormatError.malformed(path: path, field: "config", reason: "is not a JSON object")
    }
    try self.init(huggingFace: json, path: path)
  }

  /// The configuration of a config.json already parsed. Llama: hidden_size, num_hidden_layers, num_attention_heads,
  /// num_key_value_heads, intermediate_size, head_dim, rms_norm_eps, rope_theta, vocab_size, max_position_embeddings,
  /// tie_word_embeddings (transformers' defaults where absent). OpenELM: model_dim, head_dim, num_transformer_layers,
  /// per-layer num_query_heads and num_kv_heads (or, absent, qkv_multipliers and num_gqa_groups), ffn_multipliers
  /// and ffn_dim_divisor (widths by `OpenELM.makeDivisible`), rope_freq_constant, rope_max_length (the context),
  /// share_input_output_layers, normalize_qk_projections; RMSNorm epsilon 1e-6. Both rotate halves.
  ///
  ///     let config = try LlamaConfig(huggingFace: Data(contentsOf: URL(fileURLWithPath: "ckpt/config.json")))
  public init(huggingFace json: [String: Any], path: String = "config.json") throws {
    let r = HuggingFaceConfigReader(json: json, path: path)
    guard let type = r.string("model_type") else { throw r.fail("model_type", "is missing") }
    guard type == "llama" || type == "openelm" else {
      throw ModelFormatError.unsupported(path: path, field: "model_type", reason: "'\(type)' is not a Llama-family model (llama, openelm)")
    }
    do {
      if type == "llama" { try self.init(llama: r) } else { try self.init(openELM: r) }
    } catch TensorError.invalidArgument(_, let reason) {
      throw r.fail("config", reason)   // what LlamaConfig.validate refuses (sizes out of range)
    }
    ropeStyle = .halves
  }

  private init(llama r: HuggingFaceConfigReader) throws {
    if let act = r.string("hidden_act"), act != "silu" {
      throw ModelFormatError.unsupported(path: r.path, field: "hidden_act", reason: "'\(act)' (only silu)")
    }
    for key in ["attention_bias", "mlp_bias"] {
      if try r.bool(key, default: false) { throw ModelFormatError.unsupported(path: r.path, field: key, reason: "biases are not supported") }
    }
    if r.value("rope_scaling") != nil {
      throw ModelFormatError.unsupported(path: r.path, field: "rope_scaling", reason: "scaled rotary positions are not supported")
    }
    let layers = try r.int("num_hidden_layers"), dimension = try r.int("hidden_size")
    let heads = try r.int("num_attention_heads"), kvHeads = try r.int("num_key_value_heads", default: heads)
    guard heads % kvHeads == 0 else { throw r.fail("num_key_value_heads", "\(kvHeads) does not divide \(heads) attention heads") }
    guard r.value("head_dim") != nil || dimension % heads == 0 else {
      throw r.fail("num_attention_heads", "\(heads) does not divide hidden_size \(dimension) (and head_dim is not given)")
    }
    let headDimension = try r.int("head_dim", default: dimension / heads)
    try self.init(vocabularySize: try r.int("vocab_size"), dimension: dimension,
                  contextLength: try r.int("max_position_embeddings", default: 2048),
                  headCounts: Array(repeating: heads, count: layers), kvHeadCounts: Array(repeating: kvHeads, count: layers),
                  ffnWidths: Array(repeating: try r.int("intermediate_size"), count: layers), headDimension: headDimension,
                  ropeBase: try r.double("rope_theta", default: 10_000), rmsEpsilon: Float(try r.double("rms_norm_eps", default: 1e-6)),
                  tiedEmbeddings: try r.bool("tie_word_embeddings", default: false))
    architecture = "llama"
  }

  private init(openELM r: HuggingFaceConfigReader) throws {
    guard try r.bool("ffn_with_glu", default: true) else {
      throw ModelFormatError.unsupported(path: r.path, field: "ffn_with_glu", reason: "only the gated (SwiGLU) feed-forward is supported")
    }
    if let act = r.string("activation_fn_name"), act != "swish", act != "silu" {
      throw ModelFormatError.unsupported(path: r.path, field: "activation_fn_name", reason: "'\(act)' (only swish)")
    }
    if let norm = r.string("normalization_layer_name"), norm != "rms_norm" {
      throw ModelFormatError.unsupported(path: r.path, field: "normalization_layer_name", reason: "'\(norm)' (only rms_norm)")
    }
    let layers = try r.int("num_transformer_layers"), dimension = try r.int("model_dim"), headDimension = try r.int("head_dim")
    guard layers <= 1024 else { throw r.fail("num_transformer_layers", "\(layers) is more than 1024") }
    let groups = try r.int("num_gqa_groups", default: 1)
    // The stored per-layer head counts; without them, the rule the configuration class applies.
    let heads: [Int]
    if let stored = try r.ints("num_query_heads", layers: layers) {
      heads = stored
    } else {
      let m = try r.numbers("qkv_multipliers") ?? [1]
      guard m.count == 1 || m.count == 2 else { throw r.fail("qkv_multipliers", "needs one number or a (min, max) pair") }
      let perLayer = m.count == 1 ? Array(repeating: m[0], count: layers) : OpenELM.multipliers(m[0], m[1], count: layers)
      guard headDimension <= (1 << 30) / groups else { throw r.fail("head_dim", "\(headDimension) is too large") }
      heads = perLayer.map { OpenELM.makeDivisible(Double(dimension) * $0, divisor: headDimension * groups) / headDimension }
    }
    let kvHeads = try r.ints("num_kv_heads", layers: layers) ?? heads.map { Swift.max(1, $0 / groups) }
    for (l, (h, kv)) in zip(heads, kvHeads).enumerated() where h % kv != 0 {
      throw r.fail("num_kv_heads", "layer \(l): \(kv) key/value heads do not divide \(h) query heads")
    }
    guard let multipliers = try r.numbers("ffn_multipliers") else { throw r.fail("ffn_multipliers", "is missing") }
    let ffnMultipliers: [Double]
    switch multipliers.count {
    case layers: ffnMultipliers = multipliers
    case 1: ffnMultipliers = Array(repeating: multipliers[0], count: layers)
    case 2: ffnMultipliers = OpenELM.multipliers(multipliers[0], multipliers[1], count: layers)
    default: throw r.fail("ffn_multipliers", "has \(multipliers.count) entries: one, a (min, max) pair or one per layer (\(layers))")
    }
    let divisor = try r.int("ffn_dim_divisor", default: 256)
    let ffn = ffnMultipliers.map { OpenELM.ffnWidth(multiplier: $0, dimension: dimension, divisor: divisor) }
    for (l, f) in ffn.enumerated() where f > 1 << 20 { throw r.fail("ffn_multipliers", "layer \(l): width \(f) is too large") }
    try self.init(vocabularySize: try r.int("vocab_size"), dimension: dimension, contextLength: try r.int("rope_max_length", default: 4096),
                  headCounts: heads, kvHeadCounts: kvHeads, ffnWidths: ffn, headDimension: headDimension,
                  ropeBase: try r.double("rope_freq_constant", default: 10_000), rmsEpsilon: 1e-6,
                  tiedEmbeddings: try r.bool("share_input_output_layers", default: false))
    queryKeyNorm = try r.bool("normalize_qk_projections", default: false)
    architecture = "openelm"
  }

  /// The config.json of this configuration as a transformers "llama" model; nil when it has no such form (per-layer
  /// head counts or FFN widths, or query/key norms). The epsilon is written as its shortest decimal (1e-05).
  public var huggingFaceLlamaJSON: [String: Any]? {
    guard Set(headCounts).count == 1, Set(kvHeadCounts).count == 1, Set(ffnWidths).count == 1, !queryKeyNorm else { return nil }
    return ["architectures": ["LlamaForCausalLM"], "model_type": "llama", "hidden_act": "silu",
            "hidden_size": dimension, "num_hidden_layers": layerCount, "num_attention_heads": headCounts[0],
            "num_key_value_heads": kvHeadCounts[0], "head_dim": headDimension, "intermediate_size": ffnWidths[0],
            "rms_norm_eps": Double("\(rmsEpsilon)") ?? Double(rmsEpsilon), "rope_theta": ropeBase, "vocab_size": vocabularySize,
            "max_position_embeddings": contextLength, "tie_word_embeddings": tiedEmbeddings,
            "attention_bias": false, "mlp_bias": false]
  }
}

/// The tensors of a checkpoint's safetensors files, taken by name (each once) with its shape checked.
struct HuggingFaceWeights {
  var tensors: [String: (tensor: Tensor, file: String)] = [:]
  let directory: String

  init(directory: String) throws {
    self.directory = directory
    let manager = FileManager.default
    let index = directory + "/model.safetensors.index.json"
    var files: [String]
    var expected: [String: String] = [:]
    if manager.fileExists(atPath: index) {
      guard let data = FileBytes.contents(atPath: index), let object = try? JSONSerialization.jsonObject(with: data),
            let map = (object as? [String: Any])?["weight_map"] as? [String: Any] else {
        throw ModelFormatError.malformed(path: index, field: "weight_map", reason: "must map tensor names to file names")
      }
      for (name, file) in map {
        guard let file = file as? String, !file.contains("/"), file.hasSuffix(".safetensors") else {
          throw ModelFormatError.malformed(path: index, field: "weight_map.\(name)", reason: "must name a .safetensors file in the directory")
        }
        expected[name] = file
      }
      files = Set(expected.values).sorted()
    } else if manager.fileExists(atPath: directory + "/model.safetensors") {
      files = ["model.safetensors"]
    } else {
      files = ((try? manager.contentsOfDirectory(atPath: directory)) ?? []).filter { $0.hasSuffix(".safetensors") }.sorted()
      guard !files.isEmpty else {
        throw ModelFormatError.notFound(path: directory, field: "model.safetensors", reason: "the directory holds no .safetensors file")
      }
    }
    for file in files {
      let path = directory + "/" + file
      for (name, tensor) in try Safetensors.read(path: path).tensors {
        guard tensors[name] == nil else {
          throw ModelFormatError.malformed(path: path, field: name, reason: "is also in \(tensors[name]!.file)")
        }
        if let listed = expected[name], listed != file {
          throw ModelFormatError.malformed(path: path, field: name, reason: "the index puts it in \(listed)")
        }
        tensors[name] = (tensor, path)
      }
    }
    for name in expected.keys.sorted() where tensors[name] == nil {
      throw ModelFormatError.notFound(path: index, field: name, reason: "is listed but not in \(expected[name]!)")
    }
  }

  /// Removes and returns the tensor as f32, checking its shape.
  mutating func take(_ name: String, _ shape: [Int]) throws -> Tensor {
    guard let (t, file) = tensors.removeValue(forKey: name) else {
      throw ModelFormatError.notFound(path: directory, field: name, reason: "is missing (config.json asks for it)")
    }
    guard t.shape == shape else { throw ModelFormatError.malformed(path: file, field: name, reason: "has shape \(t.shape), config.json needs \(shape)") }
    guard t.dtype == .f32 else { throw ModelFormatError.malformed(path: file, field: name, reason: "is \(t.dtype), not a float type") }
    return t
  }

  /// Nothing may be left over, except rotary caches that older checkpoints saved (and `extra` names).
  func checkAllTaken(ignoring extra: Set<String> = []) throws {
    for name in tensors.keys.sorted() where !name.hasSuffix("rotary_emb.inv_freq") && !extra.contains(name) {
      throw ModelFormatError.malformed(path: tensors[name]!.file, field: name, reason: "is not a tensor of this configuration")
    }
  }
}

extension Tensor {
  /// Rows `range` of a contiguous f32 matrix, copied.
  func rowSlice(_ range: Range<Int>) throws -> Tensor {
    let cols = shape[1]
    var out = try Tensor(zeros: [range.count, cols], op: "rows")
    let src = readPointer() + range.lowerBound * cols
    try out.mutablePointer().update(from: src, count: range.count * cols)
    return out
  }

  /// A [heads·h, C] query or key matrix with each head's rows reordered from the adjacent-pairs layout to the
  /// halves one: row s·h/2 + i of a head is row 2i + s of the input. llama.cpp's converter applies the inverse
  /// (convert_hf_to_gguf.py, LlamaModel.permute: reshape [heads, 2, h/2, C], swap axes 1 and 2).
  func adjacentPairsToHalves(heads: Int, headDimension hd: Int) throws -> Tensor {
    let cols = shape[1], half = hd / 2
    let src = try contiguous()
    var out = try Tensor(zeros: shape, op: "rope rows")
    let s = src.readPointer(), d = try out.mutablePointer()
    for head in 0..<heads {
      for i in 0..<half {
        for part in 0..<2 {
          (d + (head * hd + part * half + i) * cols).update(from: s + (head * hd + 2 * i + part) * cols, count: cols)
        }
      }
    }
    return out
  }

  /// A contiguous f32 copy of a matrix in any dtype (quantised blocks dequantised exactly).
  func denseF32() throws -> Tensor {
    if dtype == .f32 { return try contiguous() }
    guard rank == 2, isContiguous else { return try copied(as: .f32) }
    var out = try Tensor(zeros: shape, op: "dequantize")
    try dequantizeRows(0..<shape[0], into: out.mutablePointer())
    return out
  }
}

extension LlamaModel {
  /// Loads a Hugging Face checkpoint directory: config.json and model.safetensors (or the shards
  /// model.safetensors.index.json lists, or every *.safetensors file). Weights become f32 (BF16 and F16 exactly);
  /// OpenELM's fused qkv_proj and proj_1 are split into query, key, value and gate, up. No tokenizer is read.
  ///
  ///     let model = try LlamaModel(huggingFaceDirectory: "checkpoints/OpenELM-270M")
  public convenience init(huggingFaceDirectory directory: String, name: String? = nil) throws {
    let configPath = directory + "/config.json"
    guard let data = FileBytes.contents(atPath: configPath) else {
      throw ModelFormatError.notFound(path: configPath, field: "file", reason: "cannot be read")
    }
    let config = try LlamaConfig(huggingFace: data, path: configPath)
    var w = try HuggingFaceWeights(directory: directory)
    let d = config.dimension, hd = config.headDimension, vocab = config.vocabularySize
    var layers: [LlamaLayer] = []
    let embedding: Tensor, outputNorm: Tensor, output: Tensor?
    if config.architecture == "openelm" {
      embedding = try w.take("transformer.token_embeddings.weight", [vocab, d])
      for l in 0..<config.layerCount {
        let p = "transformer.layers.\(l).", h = config.headCounts[l], kv = config.kvHeadCounts[l], f = config.ffnWidths[l]
        let qkv = try w.take(p + "attn.qkv_proj.weight", [(h + 2 * kv) * hd, d])
        let proj1 = try w.take(p + "ffn.proj_1.weight", [2 * f, d])
        layers.append(LlamaLayer(
          attentionNorm: try w.take(p + "attn_norm.weight", [d]),
          query: try qkv.rowSlice(0..<(h * hd)), key: try qkv.rowSlice((h * hd)..<((h + kv) * hd)),
          value: try qkv.rowSlice(((h + kv) * hd)..<((h + 2 * kv) * hd)),
          output: try w.take(p + "attn.out_proj.weight", [d, h * hd]), ffnNorm: try w.take(p + "ffn_norm.weight", [d]),
          gate: try proj1.rowSlice(0..<f), up: try proj1.rowSlice(f..<(2 * f)), down: try w.take(p + "ffn.proj_2.weight", [d, f]),
          queryNorm: config.queryKeyNorm ? try w.take(p + "attn.q_norm.weight", [hd]) : nil,
          keyNorm: config.queryKeyNorm ? try w.take(p + "attn.k_norm.weight", [hd]) : nil))
      }
      outputNorm = try w.take("transformer.norm.weight", [d])
    } else {
      embedding = try w.take("model.embed_tokens.weight", [vocab, d])
      for l in 0..<config.layerCount {
        let p = "model.layers.\(l).", h = config.headCounts[l], kv = config.kvHeadCounts[l], f = config.ffnWidths[l]
        layers.append(LlamaLayer(
          attentionNorm: try w.take(p + "input_layernorm.weight", [d]),
          query: try w.take(p + "self_attn.q_proj.weight", [h * hd, d]), key: try w.take(p + "self_attn.k_proj.weight", [kv * hd, d]),
          value: try w.take(p + "self_attn.v_proj.weight", [kv * hd, d]), output: try w.take(p + "self_attn.o_proj.weight", [d, h * hd]),
          ffnNorm: try w.take(p + "post_attention_layernorm.weight", [d]),
          gate: try w.take(p + "mlp.gate_proj.weight", [f, d]), up: try w.take(p + "mlp.up_proj.weight", [f, d]),
          down: try w.take(p + "mlp.down_proj.weight", [d, f])))
      }
      outputNorm = try w.take("model.norm.weight", [d])
    }
    // transformers ties lm_head to the embedding when the config says so, whatever the file holds.
    output = config.tiedEmbeddings ? nil : try w.take("lm_head.weight", [vocab, d])
    try w.checkAllTaken(ignoring: config.tiedEmbeddings ? ["lm_head.weight"] : [])
    try self.init(config: config, layers: layers, tokenEmbedding: embedding, outputNorm: outputNorm, outputWeight: output,
                  tokenizer: nil, name: name ?? URL(fileURLWithPath: directory).lastPathComponent)
    try packWeights()
  }

  /// Writes a Hugging Face "llama" checkpoint: config.json and model.safetensors with the transformers names, in
  /// `dtype` (f32, f16 or bf16; quantised weights are dequantised first). The query and key rows of a model that
  /// rotates adjacent pairs (one read from GGUF) are reordered for halves, so the checkpoint computes the same
  /// function. Per-layer head counts or FFN widths, and query/key norms, have no "llama" form and are refused.
  ///
  ///     try model.writeHuggingFace(to: "/tmp/smollm2-hf", dtype: .bf16)
  public func writeHuggingFace(to directory: String, dtype: DType = .f32) throws {
    guard [.f32, .f16, .bf16].contains(dtype) else {
      throw ModelFormatError.unsupported(path: directory, field: "dtype", reason: "\(dtype): a checkpoint is written in f32, f16 or bf16")
    }
    guard var json = config.huggingFaceLlamaJSON else {
      throw ModelFormatError.unsupported(path: directory, field: "config",
                                         reason: "per-layer head counts or FFN widths, or query/key norms, have no Hugging Face llama form")
    }
    json["torch_dtype"] = ["f32": "float32", "f16": "float16", "bf16": "bfloat16"][dtype.rawValue] ?? "float32"
    do { try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true) } catch {
      throw ModelFormatError.notFound(path: directory, field: "directory", reason: "cannot be created: \(error.localizedDescription)")
    }
    func stored(_ t: Tensor) throws -> Tensor { dtype == .f32 ? try t.denseF32() : try t.denseF32().copied(as: dtype) }
    func stored(_ w: LinearWeight) throws -> Tensor { dtype == .f32 ? try w.denseF32() : try w.denseF32().copied(as: dtype) }
    let hd = config.headDimension, reorder = config.ropeStyle == .adjacentPairs
    var tensors: [(name: String, tensor: Tensor)] = [("model.embed_tokens.weight", try stored(try tokenEmbedding.tensor ?? tokenEmbedding.denseF32()))]
    for (l, layer) in layers.enumerated() {
      let p = "model.layers.\(l)."
      var query = try layer.query.denseF32(), key = try layer.key.denseF32()
      if reorder {
        query = try query.adjacentPairsToHalves(heads: config.headCounts[l], headDimension: hd)
        key = try key.adjacentPairsToHalves(heads: config.kvHeadCounts[l], headDimension: hd)
      }
      tensors += [(p + "input_layernorm.weight", try stored(layer.attentionNorm)),
                  (p + "self_attn.q_proj.weight", try stored(query)), (p + "self_attn.k_proj.weight", try stored(key)),
                  (p + "self_attn.v_proj.weight", try stored(layer.value)), (p + "self_attn.o_proj.weight", try stored(layer.output)),
                  (p + "post_attention_layernorm.weight", try stored(layer.ffnNorm)),
                  (p + "mlp.gate_proj.weight", try stored(layer.gate)), (p + "mlp.up_proj.weight", try stored(layer.up)),
                  (p + "mlp.down_proj.weight", try stored(layer.down))]
    }
    tensors.append(("model.norm.weight", try stored(outputNorm)))
    if let outputWeight { tensors.append(("lm_head.weight", try stored(outputWeight))) }
    try Safetensors.write(tensors, metadata: ["format": "pt"], to: directory + "/model.safetensors")
    let configData = try JSONSerialization.data(withJSONObject: json, options: [.prettyPrinted, .sortedKeys])
    guard FileManager.default.createFile(atPath: directory + "/config.json", contents: configData) else {
      throw ModelFormatError.notFound(path: directory + "/config.json", field: "file", reason: "cannot be written")
    }
  }
}
