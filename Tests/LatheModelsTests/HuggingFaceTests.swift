// Hugging Face checkpoints: OpenELM's layer-wise configuration against the paper's tables, tiny random OpenELM and
// Llama checkpoints against a float64 forward written here with plain loops, writing a checkpoint from a model
// that rotates adjacent pairs (as GGUF's do), and malformed checkpoints refused by field.

import Foundation
import Testing
import LatheTensor
import LatheTestSupport
@testable import LatheModels

// MARK: - OpenELM configuration

struct OpenELMSize: CustomStringConvertible, Sendable {
  let name: String, layers: Int, dimension: Int, headDimension: Int, parameters: Int
  let queryHeads: [Int], ffn: [Int]
  var description: String { name }

  /// openelm.md's table (vocab 32000, G = 4; runs like 12×5 written out).
  static let all = [
    OpenELMSize(name: "270M", layers: 16, dimension: 1280, headDimension: 64, parameters: 271_527_168,
                queryHeads: runs([(12, 5), (16, 7), (20, 4)]),
                ffn: [768, 1024, 1280, 1536, 1792, 2048, 2560, 2816, 3072, 3328, 3584, 3840, 4352, 4608, 4864, 5120]),
    OpenELMSize(name: "450M", layers: 20, dimension: 1536, headDimension: 64, parameters: 457_179_136,
                queryHeads: runs([(12, 3), (16, 7), (20, 6), (24, 4)]),
                ffn: [768, 1024, 1280, 1536, 1792, 2304, 2560, 2816, 3072, 3328, 3584, 3840, 4096, 4352, 4608, 5120, 5376, 5632, 5888, 6144]),
    OpenELMSize(name: "1_1B", layers: 28, dimension: 2048, headDimension: 64, parameters: 1_079_891_456,
                queryHeads: runs([(16, 3), (20, 7), (24, 8), (28, 6), (32, 4)]),
                ffn: [1024, 1280, 1536, 1792, 2048, 2304, 2560, 2816, 3072, 3328, 3584, 3840, 4096, 4608, 4608, 5120, 5376, 5632, 5888,
                      6144, 6400, 6656, 6912, 7168, 7424, 7680, 7936, 8192]),
    OpenELMSize(name: "3B", layers: 36, dimension: 3072, headDimension: 128, parameters: 3_036_647_424,
                queryHeads: runs([(12, 4), (16, 14), (20, 12), (24, 6)]),
                ffn: [1536, 1792, 2048, 2560, 2816, 3072, 3328, 3584, 4096, 4352, 4608, 4864, 5120, 5632, 5888, 6144, 6400, 6656, 7168,
                      7424, 7680, 7936, 8192, 8704, 8960, 9216, 9472, 9728, 10240, 10496, 10752, 11008, 11264, 11776, 12032, 12288]),
  ]
  static func runs(_ r: [(Int, Int)]) -> [Int] { r.flatMap { Array(repeating: $0.0, count: $0.1) } }

  /// config.json as the released checkpoint has it: per-layer head lists computed by the configuration's rule
  /// (α = linspace(0.5, 1.0) rounded to 2 decimals, q_dim = make_divisible(d·α, h·G)), β = linspace(0.5, 4.0).
  var releasedConfig: [String: Any] {
    let alphas = OpenELM.multipliers(0.5, 1.0, count: layers)
    let heads = alphas.map { OpenELM.makeDivisible(Double(dimension) * $0, divisor: headDimension * 4) / headDimension }
    return ["model_type": "openelm", "model_dim": dimension, "head_dim": headDimension, "num_transformer_layers": layers,
            "num_gqa_groups": 4, "num_query_heads": heads, "num_kv_heads": heads.map { $0 / 4 },
            "qkv_multipliers": [0.5, 1.0], "ffn_multipliers": OpenELM.multipliers(0.5, 4.0, count: layers),
            "ffn_dim_divisor": 256, "ffn_with_glu": true, "normalize_qk_projections": true, "share_input_output_layers": true,
            "rope_freq_constant": 10000, "rope_max_length": 4096, "max_context_length": 2048, "vocab_size": 32000,
            "activation_fn_name": "swish", "normalization_layer_name": "rms_norm", "bos_token_id": 1, "eos_token_id": 2]
  }
}

/// Parameters of a configuration, counting the tied embedding once (norms and q/k norms included).
func parameterCount(_ c: LlamaConfig) -> Int {
  var n = c.vocabularySize * c.dimension * (c.tiedEmbeddings ? 1 : 2) + c.dimension
  for l in 0..<c.layerCount {
    let h = c.headCounts[l], kv = c.kvHeadCounts[l], hd = c.headDimension, d = c.dimension
    n += 2 * d + (h + 2 * kv) * hd * d + d * h * hd + 3 * c.ffnWidths[l] * d + (c.queryKeyNorm ? 2 * hd : 0)
  }
  return n
}

