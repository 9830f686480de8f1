// Function values: compiled Lathe functions and closures, and native builtins, with one argument binder.

/// A parameter: its name, its default (none means required) and whether it gathers the remaining positionals.
public struct ParameterSpec {
  public var name: String
  public var defaultValue: Value?
  public var variadic: Bool
  public init(_ name: String, default defaultValue: Value? = nil, variadic: Bool = false) {
    self.name = name; self.defaultValue = defaultValue; self.variadic = variadic
  }
}

/// The arguments of a native builtin call, bound to its parameters in order, with typed accessors.
public struct NativeCall {
  public let function: Function
  public var arguments: [Value]
  public unowned let interpreter: Interpreter

  public subscript(_ i: Int) -> Value { arguments[i] }
  public var count: Int { arguments.count }

  private func fail(_ i: Int, _ expected: String) -> LatheError {
    let name = i < function.parameters.count ? function.parameters[i].name : "argument \(i + 1)"
    return LatheError("\(function.name): '\(name)' must be \(expected), got \(arguments[i].typeName) \(arguments[i].repr)", kind: .type)
  }

  public func int(_ i: Int) throws -> Int {
    switch arguments[i] {
    case .int(let v): return v
    case .float(let f) where f.rounded() == f && abs(f) < 9.0e15: return Int(f)
    default: throw fail(i, "an int")
    }
  }
  public func double(_ i: Int) throws -> Double {
    switch arguments[i] {
    case .int(let v): return Double(v)
    case .float(let v): return v
    case .host(let h) where h.numericValue != nil: return h.numericValue ?? 0
    default: throw fail(i, "a number")
    }
  }
  public func string(_ i: Int) throws -> String {
    guard case .string(let s) = arguments[i] else { throw fail(i, "a string") }
    return s
  }
  public func bool(_ i: Int) throws -> Bool {
    guard case .bool(let b) = arguments[i] else { throw fail(i, "a bool") }
    return b
  }
  public func list(_ i: Int) throws -> [Value] {
    switch arguments[i] {
    case .list(let xs): return xs
    case .range(let r): return try Value.materialize(r)
    default: throw fail(i, "a list")
    }
  }
  public func record(_ i: Int) throws -> Record {
    guard case .record(let r) = arguments[i] else { throw fail(i, "a record") }
    return r
  }
  public func function(_ i: Int) throws -> Function {
    guard case .function(let f) = arguments[i] else { throw fail(i, "a function") }
    return f
  }
  public func isNone(_ i: Int) -> Bool { if case .none = arguments[i] { return true }; return false }
}

public final class Function {
  public let name: String
  public let parameters: [ParameterSpec]
  /// One line, shown by `?name`.
  public internal(set) var doc: String
  public internal(set) var example: String
  enum Body {
    case compiled(CompiledBody)
    case native((inout NativeCall) throws -> Value)
  }
  let body: Body
  /// The positional count that takes the direct call path (-1: none, as for builtins), and for compiled
  /// functions the body's code, frame size and whether entry must box parameters or place captures.
  /// Copied out of `CompiledBody` so a call touches one object.
  let directArity: Int
  let code: StmtCode
  let frameSize: Int
  let needsSetup: Bool
  /// Cells of the variables this closure captured, in the order of `CompiledBody.captureSlots`.
  var captures: [Cell]

  init(name: String, parameters: [ParameterSpec], body: CompiledBody, captures: [Cell], doc: String = "", example: String = "") {
    self.name = name; self.parameters = parameters; self.doc = doc; self.example = example
    self.body = .compiled(body); self.captures = captures
    self.directArity = parameters.contains(where: \.variadic) ? -1 : parameters.count
    self.code = body.code; self.frameSize = body.frameSize; self.needsSetup = body.needsSetup
  }

  public init(native name: String, parameters: [ParameterSpec], doc: String = "", example: String = "",
              _ implementation: @escaping (inout NativeCall) throws -> Value) {
    self.name = name; self.parameters = parameters; self.doc = doc; self.example = example
    self.body = .native(implementation); self.captures = []
    self.directArity = -1
    self.code = { _ in .normal }; self.frameSize = 0; self.needsSetup = false
  }

  public var isNative: Bool { if case .native = body { return true }; return false }

