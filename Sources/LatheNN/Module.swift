// Modules: anything with trainable parameters and a forward pass (Linear, Conv2d, Sequential, ...).

import LatheTensor

/// A layer or a network. `parameters` lists every trainable variable, in a stable order.
public protocol Module: AnyObject {
  var parameters: [Variable] { get }
  func forward(_ x: Variable) throws -> Variable
  /// A one-line summary: `Linear(64 → 10)`.
  var summary: String { get }
}

extension Module {
  public var parameterCount: Int { parameters.reduce(0) { $0 + $1.value.count } }
}

extension Module {
  /// Parameters with stable names, as PyTorch's state_dict: "1.weight" is the weight of layer 1 of a Sequential.
  public var namedParameters: [(name: String, variable: Variable)] {
    if let sequential = self as? Sequential {
      return sequential.layers.enumerated().flatMap { index, layer in
        layer.namedParameters.map { ("\(index).\($0.name)", $0.variable) }
      }
    }
    let names = parameters.map { $0.name ?? "p" }
    // Unique names as they are ("weight", "bias"); repeated ones (a ViT's many weights) get their position.
    if Set(names).count == names.count { return zip(names, parameters).map { ($0, $1) } }
    return parameters.enumerated().map { ("\($0.offset).\(names[$0.offset])", $0.element) }
  }

  /// Copies values into the parameters by name; every parameter must be given, with its shape.
  public func load(state: [(name: String, tensor: Tensor)]) throws {
    let given = Dictionary(state.map { ($0.name, $0.tensor) }, uniquingKeysWith: { a, _ in a })
    for (name, variable) in namedParameters {
      guard let t = given[name] else { throw TensorError.invalidArgument(op: "loadstate", reason: "no tensor for parameter \(name)") }
      guard t.shape == variable.shape else { throw TensorError.shapeMismatch(op: "loadstate \(name)", lhs: variable.shape, rhs: t.shape) }
      variable.value = try t.copied(as: .f32)
    }
  }
}

extension Module {
  /// The layers of (nested) Sequentials in order with their paths ("0", "1.2"); any other module is its own one
  /// leaf with the path "". For reports and weight tables that list a model layer by layer.
  public var leaves: [(path: String, module: Module)] {
    var out: [(path: String, module: Module)] = []
    func walk(_ module: Module, _ path: String) {
      guard let s = module as? Sequential else { out.append((path, module)); return }
      for (i, layer) in s.layers.enumerated() { walk(layer, path.isEmpty ? "\(i)" : "\(path).\(i)") }
    }
    walk(self, "")
    return out
  }
}