@Test func makeDivisibleRoundsAsTheConfigurationDoes() {
  #expect(OpenELM.makeDivisible(857.6, divisor: 256) == 1024, "768 < 0.9·857.6, so one more divisor")
  #expect(OpenELM.makeDivisible(678.4, divisor: 256) == 768)
  #expect(OpenELM.makeDivisible(640, divisor: 256) == 768)
  #expect(OpenELM.makeDivisible(10, divisor: 256) == 256, "never below the divisor")
  #expect(OpenELM.multipliers(0.5, 4.0, count: 16) == [0.5, 0.73, 0.97, 1.2, 1.43, 1.67, 1.9, 2.13, 2.37, 2.6, 2.83, 3.07, 3.3, 3.53, 3.77, 4.0])
}

@Test(arguments: OpenELMSize.all)
func openELMConfigGivesThePaperLayers(_ size: OpenELMSize) throws {
  let json = size.releasedConfig
  #expect(json["num_query_heads"] as? [Int] == size.queryHeads, "the rule gives the table's query heads")
  let data = try JSONSerialization.data(withJSONObject: json)
  let config = try LlamaConfig(huggingFace: data)
  #expect(config.architecture == "openelm" && config.layerCount == size.layers && config.dimension == size.dimension)
  #expect(config.headCounts == size.queryHeads)
  #expect(config.kvHeadCounts == size.queryHeads.map { $0 / 4 })
  #expect(config.ffnWidths == size.ffn)
  #expect(config.headDimension == size.headDimension && config.vocabularySize == 32000 && config.contextLength == 4096)
  #expect(config.ropeStyle == .halves && config.queryKeyNorm && config.tiedEmbeddings)
  #expect(config.rmsEpsilon == 1e-6 && config.ropeBase == 10_000)
  #expect(parameterCount(config) == size.parameters)
  // Without the stored lists, the (min, max) multiplier pairs give the same layers.
  var pairs = json
  pairs["num_query_heads"] = nil; pairs["num_kv_heads"] = nil; pairs["ffn_multipliers"] = [0.5, 4.0]
  #expect(try LlamaConfig(huggingFace: pairs) == config)
}

@Test func llamaConfigReadsTheTransformersKeys() throws {
  let json: [String: Any] = ["model_type": "llama", "hidden_size": 576, "num_hidden_layers": 30, "num_attention_heads": 9,
                             "num_key_value_heads": 3, "intermediate_size": 1536, "rms_norm_eps": 1e-5, "rope_theta": 100000,
                             "vocab_size": 49152, "max_position_embeddings": 8192, "tie_word_embeddings": true, "rope_scaling": NSNull()]
  let c = try LlamaConfig(huggingFace: json)
  #expect(c.headCounts == Array(repeating: 9, count: 30) && c.kvHeadCounts == Array(repeating: 3, count: 30))
  #expect(c.headDimension == 64 && c.ffnWidths[29] == 1536 && c.ropeBase == 100_000 && c.rmsEpsilon == 1e-5)
  #expect(c.tiedEmbeddings && c.contextLength == 8192 && c.ropeStyle == .halves && !c.queryKeyNorm)
  let back = try #require(c.huggingFaceLlamaJSON)
  var roundTrip = try LlamaConfig(huggingFace: back)
  roundTrip.architecture = c.architecture
  #expect(roundTrip == c)
}

@Test(arguments: [
  ("model_type", "bert", "model_type"), ("hidden_size", nil, "hidden_size"), ("hidden_size", true, "hidden_size"),
  ("hidden_size", 57.5, "hidden_size"), ("num_key_value_heads", 3, "num_key_value_heads"), ("rope_scaling", "yarn", "rope_scaling"),
  ("vocab_size", -1, "vocab_size"), ("tie_word_embeddings", 1, "tie_word_embeddings"), ("hidden_act", "gelu", "hidden_act"),
  ("num_hidden_layers", 5000, "config"), ("attention_bias", true, "attention_bias"),
] as [(String, (any Sendable)?, String)])
func llamaConfigErrorsNameTheKey(key: String, value: (any Sendable)?, field: String) throws {
  var json: [String: Any] = ["model_type": "llama", "hidden_size": 64, "num_hidden_layers": 2, "num_attention_heads": 4,
                             "num_key_value_heads": 4, "intermediate_size": 96, "vocab_size": 100]
  json[key] = value
  do {
    _ = try LlamaConfig(huggingFace: json, path: "c/config.json")
    Issue.record("accepted \(key) = \(String(describing: value))")
  } catch let e as ModelFormatError {
    #expect(e.path == "c/config.json" && e.field == field, "\(e)")
  }
}

