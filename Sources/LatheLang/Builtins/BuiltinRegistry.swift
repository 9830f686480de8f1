// The builtin table: one row per builtin (name, parameters with defaults, doc, example), feeding the globals,
// `?name` help and tab completion alike. Layers above the language add their rows here.

public final class BuiltinRegistry {
  public private(set) var functions: [Function] = []
  private var index: [String: Int] = [:]
  /// Decoders for saved host objects, by the kind their `serialized()` reported.
  public private(set) var hostDecoders: [String: ([UInt8]) throws -> Value] = [:]

  public init() {}

  /// A registry holding the core builtins of the language.
  public static var core: BuiltinRegistry {
    let r = BuiltinRegistry()
    CoreBuiltins.register(into: r)
    return r
  }

  /// Adds (or replaces) a builtin. `parameters` lists names with defaults; a name ending in "..." is variadic.
  public func add(_ name: String, _ parameters: [ParameterSpec] = [], doc: String, example: String,
                  _ body: @escaping (inout NativeCall) throws -> Value) {
    let f = Function(native: name, parameters: parameters, doc: doc, example: example, body)
    if let i = index[name] { functions[i] = f } else { index[name] = functions.count; functions.append(f) }
  }

  public func addHostDecoder(kind: String, _ decode: @escaping ([UInt8]) throws -> Value) {
    hostDecoders[kind] = decode
  }

  public func lookup(_ name: String) -> Function? { index[name].map { functions[$0] } }
}

/// Help text for a function value: signature, doc and example.
public enum Help {
  /// What `?word` shows: the help of the global `word`, else every builtin or function whose name or doc mentions
  /// it (one line each), else nil.
  public static func query(_ word: String, interpreter: Interpreter) -> String? {
    if let value = interpreter.global(word) { return text(for: value, name: word) }
    let needle = word.lowercased()
    guard !needle.isEmpty else { return nil }
    var hits: [Function] = []
    for name in interpreter.globalNames.sorted() {
      guard case .function(let f)? = interpreter.global(name) else { continue }
      if name.lowercased().contains(needle) || f.doc.lowercased().contains(needle) { hits.append(f) }
    }
    guard !hits.isEmpty else {
      if let near = Spelling.nearest(word, in: interpreter.globalNames) { return "no name or doc mentions '\(word)'; did you mean '\(near)'?" }
      return nil
    }
    let width = min(28, hits.map { $0.name.count }.max() ?? 0)
    return "no name '\(word)'; builtins that mention it:\n" + hits.map { f in
      let doc = f.doc.split(separator: ".", maxSplits: 1).first.map(String.init) ?? f.doc
      return "  " + f.name.padding(toLength: width, withPad: " ", startingAt: 0) + "  " + doc
    }.joined(separator: "\n")
  }

  public static func text(for value: Value, name: String) -> String {
    switch value {
    case .function(let f):
      var out = f.signature
      if !f.doc.isEmpty { out += "\n  " + f.doc }
      if !f.example.isEmpty { out += "\n  example: " + f.example }
      return out
    default:
      return "\(name): \(value.typeName) = \(value.brief)"
    }
  }
}
