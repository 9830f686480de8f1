// Builtin rows for language models that train: llama(...) configurations, trainable(m) and runnable(t) between the
// inference and autograd forms, train(m, text, ..., recipe(steps:, seq:, ...)) on text, and freeze(t, layers:).

import Foundation
import LatheData
import LatheLang
import LatheModels
import LatheNN
import LatheTechniques
import LatheTensor

enum TrainingBuiltins {
  static func register(into r: BuiltinRegistry) {
    r.add("llama", [ParameterSpec("layers"), ParameterSpec("dim"), ParameterSpec("heads"), ParameterSpec("kvHeads", default: Value.none),
                    ParameterSpec("ffn", default: Value.none), ParameterSpec("act", default: .string("silu")),
                    ParameterSpec("tokenizer", default: Value.none), ParameterSpec("headDim", default: Value.none),
                    ParameterSpec("context", default: .int(2048)), ParameterSpec("ropeBase", default: .float(10_000)),
                    ParameterSpec("tied", default: .bool(true)), ParameterSpec("rope", default: .string("adjacent"))],
          doc: "A Llama-family decoder configuration for trainable(...): layers, width, query and key/value heads, FFN width (default 8/3·dim rounded to 64), activation (silu, relu, gelu), and the tokenizer (so the vocabulary) of a loaded model.",
          example: "llama(layers: 4, dim: 128, heads: 4, kvHeads: 2, tokenizer: load(\"smollm2\"))") { c in
      let layers = try c.int(0), dim = try c.int(1), heads = try c.int(2)
      let kvHeads = c.isNone(3) ? heads : try c.int(3)
      guard layers >= 1, layers <= 1024, dim >= 2, dim <= 65_536, heads >= 1, kvHeads >= 1, heads % kvHeads == 0 else {
        throw LatheError("llama: needs layers in 1...1024, dim in 2...65536, heads a positive multiple of kvHeads (got \(layers), \(dim), \(heads)/\(kvHeads))")
      }
      let headDim = c.isNone(7) ? dim / heads : try c.int(7)
      guard headDim >= 2, headDim % 2 == 0, c.isNone(7) ? dim % heads == 0 : true else {
        throw LatheError("llama: the head dimension (dim / heads = \(dim) / \(heads), or headDim:) must be an even whole number")
      }
      let ffn = c.isNone(4) ? max(64, (dim * 8 / 3 + 63) / 64 * 64) : try c.int(4)
      _ = try activation(try c.string(5), "llama")
      let rope = try c.string(11)
      guard rope == "adjacent" || rope == "halves" else { throw LatheError("llama: rope must be \"adjacent\" or \"halves\", got \(Value.quote(rope))") }
      var fields: [(name: String, value: Value)] = [("architecture", .string("llama")), ("layers", .int(layers)), ("dim", .int(dim)),
                                                     ("heads", .int(heads)), ("kvHeads", .int(kvHeads)), ("ffn", .int(ffn)),
                                                     ("act", c[5]), ("headDim", .int(headDim)), ("context", c[8]), ("ropeBase", c[9]),
                                                     ("tied", c[10]), ("rope", c[11])]
      if !c.isNone(6) {
        let m = try ModelBuiltins.model(c, 6, "llama")
        guard m.model.tokenizer != nil else { throw LatheError("llama: the tokenizer model has no tokenizer") }
        fields.append(("tokenizer", c[6]))
      }
      _ = try config(Record(fields), "llama")
      return .record(Record(fields))
    }
    r.add("trainable", [ParameterSpec("m"), ParameterSpec("seed", default: .int(0))],
          doc: "The decoder with autograd, from a loaded model (its weights dequantised to f32) or, fresh and seeded, from a llama configuration. train, freeze, params and forward take it; generate, perplexity and savegguf run it through runnable.",
          example: "let t = trainable(load(\"smollm2\"))") { c in
      if case .record(let r) = c[0] {
        let (cfg, activation, tokenizer) = try config(r, "trainable")
        let decoder = try TrainableDecoder(config: cfg, activations: Array(repeating: activation, count: cfg.layerCount),
                                           seed: UInt64(bitPattern: Int64(try c.int(1))), tokenizer: tokenizer?.model.tokenizer, name: "llama")
        if let tokenizer { decoder.ggufMetadata = tokenizer.model.ggufMetadata.filter { $0.key.hasPrefix("tokenizer.") } }
        return .host(ModuleValue(decoder))
      }
      if case .host(let h) = c[0], let m = h as? ModuleValue, m.module is TrainableDecoder { return c[0] }
      return .host(ModuleValue(try TrainableDecoder(model: try ModelBuiltins.model(c, 0, "trainable").model)))
    }
    r.add("runnable", [ParameterSpec("t")],
          doc: "The llm value of a trainable decoder, running on the inference kernels (generate, prefill, perplexity, compress); its weights are an f32 copy.",
          example: "runnable(trainable(load(\"smollm2\")))") { c in
      .host(try ModelBuiltins.model(c, 0, "runnable"))
    }
  }