@Test(arguments: [
  ("num_query_heads", [4, 4], "num_query_heads"), ("num_kv_heads", [3, 3, 3], "num_kv_heads"), ("model_dim", nil, "model_dim"),
  ("ffn_multipliers", [1, 2, 3, 4], "ffn_multipliers"), ("ffn_multipliers", nil, "ffn_multipliers"), ("ffn_with_glu", false, "ffn_with_glu"),
  ("head_dim", 0, "head_dim"), ("num_transformer_layers", "3", "num_transformer_layers"), ("normalize_qk_projections", "yes", "normalize_qk_projections"),
] as [(String, (any Sendable)?, String)])
func openELMConfigErrorsNameTheKey(key: String, value: (any Sendable)?, field: String) throws {
  var json = TinyCheckpoint.openELM.configJSON
  json[key] = value
  do {
    _ = try LlamaConfig(huggingFace: json)
    Issue.record("accepted \(key) = \(String(describing: value))")
  } catch let e as ModelFormatError {
    #expect(e.field == field, "\(e)")
  }
}

// MARK: - Tiny checkpoints against a float64 forward

/// A small model in the Hugging Face layout (rows [out, in], RoPE on halves), weights exactly representable in BF16.
struct TinyCheckpoint {
  struct Layer {
    var attentionNorm, query, key, value, output, ffnNorm, gate, up, down: [Double]
    var queryNorm: [Double]?, keyNorm: [Double]?
  }
  var openELM: Bool
  var d: Int, hd: Int, vocab: Int, heads: [Int], kvHeads: [Int], ffn: [Int], ffnMultipliers: [Double]
  var base: Double, eps: Double
  var embedding: [Double], layers: [Layer], norm: [Double], output: [Double]?

  static let openELM = TinyCheckpoint(openELM: true, seed: 11)
  static let llama = TinyCheckpoint(openELM: false, seed: 12)

  init(openELM: Bool, seed: UInt64) {
    self.openELM = openELM
    var state = seed
    func uniform() -> Double {   // SplitMix64 → [-1, 1)
      state &+= 0x9E37_79B9_7F4A_7C15
      var z = state
      z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9; z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB; z ^= z >> 31
      return Double(z >> 11) / Double(1 << 52) - 1
    }
    func bf16(_ x: Double) -> Double { Double(Float(bitPattern: Float(x).bitPattern & 0xFFFF_0000)) }
    func random(_ n: Int, scale: Double, around center: Double = 0) -> [Double] { (0..<n).map { _ in bf16(center + scale * uniform()) } }
    if openELM {
      // Three layers with different head counts and FFN widths (ffn_dim_divisor 32: 64, 96, 128).
      (d, hd, vocab, heads, kvHeads, ffnMultipliers, ffn, base, eps) = (64, 16, 100, [2, 3, 4], [1, 1, 2], [1.0, 1.5, 2.0], [64, 96, 128], 10_000, 1e-6)
    } else {
      (d, hd, vocab, heads, kvHeads, ffnMultipliers, ffn, base, eps) = (64, 16, 100, [4, 4], [2, 2], [], [96, 96], 500, 1e-5)
    }
    embedding = random(vocab * d, scale: 1)
    layers = zip(heads, zip(kvHeads, ffn)).map { [d, hd] h, kf in
      let (kv, f) = kf, s = 1.7 / Double(d).squareRoot()
      return Layer(attentionNorm: random(d, scale: 0.2, around: 1), query: random(h * hd * d, scale: s), key: random(kv * hd * d, scale: s),
                   value: random(kv * hd * d, scale: s), output: random(d * h * hd, scale: 1.7 / Double(h * hd).squareRoot()),
                   ffnNorm: random(d, scale: 0.2, around: 1), gate: random(f * d, scale: s), up: random(f * d, scale: s),
                   down: random(d * f, scale: 1.7 / Double(f).squareRoot()),
                   queryNorm: openELM ? random(hd, scale: 0.2, around: 1) : nil, keyNorm: openELM ? random(hd, scale: 0.2, around: 1) : nil)
    }
    norm = random(d, scale: 0.2, around: 1)
    output = openELM ? nil : random(vocab * d, scale: 0.5)
  }

  var configJSON: [String: Any] {
    if openELM {
      return ["model_type": "openelm", "model_dim": d, "head_dim": hd, "num_transformer_layers": heads.count, "num_gqa_groups": 2,
              "num_query_heads": heads, "num_kv_heads": kvHeads, "ffn_multipliers": ffnMultipliers, "ffn_dim_divisor": 32,
              "ffn_with_glu": true, "normalize_qk_projections": true, "share_input_output_layers": true,
              "rope_freq_constant": Int(base), "rope_max_length": 64, "vocab_size": vocab]
    }
    return ["model_type": "llama", "hidden_size": d, "num_hidden_layers": heads.count, "num_attention_heads": heads[0],
            "num_key_value_heads": kvHeads[0], "intermediate_size": ffn[0], "rms_norm_eps": eps, "rope_theta": base,
            "vocab_size": vocab, "max_position_embeddings": 64, "tie_word_embeddings": false]
  }

