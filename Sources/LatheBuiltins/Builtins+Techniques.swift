// Compression techniques as values of the language: `seedlm(bits: 4)` prints every parameter and can be stored,
// passed and saved; `compress(m, technique)` returns a new model that runs in the packed form; `report(m)` says
// what it cost.

import Foundation
import LatheLang
import LatheModels
import LatheNN
import LatheParallel
import LatheTechniques
import LatheTensor

/// A technique value, whatever its roles: its description is the full constructor call, its fields are the
/// technique's own (`t.bits`, `t.procs`), and `t.role` / `t.roles` say which verbs take it.
public final class TechniqueValue: HostObject {
  public let technique: any Technique
  init(_ technique: any Technique) { self.technique = technique }
  public var typeName: String { "technique" }
  public var description: String { technique.description }
  public var memberNames: [String] {
    ["name", "role", "roles"] + technique.fields.map(\.0) + (technique is any MatrixCompressor && !technique.fields.contains { $0.0 == "bits" } ? ["bits"] : [])
  }
  public func member(_ name: String) throws -> Value? {
    switch name {
    case "name": return .string(technique.name)
    case "role": return .string(technique.roles.first?.description ?? "")
    case "roles": return .list(technique.roles.map { .string($0.description) })
    default:
      if let field = technique.fields.first(where: { $0.0 == name }) { return TechniqueBuiltins.value(field.1) }
      if name == "bits", let c = technique as? any MatrixCompressor { return .float(c.bitsPerWeight) }
      return nil
    }
  }
  public func isEqual(to other: any HostObject) -> Bool {
    guard let o = other as? TechniqueValue else { return false }
    if o === self { return true }
    guard o.description == description, let a = try? Techniques.encode(technique), let b = try? Techniques.encode(o.technique) else { return false }
    return a == b
  }
  public func serialized() throws -> (kind: String, bytes: [UInt8])? {
    do { return try Techniques.encode(technique).map { ("technique", $0) } } catch { throw TechniqueBuiltins.error(error) }
  }
}

/// One compressed matrix: `compress(tensor, technique)`. `decompress` gives the dense tensor back, `pack` the exact
/// packed bytes.
public final class CompressedTensorValue: HostObject {
  public let matrix: any CompressedMatrix
  init(_ matrix: any CompressedMatrix) { self.matrix = matrix }
  public var typeName: String { "compressed" }
  public var description: String {
    "\(matrix.technique) \(matrix.shape), \(String(format: "%.3f", matrix.bitsPerWeight)) bits per weight, \(matrix.byteCount) bytes"
  }
  public var memberNames: [String] {
    ["technique", "shape", "bitsPerWeight", "bytes"] + (matrix is SeedMatrix ? ["seeds", "exps", "mantissas"] : [])
  }
  public func member(_ name: String) throws -> Value? {
    func ints<T: BinaryInteger>(_ xs: [T], _ shape: [Int]) throws -> Value { TensorBuiltins.wrap(try Tensor(xs.map { Float($0) }, shape: shape)) }
    let seed = matrix as? SeedMatrix
    switch name {
    case "technique": return .string(matrix.technique)
    case "shape": return .list(matrix.shape.map { .int($0) })
    case "bitsPerWeight": return .float(matrix.bitsPerWeight)
    case "bytes": return .int(matrix.byteCount)
    // Per block, in row-major block order: the register state, the exponent, the P mantissas.
    case "seeds": return try seed.map { try ints($0.seeds, [$0.seeds.count]) }
    case "exps": return try seed.map { try ints($0.exponents, [$0.exponents.count]) }
    case "mantissas": return try seed.map { try ints($0.mantissas, [$0.seeds.count, $0.mantissas.count / Swift.max(1, $0.seeds.count)]) }
    default: return nil
    }
  }
  public func serialized() throws -> (kind: String, bytes: [UInt8])? {
    // The technique's description, the shape, then the packed bytes.
    var out = Array(matrix.technique.utf8) + [0]
    for d in matrix.shape { for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: UInt64(d) >> (8 * UInt64(i)))) } }
    return ("compressed", out + matrix.packed())
  }
  static func deserialize(_ bytes: [UInt8]) throws -> Value {
    guard let zero = bytes.firstIndex(of: 0), bytes.count >= zero + 17 else { throw LatheError("load: saved compressed matrix is truncated") }
    let technique = String(decoding: bytes[..<zero], as: UTF8.self)
    let shape = (0..<2).map { d in (0..<8).reduce(0) { $0 | Int(bytes[zero + 1 + d * 8 + $1]) << (8 * $1) } }
    guard shape.allSatisfy({ $0 > 0 && $0 < 1 << 31 }) else { throw LatheError("load: saved compressed matrix has shape \(shape)") }
    do {
      guard let compressor = try Techniques.parse(technique) as? any MatrixCompressor else {
        throw LatheError("load: \(Value.quote(technique)) is not a compressor")
      }
      return .host(CompressedTensorValue(try compressor.unpack(Array(bytes[(zero + 17)...]), shape: shape)))
    } catch { throw LatheError("load: \(error)") }
  }
}