  static func activation(_ name: String, _ op: String) throws -> FFNActivation {
    guard let a = FFNActivation(rawValue: name) else { throw LatheError("\(op): act must be silu, relu or gelu, got \(Value.quote(name))") }
    return a
  }

  /// The LlamaConfig of a llama(...) record, its activation, and the model whose tokenizer it uses.
  static func config(_ r: Record, _ op: String) throws -> (LlamaConfig, FFNActivation, LanguageModelValue?) {
    guard case .string("llama")? = r["architecture"] else { throw LatheError("\(op): needs a loaded model or a llama(...) configuration", kind: .type) }
    func int(_ key: String) throws -> Int {
      guard case .int(let v)? = r[key] else { throw LatheError("\(op): the configuration's \(key) must be an int", kind: .type) }
      return v
    }
    var tokenizer: LanguageModelValue? = nil
    if case .host(let h)? = r["tokenizer"], let m = h as? LanguageModelValue { tokenizer = m }
    let vocab = tokenizer?.model.config.vocabularySize ?? 256
    let layers = try int("layers")
    let tied: Bool
    if case .bool(let b)? = r["tied"] { tied = b } else { tied = true }
    let base = r["ropeBase"]?.asDouble ?? 10_000
    var cfg = try LlamaConfig(vocabularySize: vocab, dimension: try int("dim"), contextLength: try int("context"),
                              headCounts: Array(repeating: try int("heads"), count: layers),
                              kvHeadCounts: Array(repeating: try int("kvHeads"), count: layers),
                              ffnWidths: Array(repeating: try int("ffn"), count: layers), headDimension: try int("headDim"),
                              ropeBase: base, rmsEpsilon: 1e-5, tiedEmbeddings: tied)
    if case .string("halves")? = r["rope"] { cfg.ropeStyle = .halves }
    let act: FFNActivation
    if case .string(let name)? = r["act"] { act = try activation(name, op) } else { act = .silu }
    return (cfg, act, tokenizer)
  }

  /// The tokens of the text a train or perplexity call gives (a string).
  static func tokens(_ text: String, _ tokenizer: BPETokenizer?, _ op: String) throws -> [Int] {
    guard let tokenizer else { throw LatheError("\(op): the model has no tokenizer; build it with llama(..., tokenizer: load(\"smollm2\"))") }
    return tokenizer.encode(text, parseSpecial: false, addBOS: false)
  }

