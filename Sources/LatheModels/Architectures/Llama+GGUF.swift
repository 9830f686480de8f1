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
  /// Loads the model (weights keep their file dtypes) and its tokenizer from a GGUF file; `formats` rebuilds the
  /// matrices a technique packed (`Techniques.formats` knows every technique's).
  public convenience init(gguf file: GGUFFile, name: String? = nil, formats: CompressedFormats = .none) throws {
    let config = try LlamaConfig(gguf: file)
    // Every weight goes into one storage (huge pages, see Tensor.packed): the dtypes the kernels read (f32, q4_1,
    // q8_0) as raw bytes, any other decoded to f32.
    var names = ["token_embd.weight", "output_norm.weight"] + (config.tiedEmbeddings ? [] : ["output.weight"])
    for l in 0..<config.layerCount {
      names += ["attn_norm", "attn_q", "attn_k", "attn_v", "attn_output", "ffn_norm", "ffn_gate", "ffn_up", "ffn_down"].map { "blk.\(l).\($0).weight" }
    }
    // Matrices a technique compressed (a file Lathe wrote with `packed: true`) are rebuilt by its decoder.
    var compressed: [String: any CompressedMatrix] = [:]
    for name in names { if let m = try formats.matrix(name, in: file) { compressed[name] = m } }
    names.removeAll { compressed[$0] != nil }
    let infos = try names.map { name in
      guard let info = file.tensorInfo(named: name) else {
        throw ModelFormatError.notFound(path: file.path, field: "tensor '\(name)'", reason: "the \(config.architecture) model needs it")
      }
      return info
    }
    let kept: Set<DType> = [.f32, .q4_1, .q8_0]
    let layout = infos.map { info -> (shape: [Int], dtype: DType) in
      (info.shape, info.type.dtype.flatMap { kept.contains($0) ? $0 : nil } ?? .f32)
    }
    let packed = try Tensor.packed(layout, op: "load") { i, destination, byteCount in
      let info = infos[i]
      if info.type.dtype == layout[i].dtype {
        let raw = file.rawBytes(info)
        guard raw.count == byteCount, let source = raw.baseAddress else {
          throw ModelFormatError.malformed(path: file.path, field: "tensor '\(info.name)'", reason: "\(raw.count) bytes where \(byteCount) were expected")
        }
        destination.copyMemory(from: source, byteCount: byteCount)
      } else {
        try file.dequantize(info, into: destination.assumingMemoryBound(to: Float.self))
      }
    }
    let tensors = Dictionary(uniqueKeysWithValues: zip(names, packed))
    func weight(_ name: String) throws -> Tensor {
      if compressed[name] != nil { return try Tensor(zeros: [1, 1], op: "load") }     // replaced by the compressed matrix below
      guard let t = tensors[name] else { throw ModelFormatError.notFound(path: file.path, field: "tensor '\(name)'", reason: "was not loaded") }
      return t
    }
    var layers: [LlamaLayer] = []
    for l in 0..<config.layerCount {
      let p = "blk.\(l)."
      var layer = LlamaLayer(attentionNorm: try weight(p + "attn_norm.weight"), query: try weight(p + "attn_q.weight"),
                             key: try weight(p + "attn_k.weight"), value: try weight(p + "attn_v.weight"),
                             output: try weight(p + "attn_output.weight"), ffnNorm: try weight(p + "ffn_norm.weight"),
                             gate: try weight(p + "ffn_gate.weight"), up: try weight(p + "ffn_up.weight"),
                             down: try weight(p + "ffn_down.weight"))
      for short in LlamaLayer.matrixNames { if let m = compressed[p + short + ".weight"] { layer.setMatrix(short, .compressed(m)) } }
      layers.append(layer)
    }
    for name in compressed.keys where name != "token_embd.weight" && (!name.hasPrefix("blk.") || !LlamaLayer.matrixNames.contains(where: { name.hasSuffix(".\($0).weight") })) {
      throw ModelFormatError.unsupported(path: file.path, field: "tensor '\(name)'", reason: "only decoder matrices and the token embedding can be stored compressed")
    }
    let tokenizer = file.metadata["tokenizer.ggml.tokens"] == nil ? nil : try BPETokenizer(gguf: file)
    let fileName = URL(fileURLWithPath: file.path).deletingPathExtension().lastPathComponent
    try self.init(config: config, layers: layers,
                  tokenEmbedding: compressed["token_embd.weight"].map(LinearWeight.compressed) ?? .tensor(try weight("token_embd.weight")),
                  outputNorm: try weight("output_norm.weight"),
                  outputWeight: config.tiedEmbeddings ? nil : try weight("output.weight"),
                  tokenizer: tokenizer, name: name ?? file.metadata["general.name"]?.string ?? fileName)
    ggufMetadata = file.metadataKeys.filter { !$0.hasPrefix(CompressedFormats.prefix) && $0 != LlamaModel.activationKey }
      .compactMap { key in file.metadata[key].map { (key, $0) } }
    // A model whose feed-forward activations were changed (relufied) says so in a key of Lathe's own.
    if let value = file.metadata[LlamaModel.activationKey] {
      guard let names = value.strings, names.count == layers.count else {
        throw ModelFormatError.malformed(path: file.path, field: LlamaModel.activationKey, reason: "needs one activation name per layer (\(layers.count))")
      }
      for (l, name) in names.enumerated() {
        guard let a = FFNActivation(rawValue: name) else {
          throw ModelFormatError.malformed(path: file.path, field: LlamaModel.activationKey, reason: "'\(name)' is not one of \(FFNActivation.allCases.map(\.rawValue))")
        }
        self.layers[l].activation = a
      }
    }
    // Worker processes map the same file (an image read from memory, such as a notebook's, has none).
    ggufPath = FileManager.default.fileExists(atPath: file.path) ? file.path : nil
    ggufIdentity = ggufPath.flatMap(FileIdentity.of)
  }

  /// The file this model was loaded from, while it is still that file (same device, inode, size and mtime): worker
  /// processes may load it by path. nil when the model has no file or the file was replaced since.
  public var unchangedGGUFPath: String? {
    guard let path = ggufPath, let identity = ggufIdentity, FileIdentity.of(path: path) == identity else { return nil }
    return path
  }

  /// Loads a GGUF file by path.
  public convenience init(path: String, formats: CompressedFormats = .none) throws {
    try self.init(gguf: try GGUFFile(path: path), formats: formats)
  }
}