enum TechniqueBuiltins {
  static func register(into r: BuiltinRegistry) {
    r.addHostDecoder(kind: "technique") { bytes in
      do { return .host(TechniqueValue(try Techniques.decode(bytes))) } catch { throw LatheError("load: \(TechniqueBuiltins.error(error).message)") }
    }
    // Notebooks written before the table kept runahead(...) and tsp(...) under their own kind.
    r.addHostDecoder(kind: "prefillStrategy") { bytes in
      do { return .host(TechniqueValue(try KVRunahead.decode(bytes: bytes))) } catch { throw LatheError("load: \(TechniqueBuiltins.error(error).message)") }
    }
    r.addHostDecoder(kind: "compressed", CompressedTensorValue.deserialize)
    // One row per technique of the table: arguments are read by label.
    for entry in Techniques.all {
      let parameters = entry.parameters.map { p in p.defaultValue.map { ParameterSpec(p.label, default: value($0)) } ?? ParameterSpec(p.label) }
      r.add(entry.name, parameters, doc: docText(entry), example: entry.example) { c in
        var given: [String: TechniqueArgument] = [:]
        for (i, p) in entry.parameters.enumerated() { given[p.label] = argument(c[i]) }
        do { return .host(TechniqueValue(try entry.make(given))) } catch { throw self.error(error) }
      }
    }
    r.add("compress", [ParameterSpec("m"), ParameterSpec("data", default: Value.none), ParameterSpec("technique", default: Value.none),
                       ParameterSpec("layers", default: .string("all")), ParameterSpec("matrices", default: .string("all")),
                       ParameterSpec("embeddings", default: .bool(false))],
          doc: "A cheaper model. With a compressor (rtn, kmeans, seedlm), a new model whose decoder linears (all seven per layer by default; layers: a list of layer numbers, matrices: a list of names such as \"ffn_down\") are stored and run in the technique's packed form; embeddings: true compresses the token embedding too (and so a tied output head). With a model transform (droplayers), the transformed model; compress(m, data, t) gives it data (calibration text). Given a matrix (a 2-D tensor) instead of a model, the compressed matrix.",
          example: "let q = compress(m, seedlm(bits: 4), layers: [0])") { c in
      // compress(m): the deployable form of the training methods m was trained with.
      if c.isNone(1) && c.isNone(2) {
        guard case .host(let value as ModuleValue) = c[0] else {
          throw LatheError("compress: give a technique: compress(m, t); compress(m) alone finishes an nn model trained with a training method")
        }
        let finalizing = value.trainedWith.compactMap { $0 as? any FinalizingTechnique }
        guard !finalizing.isEmpty else {
          let names = value.trainedWith.map(\.name)
          throw LatheError("compress: the model was trained with \(names.isEmpty ? "no training method" : names.joined(separator: ", ")), none of which has a deployable form; give a technique: compress(m, t)")
        }
        do {
          var module = value.module
          for method in finalizing { module = try method.finalize(module) }
          return .host(ModuleValue(module))
        } catch { throw self.error(error) }
      }
      // compress(m, t) or compress(m, data, t).
      let (data, techniqueValue): (Value, Value) = c.isNone(2) ? (Value.none, c[1]) : (c[1], c[2])
      guard case .host(let h) = techniqueValue, let t = h as? TechniqueValue else {
        throw LatheError("compress: 'technique' must be a \(roleNames([.compressor, .modelTransform])), got \(techniqueValue.typeName)", kind: .type)
      }
      if let transform = t.technique as? any ModelTransform {
        let value = try ModelBuiltins.model(c, 0, "compress")
        let text: String?
        switch data {
        case .none: text = nil
        case .string(let s): text = s
        default: throw LatheError("compress: 'data' must be text, got \(data.typeName)", kind: .type)
        }
        if transform.needsData && text == nil { throw LatheError("compress: \(transform.name) needs data: compress(m, text, \(transform.name)(...))") }
        do { return .host(LanguageModelValue(try transform.transform(value.model, data: text), path: value.path, loadSeconds: 0)) }
        catch { throw self.error(error) }
      }
      guard let compressor = t.technique as? any MatrixCompressor else {
        throw LatheError("compress: \(t.technique.name) is a \(t.technique.roles.map(\.description).joined(separator: " and ")); compress takes a \(roleNames([.compressor, .modelTransform]))", kind: .type)
      }
      guard case .none = data else { throw LatheError("compress: \(compressor.name) takes no data") }
      if case .host(let x) = c[0], let tensor = x as? TensorValue {
        // One matrix: the technique's packed form, as a value.
        guard tensor.tensor.rank == 2 else { throw LatheError("compress: a tensor must be a matrix [rows, cols], got shape \(tensor.tensor.shape)") }
        let bar = Progress(c.interpreter, total: 100, label: "compress")
        var shown = 0
        do {
          let m = try compressor.compress(tensor.tensor) { done, total in
            let percent = total == 0 ? 100 : done * 100 / total
            if percent > shown { try bar.advance(by: percent - shown); shown = percent } else { try c.interpreter.checkInterrupt() }
          }
          bar.finish()
          return .host(CompressedTensorValue(m))
        } catch let e as LatheError { throw e } catch { throw self.error(error) }
      }
      let layers: [Int]? = try names(c, 3, "layers") { v in
        guard case .int(let i) = v else { throw LatheError("compress: layers must be \"all\" or a list of ints", kind: .type) }
        return i
      }
      let matrices: [String] = try names(c, 4, "matrices") { v in
        guard case .string(let s) = v else { throw LatheError("compress: matrices must be \"all\" or a list of names", kind: .type) }
        return s
      } ?? LlamaLayer.matrixNames
      if case .host(let h as ModuleValue) = c[0] {
        // An nn model: its Linear layers run the packed form (PackedLinear).
        guard let sequential = h.module as? Sequential else {
          throw LatheError("compress: an nn model is compressed layer by layer, so it must be a sequential(...) or mlp(...), got \(h.module.summary)")
        }
        guard case .string("all") = c[4] else { throw LatheError("compress: matrices: is for language models; an nn model takes layers:") }
        let bar = Progress(c.interpreter, total: sequential.layers.count, label: "compress")
        do {
          let (model, report) = try sequential.compressed(with: compressor, layers: layers) { _, _ in try bar.advance() }
          bar.finish()
          return .host(ModuleValue(model, compression: report))
        } catch let e as LatheError { throw e } catch { throw self.error(error) }
      }
      let value = try ModelBuiltins.model(c, 0, "compress")
      let bar = Progress(c.interpreter, total: 100, label: "compress")
      var shown = 0
      do {
        let (model, report) = try value.model.compressed(with: compressor, layers: layers, matrices: matrices, embeddings: try c.bool(5)) { done, total in
          let percent = total == 0 ? 100 : done * 100 / total
          if percent > shown { try bar.advance(by: percent - shown); shown = percent } else { try c.interpreter.checkInterrupt() }
        }
        bar.finish()
        return .host(LanguageModelValue(model, path: value.path, loadSeconds: 0, compression: report))
      } catch let e as LatheError { throw e } catch { throw self.error(error) }
    }
    r.add("decompress", [ParameterSpec("x")],
          doc: "The dense f32 form: of a compressed matrix (a tensor), or of a compressed model (every matrix decoded; the model runs dense).",
          example: "decompress(compress(randn([64, 64]), seedlm(bits: 4)))") { c in
      if case .host(let h) = c[0], let m = h as? CompressedTensorValue {
        do { return TensorBuiltins.wrap(try m.matrix.dequantized()) } catch let e as TensorError { throw LatheError(e.description) }
      }
      guard case .host(let h) = c[0], h is LanguageModelValue else {
        throw LatheError("decompress: 'x' must be a compressed matrix or a language model, got \(c[0].typeName)", kind: .type)
      }
      let value = try ModelBuiltins.model(c, 0, "decompress")
      let dense = try value.model.copy()
      for l in dense.layers.indices {
        for (name, w) in dense.layers[l].matrices where w.tensor == nil { dense.layers[l].setMatrix(name, .tensor(try w.denseF32())) }
      }
      return .host(LanguageModelValue(dense, path: value.path, loadSeconds: 0))
    }
    r.add("pack", [ParameterSpec("x")],
          doc: "The exact packed bytes of a compressed matrix (what a file stores), as a u8 tensor.",
          example: "shape(pack(compress(randn([8, 64]), seedlm(bits: 4))))") { c in
      guard case .host(let h) = c[0], let m = h as? CompressedTensorValue else {
        throw LatheError("pack: 'x' must be a compressed matrix from compress(tensor, technique), got \(c[0].typeName)", kind: .type)
      }
      let bytes = m.matrix.packed()
      let t = try Tensor(zeros: [bytes.count], dtype: .u8, op: "pack")     // a fresh storage, written once here
      bytes.withUnsafeBytes { if let b = $0.baseAddress { t.storage.bytes.copyMemory(from: b, byteCount: bytes.count) } }
      return TensorBuiltins.wrap(t)
    }
    r.add("compare", [ParameterSpec("models"), ParameterSpec("on"), ParameterSpec("tokens", default: .int(512))],
          doc: "Each model against the first on the first `tokens` tokens of a text (teacher-forced): perplexity, mean KL(first ‖ model), top-1 agreement, bits per weight, bytes, decode tokens/s.",
          example: "compare([m, q], on: corpus(\"wiki\"), tokens: 256)") { c in
      let items = try c.list(0)
      let models = try items.enumerated().map { i, v -> (name: String, model: LlamaModel) in
        guard case .host(let h) = v, let m = h as? LanguageModelValue else {
          throw LatheError("compare: models[\(i)] must be a language model, got \(v.typeName)", kind: .type)
        }
        return (m.compression?.technique ?? m.model.name, m.model)
      }
      guard let first = models.first, let tokenizer = first.model.tokenizer else { throw LatheError("compare: needs models with a tokenizer, the first one first") }
      let count = try c.int(2)
      guard count >= 2 else { throw LatheError("compare: tokens must be at least 2, got \(count)") }
      let tokens = Array(tokenizer.encode(try c.string(1), parseSpecial: false).prefix(count))
      let bar = Progress(c.interpreter, total: models.count, label: "compare")
      do {
        let rows = try ModelComparison.compare(models, tokens: tokens) { _, _ in try bar.advance() }
        bar.finish()
        return .host(TableValue(columns: ["model", "perplexity", "kl", "top1", "bitsPerWeightLinears", "bitsPerWeightFile", "bytes",
                                          "decodeTokensPerSecond"], rows: rows.map { r in
          [.string(r.name), .float(r.perplexity), .float(r.kl), .float(r.top1Agreement), .float(r.bitsPerWeightLinears),
           .float(r.bitsPerWeightFile), .int(r.bytes), .float(r.decodeTokensPerSecond)]
        }))
      } catch let e as TensorError { throw LatheError(e.description) }
    }
    r.add("report", [ParameterSpec("x")],
          doc: "What a model is made of, layer by layer (layers: a table of parameters, bytes, bits per weight and technique per layer), for language models and nn models, with bitsPerWeightLinears (the linear layers' matrices) and bitsPerWeightFile (every tensor); for a compressed model also the technique and each matrix's relative error (entries).",
          example: "report(q).bitsPerWeightLinears") { c in
      switch c[0] {
      case .host(let m as LanguageModelValue): return languageModelReport(m)
      case .host(let m as ModuleValue): return try moduleReport(m)
      default: throw LatheError("report: 'x' must be a model, got \(c[0].typeName)", kind: .type)
      }
    }
    r.add("fit", [ParameterSpec("m"), ParameterSpec("data", default: Value.none), ParameterSpec("technique", default: Value.none)],
          doc: "Fits a technique's own parts in closed form (ridge maps, predictors, rotations) on a model and data, without training the model, and returns the new, fitted technique value: fit(m, data, t), or fit(data, t) when there is no model.",
          example: "let fitted = fit(m, text, t)") { c in
      // The technique is the last argument given; the ones before it are the model and the data, in that order.
      let given = (0..<3).filter { !c.isNone($0) }
      guard let last = given.last, case .host(let h) = c[last], let t = h as? TechniqueValue else {
        throw LatheError("fit: the last argument must be a technique to fit, got \(given.last.map { c[$0].typeName } ?? "none")", kind: .type)
      }
      guard let fitting = t.technique as? any FittingTechnique else {
        let fitters = Techniques.entries(playing: .fittedAnalyser).map(\.name)
        throw LatheError("fit: \(t.technique.name) is a \(roleNames(t.technique.roles)); fit takes a fitted analyser"
                         + (fitters.isEmpty ? " (none in the table yet)" : " (\(fitters.joined(separator: ", ")))"), kind: .type)
      }
      let before = Array(given.dropLast())
      let model: Value = before.count == 2 ? c[before[0]] : .none
      let data: Value = before.last.map { c[$0] } ?? .none
      do { return .host(TechniqueValue(try fitting.fit(model: argument(model), data: argument(data)))) } catch { throw self.error(error) }
    }
    r.add("flops", [ParameterSpec("m"), ParameterSpec("input", default: Value.none), ParameterSpec("length", default: Value.none)],
          doc: "Multiply-accumulates and FLOPs (2 × MACs), per layer and in total: per example for an nn model (input: a shape such as [64] or [1, 28, 28], a tensor or a dataset), per token for a language model (length: the positions the token attends to, default 1). Norms, activations and softmax are not counted; layers whose MACs are not counted yet say so.",
          example: "flops(mlp([64, 32, 10]), [64]).macs") { c in
      switch c[0] {
      case .host(let m as ModuleValue): return try moduleFlops(m.module, c)
      case .host(let m as LanguageModelValue):
        var length = 1
        if !c.isNone(2) { length = try c.int(2) } else if case .int(let n) = c[1] { length = n } else if !c.isNone(1) {
          throw LatheError("flops: a language model counts per token: give length: n", kind: .type)
        }
        guard length >= 1, length <= 1 << 24 else { throw LatheError("flops: length must be 1 to 16777216 positions, got \(length)") }
        let counts = m.model.config.tokenMACs(length: length)
        var rows: [[Value]] = counts.layers.enumerated().map { l, c in
          [.string("\(l)"), .int(c.projections), .int(c.attention), .int(c.ffn), .int(c.projections + c.attention + c.ffn)]
        }
        rows.append([.string("head"), .int(0), .int(0), .int(0), .int(counts.head)])
        let total = counts.layers.reduce(counts.head) { $0 + $1.projections + $1.attention + $1.ffn }
        return .record(Record([("macs", .int(total)), ("flops", .int(2 * total)), ("length", .int(length)),
                               ("layers", .host(TableValue(columns: ["layer", "projections", "attention", "ffn", "macs"], rows: rows)))]))
      default: throw LatheError("flops: 'm' must be a model, got \(c[0].typeName)", kind: .type)
      }
    }
  }