  /// train(base, text, kvp, recipe): trains kvp's aux and maps in place through the frozen base.
  static func trainKVPredictor(_ c: NativeCall, _ kvp: KVPredict, text: String, recipe: Recipe, recipeValue: Value) throws -> Value {
    guard case .host(let h as LanguageModelValue) = c[0] else {
      throw LatheError("train: kvpredict trains against a base language model from load(...), got \(c[0].typeName)", kind: .type)
    }
    guard c.isNone(4) else { throw LatheError("train: heldOut: is not taken with kvpredict; score with perplexity(base, text, technique: kvp, prompt: n)") }
    let ids = try tokens(text, h.model.tokenizer, "train")
    let total = recipe.steps ?? max(1, recipe.epochs * LanguageModelTrainer.windowStarts(tokenCount: ids.count, sequence: recipe.sequence).count / max(1, recipe.batch))
    let bar = Progress(c.interpreter, total: total, label: "train")
    var metrics: [(key: String, step: Int, value: Double)] = []
    var peak = 0
    var lossB: [Value] = [], lossA: [Value] = [], lossC: [Value] = []
    let record: TrainRecord
    do {
      record = try kvp.train(h.model, tokens: ids, recipe: recipe) { s, terms in
        metrics += [("loss", s.step, Double(s.loss)), ("lossBase", s.step, Double(terms.base)), ("lossAux", s.step, Double(terms.aux)),
                    ("lossConsistency", s.step, Double(terms.consistency)), ("tokensPerSecond", s.step, s.tokensPerSecond),
                    ("lr", s.step, Double(s.learningRate))]
        lossB.append(.float(Double(terms.base))); lossA.append(.float(Double(terms.aux))); lossC.append(.float(Double(terms.consistency)))
        if s.peakResidentBytes > 0 { metrics.append(("peakRSS", s.step, Double(s.peakResidentBytes))); peak = max(peak, s.peakResidentBytes) }
        try bar.advance()
      }
    } catch let e as LatheError { throw e } catch let e as TensorError { throw LatheError("train: \(e.description)") } catch {
      throw TechniqueBuiltins.error(error)
    }
    bar.finish()
    c.interpreter.pendingMetrics += metrics
    c.interpreter.pendingParams += [("recipe", recipeValue.repr), ("method", kvp.description)]
    return .record(Record([("loss", .list(record.losses.map { .float(Double($0)) })), ("lossBase", .list(lossB)), ("lossAux", .list(lossA)),
                           ("lossConsistency", .list(lossC)), ("steps", .int(record.steps)), ("seconds", .float(record.seconds)),
                           ("tokens", .int(record.examples)), ("tokensPerSecond", .float(record.examplesPerSecond)), ("peakRSS", .int(peak)),
                           ("finalLoss", .float(Double(record.losses.last ?? .nan)))]))
  }

  /// The prompt-and-answer examples of a list of pairs: records with `message` and `sql` (sqlpairs(...)), or `prompt`
  /// and `answer`, through the model's chat template.
  static func answerExamples(_ v: Value, _ tokenizer: BPETokenizer, _ op: String) throws -> [AnswerExample] {
    guard case .list(let items) = v, !items.isEmpty else {
      throw LatheError("\(op): needs a list of pairs (records {message, sql} from sqlpairs(...), or {prompt, answer}), got \(v.typeName)", kind: .type)
    }
    return try items.enumerated().map { i, item in
      guard case .record(let r) = item else { throw LatheError("\(op): pair \(i) is a \(item.typeName), not a record", kind: .type) }
      switch (r["message"] ?? r["prompt"], r["sql"] ?? r["answer"]) {
      case (.string(let message)?, .string(let answer)?): return AnswerExample(tokenizer: tokenizer, message: message, answer: answer)
      default: throw LatheError("\(op): pair \(i) needs text fields message (or prompt) and sql (or answer)", kind: .type)
      }
    }
  }

