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