  /// report(m) of a language model: its layers, and what compress did when it made it.
  static func languageModelReport(_ m: LanguageModelValue) -> Value {
    let model = m.model
    var rows: [[Value]] = []
    func row(_ name: String, _ weights: [LinearWeight], extra: Int) {
      let params = weights.reduce(extra) { $0 + $1.count }, bytes = weights.reduce(extra * 4) { $0 + $1.byteCount }
      let kinds = Array(Set(weights.map(\.kind))).sorted().joined(separator: ", ")
      rows.append([.string(name), .int(params), .int(bytes), .float(params == 0 ? 0 : Double(bytes * 8) / Double(params)), .string(kinds)])
    }
    row("token_embd", [model.tokenEmbedding], extra: 0)
    for (l, layer) in model.layers.enumerated() {
      row("\(l)", layer.matrices.map(\.1), extra: layer.attentionNorm.count + layer.ffnNorm.count)
    }
    row("output_norm", [], extra: model.outputNorm.count)
    if let head = model.outputWeight { row("output", [.tensor(head)], extra: 0) }
    let layers = Value.host(TableValue(columns: ["layer", "params", "bytes", "bitsPerWeight", "technique"], rows: rows))
    return modelRecord(m.compression, bytes: model.byteCount, params: model.parameterCount,
                       linearBits: model.linearBitsPerWeight, layers: layers)
  }