  /// train(m, pairs, ss, recipe): trains ss's streams, pruner and LoRA adapters on the top layers; m is read only, the
  /// record's `model` is the tuned model.
  static func trainSpecStream(_ c: NativeCall, _ ss: SpecStream, recipe: Recipe, recipeValue: Value) throws -> Value {
    guard case .host(let h as LanguageModelValue) = c[0] else {
      throw LatheError("train: specstream trains a language model from load(...), got \(c[0].typeName)", kind: .type)
    }
    guard c.isNone(4) else { throw LatheError("train: heldOut: is not taken with specstream; score held-out pairs with generate") }
    guard let tokenizer = h.model.tokenizer else { throw LatheError("train: the model has no tokenizer") }
    let examples = try answerExamples(c[1], tokenizer, "train")
    let total = recipe.steps ?? max(1, recipe.epochs * examples.count / max(1, recipe.batch))
    let cacheBar = Progress(c.interpreter, total: examples.count, label: "cache")
    var bar: LatheLang.Progress? = nil
    var metrics: [(key: String, step: Int, value: Double)] = []
    var next: [Value] = [], streams: [Value] = [], prune: [Value] = []
    let result: (model: LlamaModel, record: TrainRecord)
    let cacheStarted = DispatchTime.now().uptimeNanoseconds
    var cacheSeconds = 0.0
    do {
      result = try ss.train(h.model, examples: examples, recipe: recipe, onCached: { try cacheBar.advance() }) { s, terms in
        if bar == nil {
          cacheBar.finish()
          cacheSeconds = Double(DispatchTime.now().uptimeNanoseconds - cacheStarted) / 1e9
          bar = Progress(c.interpreter, total: total, label: "train")
        }
        metrics += [("loss", s.step, Double(s.loss)), ("lossNext", s.step, Double(terms.next)), ("tokensPerSecond", s.step, s.tokensPerSecond),
                    ("lr", s.step, Double(s.learningRate))]
        for (j, v) in terms.streams.enumerated() where v.isFinite { metrics.append(("lossStream\(j + 1)", s.step, Double(v))) }
        next.append(.float(Double(terms.next)))
        streams.append(.list(terms.streams.map { .float(Double($0)) }))
        prune.append(.float(Double(terms.prune)))
        try bar?.advance()
      }
    } catch let e as LatheError { throw e } catch let e as TensorError { throw LatheError("train: \(e.description)") } catch {
      throw TechniqueBuiltins.error(error)
    }
    bar?.finish()
    c.interpreter.pendingMetrics += metrics
    c.interpreter.pendingParams += [("recipe", recipeValue.repr), ("method", ss.description)]
    let tuned = LanguageModelValue(result.model, path: h.path, loadSeconds: 0)
    let record = result.record
    return .record(Record([("model", .host(tuned)), ("loss", .list(record.losses.map { .float(Double($0)) })), ("lossNext", .list(next)),
                           ("lossStreams", .list(streams)), ("lossPrune", .list(prune)), ("steps", .int(record.steps)),
                           ("examples", .int(examples.count)), ("cacheSeconds", .float(cacheSeconds)), ("seconds", .float(record.seconds)),
                           ("finalLoss", .float(Double(record.losses.last ?? .nan)))]))
  }

  /// train(m, pairs, medusa(...), recipe): trains the heads on m's hidden states (m read only).
  static func trainMedusa(_ c: NativeCall, _ medusa: Medusa, recipe: Recipe, recipeValue: Value) throws -> Value {
    guard case .host(let h as LanguageModelValue) = c[0] else {
      throw LatheError("train: medusa trains heads for a language model from load(...), got \(c[0].typeName)", kind: .type)
    }
    guard c.isNone(4) else { throw LatheError("train: heldOut: is not taken with medusa; score held-out pairs with generate") }
    guard let tokenizer = h.model.tokenizer else { throw LatheError("train: the model has no tokenizer") }
    let examples = try answerExamples(c[1], tokenizer, "train")
    let cacheBar = Progress(c.interpreter, total: examples.count, label: "cache")
    var bar: LatheLang.Progress? = nil
    var metrics: [(key: String, step: Int, value: Double)] = []
    var heads: [Value] = []
    let record: TrainRecord
    let cacheStarted = DispatchTime.now().uptimeNanoseconds
    var cacheSeconds = 0.0
    do {
      record = try medusa.train(h.model, examples: examples, recipe: recipe, onCached: { try cacheBar.advance() }) { s, terms in
        if bar == nil {
          cacheBar.finish()
          cacheSeconds = Double(DispatchTime.now().uptimeNanoseconds - cacheStarted) / 1e9
          bar = Progress(c.interpreter, total: s.total, label: "train")
        }
        metrics += [("loss", s.step, Double(s.loss)), ("lr", s.step, Double(s.learningRate))]
        for (k, v) in terms.enumerated() where v.isFinite { metrics.append(("lossHead\(k + 1)", s.step, Double(v))) }
        heads.append(.list(terms.map { .float(Double($0)) }))
        try bar?.advance()
      }
    } catch let e as LatheError { throw e } catch let e as TensorError { throw LatheError("train: \(e.description)") } catch {
      throw TechniqueBuiltins.error(error)
    }
    bar?.finish()
    c.interpreter.pendingMetrics += metrics
    c.interpreter.pendingParams += [("recipe", recipeValue.repr), ("method", medusa.description)]
    return .record(Record([("loss", .list(record.losses.map { .float(Double($0)) })), ("lossHeads", .list(heads)), ("steps", .int(record.steps)),
                           ("examples", .int(examples.count)), ("cacheSeconds", .float(cacheSeconds)), ("seconds", .float(record.seconds)),
                           ("finalLoss", .float(Double(record.losses.last ?? .nan)))]))
  }