  static func tensor(_ v: [Double], _ shape: [Int]) throws -> Tensor { try Tensor(v.map { Float($0) }, shape: shape) }

  /// The checkpoint's tensors under its format's names (OpenELM: fused qkv_proj and proj_1), as f32.
  func namedTensors() throws -> [(name: String, tensor: Tensor)] {
    var out: [(name: String, tensor: Tensor)] = []
    if openELM {
      out.append(("transformer.token_embeddings.weight", try Self.tensor(embedding, [vocab, d])))
      for (l, w) in layers.enumerated() {
        let p = "transformer.layers.\(l).", h = heads[l], kv = kvHeads[l], f = ffn[l]
        out += [(p + "attn_norm.weight", try Self.tensor(w.attentionNorm, [d])),
                (p + "attn.qkv_proj.weight", try Self.tensor(w.query + w.key + w.value, [(h + 2 * kv) * hd, d])),
                (p + "attn.q_norm.weight", try Self.tensor(w.queryNorm!, [hd])), (p + "attn.k_norm.weight", try Self.tensor(w.keyNorm!, [hd])),
                (p + "attn.out_proj.weight", try Self.tensor(w.output, [d, h * hd])), (p + "ffn_norm.weight", try Self.tensor(w.ffnNorm, [d])),
                (p + "ffn.proj_1.weight", try Self.tensor(w.gate + w.up, [2 * f, d])), (p + "ffn.proj_2.weight", try Self.tensor(w.down, [d, f]))]
      }
      out.append(("transformer.norm.weight", try Self.tensor(norm, [d])))
    } else {
      out.append(("model.embed_tokens.weight", try Self.tensor(embedding, [vocab, d])))
      for (l, w) in layers.enumerated() {
        let p = "model.layers.\(l).", h = heads[l], kv = kvHeads[l], f = ffn[l]
        out += [(p + "input_layernorm.weight", try Self.tensor(w.attentionNorm, [d])),
                (p + "self_attn.q_proj.weight", try Self.tensor(w.query, [h * hd, d])), (p + "self_attn.k_proj.weight", try Self.tensor(w.key, [kv * hd, d])),
                (p + "self_attn.v_proj.weight", try Self.tensor(w.value, [kv * hd, d])), (p + "self_attn.o_proj.weight", try Self.tensor(w.output, [d, h * hd])),
                (p + "post_attention_layernorm.weight", try Self.tensor(w.ffnNorm, [d])),
                (p + "mlp.gate_proj.weight", try Self.tensor(w.gate, [f, d])), (p + "mlp.up_proj.weight", try Self.tensor(w.up, [f, d])),
                (p + "mlp.down_proj.weight", try Self.tensor(w.down, [d, f]))]
      }
      out += [("model.norm.weight", try Self.tensor(norm, [d])), ("lm_head.weight", try Self.tensor(output!, [vocab, d]))]
    }
    return out
  }

  /// Writes config.json and model.safetensors (tensors in `dtype`) into a new temporary directory.
  func write(dtype: DType = .f32, config: [String: Any]? = nil, tensors: [(name: String, tensor: Tensor)]? = nil) throws -> URL {
    let dir = try TestPaths.temporaryDirectory("hf-tiny")
    try JSONSerialization.data(withJSONObject: config ?? configJSON).write(to: dir.appendingPathComponent("config.json"))
    let stored = try (tensors ?? namedTensors()).map { ($0.name, dtype == .f32 ? $0.tensor : try $0.tensor.copied(as: dtype)) }
    try Safetensors.write(stored, to: dir.appendingPathComponent("model.safetensors").path)
    return dir
  }