  /// report(m) of an nn model: its layers (packed ones by their technique), and what compress did when it made it.
  static func moduleReport(_ m: ModuleValue) throws -> Value {
    var rows: [[Value]] = []
    var linearWeights = 0, linearBytes = 0
    for (path, module) in m.module.leaves {
      let packed = module as? PackedLinear
      if let packed { linearWeights += packed.weight.rows * packed.weight.cols; linearBytes += packed.weight.byteCount }
      if let linear = module as? Linear { linearWeights += linear.weight.value.count; linearBytes += linear.weight.value.count * 4 }
      let params = module.parameterCount + (packed.map { $0.weight.rows * $0.weight.cols + ($0.bias?.count ?? 0) } ?? 0)
      let bytes = module.byteCount
      let technique = packed?.weight.technique ?? (params == 0 ? "" : "f32")
      rows.append([.string(path.isEmpty ? "0" : path), .string(module.summary), .int(params), .int(bytes),
                   .float(params == 0 ? 0 : Double(bytes * 8) / Double(params)), .string(technique)])
    }
    let params = rows.reduce(0) { if case .int(let p) = $1[2] { return $0 + p } else { return $0 } }
    let bytes = m.module.byteCount
    let layers = Value.host(TableValue(columns: ["layer", "summary", "params", "bytes", "bitsPerWeight", "technique"], rows: rows))
    return modelRecord(m.compression, bytes: bytes, params: params,
                       linearBits: linearWeights == 0 ? 0 : Double(linearBytes * 8) / Double(linearWeights), layers: layers,
                       extra: [("trainedWith", .list(m.trainedWith.map { .string($0.description) }))])
  }