  /// params(m, t): what technique t adds to language model m.
  static func extraParameters(_ c: NativeCall) throws -> Int {
    let m = try ModelBuiltins.model(c, 0, "params").model
    guard case .host(let t as TechniqueValue) = c[1] else { throw LatheError("params: 'technique' must be a technique, got \(c[1].typeName)", kind: .type) }
    switch t.technique {
    case let ss as SpecStream: return ss.extraParameters(dimension: m.config.dimension)
    case let medusa as Medusa: return medusa.extraParameters(dimension: m.config.dimension, vocabulary: m.config.vocabularySize)
    default: throw LatheError("params: \(t.technique.name) adds no parameters of its own to count; params(m, t) takes specstream or medusa")
    }
  }

  /// train(m, text, methods..., recipe): m an llm value (trained in place: converted, trained, written back) or a
  /// trainable decoder.
  static func trainLanguageModel(_ c: NativeCall, text: String, methods: [TrainingMethod], recipe: Recipe, recipeValue: Value) throws -> Value {
    let decoder: TrainableDecoder, written: LanguageModelValue?
    switch c[0] {
    case .host(let h as ModuleValue):
      guard let d = h.module as? TrainableDecoder else {
        throw LatheError("train: text trains a language model (load(...) or trainable(...)), not \(h.module.summary)", kind: .type)
      }
      decoder = d; written = nil
      h.trainedWith += methods.compactMap { $0 as? any TrainingTechnique }
    case .host(let h as LanguageModelValue):
      decoder = try TrainableDecoder(model: h.model); written = h
    default:
      throw LatheError("train: needs a model, got \(c[0].typeName)", kind: .type)
    }
    let ids = try tokens(text, decoder.tokenizer, "train")
    var heldOut: [Int]? = nil
    if !c.isNone(4) {
      guard case .string(let held) = c[4] else { throw LatheError("train: heldOut must be text, got \(c[4].typeName)", kind: .type) }
      heldOut = try tokens(held, decoder.tokenizer, "train")
    }
    let every = try c.int(5)
    guard every >= 0 else { throw LatheError("train: every must be at least 0, got \(every)") }
    var evaluations: [Value] = []
    let total = recipe.steps ?? max(1, recipe.epochs * LanguageModelTrainer.windowStarts(tokenCount: ids.count, sequence: recipe.sequence).count
                                      / max(1, recipe.batch * recipe.accumulate))
    let bar = Progress(c.interpreter, total: total, label: "train")
    var metrics: [(key: String, step: Int, value: Double)] = []
    var peak = 0
    let record = try LanguageModelTrainer.train(decoder, tokens: ids, recipe: recipe, methods: methods, heldOut: heldOut, every: every,
                                                onEvaluate: { step, nll in
      evaluations.append(.record(Record([("step", .int(step)), ("loss", .float(nll)), ("perplexity", .float(Foundation.exp(nll)))])))
      metrics.append(("heldOutPerplexity", step, Foundation.exp(nll)))
    }) { s in
      metrics += [("loss", s.step, Double(s.loss)), ("tokensPerSecond", s.step, s.tokensPerSecond), ("lr", s.step, Double(s.learningRate))]
      if s.peakResidentBytes > 0 { metrics.append(("peakRSS", s.step, Double(s.peakResidentBytes))); peak = max(peak, s.peakResidentBytes) }
      try bar.advance()
    }
    bar.finish()
    if let written { try decoder.write(into: written.model) }
    c.interpreter.pendingMetrics += metrics
    c.interpreter.pendingParams += [("recipe", recipeValue.repr)] + methods.compactMap { ($0 as? any Technique).map { ("method", $0.description) } }
    return .record(Record([("loss", .list(record.losses.map { .float(Double($0)) })), ("steps", .int(record.steps)),
                           ("seconds", .float(record.seconds)), ("tokens", .int(record.examples)),
                           ("tokensPerSecond", .float(record.examplesPerSecond)), ("peakRSS", .int(peak)),
                           ("finalLoss", .float(Double(record.losses.last ?? .nan))), ("heldOut", .list(evaluations))]))
  }
}