  /// Logits of every position, in float64 with plain loops: RMSNorm, q/k norm per head (OpenELM), RoPE on halves,
  /// causal grouped-query attention, SwiGLU, the tied or separate output.
  func referenceLogits(_ tokens: [Int]) -> [[Double]] {
    func rmsNorm(_ v: [Double], _ g: [Double]) -> [Double] {
      let s = 1 / (v.reduce(0) { $0 + $1 * $1 } / Double(v.count) + eps).squareRoot()
      return zip(v, g).map { $0 * s * $1 }
    }
    func matvec(_ w: [Double], _ x: [Double]) -> [Double] {
      (0..<(w.count / x.count)).map { r in (0..<x.count).reduce(0) { $0 + w[r * x.count + $1] * x[$1] } }
    }
    func rope(_ v: [Double], position: Int) -> [Double] {
      var out = v
      let half = hd / 2
      for j in 0..<half {
        let angle = Double(position) * pow(base, -2 * Double(j) / Double(hd))
        out[j] = v[j] * cos(angle) - v[j + half] * sin(angle)
        out[j + half] = v[j] * sin(angle) + v[j + half] * cos(angle)
      }
      return out
    }
    var x = tokens.map { Array(embedding[($0 * d)..<(($0 + 1) * d)]) }
    for (l, w) in layers.enumerated() {
      let h = heads[l], kv = kvHeads[l], group = h / kv
      // Per position, per head: q, k after norm and RoPE; v.
      var q: [[[Double]]] = [], k: [[[Double]]] = [], v: [[[Double]]] = []
      for (t, row) in x.enumerated() {
        let a = rmsNorm(row, w.attentionNorm)
        let qa = matvec(w.query, a), ka = matvec(w.key, a), va = matvec(w.value, a)
        func heads(_ flat: [Double], _ n: Int, _ g: [Double]?) -> [[Double]] {
          (0..<n).map { i in
            let head = Array(flat[(i * hd)..<((i + 1) * hd)])
            return rope(g.map { rmsNorm(head, $0) } ?? head, position: t)
          }
        }
        q.append(heads(qa, h, w.queryNorm)); k.append(heads(ka, kv, w.keyNorm))
        v.append((0..<kv).map { Array(va[($0 * hd)..<(($0 + 1) * hd)]) })
      }
      for t in 0..<x.count {
        var attended: [Double] = []
        for head in 0..<h {
          let kvHead = head / group
          let scores = (0...t).map { s in zip(q[t][head], k[s][kvHead]).reduce(0) { $0 + $1.0 * $1.1 } / Double(hd).squareRoot() }
          let m = scores.max()!, e = scores.map { exp($0 - m) }, z = e.reduce(0, +)
          attended += (0..<hd).map { j in (0...t).reduce(0) { $0 + e[$1] / z * v[$1][kvHead][j] } }
        }
        x[t] = zip(x[t], matvec(w.output, attended)).map(+)
        let f = rmsNorm(x[t], w.ffnNorm)
        let gate = matvec(w.gate, f), up = matvec(w.up, f)
        let hidden = zip(gate, up).map { $0 / (1 + exp(-$0)) * $1 }
        x[t] = zip(x[t], matvec(w.down, hidden)).map(+)
      }
    }
    return x.map { matvec(output ?? embedding, rmsNorm($0, norm)) }
  }
}

/// The largest |model − reference| over every position's logits.
func worstLogitError(_ model: LlamaModel, _ tokens: [Int], _ reference: [[Double]]) throws -> Double {
  let all = try model.forward(tokens, cache: try model.makeCache(capacity: tokens.count), allLogits: true)
  let vocab = model.config.vocabularySize
  var worst = 0.0
  for (t, row) in reference.enumerated() {
    for (j, r) in row.enumerated() { worst = Swift.max(worst, abs(Double(all[t * vocab + j]) - r)) }
  }
  return worst
}

let tinyPrompt = [3, 17, 99, 0, 42, 42, 7, 58, 23]

@Test(arguments: [DType.f32, .bf16])
func tinyOpenELMCheckpointMatchesTheFloat64Forward(dtype: DType) throws {
  let tiny = TinyCheckpoint.openELM
  let dir = try tiny.write(dtype: dtype)
  defer { try? FileManager.default.removeItem(at: dir) }
  let model = try LlamaModel(huggingFaceDirectory: dir.path)
  #expect(model.config.headCounts == [2, 3, 4] && model.config.kvHeadCounts == [1, 1, 2] && model.config.ffnWidths == [64, 96, 128])
  #expect(model.config.queryKeyNorm && model.config.ropeStyle == .halves && model.config.tiedEmbeddings && model.outputWeight == nil)
  #expect(model.tokenizer == nil && model.name == dir.lastPathComponent)
  #expect(model.layers[2].key.tensor?.scalars == tiny.layers[2].key.map { Float($0) }, "rows split from qkv_proj at [n_q | n_kv | n_kv]")
  #expect(model.layers[1].up.tensor?.scalars == tiny.layers[1].up.map { Float($0) }, "rows split from proj_1 at [gate | up]")
  let worst = try worstLogitError(model, tinyPrompt, tiny.referenceLogits(tinyPrompt))
  #expect(worst < 1e-4, "largest logit difference from the float64 forward: \(worst)")
  // One token at a time through the cache gives the same logits.
  let cache = try model.makeCache(capacity: 2)
  let whole = try model.forward(tinyPrompt, cache: try model.makeCache(capacity: tinyPrompt.count), allLogits: true)
  for (i, id) in tinyPrompt.enumerated() {
    let step = try model.forward([id], cache: cache)
    #expect(zip(step, whole[(i * 100)..<((i + 1) * 100)]).allSatisfy { abs($0 - $1) < 1e-4 }, "position \(i)")
  }
}