  /// report(m)'s record. Bits per weight is given two ways, each saying what it counts: `bitsPerWeightLinears`
  /// over the linear layers' weight matrices (a language model's decoder linears: what weight compression targets)
  /// and `bitsPerWeightFile` over every tensor (embedding and norms too). A compressed model adds the technique,
  /// each matrix's relative error (entries, a table) and their mean; then `extra`.
  static func modelRecord(_ r: CompressionReport?, bytes: Int, params: Int, linearBits: Double, layers: Value,
                          extra: [(String, Value)] = []) -> Value {
    let bits: [(String, Value)] = [("bitsPerWeightLinears", .float(linearBits)),
                                   ("bitsPerWeightFile", .float(params == 0 ? 0 : Double(bytes * 8) / Double(params)))]
    guard let r else {
      return .record(Record([("technique", Value.none)] + bits + [("bytes", .int(bytes)), ("params", .int(params)), ("layers", layers)] + extra))
    }
    let entries = TableValue(columns: ["layer", "matrix", "shape", "relativeError", "bitsPerWeight", "bytes", "seconds"],
                             rows: r.entries.map { e in
      [.int(e.layer), .string(e.matrix), .list(e.shape.map { .int($0) }), .float(e.relativeError), .float(e.bitsPerWeight),
       .int(e.bytes), .float(e.seconds)]
    })
    let meanError = r.entries.isEmpty ? 0 : r.entries.reduce(0) { $0 + $1.relativeError } / Double(r.entries.count)
    return .record(Record([("technique", .string(r.technique))] + bits +
                          [("bytes", .int(bytes)), ("params", .int(params)), ("matrices", .int(r.entries.count)),
                           ("meanRelativeError", .float(meanError)), ("seconds", .float(r.seconds)), ("entries", .host(entries)),
                           ("layers", layers)] + extra))
  }

