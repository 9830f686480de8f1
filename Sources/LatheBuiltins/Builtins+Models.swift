// Language models as values: load("smollm2"), load("path.gguf") or load("checkpoint-directory") (Hugging Face),
// tokenize/detokenize, logits, generate and chat (streamed to the output as they are produced), prefill/decode with
// a KV-cache value, perplexity with a progress bar.

import Foundation
import LatheData
import LatheLang
import LatheModels
import LatheParallel
import LatheTechniques
import LatheTensor

/// A loaded language model.
public final class LanguageModelValue: HostObject {
  public let model: LlamaModel
  public let path: String
  public let loadSeconds: Double
  /// What compress did, for a compressed model.
  public var compression: CompressionReport?
  public init(_ model: LlamaModel, path: String, loadSeconds: Double, compression: CompressionReport? = nil) {
    self.model = model; self.path = path; self.loadSeconds = loadSeconds; self.compression = compression
  }

  public var typeName: String { "llm" }
  public var description: String {
    let c = model.config
    let dtypes = model.dtypeCounts.map { "\($0.0) \($0.1 >= 100_000 ? String(format: "%.1fM", Double($0.1) / 1e6) : String(format: "%.1fK", Double($0.1) / 1e3))" }
      .joined(separator: ", ")
    return """
      \(model.name) (\(c.architecture)): \(String(format: "%.1f", Double(model.parameterCount) / 1e6))M parameters, \(Memory.describe(model.byteCount))
        \(c.layerCount) layers, d \(c.dimension), heads \(Self.span(c.headCounts))/\(Self.span(c.kvHeadCounts)) of \(c.headDimension), ffn \(Self.span(c.ffnWidths)), vocab \(c.vocabularySize), context \(c.contextLength)
        rope base \(Self.number(c.ropeBase)), rms eps \(String(format: "%g", Double(c.rmsEpsilon))), \(c.tiedEmbeddings ? "tied embeddings" : "separate output")
        dtypes: \(dtypes)
      """
  }
  /// `llm SmolLM2 134.5M params`, and `, compressed: rtn(bits: 4)` for a compressed one (whose name compress has
  /// already suffixed with " · " and the technique).
  public var summary: String {
    guard let compression else { return "llm \(model.name) \(Self.count(model.parameterCount)) params" }
    let name = model.name.components(separatedBy: " · ").first ?? model.name
    return "llm \(name) \(Self.count(model.parameterCount)) params, compressed: \(compression.technique)"
  }
  /// 134.5M, 9.0K, 640.
  static func count(_ n: Int) -> String {
    n >= 1_000_000 ? String(format: "%.1fM", Double(n) / 1e6) : n >= 1000 ? String(format: "%.1fK", Double(n) / 1e3) : String(n)
  }
  static func span(_ v: [Int]) -> String { Set(v).count == 1 ? "\(v[0])" : "\(v.min()!)–\(v.max()!)" }
  static func number(_ x: Double) -> String { x == x.rounded() && abs(x) < 1e15 ? String(Int(x)) : "\(x)" }

  public var memberNames: [String] { ["name", "architecture", "layers", "dim", "heads", "kvHeads", "headDim", "ffn", "vocab", "context", "params", "bytes",
                                       "dtypes", "threads", "path", "loadSeconds", "tensors", "bitsPerWeightLinears", "bitsPerWeightFile"] }
  public func member(_ name: String) throws -> Value? {
    let c = model.config
    switch name {
    case "name": return .string(model.name)
    case "architecture": return .string(c.architecture)
    case "layers": return .int(c.layerCount)
    case "dim": return .int(c.dimension)
    case "heads": return .list(c.headCounts.map { .int($0) })
    case "kvHeads", "kvheads": return .list(c.kvHeadCounts.map { .int($0) })
    case "headDim", "headdim": return .int(c.headDimension)
    case "ffn": return .list(c.ffnWidths.map { .int($0) })
    case "vocab": return .int(c.vocabularySize)
    case "context": return .int(c.contextLength)
    case "params": return .int(model.parameterCount)
    case "bytes": return .int(model.byteCount)
    case "dtypes": return .record(Record(model.dtypeCounts.map { ($0.0, .int($0.1)) }))
    case "threads": return .int(model.threads)
    case "path": return .string(path)
    case "loadseconds", "loadSeconds": return .float(loadSeconds)
    case "tensors": return tensorTable
    case "bitsPerWeightLinears": return .float(model.linearBitsPerWeight)
    case "bitsPerWeightFile": return .float(model.fileBitsPerWeight)
    default: return nil
    }
  }

  /// A weight as a tensor in its stored dtype (q4_1 blocks stay blocks); a compressed matrix dequantised to f32.
  static func stored(_ w: LinearWeight) throws -> Tensor {
    switch w {
    case .tensor(let t): return t
    case .compressed(let c): return try c.dequantized()
    }
  }

  /// `m.tensors`: name, shape, dtype (or technique) and bytes of every weight.
  var tensorTable: Value {
    .host(TableValue(columns: ["name", "shape", "dtype", "bytes"], rows: model.namedWeights.map { name, w in
      [.string(name), .list(w.shape.map { .int($0) }), .string(w.kind), .int(w.byteCount)]
    }))
  }