@Test func tinyLlamaCheckpointMatchesTheFloat64Forward() throws {
  let tiny = TinyCheckpoint.llama
  let dir = try tiny.write()
  defer { try? FileManager.default.removeItem(at: dir) }
  let model = try LlamaModel(huggingFaceDirectory: dir.path)
  #expect(!model.config.tiedEmbeddings && model.outputWeight != nil && !model.config.queryKeyNorm)
  #expect(model.config.architecture == "llama" && model.config.ropeBase == 500 && model.config.rmsEpsilon == 1e-5)
  let worst = try worstLogitError(model, tinyPrompt, tiny.referenceLogits(tinyPrompt))
  #expect(worst < 1e-4, "largest logit difference from the float64 forward: \(worst)")
}

@Test func shardedCheckpointLoadsThroughItsIndex() throws {
  let tiny = TinyCheckpoint.llama
  let tensors = try tiny.namedTensors()
  let dir = try TestPaths.temporaryDirectory("hf-shards")
  defer { try? FileManager.default.removeItem(at: dir) }
  try JSONSerialization.data(withJSONObject: tiny.configJSON).write(to: dir.appendingPathComponent("config.json"))
  let shards = [Array(tensors.prefix(7)), Array(tensors.dropFirst(7))]
  var map: [String: String] = [:]
  for (i, shard) in shards.enumerated() {
    let file = "model-0000\(i + 1)-of-00002.safetensors"
    try Safetensors.write(shard, to: dir.appendingPathComponent(file).path)
    for (name, _) in shard { map[name] = file }
  }
  try JSONSerialization.data(withJSONObject: ["metadata": [:] as [String: Any], "weight_map": map])
    .write(to: dir.appendingPathComponent("model.safetensors.index.json"))
  let model = try LlamaModel(huggingFaceDirectory: dir.path)
  #expect(try worstLogitError(model, tinyPrompt, tiny.referenceLogits(tinyPrompt)) < 1e-4)
  // An index naming a tensor its shard does not hold is refused by that name.
  map["model.extra.weight"] = "model-00001-of-00002.safetensors"
  try JSONSerialization.data(withJSONObject: ["weight_map": map]).write(to: dir.appendingPathComponent("model.safetensors.index.json"))
  #expect { try LlamaModel(huggingFaceDirectory: dir.path) } throws: { ($0 as? ModelFormatError)?.field == "model.extra.weight" }
}

@Test func malformedCheckpointsAreRefusedByTensorName() throws {
  let tiny = TinyCheckpoint.openELM
  let tensors = try tiny.namedTensors()
  func refusal(_ edited: [(name: String, tensor: Tensor)], config: [String: Any]? = nil) throws -> ModelFormatError? {
    let dir = try tiny.write(config: config, tensors: edited)
    defer { try? FileManager.default.removeItem(at: dir) }
    do { _ = try LlamaModel(huggingFaceDirectory: dir.path); return nil } catch let e as ModelFormatError { return e }
  }
  let missing = try refusal(tensors.filter { $0.name != "transformer.layers.1.attn.k_norm.weight" })
  #expect(missing?.field == "transformer.layers.1.attn.k_norm.weight", "\(String(describing: missing))")
  let extra = try refusal(tensors + [("transformer.layers.0.attn.bias", try Tensor([1], shape: [1]))])
  #expect(extra?.field == "transformer.layers.0.attn.bias", "\(String(describing: extra))")
  let misshapen = try refusal(tensors.map { $0.name == "transformer.layers.2.ffn.proj_2.weight" ? ($0.name, try Tensor(zeros: [64, 96])) : $0 })
  #expect(misshapen?.field == "transformer.layers.2.ffn.proj_2.weight" && misshapen?.reason.contains("[64, 128]") == true,
          "\(String(describing: misshapen))")
  let integer = try refusal(tensors.map { $0.name == "transformer.norm.weight" ? ($0.name, try Tensor(zeros: [64], dtype: .i32)) : $0 })
  #expect(integer?.field == "transformer.norm.weight", "\(String(describing: integer))")
  var noNorms = tiny.configJSON
  noNorms["normalize_qk_projections"] = false
  let unexpectedNorms = try refusal(tensors, config: noNorms)
  #expect(unexpectedNorms?.field.hasSuffix("q_norm.weight") == true || unexpectedNorms?.field.hasSuffix("k_norm.weight") == true,
          "\(String(describing: unexpectedNorms))")
  #expect { try LlamaModel(huggingFaceDirectory: "/nonexistent/checkpoint") } throws: { ($0 as? ModelFormatError)?.field == "file" }
}