  /// flops(m, input) of an nn model: per example of the input's shape.
  static func moduleFlops(_ module: Module, _ c: NativeCall) throws -> Value {
    let shape: [Int]
    switch c[1] {
    case .list(let items):
      shape = try items.map { v -> Int in
        guard case .int(let n) = v else { throw LatheError("flops: input shape holds ints, got \(v.typeName)", kind: .type) }
        return n
      }
    case .host(let t as TensorValue): shape = Array(t.tensor.shape.dropFirst())
    case .host(let d as DatasetValue): shape = d.dataset.imageShape
    default: throw LatheError("flops: 'input' must be one example's shape ([64], [1, 28, 28]), a batch tensor or a dataset, got \(c[1].typeName)", kind: .type)
    }
    let counts: [LayerCount]
    do { counts = try module.layerCounts(input: shape) } catch { throw self.error(error) }
    let rows: [[Value]] = counts.map { l in
      [.string(l.path), .string(l.summary), .int(l.macs), .int(2 * l.macs), .list(l.outputShape.map { .int($0) }), .bool(l.counted)]
    }
    let total = counts.reduce(0) { $0 + $1.macs }
    return .record(Record([("macs", .int(total)), ("flops", .int(2 * total)), ("input", .list(shape.map { .int($0) })),
                           ("counted", .bool(counts.allSatisfy(\.counted))),
                           ("layers", .host(TableValue(columns: ["layer", "summary", "macs", "flops", "output", "counted"], rows: rows)))]))
  }