  /// `fn fib(n)`, `fn f(x, bits: 4)`, `builtin print(values..., sep: " ")`.
  public var signature: String {
    let params = parameters.map { p -> String in
      if p.variadic { return p.name + "..." }
      if let d = p.defaultValue { return "\(p.name): \(d.repr)" }
      return p.name
    }.joined(separator: ", ")
    return "\(isNative ? "builtin" : "fn") \(name)(\(params))"
  }

  /// Binds positional and labelled arguments to the parameters, filling defaults.
  /// Errors name the function and the parameter: missing, unknown (with a suggestion), given twice, too many.
  func bind(positional: [Value], labels: [String?]) throws -> [Value] {
    var bound = [Value?](repeating: nil, count: parameters.count)
    var p = 0
    var extra: [Value] = []
    let variadicIndex = parameters.firstIndex(where: \.variadic)
    for (value, label) in zip(positional, labels) {
      if let label {
        guard let i = parameters.firstIndex(where: { $0.name == label && !$0.variadic }) else {
          let names = parameters.filter { !$0.variadic }.map(\.name)
          var message = "\(name) has no parameter '\(label)'"
          if let near = Spelling.nearest(label, in: names) { message += "; did you mean '\(near):'?" }
          message += names.isEmpty ? " (it takes no labelled arguments)" : " (parameters: \(names.joined(separator: ", ")))"
          throw LatheError(message, kind: .type)
        }
        if bound[i] != nil { throw LatheError("\(name): argument '\(label)' is given twice", kind: .type) }
        bound[i] = value
      } else {
        if let v = variadicIndex, p >= v { extra.append(value); continue }
        guard p < parameters.count else {
          throw LatheError("\(name) takes \(parameters.count) argument\(parameters.count == 1 ? "" : "s") but \(positional.count) were given", kind: .type)
        }
        if let v = variadicIndex, p == v { extra.append(value); continue }
        bound[p] = value
        p += 1
      }
    }
    var result: [Value] = []
    result.reserveCapacity(parameters.count)
    for (i, parameter) in parameters.enumerated() {
      if parameter.variadic { result.append(.list(extra)); continue }
      if let v = bound[i] { result.append(v) }
      else if let d = parameter.defaultValue { result.append(d) }
      else { throw LatheError("\(name): missing argument '\(parameter.name)'", kind: .type) }
    }
    return result
  }
}

/// A compiled function body: its frame size, where captured cells go, and which parameters are boxed.
final class CompiledBody {
  let frameSize: Int
  let captureSlots: [Int]
  let boxedParameterSlots: [Int]
  let code: StmtCode
  let sourceName: String
  /// False when there are neither boxed parameters nor captures: entry skips both loops.
  let needsSetup: Bool
  /// Where a local function finds itself (see `Compiler.compileFunction(_:selfName:)`).
  let selfSlot: (slot: Int, boxed: Bool)?
  init(frameSize: Int, captureSlots: [Int], boxedParameterSlots: [Int], selfSlot: (slot: Int, boxed: Bool)? = nil,
       code: @escaping StmtCode, sourceName: String) {
    self.frameSize = frameSize; self.captureSlots = captureSlots; self.boxedParameterSlots = boxedParameterSlots
    self.selfSlot = selfSlot
    self.code = code; self.sourceName = sourceName
    self.needsSetup = !captureSlots.isEmpty || !boxedParameterSlots.isEmpty || selfSlot != nil
  }
}