  /// `m["blk.0.ffn_down.weight"]`: the weight as a tensor in its stored dtype.
  public func index(_ items: [IndexValue]) throws -> Value {
    guard items.count == 1, case .single(.string(let name)) = items[0] else {
      throw LatheError("a language model is indexed by a tensor name, as in m[\"blk.0.ffn_down.weight\"] (m.tensors lists them)", kind: .type)
    }
    let weights = model.namedWeights
    guard let w = weights.first(where: { $0.name == name }) else {
      var message = "\(model.name) has no tensor \(Value.quote(name))"
      if let near = Spelling.nearest(name, in: weights.map(\.name)) { message += "; did you mean \(Value.quote(near))?" }
      throw LatheError(message + " (m.tensors lists them)")
    }
    return .host(TensorValue(try LanguageModelValue.stored(w.weight)))
  }

  /// The model as a GGUF image with compressed matrices kept packed (bit-exact), and its compression report.
  public func serialized() throws -> (kind: String, bytes: [UInt8])? {
    ("model", try LanguageModelValue.writer(model, report: compression).bytes())
  }

  static let reportKey = CompressionReport.metadataKey

  /// `model`'s GGUF writer, compressed matrices packed, with the report as JSON metadata.
  static func writer(_ model: LlamaModel, report: CompressionReport?, type: GGMLType? = nil, packed: Bool = true) throws -> GGUFWriter {
    var w = try model.ggufWriter(type: type, packed: packed)
    w.removeValue(forKey: reportKey)
    if packed, let report { w.set(reportKey, .string(report.json())) }
    return w
  }

  /// A value for a model read back from a file or a notebook: the report comes from its metadata.
  static func restored(_ model: LlamaModel, path: String, seconds: Double) -> LanguageModelValue {
    let json = model.ggufMetadata.first { $0.0 == reportKey }?.1.string
    let report = json.flatMap(CompressionReport.init(json:))
    return LanguageModelValue(model, path: path, loadSeconds: seconds, compression: report)
  }
}

/// A prefilled KV cache: the model's state after a prompt, which decode continues.
public final class KVCacheValue: HostObject {
  let model: LlamaModel
  let cache: KVCache
  /// Logits after the last token in the cache, or nil when `pending` still has to be run.
  var logits: [Float]?
  var pending: Int?
  /// Every token so far (the prompt, then what decode produced), for strategies that need the text (speculative).
  var ids: [Int]
  public let firstToken: Int, firstText: String, prefillSeconds: Double, promptTokens: Int
  /// The processes' timelines and counters of a parallel prefill, and the strategy's description.
  public let parallel: ParallelPrefill?, strategy: String?
  /// FLOPs of the prefill (the paper's accounting: 2 · the layers' matrix parameters per token, the head once) and
  /// of a plain prefill of the prompt by this model; tokens the model itself ran.
  var flops: Int, baseFlops: Int, baseTokens: Int
  /// A KV prediction's prefill: its timings, and its aux's calls since the prefill began (counted live).
  var predicted: PredictedPrefill?
  var auxCalls: (() -> Int)?
  init(model: LlamaModel, cache: KVCache, logits: [Float], firstToken: Int, firstText: String, prefillSeconds: Double, promptTokens: Int,
       parallel: ParallelPrefill? = nil, strategy: String? = nil, ids: [Int] = []) {
    self.ids = ids
    self.model = model; self.cache = cache; self.logits = logits; self.firstToken = firstToken; self.firstText = firstText
    self.prefillSeconds = prefillSeconds; self.promptTokens = promptTokens; self.parallel = parallel; self.strategy = strategy
    baseFlops = KVPredict.prefillFlops(model, promptTokens: promptTokens)
    flops = baseFlops
    baseTokens = promptTokens
  }
  public var typeName: String { "kvcache" }
  public var description: String {
    let line = "kv cache: \(cache.count) positions of \(cache.capacity) (\(Memory.describe(cache.byteCount))), first token \(firstToken) \(Value.quote(firstText)), time to first token \(String(format: "%.3f", prefillSeconds)) s"
    if let p = predicted, let strategy {
      return line + "\n  " + strategy + String(format: ": aux %.3f s on %d tokens, maps %.3f s, base %.3f s on %d token; FLOPs %.3g (%.2fx fewer than the base's %.3g)",
                                                p.auxSeconds, p.auxTokens, p.mapSeconds, p.baseSeconds, p.baseTokens, Double(flops),
                                                Double(baseFlops) / Double(Swift.max(1, flops)), Double(baseFlops))
    }
    guard let parallel, let strategy else { return line }
    return line + "\n  " + ParallelBuiltins.summary(parallel, strategy: strategy)
  }
  public var memberNames: [String] {
    ["length", "capacity", "bytes", "first", "firstText", "ttft", "promptTokens", "flops", "baseFlops", "baseTokens"]
      + (predicted == nil ? [] : ["auxCalls", "auxSeconds", "mapSeconds", "baseSeconds"]) + ParallelBuiltins.memberNames
  }
  public func member(_ name: String) throws -> Value? {
    switch name {
    case "flops": return .int(flops)
    case "baseFlops": return .int(baseFlops)
    case "baseTokens": return .int(baseTokens)
    case "auxCalls" where predicted != nil: return .int(auxCalls?() ?? 0)
    case "auxSeconds" where predicted != nil: return .float(predicted?.auxSeconds ?? 0)
    case "mapSeconds" where predicted != nil: return .float(predicted?.mapSeconds ?? 0)
    case "baseSeconds" where predicted != nil: return .float(predicted?.baseSeconds ?? 0)
    case "length": return .int(cache.count + (pending == nil ? 0 : 1))
    case "capacity": return .int(cache.capacity)
    case "bytes": return .int(cache.byteCount)
    case "first": return .int(firstToken)
    case "firstText", "firsttext": return .string(firstText)
    case "ttft": return .float(prefillSeconds)
    case "promptTokens", "prompttokens": return .int(promptTokens)
    default: return ParallelBuiltins.member(name, of: self)
    }
  }
}