extension LlamaModel {
  /// The metadata key of each layer's feed-forward activation, written when one is not SiLU.
  public static let activationKey = "lathe.ffn_activation"

  /// The GGUF type a tensor of `dtype` is written as when kept as it is.
  static func ggmlType(_ dtype: DType) -> GGMLType? {
    switch dtype {
    case .f32: return .f32
    case .f16: return .f16
    case .q8_0: return .q8_0
    case .q4_1: return .q4_1
    default: return nil
    }
  }

  /// A GGUF file of this model that llama.cpp and other tools can run: the metadata it was loaded with (tokenizer,
  /// chat template; a model from another format has none, so no tokenizer) with the architecture keys rewritten from the configuration, the norms in F32 and every matrix
  /// kept in its dtype (`type` nil) or quantised to `type` (F32, F16, Q8_0, Q4_0 or Q4_1).
  ///
  /// `packed: true` keeps compressed matrices bit for bit in their technique's packed form instead (see
  /// CompressedFormats): a file only Lathe reads, which loads back to the same model.
  public func ggufWriter(type: GGMLType? = nil, packed: Bool = false) throws -> GGUFWriter {
    guard config.ropeStyle == .adjacentPairs, !config.queryKeyNorm else {
      throw TensorError.invalidArgument(op: "gguf", reason: "writing GGUF needs a Llama model with adjacent-pair RoPE and no query/key norms (this one is \(config.architecture), \(config.ropeStyle.rawValue))")
    }
    if let type, !GGUFWriter.writableTypes.contains(type) {
      throw TensorError.invalidArgument(op: "gguf", reason: "cannot write matrices as \(type); use one of \(GGUFWriter.writableTypes)")
    }
    var w = GGUFWriter()
    for (key, value) in ggufMetadata where key != LlamaModel.activationKey { w.set(key, value) }
    if layers.contains(where: { $0.activation != .silu }) {
      w.set(LlamaModel.activationKey, .array(layers.map { .string($0.activation.rawValue) }))
    }
    let arch = "llama"
    w.set("general.architecture", .string(arch))
    w.set("general.name", .string(name))
    func perLayer(_ v: [Int]) -> GGUFValue { Set(v).count == 1 ? .uint32(UInt32(v[0])) : .array(v.map { .int32(Int32($0)) }) }
    w.set("\(arch).block_count", .uint32(UInt32(config.layerCount)))
    w.set("\(arch).context_length", .uint32(UInt32(config.contextLength)))
    w.set("\(arch).embedding_length", .uint32(UInt32(config.dimension)))
    w.set("\(arch).feed_forward_length", perLayer(config.ffnWidths))
    w.set("\(arch).attention.head_count", perLayer(config.headCounts))
    w.set("\(arch).attention.head_count_kv", perLayer(config.kvHeadCounts))
    w.set("\(arch).rope.freq_base", .float32(Float(config.ropeBase)))
    w.set("\(arch).rope.dimension_count", .uint32(UInt32(config.headDimension)))
    w.set("\(arch).attention.layer_norm_rms_epsilon", .float32(config.rmsEpsilon))
    w.set("\(arch).vocab_size", .uint32(UInt32(config.vocabularySize)))
    // llama.cpp's file type numbers: all F32 0, mostly F16 1, Q4_0 2, Q4_1 3, Q8_0 7.
    let fileTypes: [GGMLType: UInt32] = [.f32: 0, .f16: 1, .q4_0: 2, .q4_1: 3, .q8_0: 7]
    if let t = type ?? layers.first.flatMap({ $0.gate.tensor.flatMap { Self.ggmlType($0.dtype) } }), let ft = fileTypes[t] { w.set("general.file_type", .uint32(ft)) }

    func add(_ name: String, _ t: Tensor, vector: Bool = false) throws {
      let target = vector ? GGMLType.f32 : (type ?? Self.ggmlType(t.dtype) ?? .f32)
      if Self.ggmlType(t.dtype) == target, t.isContiguous {
        let bytes = t.dtype.bytes(forElements: t.count) ?? 0
        let start = UnsafeRawPointer(t.storage.bytes) + (t.dtype.blockSize == 1 ? t.offset * t.dtype.byteSize : t.offset / 32 * t.dtype.byteSize)
        try w.addTensor(name, dimensions: t.shape.reversed(), type: target, bytes: UnsafeRawBufferPointer(start: start, count: bytes))
      } else {
        try w.addTensor(name, t, as: target)
      }
    }
    if packed, case .compressed(let m) = tokenEmbedding {
      try CompressedFormats.add(m, named: "token_embd.weight", to: &w)
    } else {
      try add("token_embd.weight", try tokenEmbedding.tensor ?? tokenEmbedding.denseF32())
    }
    try add("output_norm.weight", outputNorm, vector: true)
    if let outputWeight { try add("output.weight", outputWeight) }
    for (l, layer) in layers.enumerated() {
      let p = "blk.\(l)."
      try add(p + "attn_norm.weight", layer.attentionNorm, vector: true)
      try add(p + "ffn_norm.weight", layer.ffnNorm, vector: true)
      // A compressed matrix is written dequantised, as `type` (F32 when none is given): GGUF has no SeedLM type.
      for (short, weight) in layer.matrices {
        if packed, case .compressed(let m) = weight {
          try CompressedFormats.add(m, named: p + short + ".weight", to: &w)
        } else {
          try add(p + short + ".weight", try weight.tensor ?? weight.denseF32())
        }
      }
    }
    return w
  }

  /// Writes `ggufWriter(type:)`'s file at `path`.
  public func writeGGUF(to path: String, type: GGMLType? = nil, packed: Bool = false) throws {
    try ggufWriter(type: type, packed: packed).write(to: path)
  }
}