  /// The doc line of a technique's row: its doc, its roles and the verbs that take it, and each parameter.
  static func docText(_ entry: TechniqueEntry) -> String {
    let roles = entry.roles.map { "\($0) (\($0.verbs.joined(separator: ", ")))" }.joined(separator: "; ")
    let params = entry.parameters.map { p in "\(p.label): \(p.doc)" }.joined(separator: "; ")
    return entry.doc + " Role: " + roles + "." + (params.isEmpty ? "" : " Parameters: " + params + ".")
  }

  /// "compressor or model transform", for errors that name what a verb takes.
  static func roleNames(_ roles: [Role]) -> String { roles.map(\.description).joined(separator: " or ") }

  /// A language value as a technique argument: engine objects (models, tables, techniques) by their engine value.
  static func argument(_ v: Value) -> TechniqueArgument {
    switch v {
    case .none: return .none
    case .bool(let b): return .bool(b)
    case .int(let i): return .int(i)
    case .float(let x): return .float(x)
    case .string(let s): return .string(s)
    case .list(let items): return .list(items.map(argument))
    case .host(let m as LanguageModelValue): return .object(m.model)
    case .host(let m as ModuleValue): return .object(m.module)
    case .host(let d as DatasetValue): return .object(d.dataset)
    case .host(let t as TensorValue): return .object(t.tensor)
    case .host(let t as PartitionTableValue): return .object(t.table)
    case .host(let t as TechniqueValue): return .object(t.technique)
    default: return .object(ForeignValue(typeName: v.typeName))
    }
  }

  /// A technique argument or field as a language value.
  static func value(_ a: TechniqueArgument) -> Value {
    switch a {
    case .none: return .none
    case .bool(let b): return .bool(b)
    case .int(let i): return .int(i)
    case .float(let x): return .float(x)
    case .string(let s): return .string(s)
    case .list(let items): return .list(items.map(value))
    case .object(let m as LlamaModel): return .host(LanguageModelValue(m, path: m.ggufPath ?? "", loadSeconds: 0))
    case .object(let t as PartitionTable): return .host(PartitionTableValue(t, mode: .simulate))
    case .object(let m as Module): return .host(ModuleValue(m))
    case .object(let t as any Technique): return .host(TechniqueValue(t))
    case .object: return .none
    }
  }