// MARK: - Writing checkpoints

/// The tiny Llama as a GGUF file holds it: each head's query and key rows in llama.cpp's order (row 2i + s of a head
/// is Hugging Face row s·h/2 + i), rotating adjacent pairs.
func adjacentPairsModel(_ tiny: TinyCheckpoint, quantize: DType? = nil) throws -> LlamaModel {
  var config = try LlamaConfig(huggingFace: tiny.configJSON)
  config.ropeStyle = .adjacentPairs
  let d = tiny.d, hd = tiny.hd, half = hd / 2
  func ggufRows(_ w: [Double], heads: Int) -> [Double] {
    var out = w
    for head in 0..<heads {
      for i in 0..<half {
        for s in 0..<2 {
          let to = (head * hd + 2 * i + s) * d, from = (head * hd + s * half + i) * d
          out.replaceSubrange(to..<(to + d), with: w[from..<(from + d)])
        }
      }
    }
    return out
  }
  func matrix(_ w: [Double], _ shape: [Int]) throws -> Tensor {
    let t = try TinyCheckpoint.tensor(w, shape)
    return try quantize.map { try t.copied(as: $0) } ?? t
  }
  let layers = try tiny.layers.enumerated().map { l, w in
    let h = tiny.heads[l], kv = tiny.kvHeads[l], f = tiny.ffn[l]
    return LlamaLayer(attentionNorm: try TinyCheckpoint.tensor(w.attentionNorm, [d]),
                      query: try matrix(ggufRows(w.query, heads: h), [h * hd, d]), key: try matrix(ggufRows(w.key, heads: kv), [kv * hd, d]),
                      value: try matrix(w.value, [kv * hd, d]), output: try matrix(w.output, [d, h * hd]),
                      ffnNorm: try TinyCheckpoint.tensor(w.ffnNorm, [d]), gate: try matrix(w.gate, [f, d]), up: try matrix(w.up, [f, d]),
                      down: try TinyCheckpoint.tensor(w.down, [d, f]))
  }
  return try LlamaModel(config: config, layers: layers, tokenEmbedding: try matrix(tiny.embedding, [tiny.vocab, d]),
                        outputNorm: try TinyCheckpoint.tensor(tiny.norm, [d]), outputWeight: try matrix(tiny.output!, [tiny.vocab, d]))
}

@Test func writingAnAdjacentPairsModelRestoresTheHuggingFaceRows() throws {
  let tiny = TinyCheckpoint.llama
  let reference = tiny.referenceLogits(tinyPrompt)
  let gguf = try adjacentPairsModel(tiny)
  #expect(try worstLogitError(gguf, tinyPrompt, reference) < 1e-4, "llama.cpp's row order with adjacent pairs computes the same function")
  let dir = try TestPaths.temporaryDirectory("hf-write")
  defer { try? FileManager.default.removeItem(at: dir) }
  try gguf.writeHuggingFace(to: dir.path)
  let written = Dictionary(uniqueKeysWithValues: try Safetensors.read(path: dir.appendingPathComponent("model.safetensors").path).tensors.map { ($0.name, $0.tensor) })
  #expect(written["model.layers.1.self_attn.q_proj.weight"]?.scalars == tiny.layers[1].query.map { Float($0) })
  #expect(written["model.layers.0.self_attn.k_proj.weight"]?.scalars == tiny.layers[0].key.map { Float($0) })
  let config = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("config.json"))) as? [String: Any])
  #expect(config["model_type"] as? String == "llama" && config["torch_dtype"] as? String == "float32")
  #expect(config["rms_norm_eps"] as? Double == 1e-5 && config["rope_theta"] as? Double == 500 && config["tie_word_embeddings"] as? Bool == false)
  let loaded = try LlamaModel(huggingFaceDirectory: dir.path)
  #expect(loaded.config.ropeStyle == .halves)
  #expect(try worstLogitError(loaded, tinyPrompt, reference) < 1e-4)
  // A model already rotating halves is written as it is.
  let again = try TestPaths.temporaryDirectory("hf-write")
  defer { try? FileManager.default.removeItem(at: again) }
  try loaded.writeHuggingFace(to: again.path)
  #expect(try Data(contentsOf: again.appendingPathComponent("model.safetensors")) == Data(contentsOf: dir.appendingPathComponent("model.safetensors")))
}