public enum Spelling {
  /// How PyTorch, numpy and Hugging Face spell what Lathe calls otherwise: labels, members and builtins. A suggestion
  /// is made only when the Lathe name is among the candidates (a test checks every target is a builtin or a label).
  public static let aliases: [String: [String]] = [
    // sampling and generation (transformers' generate)
    "top_k": ["topK"], "topk": ["topK", "topk"], "k": ["topK"], "top_p": ["topP"], "topp": ["topP"],
    "max_new_tokens": ["tokens"], "max_tokens": ["tokens"], "max_length": ["tokens"], "new_tokens": ["tokens"],
    "num_tokens": ["tokens"], "n_tokens": ["tokens"], "temp": ["temperature"], "stop_strings": ["stop"],
    "eos": ["stop"], "streamer": ["stream"], "random_state": ["seed"], "generator": ["seed"], "rng": ["seed"],
    // arrays (numpy and torch)
    "dim": ["axis"], "dims": ["axes", "axis"], "axes": ["axis"], "keepdim": ["keepdims"], "keep_dims": ["keepdims"],
    "keepDims": ["keepdims"], "correction": ["ddof"], "unbiased": ["ddof"], "a_min": ["min"], "a_max": ["max"],
    "lower": ["min"], "upper": ["max"], "equal_nan": ["equalNan"], "equalnan": ["equalNan"], "dtype": ["type", "dtype"],
    "reverse": ["descending"], "largest": ["descending", "largest"], "size": ["shape"],
    "array": ["tensor"], "asarray": ["tensor"], "as_tensor": ["tensor"], "from_numpy": ["tensor"],
    "cat": ["concat"], "concatenate": ["concat"], "clip": ["clamp"], "percentile": ["quantile"],
    "nanquantile": ["quantile"], "array_equal": ["equal"], "isclose": ["allclose"], "mm": ["matmul"],
    "dot": ["matmul"], "normal": ["randn"], "uniform": ["rand"], "var": ["variance"], "numel": ["size"],
    "argpartition": ["topk"], "view": ["reshape"], "flatten": ["reshape"], "type_as": ["astype"], "to": ["astype"],
    // training and models
    "learning_rate": ["lr"], "weight_decay": ["weightDecay", "decay"], "num_epochs": ["epochs"], "n_epochs": ["epochs"],
    "batch_size": ["batch"], "bs": ["batch"], "state_dict": ["state"], "load_state_dict": ["loadstate"],
    "from_pretrained": ["load"], "encode": ["tokenize"], "num_layers": ["layers"], "n_layers": ["layers"],
    "hidden_size": ["dim"], "num_heads": ["heads"], "num_key_value_heads": ["kvHeads"], "n_kv_heads": ["kvHeads"],
    "kvheads": ["kvHeads"], "head_dim": ["headDim"], "vocab_size": ["vocab"], "named_parameters": ["state", "tensors"],
    "parameters": ["parameters", "params"], "perplexity": ["perplexity", "ppl"],
  ]

  /// The candidate `word` most likely meant: another library's spelling of it (`top_k` → `topK`), the same name in
  /// another case or in snake_case (`prompttokens`, `prompt_tokens` → `promptTokens`), else the closest by edit
  /// distance when it is close enough to be a typo.
  public static func nearest(_ word: String, in candidates: [String]) -> String? {
    let names = Set(candidates)
    if let targets = aliases[word], let hit = targets.first(where: { names.contains($0) && $0 != word }) { return hit }
    let folded = word.replacingOccurrences(of: "_", with: "").lowercased()
    if let hit = candidates.first(where: { $0 != word && $0.replacingOccurrences(of: "_", with: "").lowercased() == folded }) { return hit }
    return nearestByDistance(word, in: candidates)
  }

  /// The candidate closest to `word` by edit distance, when it is close enough to be a likely typo.
  static func nearestByDistance(_ word: String, in candidates: [String]) -> String? {
    let w = Array(word)
    var best: (String, Int)? = nil
    for c in candidates {
      let d = distance(w, Array(c))
      guard d <= max(1, w.count / 3) else { continue }
      if let b = best, b.1 <= d { continue }
      best = (c, d)
    }
    return best?.0
  }

  /// Optimal string alignment distance: insertions, deletions, substitutions and adjacent swaps cost 1.
  static func distance(_ a: [Character], _ b: [Character]) -> Int {
    if a.isEmpty { return b.count }
    if b.isEmpty { return a.count }
    if abs(a.count - b.count) > 3 || a.count > 64 || b.count > 64 { return max(a.count, b.count) }
    var d = [[Int]](repeating: [Int](repeating: 0, count: b.count + 1), count: a.count + 1)
    for i in 0...a.count { d[i][0] = i }
    for j in 0...b.count { d[0][j] = j }
    for i in 1...a.count {
      for j in 1...b.count {
        let cost = a[i - 1] == b[j - 1] ? 0 : 1
        d[i][j] = min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
        if i > 1, j > 1, a[i - 1] == b[j - 2], a[i - 2] == b[j - 1] { d[i][j] = min(d[i][j], d[i - 2][j - 2] + 1) }
      }
    }
    return d[a.count][b.count]
  }
}