  /// Any engine error as the language's, with its message (they already name the technique and parameter).
  static func error(_ error: Error) -> LatheError {
    switch error {
    case let e as LatheError: return e
    case let e as TechniqueError: return LatheError(e.message)
    case let e as TensorError: return LatheError(e.description)
    case let e as SeedLMError: return LatheError(e.description)
    case let e as RunaheadError: return LatheError(e.description)
    case let e as ParallelError: return LatheError(e.description.replacingOccurrences(of: "parallel prefill: ", with: ""))
    default: return LatheError("\(error)")
    }
  }

  /// nil for "all", else the list's items converted.
  static func names<T>(_ c: NativeCall, _ i: Int, _ what: String, _ convert: (Value) throws -> T) throws -> [T]? {
    switch c[i] {
    case .string("all"): return nil
    case .list(let items): return try items.map(convert)
    default: throw LatheError("compress: \(what) must be \"all\" or a list, got \(c[i].typeName)", kind: .type)
    }
  }
}

/// A table of rows with named columns: prints aligned, indexes by row (a record), `t.rows`, `t.columns`, and a
/// column by name (`t.perplexity` is that column's list).
public final class TableValue: HostObject, IterableHostObject {
  public let columns: [String]
  public let rows: [[Value]]
  init(columns: [String], rows: [[Value]]) { self.columns = columns; self.rows = rows }
  public var typeName: String { "table" }
  func record(_ i: Int) -> Value { .record(Record(zip(columns, rows[i]).map { ($0, $1) })) }
  public var description: String {
    func cell(_ v: Value) -> String {
      if case .float(let x) = v { return abs(x) >= 1e5 || (abs(x) < 1e-3 && x != 0) ? String(format: "%.3g", x) : String(format: "%.4f", x) }
      return v.description
    }
    // A long table shows its first and last rows, as numpy shows a long array.
    let (head, tail) = rows.count > 40 ? (15, 5) : (rows.count, 0)
    let shown = Array(rows.prefix(head)) + Array(rows.suffix(tail))
    let text = [columns] + shown.map { $0.map(cell) }
    let widths = columns.indices.map { i in text.map { $0[i].count }.max() ?? 0 }
    var lines = text.map { line in
      line.enumerated().map { i, s in i == 0 ? s.padding(toLength: widths[i], withPad: " ", startingAt: 0) : String(repeating: " ", count: widths[i] - s.count) + s }
        .joined(separator: "  ").replacingOccurrences(of: "\\s+$", with: "", options: .regularExpression)
    }
    if tail > 0 { lines.insert("… \(rows.count - head - tail) more rows …", at: head + 1) }
    return lines.joined(separator: "\n")
  }
  public var memberNames: [String] { ["rows", "columns", "count"] + columns.filter { $0 != "count" } }
  public func member(_ name: String) throws -> Value? {
    if name == "rows" { return .list(rows.indices.map(record)) }
    if name == "count" && !columns.contains("count") { return .int(rows.count) }     // len(t) too
    if name == "columns" { return .list(columns.map { .string($0) }) }
    if let i = columns.firstIndex(of: name) { return .list(rows.map { $0[i] }) }
    return nil
  }
  public func index(_ items: [IndexValue]) throws -> Value {
    if items.count == 1, case .slice(let a, let b, let c) = items[0] {
      // A slice of rows is a table: `m.tensors[0:4]`.
      let picked = try Value.list(rows.indices.map { .int($0) }).index([.slice(a, b, c)])
      guard case .list(let indices) = picked else { return Value.none }
      return .host(TableValue(columns: columns, rows: indices.compactMap { if case .int(let i) = $0 { return rows[i] }; return nil }))
    }
    guard items.count == 1, case .single(let v) = items[0], case .int(let i) = v, (-rows.count..<rows.count).contains(i) else {
      throw LatheError("table index must be a row number in 0..<\(rows.count), or a slice of rows")
    }
    return record(i < 0 ? rows.count + i : i)
  }
  public func elements() throws -> [Value] { rows.indices.map(record) }
}
