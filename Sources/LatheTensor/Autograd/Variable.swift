// Reverse-mode autodiff: a Variable is a tensor plus, when gradients are wanted, how to pass them back.

import Foundation

/// A tensor in a computation that can be differentiated (PyTorch's define-by-run model).
///
///     let x = Variable(try Tensor.randn([3], seed: 0), requiresGrad: true)
///     let y = try x.multiply(x).sum()        // y = Σ x²
///     try y.backward()                        // x.grad = 2x
public final class Variable {
  public var value: Tensor
  /// The gradient of the last `backward()` with respect to this variable (accumulated over calls).
  public var grad: Tensor?
  /// Leaves set this; results get it when any input has it (and recording is on). A frozen leaf has it off.
  public var requiresGrad: Bool { wantsGrad && !frozen }
  private let wantsGrad: Bool
  /// Freezing a parameter stops gradients to it (and its training) until it is unfrozen.
  public var frozen = false
  /// Frozen parameters keep requiresGrad false. `name` says what a parameter is ("weight", "bias").
  public var name: String?
  let parents: [Variable]
  /// Given this variable's gradient, the gradient for each parent (nil where a parent needs none).
  let backwardRule: ((Tensor) throws -> [Tensor?])?

  /// A leaf: an input or a parameter.
  public init(_ value: Tensor, requiresGrad: Bool = false, name: String? = nil) {
    self.value = value; self.wantsGrad = requiresGrad; self.name = name
    parents = []; backwardRule = nil
  }

  init(_ value: Tensor, parents: [Variable], backward: @escaping (Tensor) throws -> [Tensor?]) {
    self.value = value
    let record = Autograd.isRecording && parents.contains { $0.requiresGrad }
    wantsGrad = record
    self.parents = record ? parents : []
    backwardRule = record ? backward : nil
  }

  /// A result with a gradient rule of the caller's own: straight-through estimators, custom ops.
  public static func custom(_ value: Tensor, inputs: [Variable], backward: @escaping (Tensor) throws -> [Tensor?]) -> Variable {
    Variable(value, parents: inputs, backward: backward)
  }

  /// The same value cut off from the graph.
  public func detached() -> Variable { Variable(value) }

  public var shape: [Int] { value.shape }

  /// Computes the gradient of this (scalar, unless `seed` is given) variable with respect to every leaf that
  /// requires one (inputs and parameters), adding it to their `grad`; intermediate results keep none.
  public func backward(seed: Tensor? = nil) throws {
    guard requiresGrad else { throw TensorError.invalidArgument(op: "backward", reason: "this value does not depend on anything that requires a gradient") }
    let start = try seed ?? {
      guard value.count == 1 else {
        throw TensorError.invalidArgument(op: "backward", reason: "needs a scalar, got shape \(value.shape); pass a seed gradient")
      }
      return try Tensor.ones(value.shape)
    }()
    // Topological order by depth-first search (iterative: graphs of long training loops are deep).
    var order: [Variable] = [], seen = Set<ObjectIdentifier>(), stack: [(Variable, Bool)] = [(self, false)]
    while let (node, expanded) = stack.popLast() {
      if expanded { order.append(node); continue }
      guard seen.insert(ObjectIdentifier(node)).inserted else { continue }
      stack.append((node, true))
      for p in node.parents where p.requiresGrad { stack.append((p, false)) }
    }
    var grads: [ObjectIdentifier: Tensor] = [ObjectIdentifier(self): start]
    for node in order.reversed() {
      guard let g = grads.removeValue(forKey: ObjectIdentifier(node)) else { continue }
      if node.parents.isEmpty {
        node.grad = try node.grad.map { try $0.add(g) } ?? g
        continue
      }
      guard let rule = node.backwardRule else { continue }
      let parentGrads = try rule(g)
      for (p, pg) in zip(node.parents, parentGrads) where p.requiresGrad {
        guard let pg else { continue }
        let id = ObjectIdentifier(p)
        grads[id] = try grads[id].map { try $0.add(pg) } ?? pg
      }
    }
  }

  public func zeroGrad() { grad = nil }
}

/// Whether operations record the graph: off inside `Autograd.noGrad { }` (evaluation, optimizer steps).
/// Per thread, so a no-grad region on one thread never stops recording on another.
public enum Autograd {
  private static let key: pthread_key_t = {
    var k = pthread_key_t()
    pthread_key_create(&k, nil)
    return k
  }()
  /// A non-nil thread-specific value means "not recording".
  private static let off = UnsafeRawPointer(bitPattern: 1)

  public static var isRecording: Bool { pthread_getspecific(key) == nil }

  public static func noGrad<T>(_ body: () throws -> T) rethrows -> T {
    let saved = pthread_getspecific(key)
    pthread_setspecific(key, off)
    defer { pthread_setspecific(key, saved) }
    return try body()
  }
}
