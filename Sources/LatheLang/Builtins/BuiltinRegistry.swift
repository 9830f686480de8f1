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