/// What generate, chat and decode return: the text (what str() and print give), its tokens and timings.
public final class GenerationValue: HostObject {
  public let result: Generation
  /// A decoding strategy's counters (baseCalls, acceptance, tokensPerBaseCall, …).
  let counters: [(String, TechniqueArgument)]
  init(_ result: Generation, counters: [(String, TechniqueArgument)] = [], streamed: Bool = false) {
    self.result = result; self.counters = counters; self.streamed = streamed
  }
  public var typeName: String { "generation" }
  public var description: String { result.text }
  public var summary: String { "generation of \(result.tokens.count) tokens" }
  /// Set when the text was streamed to the output as it was made: the REPL does not print it again.
  let streamed: Bool
  public var echoesAsValue: Bool { !streamed }
  public var memberNames: [String] {
    ["text", "tokens", "count", "stop", "promptTokens", "ttft", "decodeSeconds", "tokensPerSecond"] + counters.map(\.0)
  }
  public func member(_ name: String) throws -> Value? {
    if let c = counters.first(where: { $0.0 == name }) { return TechniqueBuiltins.value(c.1) }
    switch name {
    case "text": return .string(result.text)
    case "tokens": return .list(result.tokens.map { .int($0) })
    case "count": return .int(result.tokens.count)
    case "stop": return .string(result.stopReason)
    case "promptTokens", "prompttokens": return .int(result.promptTokens)
    case "ttft": return .float(result.prefillSeconds)
    case "decodeSeconds", "decodeseconds": return .float(result.decodeSeconds)
    case "tokensPerSecond", "tokenspersecond": return .float(result.decodeTokensPerSecond)
    default: return nil
    }
  }
}

enum ModelBuiltins {
  /// Model names `load` knows, and the file each one is in (under models/, beside the package or the current directory).
  static let known: [String: String] = ["smollm2": "SmolLM2-135M-Instruct.Q4_1.gguf"]