@Test(arguments: [DType.q4_1, .q8_0])
func writingAQuantisedModelDequantisesExactly(quantize: DType) throws {
  let gguf = try adjacentPairsModel(.llama, quantize: quantize)
  let dir = try TestPaths.temporaryDirectory("hf-write")
  defer { try? FileManager.default.removeItem(at: dir) }
  try gguf.writeHuggingFace(to: dir.path, dtype: .f32)
  let loaded = try LlamaModel(huggingFaceDirectory: dir.path)
  #expect(try loaded.layers[0].value.denseF32().scalars == gguf.layers[0].value.denseF32().scalars, "dequantised weights are stored as they are")
  let a = try gguf.forward(tinyPrompt, cache: try gguf.makeCache(capacity: 16), allLogits: true)
  let b = try loaded.forward(tinyPrompt, cache: try loaded.makeCache(capacity: 16), allLogits: true)
  let worst = zip(a, b).map { abs($0 - $1) }.max()!
  #expect(worst < 1e-4, "largest logit difference after the round trip: \(worst)")
}

@Test func writingInBF16RoundsEachWeight() throws {
  let gguf = try adjacentPairsModel(.llama, quantize: .q8_0)
  let dir = try TestPaths.temporaryDirectory("hf-write")
  defer { try? FileManager.default.removeItem(at: dir) }
  try gguf.writeHuggingFace(to: dir.path, dtype: .bf16)
  let config = try #require(JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent("config.json"))) as? [String: Any])
  #expect(config["torch_dtype"] as? String == "bfloat16")
  let loaded = try LlamaModel(huggingFaceDirectory: dir.path)
  #expect(loaded.tokenEmbedding.tensor?.scalars == (try gguf.tokenEmbedding.tensor?.copied(as: .bf16).scalars))
  #expect(throws: ModelFormatError.self) { try gguf.writeHuggingFace(to: dir.path, dtype: .q8_0) }
}

@Test func writingRefusesWhatTheLlamaFormatCannotHold() throws {
  let dir = try TinyCheckpoint.openELM.write()
  defer { try? FileManager.default.removeItem(at: dir) }
  let openELM = try LlamaModel(huggingFaceDirectory: dir.path)
  let out = try TestPaths.temporaryDirectory("hf-write")
  defer { try? FileManager.default.removeItem(at: out) }
  #expect { try openELM.writeHuggingFace(to: out.path) } throws: { ($0 as? ModelFormatError)?.field == "config" }
}

// MARK: - The real model

/// SmolLM2 from GGUF (Q4_1 and Q8_0, adjacent pairs) written as an f32 Hugging Face checkpoint and read back:
/// the dequantised weights are exact, so the logits differ only by summation order. Model-sized: the release pass.
@Suite(.serialized) struct HuggingFaceReleaseTests {
  @Test func smolLM2SurvivesAHuggingFaceRoundTrip() throws {
    let gguf = try SmolLM2.model.get()
    let dir = try TestPaths.temporaryDirectory("hf-smollm2")
    defer { try? FileManager.default.removeItem(at: dir) }
    try gguf.writeHuggingFace(to: dir.path, dtype: .f32)
    let size = try FileManager.default.attributesOfItem(atPath: dir.appendingPathComponent("model.safetensors").path)[.size] as? Int
    #expect(size.map { $0 > 530_000_000 } == true, "f32 checkpoint of 134.5M parameters: \(String(describing: size)) bytes")
    let hf = try LlamaModel(huggingFaceDirectory: dir.path)
    #expect(hf.config.ropeStyle == .halves && hf.parameterCount == gguf.parameterCount)
    #expect(hf.config.headCounts == gguf.config.headCounts && hf.config.ropeBase == gguf.config.ropeBase && hf.config.tiedEmbeddings)
    let prompt = [504, 2365, 6354, 16438, 27003, 690, 260, 23790, 314, 260, 3575, 282, 4649, 30]
    let a = try gguf.forward(prompt, cache: try gguf.makeCache(capacity: prompt.count), allLogits: true)
    let b = try hf.forward(prompt, cache: try hf.makeCache(capacity: prompt.count), allLogits: true)
    let worst = zip(a, b).map { abs($0 - $1) }.max()!
    #expect(worst < 1e-3, "largest logit difference over \(prompt.count) positions: \(worst)")
    // Greedy decoding (matrix-vector kernels on Q4_1 blocks against f32 rows), with the same tokenizer's end token.
    hf.tokenizer = gguf.tokenizer
    for reference in try SmolLM2.prompts() {
      var s1 = try Sampler(), s2 = try Sampler()
      let g1 = try gguf.generate(reference.promptIDs, maxTokens: 16, sampler: &s1)
      let g2 = try hf.generate(reference.promptIDs, maxTokens: 16, sampler: &s2)
      #expect(g1.tokens == g2.tokens, "\(reference.id): greedy \(g1.tokens) vs \(g2.tokens)")
      #expect(g1.tokens.count == 16 || g1.stopReason == "eos")
    }
  }
}
