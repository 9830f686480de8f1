// A Llama-family model from a GGUF file: the configuration from `<arch>.*` metadata, the weights by llama.cpp's
// tensor names (token_embd, blk.N.attn_q, ..., output_norm, output when not tied), the tokenizer from tokenizer.ggml.*.

import Foundation
import LatheTensor

extension LlamaConfig {
  /// Reads `general.architecture` and its keys; head counts and FFN widths may be one number or one per layer.
  public init(gguf file: GGUFFile) throws {
    func fail(_ key: String, _ reason: String) -> Error { ModelFormatError.malformed(path: file.path, field: key, reason: reason) }
    guard let arch = file.metadata["general.architecture"]?.string else { throw fail("general.architecture", "is missing") }
    guard ["llama", "openelm", "smollm", "mistral"].contains(arch) else {
      throw ModelFormatError.unsupported(path: file.path, field: "general.architecture", reason: "'\(arch)' is not a Llama-family architecture")
    }
    func int(_ key: String) throws -> Int {
      guard let v = file.metadata["\(arch).\(key)"]?.int else { throw fail("\(arch).\(key)", "is missing or not an integer") }
      return v
    }
    func perLayer(_ key: String, _ layers: Int) throws -> [Int] {
      let value = file.metadata["\(arch).\(key)"]
      if let v = value?.int { return Array(repeating: v, count: layers) }
      if let a = value?.ints, a.count == layers { return a }
      throw fail("\(arch).\(key)", "needs one integer or one per layer (\(layers))")
    }
    let layers = try int("block_count")
    guard layers > 0, layers <= 1024 else { throw fail("\(arch).block_count", "\(layers) is not in 1...1024") }
    let dimension = try int("embedding_length")
    let heads = try perLayer("attention.head_count", layers)
    let kvHeads = file.metadata["\(arch).attention.head_count_kv"] == nil ? heads : try perLayer("attention.head_count_kv", layers)
    let ffn = try perLayer("feed_forward_length", layers)
    guard let firstHeads = heads.first, firstHeads > 0 else { throw fail("\(arch).attention.head_count", "must be positive") }
    let headDimension = file.metadata["\(arch).attention.key_length"]?.int ?? file.metadata["\(arch).rope.dimension_count"]?.int ?? dimension / firstHeads
    let embedding = file.tensorInfo(named: "token_embd.weight")
    let vocab = file.metadata["\(arch).vocab_size"]?.int ?? embedding?.shape.first ?? file.metadata["tokenizer.ggml.tokens"]?.array?.count ?? 0
    try self.init(vocabularySize: vocab, dimension: dimension, contextLength: try int("context_length"),
                  headCounts: heads, kvHeadCounts: kvHeads, ffnWidths: ffn, headDimension: headDimension,
                  ropeBase: file.metadata["\(arch).rope.freq_base"]?.double ?? 10_000,
                  rmsEpsilon: Float(file.metadata["\(arch).attention.layer_norm_rms_epsilon"]?.double ?? 1e-5),
                  tiedEmbeddings: file.tensorInfo(named: "output.weight") == nil)
    architecture = arch
  }
}

extension LlamaModel {
  /// Loads the model (weights keep their file dtypes) and its tokenizer from a GGUF file.
  public convenience init(gguf file: GGUFFile, name: String? = nil) throws {
    let config = try LlamaConfig(gguf: file)
    func weight(_ name: String) throws -> Tensor {
      let t = try file.tensor(name)
      // Norm vectors and any dtype the kernels do not read directly become f32.
      return [.f32, .q4_1, .q8_0].contains(t.dtype) ? t : try t.copied(as: .f32)
    }
    var layers: [LlamaLayer] = []
    for l in 0..<config.layerCount {
      let p = "blk.\(l)."
      layers.append(LlamaLayer(attentionNorm: try weight(p + "attn_norm.weight"), query: try weight(p + "attn_q.weight"),
                               key: try weight(p + "attn_k.weight"), value: try weight(p + "attn_v.weight"),
                               output: try weight(p + "attn_output.weight"), ffnNorm: try weight(p + "ffn_norm.weight"),
                               gate: try weight(p + "ffn_gate.weight"), up: try weight(p + "ffn_up.weight"),
                               down: try weight(p + "ffn_down.weight")))
    }
    let tokenizer = file.metadata["tokenizer.ggml.tokens"] == nil ? nil : try BPETokenizer(gguf: file)
    let fileName = URL(fileURLWithPath: file.path).deletingPathExtension().lastPathComponent
    try self.init(config: config, layers: layers, tokenEmbedding: try weight("token_embd.weight"),
                  outputNorm: try weight("output_norm.weight"),
                  outputWeight: config.tiedEmbeddings ? nil : try weight("output.weight"),
                  tokenizer: tokenizer, name: name ?? file.metadata["general.name"]?.string ?? fileName)
  }

  /// Loads a GGUF file by path.
  public convenience init(path: String) throws {
    try self.init(gguf: try GGUFFile(path: path))
  }
}