  static func register(into r: BuiltinRegistry) {
    r.addHostDecoder(kind: "model") { bytes in
      let started = DispatchTime.now().uptimeNanoseconds
      let model = try LlamaModel(gguf: try GGUFFile(bytes: bytes, name: "<notebook>"), formats: Techniques.formats)
      return .host(LanguageModelValue.restored(model, path: "<notebook>", seconds: Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9))
    }
    let loadArtifact = r.lookup("load")
    r.add("load", [ParameterSpec("name")],
          doc: "A language model by name (\"smollm2\"), GGUF path (\"models/x.gguf\") or Hugging Face checkpoint directory (config.json + *.safetensors); otherwise a value stored with save(name, value).",
          example: "let m = load(\"smollm2\")") { c in
      let name = try c.string(0)
      if let path = try modelPath(name) {
        let started = DispatchTime.now().uptimeNanoseconds
        let model = isHuggingFaceDirectory(path) ? try LlamaModel(huggingFaceDirectory: path) : try LlamaModel(path: path, formats: Techniques.formats)
        let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
        c.interpreter.pendingInputs.append((role: "model", path: path))
        return .host(LanguageModelValue.restored(model, path: path, seconds: seconds))
      }
      // Not a model: a saved value, unless the name is a likely misspelling of a model or of a saved value.
      let saved = ((try? c.interpreter.artifactStore?.savedArtifacts()) ?? nil)?.map(\.name) ?? []
      if !saved.contains(name), let near = Spelling.nearest(name, in: Array(known.keys) + saved) {
        throw LatheError("load: no model or saved value named \(Value.quote(name)); did you mean \(Value.quote(near))?")
      }
      guard let loadArtifact else { throw LatheError("load: no model or saved value named \(Value.quote(name))") }
      return try c.interpreter.call(.function(loadArtifact), [c[0]])
    }
    r.add("tokenize", [ParameterSpec("m"), ParameterSpec("text"), ParameterSpec("special", default: .bool(true))],
          doc: "Token ids of text under the model's tokenizer (special: whether <|im_start|>-style text becomes special tokens).",
          example: "tokenize(m, \"Hello world\")") { c in
      let t = try tokenizer(c, "tokenize")
      return .list(t.encode(try c.string(1), parseSpecial: try c.bool(2)).map { .int($0) })
    }
    r.add("detokenize", [ParameterSpec("m"), ParameterSpec("ids")], doc: "The text of a list of token ids.",
          example: "detokenize(m, [19556, 905])") { c in
      .string(try tokenizer(c, "detokenize").decode(try ids(c, 1, "detokenize")))
    }
    r.add("logits", [ParameterSpec("m"), ParameterSpec("text"), ParameterSpec("all", default: .bool(false))],
          doc: "Next-token logits after text as a tensor [vocab] (all: true gives [tokens, vocab]).",
          example: "argmax(logits(m, \"The capital of France is\"))") { c in
      let (value, ids) = try modelAndPrompt(c, "logits")
      let m = value.model
      let all = try c.bool(2)
      // Every position's logits: tokens × vocab floats, twice (the forward's array, then the tensor).
      if all { try Memory.check(2 * 4 * ids.count * m.config.vocabularySize, op: "logits(all: true)") }
      let out = try m.forward(ids, cache: try m.makeCache(capacity: ids.count), allLogits: all)
      return TensorBuiltins.wrap(try Tensor(out, shape: all ? [ids.count, m.config.vocabularySize] : [m.config.vocabularySize]))
    }
    r.add("activations", [ParameterSpec("m"), ParameterSpec("text"), ParameterSpec("layer", default: .int(0)),
                          ParameterSpec("at", default: .string("ffnHidden"))],
          doc: "A layer's activations on text (or token ids) as a tensor [tokens, width], at one point: \"attentionInput\" and "
            + "\"ffnInput\" (the normalised inputs, [T, d]), \"ffnHidden\" (act(gate)·up, the input of ffn_down, [T, ffn]) "
            + "or \"layerOutput\" (the residual stream after the layer).",
          example: "activations(m, \"The capital of France is\", layer: 0, at: \"ffnHidden\")") { c in
      let (value, ids) = try modelAndPrompt(c, "activations")
      let model = value.model
      let layer = try c.int(2), name = try c.string(3)
      guard (0..<model.config.layerCount).contains(layer) else {
        throw LatheError("activations: layer \(layer) is not one of 0..<\(model.config.layerCount)")
      }
      guard let point = ForwardHooks.Point(rawValue: name) else {
        throw LatheError("activations: at must be one of \(ForwardHooks.Point.allCases.map { Value.quote($0.rawValue) }.joined(separator: ", ")), got \(Value.quote(name))")
      }
      var captured: Tensor?
      var hooks = ForwardHooks(layers: Array(0...layer))
      hooks.observe = { a in
        guard a.layer == layer, a.point == point else { return }
        captured = try Tensor(Array(UnsafeBufferPointer(start: a.values, count: a.rows * a.width)), shape: [a.rows, a.width])
      }
      _ = try model.forward(ids, cache: try model.makeCache(capacity: ids.count), hooks: hooks)
      guard let captured else { throw LatheError("activations: the forward pass did not reach layer \(layer)") }
      return TensorBuiltins.wrap(captured)
    }
    let sampling = [ParameterSpec("tokens", default: .int(64)), ParameterSpec("temperature", default: .float(0)),
                    ParameterSpec("topK", default: .int(0)), ParameterSpec("topP", default: .float(1)),
                    ParameterSpec("seed", default: .int(0)), ParameterSpec("stop", default: Value.none),
                    ParameterSpec("stream", default: .bool(true))]
    r.add("generate", [ParameterSpec("m"), ParameterSpec("prompt"), ParameterSpec("techniques", variadic: true)] + sampling,
          doc: "Continues the prompt (text or token ids), streaming the text as it comes; greedy at temperature 0, else seeded sampling with topK/topP; stops at the end token or a stop string. Technique values after the prompt, at most one per role: a prefill strategy (runahead(...), tsp(...)) runs the prompt on worker processes first; a decoding strategy (speculative(...)) chooses the tokens, and its counters join the result.",
          example: "generate(m, \"Once upon a time\", tokens: 32, temperature: 0.8, seed: 1)") { c in
      let (value, ids) = try modelAndPrompt(c, "generate")
      var sampler = try makeSampler(c, from: 4)
      let tokens = try tokenCount(c, 3)
      let (prefillStrategy, decoding) = try strategies(c, 2, "generate", accepts: [.prefillStrategy, .decodingStrategy])
      let result: Generation
      var counters: [(String, TechniqueArgument)] = []
      if prefillStrategy == nil && decoding == nil {
        result = try value.model.generate(ids, maxTokens: tokens, sampler: &sampler, stop: try stops(c, 8), onToken: streamer(c, 9))
      } else {
        let kv = try prefill(value, ids, prefillStrategy, room: tokens, interpreter: c.interpreter, decoding: decoding)
        var r: Generation
        if let decoding {
          do {
            let d = try decoding.decode(value.model, context: ids, cache: kv.cache, logits: kv.logits, maxTokens: tokens, sampler: &sampler,
                                        stop: try stops(c, 8), onToken: streamer(c, 9))
            r = d.generation
            counters = d.counters
          } catch { throw TechniqueBuiltins.error(error) }
        } else {
          r = try value.model.decode(cache: kv.cache, logits: kv.logits ?? [], maxTokens: tokens, sampler: &sampler,
                                     stop: try stops(c, 8), onToken: streamer(c, 9))
        }
        r.promptTokens = ids.count
        r.prefillSeconds = kv.prefillSeconds
        result = r
        if let auxCalls = kv.auxCalls {
          counters += [("auxCalls", .int(auxCalls())), ("flops", .int(kv.flops)), ("baseFlops", .int(kv.baseFlops))]
        }
      }
      if try c.bool(9) { c.interpreter.output(.stdout, "\n") }
      return .host(GenerationValue(result, counters: counters, streamed: try c.bool(9)))
    }
    r.add("chat", [ParameterSpec("m"), ParameterSpec("message"), ParameterSpec("system", default: Value.none)] + sampling.map {
            $0.name == "tokens" ? ParameterSpec("tokens", default: .int(128)) : $0 },
          doc: "The model's reply to one user message, through its chat template (the template's default system message unless system: is given).",
          example: "chat(m, \"What is the capital of France?\")") { c in
      let value = try model(c, 0, "chat")
      let t = try tokenizer(c, "chat")
      var messages: [(role: String, content: String)] = []
      if !c.isNone(2) { messages.append((role: "system", content: try c.string(2))) }
      messages.append((role: "user", content: try c.string(1)))
      let ids = t.encode(t.chatPrompt(messages: messages), parseSpecial: true)
      var sampler = try makeSampler(c, from: 4)
      let result = try value.model.generate(ids, maxTokens: try tokenCount(c, 3), sampler: &sampler, stop: try stops(c, 8),
                                            onToken: streamer(c, 9))
      if try c.bool(9) { c.interpreter.output(.stdout, "\n") }
      return .host(GenerationValue(result, streamed: try c.bool(9)))
    }
    r.add("chatprompt", [ParameterSpec("m"), ParameterSpec("message"), ParameterSpec("system", default: Value.none)],
          doc: "The text chat(m, message) gives the model: the message through its chat template, the assistant's turn opened (generate parses its special tokens).",
          example: "generate(m, chatprompt(m, \"Say hi\"), tokens: 8)") { c in
      let t = try tokenizer(c, "chatprompt")
      var messages: [(role: String, content: String)] = []
      if !c.isNone(2) { messages.append((role: "system", content: try c.string(2))) }
      messages.append((role: "user", content: try c.string(1)))
      return .string(t.chatPrompt(messages: messages))
    }
    r.add("prefill", [ParameterSpec("m"), ParameterSpec("prompt"), ParameterSpec("technique", default: Value.none),
                      ParameterSpec("room", default: .int(256)), ParameterSpec("threads", default: Value.none)],
          doc: "Runs the prompt into a new KV cache (room: positions kept free for decoding; threads: compute threads of a serial prefill, default the model's); the cache value holds the first token and the time to first token. With runahead(...) or tsp(...) the prompt runs on worker processes, and the value also has chunks, perProc, bytesSent and attnMACs; with mode: \"simulate\" the cost model plays it out (the prompt may then be just a length) and the value has the counters but no cache.",
          example: "let kv = prefill(m, \"The capital of France is\")") { c in
      if !c.isNone(2) {
        let (strategy, _) = try strategies(c, 2, "prefill", accepts: [.prefillStrategy])
        guard let strategy else { throw LatheError("prefill: 'technique' must be a prefill strategy") }
        guard c.isNone(4) else { throw LatheError("prefill: threads is for a serial prefill (each worker process computes on one thread)") }
        if strategy.simulates {
          let value = try model(c, 0, "prefill")
          let length: Int
          if case .int(let n) = c[1] { length = n } else { length = try modelAndPrompt(c, "prefill").1.count }
          guard length <= KVRunahead.maximumSimulatedLength else {
            throw LatheError("prefill: a simulated prompt may have at most \(KVRunahead.maximumSimulatedLength) tokens, got \(length)")
          }
          guard length >= strategy.minimumPromptTokens else {
            throw LatheError("prefill: \(strategy.description) needs a prompt of at least \(strategy.minimumPromptTokens) tokens, got \(length)")
          }
          do {
            let interpreter = c.interpreter
            if case .simulated(let result, let costs) = try strategy.prefill(value.model, [Int](repeating: 0, count: length), room: 0,
                                                                             interrupt: { try interpreter.checkInterrupt() }),
               let runahead = strategy as? KVRunahead {
              return .host(SimulatedPrefillValue(result, strategy: runahead, config: value.model.config, costs: costs))
            }
          } catch { throw TechniqueBuiltins.error(error) }
          throw LatheError("prefill: \(strategy.description) gave no simulated prefill")
        }
      }
      let (value, ids) = try modelAndPrompt(c, "prefill")
      let room = try c.int(3)
      guard room >= 0 else { throw LatheError("prefill: room must be >= 0, got \(room)") }
      if !c.isNone(2) {
        let (strategy, _) = try strategies(c, 2, "prefill", accepts: [.prefillStrategy])
        return .host(try prefill(value, ids, strategy, room: room, interpreter: c.interpreter))
      }
      let threads = c.isNone(4) ? value.model.threads : try c.int(4)
      guard (1...256).contains(threads) else { throw LatheError("prefill: threads must be 1 to 256, got \(threads)") }
      let before = value.model.threads
      value.model.threads = threads
      defer { value.model.threads = before }
      let started = DispatchTime.now().uptimeNanoseconds
      let (cache, logits) = try value.model.prefill(ids, extra: room)
      let first = Sampler.argmax(logits)
      let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
      let text = (try? value.model.tokenizer?.decode([first])) ?? nil
      return .host(KVCacheValue(model: value.model, cache: cache, logits: logits, firstToken: first, firstText: text ?? "",
                                prefillSeconds: seconds, promptTokens: ids.count, ids: ids))
    }
    r.add("decode", [ParameterSpec("m"), ParameterSpec("kv"), ParameterSpec("techniques", variadic: true)]
            + sampling.filter { $0.name != "stop" && $0.name != "stream" }
            + [ParameterSpec("stop", default: Value.none), ParameterSpec("stream", default: .bool(true))],
          doc: "Continues from a prefilled KV cache for `tokens` tokens (the cache advances, so decode can be called again). A decoding strategy after the cache (speculative(...)) chooses the tokens.",
          example: "decode(m, kv, tokens: 32)") { c in
      let value = try model(c, 0, "decode")
      guard case .host(let h) = c[1], let kv = h as? KVCacheValue else {
        throw LatheError("decode: 'kv' must be a KV cache from prefill, got \(c[1].typeName)", kind: .type)
      }
      guard kv.model === value.model else { throw LatheError("decode: this KV cache was prefilled by another model") }
      let (_, decoding) = try strategies(c, 2, "decode", accepts: [.decodingStrategy])
      if let pending = kv.pending {
        kv.logits = try value.model.forward([pending], cache: kv.cache)
        kv.pending = nil
      }
      guard let logits = kv.logits else { throw LatheError("decode: the KV cache has no logits") }
      var sampler = try makeSampler(c, from: 4)
      let result: Generation
      var counters: [(String, TechniqueArgument)] = []
      if let decoding {
        guard kv.ids.count == kv.cache.count else {
          throw LatheError("decode: \(decoding.name) needs the tokens of the cache, which this KV cache does not keep (prefill it with prefill(m, prompt))")
        }
        do {
          let d = try decoding.decode(value.model, context: kv.ids, cache: kv.cache, logits: logits, maxTokens: try tokenCount(c, 3),
                                      sampler: &sampler, stop: try stops(c, 8), onToken: streamer(c, 9))
          result = d.generation
          counters = d.counters
        } catch { throw TechniqueBuiltins.error(error) }
      } else {
        result = try value.model.decode(cache: kv.cache, logits: logits, maxTokens: try tokenCount(c, 3), sampler: &sampler,
                                        stop: try stops(c, 8), onToken: streamer(c, 9))
      }
      if try c.bool(9) { c.interpreter.output(.stdout, "\n") }
      // Every token but the last is in the cache now; the last is pending (unless it ended the text).
      if !kv.ids.isEmpty { kv.ids += result.tokens }
      if let last = result.tokens.last, result.stopReason != "eos" { kv.pending = last; kv.logits = nil }
      return .host(GenerationValue(result, counters: counters, streamed: try c.bool(9)))
    }
    r.add("savegguf", [ParameterSpec("m"), ParameterSpec("path"), ParameterSpec("type", default: Value.none),
                       ParameterSpec("packed", default: Value.none)],
          doc: "Writes the model as a GGUF file: matrices kept as they are, or quantised to type (\"f32\", \"f16\", \"q8_0\", \"q4_0\", \"q4_1\"); returns the bytes written. A compressed model's matrices stay in their packed form (bit-exact; load reads it back, llama.cpp cannot) unless packed: false, which writes them dense for llama.cpp.",
          example: "savegguf(m, tempfile(\"smollm2-q8.gguf\"), type: \"q8_0\")") { c in
      let value = try model(c, 0, "savegguf")
      let path = try c.string(1)
      var type: GGMLType? = nil
      if !c.isNone(2) {
        let name = try c.string(2).lowercased()
        guard let t = GGUFWriter.writableTypes.first(where: { $0.name == name }) else {
          throw LatheError("savegguf: type must be one of \(GGUFWriter.writableTypes.map { Value.quote($0.name) }.joined(separator: ", ")), got \(Value.quote(name))")
        }
        type = t
      }
      let packed = c.isNone(3) ? true : try c.bool(3)
      try LanguageModelValue.writer(value.model, report: value.compression, type: type, packed: packed).write(to: path)
      c.interpreter.pendingInputs.append((role: "output", path: path))
      let size = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
      return .int(size)
    }
    r.add("perplexity", [ParameterSpec("m"), ParameterSpec("text"), ParameterSpec("window", default: .int(512)),
                         ParameterSpec("stride", default: Value.none), ParameterSpec("windows", default: Value.none),
                         ParameterSpec("technique", default: Value.none), ParameterSpec("prompt", default: Value.none)],
          doc: "Perplexity of text (no BOS) over whole windows of `window` tokens every `stride` (default: the window, so non-overlapping), at most `windows` of them. prompt: p leaves each window's first p tokens unscored: they only fill the cache (through technique:, a prefill strategy such as kvpredict(...), when given), and the model scores the rest from that cache.",
          example: "perplexity(m, corpus(\"hamlet\"), window: 512, windows: 2)") { c in
      let (value, ids) = try modelAndPrompt(c, "perplexity", wholeText: true)
      let window = try c.int(2)
      let stride = c.isNone(3) ? window : try c.int(3)
      let limit = c.isNone(4) ? nil : try c.int(4)
      if let limit, limit < 1 { throw LatheError("perplexity: windows must be at least 1, got \(limit)") }
      let total = max(1, min(limit ?? Int.max, ids.count >= window ? (ids.count - window) / max(1, stride) + 1 : 1))
      let bar = Progress(c.interpreter, total: total, label: "perplexity")
      let result: Perplexity
      if !c.isNone(5) || !c.isNone(6) {
        guard !c.isNone(6) else { throw LatheError("perplexity: technique: fills each window's prompt; give prompt: (its tokens)") }
        let prompt = try c.int(6)
        let strategy = c.isNone(5) ? nil : try strategies(c, 5, "perplexity", accepts: [.prefillStrategy]).0
        if let strategy, strategy.simulates { throw LatheError("perplexity: \(strategy.description) simulates and has no cache to score from") }
        let model = value.model, interpreter = c.interpreter
        do {
          result = try model.continuationPerplexity(ids, window: window, stride: stride, prompt: prompt, maxWindows: limit, prefill: { p, room in
            guard let strategy else { return try model.prefill(p, extra: room) }
            switch try strategy.prefill(model, p, room: room, interrupt: { try interpreter.checkInterrupt() }) {
            case .predicted(let r): return (r.cache, r.logits)
            case .real(let r): return (r.cache, r.logits)
            case .simulated: throw LatheError("perplexity: \(strategy.description) gave no KV cache")
            }
          }) { _, _ in try bar.advance() }
        } catch let e as LatheError { throw e } catch let e as TensorError { throw LatheError("perplexity: \(e.description)") } catch {
          throw TechniqueBuiltins.error(error)
        }
      } else {
        result = try value.model.perplexity(ids, window: window, stride: stride, maxWindows: limit) { _, _ in try bar.advance() }
      }
      bar.finish()
      return .record(Record([("perplexity", .float(result.perplexity)), ("nll", .float(result.meanNLL)),
                             ("tokens", .int(result.predictedTokens)), ("windows", .int(result.windows)),
                             ("seconds", .float(result.seconds))]))
    }
  }

  /// The model file `name` stands for, or nil when it names no model (then `load` looks for a saved value).
  static func modelPath(_ name: String) throws -> String? {
    if let file = known[name.lowercased()] {
      let directories = Datasets.dataDirectories().map { URL(fileURLWithPath: $0).deletingLastPathComponent().appendingPathComponent("models").path }
      if let dir = directories.first(where: { FileManager.default.fileExists(atPath: "\($0)/\(file)") }) { return "\(dir)/\(file)" }
      throw LatheError("load: \(name) is models/\(file), which is not there (looked in \(directories.joined(separator: ", "))); run scripts/setup to fetch it")
    }
    if isHuggingFaceDirectory(name) { return name }
    let format = FileFormat.identify(path: name)
    if let format, format != "GGUF" {
      throw LatheError("load: \(name) is a \(format) file, not a GGUF model; \(FileFormat.reader(of: format))")
    }
    guard name.lowercased().hasSuffix(".gguf") || format == "GGUF" else { return nil }
    guard FileManager.default.fileExists(atPath: name) else { throw LatheError("load: no such file: \(name)") }
    return name
  }

  /// A Hugging Face checkpoint: a directory holding config.json and safetensors weights.
  static func isHuggingFaceDirectory(_ path: String) -> Bool {
    var isDirectory: ObjCBool = false
    guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory), isDirectory.boolValue,
          FileManager.default.fileExists(atPath: path + "/config.json") else { return false }
    return ((try? FileManager.default.contentsOfDirectory(atPath: path)) ?? []).contains { $0.hasSuffix(".safetensors") }
  }

  static func model(_ c: NativeCall, _ i: Int, _ op: String) throws -> LanguageModelValue {
    // A trainable decoder runs as the inference model of its current weights (an f32 copy).
    if case .host(let h) = c[i], let t = h as? ModuleValue, let decoder = t.module as? TrainableDecoder {
      return LanguageModelValue(try decoder.runnable(), path: "<trainable>", loadSeconds: 0)
    }
    guard case .host(let h) = c[i], let m = h as? LanguageModelValue else {
      throw LatheError("\(op): 'm' must be a language model from load(\"smollm2\"), got \(c[i].typeName)", kind: .type)
    }
    return m
  }

  static func tokenizer(_ c: NativeCall, _ op: String) throws -> BPETokenizer {
    guard let t = try model(c, 0, op).model.tokenizer else { throw LatheError("\(op): the model has no tokenizer") }
    return t
  }

  /// Token ids from a list of ints or an integer tensor.
  static func ids(_ c: NativeCall, _ i: Int, _ op: String) throws -> [Int] {
    switch c[i] {
    case .list(let items):
      return try items.map {
        guard case .int(let id) = $0 else { throw LatheError("\(op): token ids must be ints, got \($0.typeName)", kind: .type) }
        return id
      }
    case .host(let h as TensorValue):
      return try h.tensor.scalars.map {
        guard let id = Int(exactly: $0) else { throw LatheError("\(op): token ids must be integers, got \($0) in the tensor") }
        return id
      }
    default:
      throw LatheError("\(op): '\(c.function.parameters[i].name)' must be text or a list of token ids, got \(c[i].typeName)", kind: .type)
    }
  }

  /// The model (argument 0) and the prompt (argument 1: text, encoded without BOS unless the model asks for one, or ids).
  static func modelAndPrompt(_ c: NativeCall, _ op: String, wholeText: Bool = false) throws -> (LanguageModelValue, [Int]) {
    let m = try model(c, 0, op)
    let prompt: [Int]
    if case .string(let text) = c[1] {
      prompt = try tokenizer(c, op).encode(text, parseSpecial: true)
    } else {
      prompt = try ids(c, 1, op)
    }
    guard !prompt.isEmpty else { throw LatheError("\(op): the prompt is empty") }
    let vocab = m.model.config.vocabularySize
    if let bad = prompt.first(where: { $0 < 0 || $0 >= vocab }) { throw LatheError("\(op): token id \(bad) is outside the vocabulary 0..<\(vocab)") }
    guard wholeText || prompt.count <= m.model.config.contextLength else {
      throw LatheError("\(op): \(prompt.count) prompt tokens exceed the model's context of \(m.model.config.contextLength)")
    }
    return (m, prompt)
  }

  /// The technique values at argument i (a variadic list, or one value), at most one per role, each playing one of
  /// `accepts`: the prefill strategy and the decoding strategy among them.
  static func strategies(_ c: NativeCall, _ i: Int, _ op: String, accepts: [Role]) throws
    -> (prefill: (any PrefillStrategy)?, decoding: (any DecodingStrategy)?) {
    let items: [Value]
    if case .list(let xs) = c[i], c.function.parameters[i].variadic { items = xs } else if case .none = c[i] { items = [] } else { items = [c[i]] }
    var prefill: (any PrefillStrategy)?, decoding: (any DecodingStrategy)?
    let wanted = TechniqueBuiltins.roleNames(accepts)
    for v in items {
      guard case .host(let h) = v, let t = (h as? TechniqueValue)?.technique else {
        throw LatheError("\(op): a technique must be a \(wanted), got \(v.typeName)", kind: .type)
      }
      var used = false
      if accepts.contains(.prefillStrategy), let p = t as? any PrefillStrategy {
        guard prefill == nil else { throw LatheError("\(op): two prefill strategies given; give one") }
        prefill = p; used = true
      }
      if !used, accepts.contains(.decodingStrategy), let d = t as? any DecodingStrategy {
        guard decoding == nil else { throw LatheError("\(op): two decoding strategies given; give one") }
        decoding = d; used = true
      }
      guard used else {
        throw LatheError("\(op): \(t.name) is a \(TechniqueBuiltins.roleNames(t.roles)); \(op) takes a \(wanted)", kind: .type)
      }
    }
    return (prefill, decoding)
  }

  /// Runs `ids` into a new KV cache: serially, or through a prefill strategy (which must run for real).
  /// `decoding`: the strategy that decodes next, whose serial prefill runs when no prefill strategy is given.
  static func prefill(_ value: LanguageModelValue, _ ids: [Int], _ strategy: (any PrefillStrategy)?, room: Int,
                      interpreter: Interpreter, decoding: (any DecodingStrategy)? = nil) throws -> KVCacheValue {
    guard let strategy else {
      let started = DispatchTime.now().uptimeNanoseconds
      let (cache, logits): (KVCache, [Float])
      if let decoding {
        do { (cache, logits) = try decoding.serialPrefill(value.model, ids, extra: room) } catch { throw TechniqueBuiltins.error(error) }
      } else {
        (cache, logits) = try value.model.prefill(ids, extra: room)
      }
      let first = Sampler.argmax(logits)
      let seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
      let text = (try? value.model.tokenizer?.decode([first])) ?? nil
      return KVCacheValue(model: value.model, cache: cache, logits: logits, firstToken: first, firstText: text ?? "",
                          prefillSeconds: seconds, promptTokens: ids.count, ids: ids)
    }
    guard !strategy.simulates else {
      throw LatheError("prefill: \(strategy.description) simulates, so it has no KV cache to decode from; use prefill(m, prompt, t) for its timings")
    }
    guard ids.count >= strategy.minimumPromptTokens else {
      throw LatheError("prefill: \(strategy.description) needs a prompt of at least \(strategy.minimumPromptTokens) tokens, got \(ids.count)")
    }
    do {
      let before = (strategy as? KVPredict)?.auxCalls ?? 0
      let outcome = try strategy.prefill(value.model, ids, room: room, interrupt: { try interpreter.checkInterrupt() })
      if case .predicted(let p) = outcome {
        let text = (try? value.model.tokenizer?.decode([p.firstToken])) ?? nil
        let kv = KVCacheValue(model: value.model, cache: p.cache, logits: p.logits, firstToken: p.firstToken, firstText: text ?? "",
                              prefillSeconds: p.ttft, promptTokens: ids.count, strategy: strategy.description, ids: ids)
        kv.predicted = p
        kv.flops = p.flops; kv.baseFlops = p.baseFlops; kv.baseTokens = p.baseTokens
        if let kvp = strategy as? KVPredict { kv.auxCalls = { [unowned kvp] in kvp.auxCalls - before } }
        return kv
      }
      guard case .real(let r) = outcome else {
        throw LatheError("prefill: \(strategy.description) gave no KV cache")
      }
      let text = (try? value.model.tokenizer?.decode([r.firstToken])) ?? nil
      return KVCacheValue(model: value.model, cache: r.cache, logits: r.logits, firstToken: r.firstToken, firstText: text ?? "",
                          prefillSeconds: r.ttft, promptTokens: ids.count, parallel: r, strategy: strategy.description, ids: ids)
    } catch { throw TechniqueBuiltins.error(error) }
  }

  static func tokenCount(_ c: NativeCall, _ i: Int) throws -> Int {
    let n = try c.int(i)
    guard n >= 0, n <= 1 << 20 else { throw LatheError("\(c.function.name): tokens must be in 0...1048576, got \(n)") }
    return n
  }

  /// temperature, topK, topP, seed at arguments i..<i+4.
  static func makeSampler(_ c: NativeCall, from i: Int) throws -> Sampler {
    do {
      return try Sampler(temperature: try c.double(i), topK: try c.int(i + 1), topP: try c.double(i + 2),
                         seed: UInt64(bitPattern: Int64(try c.int(i + 3))))
    } catch let e as TensorError {
      throw LatheError("\(c.function.name): \(e.description)")
    }
  }

  static func stops(_ c: NativeCall, _ i: Int) throws -> [String] {
    switch c[i] {
    case .none: return []
    case .string(let s): return [s]
    case .list(let items):
      return try items.map {
        guard case .string(let s) = $0 else { throw LatheError("\(c.function.name): stop must be a string or a list of strings", kind: .type) }
        return s
      }
    default: throw LatheError("\(c.function.name): stop must be a string or a list of strings, got \(c[i].typeName)", kind: .type)
    }
  }

  /// Writes each piece of text as it is produced (when stream is on) and polls Ctrl-C after every token.
  static func streamer(_ c: NativeCall, _ streamIndex: Int) -> (Int, String) throws -> Void {
    let stream = (try? c.bool(streamIndex)) ?? true
    let interpreter = c.interpreter
    return { _, piece in
      if stream && !piece.isEmpty { interpreter.output(.stdout, piece) }
      try interpreter.checkInterrupt()
    }
  }
}
