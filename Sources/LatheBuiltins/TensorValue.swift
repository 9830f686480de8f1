// Tensors as values of the language: members, operators, indexing, iteration over rows, save and load.

import LatheLang
import LatheTensor

/// A tensor of the language. It holds an autograd `Variable`, so operations on tensors that require a gradient
/// record the graph that `grad(f, x)` and `train` differentiate.
public final class TensorValue: IterableHostObject, ReducibleHostObject {
  public let variable: Variable
  public var tensor: Tensor { variable.value }
  public init(_ tensor: Tensor) { variable = Variable(tensor) }
  public init(variable: Variable) { self.variable = variable }

  public var typeName: String { "tensor" }
  /// A one-element tensor (a loss, a 0-d result) stands for its number where a builtin wants one.
  public var numericValue: Double? { tensor.count == 1 ? tensor.scalars.first.map(Double.init) : nil }
  public var description: String { tensor.description }
  /// `tensor f32 [576, 1536]`, with `, requires grad` for a trainable one.
  public var summary: String {
    "tensor \(tensor.dtype.rawValue) [\(tensor.shape.map(String.init).joined(separator: ", "))]"
      + (variable.requiresGrad ? ", requires grad" : "")
  }
  public var memberNames: [String] { ["shape", "dtype", "T", "ndim", "size", "count", "grad", "requiresGrad"] + TensorValue.methods }
  /// Builtins that read well as methods (`x.item()`, `x.std(axis: 0)`): a call `x.f(...)` is `f(x, ...)`.
  static let methods = ["item", "tolist", "reshape", "astype", "sum", "mean", "max", "min", "std", "variance", "quantile",
                        "sort", "argsort", "cumsum", "clamp", "round", "abs", "any", "all", "allclose", "equal"]

  public func conditionValue() throws -> Bool? {
    let t = tensor
    guard t.count == 1 else {
      throw LatheError("the truth value of a tensor of \(t.count) elements (shape \(t.shape)) is ambiguous: use any(x) or all(x)", kind: .type)
    }
    return (t.scalars.first ?? 0) != 0
  }

  /// numpy's array_equal, so lists and records holding tensors compare by value.
  public func isEqual(to other: any HostObject) -> Bool {
    guard let o = other as? TensorValue else { return false }
    return self === o || tensor.equals(o.tensor)
  }

  public func member(_ name: String) throws -> Value? {
    switch name {
    case "shape": return .list(tensor.shape.map { .int($0) })
    case "dtype": return .string(tensor.dtype.rawValue)
    case "T": return .host(TensorValue(variable: try variable.transposed()))
    case "grad": return variable.grad.map { .host(TensorValue($0)) } ?? Value.none
    case "requiresGrad": return .bool(variable.requiresGrad)
    case "ndim": return .int(tensor.rank)
    case "size": return .int(tensor.count)
    case "count": return .int(tensor.rank == 0 ? 1 : tensor.shape[0])
    default: return nil
    }
  }

  static let comparisons: [BinaryOperator: Comparison] = [.equal: .equal, .notEqual: .notEqual, .less: .less,
                                                          .lessEqual: .lessEqual, .greater: .greater, .greaterEqual: .greaterEqual]

  public func binary(_ op: BinaryOperator, _ other: Value, hostOnLeft: Bool) throws -> Value? {
    let me = variable
    if let comparison = TensorValue.comparisons[op] {
      // Elementwise, as in numpy: a u8 mask of 0 and 1.
      let rhs: Tensor
      switch other {
      case .int, .float, .bool: rhs = try Tensor([Float(other.asDouble ?? (other.conditionValueOrFalse ? 1 : 0))], shape: [])
      case .host(let h as TensorValue): rhs = h.tensor
      case .list: rhs = try TensorBuiltins.fromNested(other, "'\(op.rawValue)'")
      default: return nil
      }
      let (a, b) = hostOnLeft ? (tensor, rhs) : (rhs, tensor)
      return .host(TensorValue(try a.compared(comparison, b)))
    }
    switch other {
    case .int, .float:
      let s = Float(other.asDouble ?? 0)
      let result: Variable
      switch op {
      case .add: result = try me.shifted(by: s)
      case .subtract: result = hostOnLeft ? try me.shifted(by: -s) : try me.negated().shifted(by: s)
      case .multiply: result = try me.scaled(by: s)
      case .divide:
        if hostOnLeft {
          guard s != 0 else { throw LatheError("division by zero: tensor / 0") }
          result = try me.divided(by: s)
        } else {
          result = try me.power(-1).scaled(by: s)
        }
      case .power:
        guard hostOnLeft else { throw LatheError("number ** tensor is not supported; use exp(log(base) * x)", kind: .type) }
        result = try me.power(s)
      case .matmul: throw LatheError("'@' needs two tensors, got tensor and \(other.typeName)", kind: .type)
      default: return nil
      }
      return .host(TensorValue(variable: result))
    case .host(let h):
      guard let rhs = h as? TensorValue else {
        if op == .matmul { throw LatheError("'@' needs two tensors, got tensor and \(h.typeName)", kind: .type) }
        return nil
      }
      let (a, b) = hostOnLeft ? (me, rhs.variable) : (rhs.variable, me)
      let result: Variable
      switch op {
      case .add: result = try a.add(b)
      case .subtract: result = try a.subtract(b)
      case .multiply: result = try a.multiply(b)
      case .divide: result = try a.divide(b)
      case .matmul: result = try a.matmul(b)
      case .power:
        return .host(TensorValue(try a.value.binary(.power, b.value, op: "power")))   // not differentiated
      default: return nil
      }
      return .host(TensorValue(variable: result))
    default:
      if op == .matmul { throw LatheError("'@' needs two tensors, got tensor and \(other.typeName)", kind: .type) }
      return nil
    }
  }

  public func unary(_ op: UnaryOperator) throws -> Value? {
    switch op {
    case .negate: return .host(TensorValue(variable: try variable.negated()))
    case .plus: return .host(self)
    case .not:
      guard tensor.isMask else { return nil }
      return .host(TensorValue(try tensor.mapped(op: "!", dtype: .u8) { $0 == 0 ? 1 : 0 }))
    }
  }

  /// The positions `items` select: one mask of the tensor's shape, or a basic index.
  func positions(_ items: [IndexValue]) throws -> (positions: [Int], viewShape: [Int]?) {
    if items.count == 1, case .single(.host(let h as TensorValue)) = items[0] {
      guard h.tensor.isMask else {
        throw LatheError("a tensor index must be a mask (u8, from a comparison such as x > 0), got \(h.tensor.dtype)", kind: .type)
      }
      return (try tensor.maskPositions(h.tensor), nil)
    }
    let components = try TensorValue.components(items)
    return (try tensor.positions(of: components), try tensor.indexed(components).shape)
  }

  /// `x[mask] = v` and `x[i, 1:3] = v`: a new tensor (the variable is rebound), differentiable in x and v.
  public func setIndex(_ items: [IndexValue], to value: Value) throws -> Value {
    let (positions, viewShape) = try positions(items)
    var values: Variable
    switch value {
    case .int, .float, .bool: values = Variable(try Tensor([Float(value.asDouble ?? (value.conditionValueOrFalse ? 1 : 0))], shape: [1]))
    default:
      values = try TensorBuiltins.variable(value, "index assignment: value")
      if let viewShape, values.value.count != 1 {
        guard (try? Tensor.broadcastShape(values.value.shape, viewShape, op: "")) == viewShape else {
          throw LatheError("index assignment: a value of shape \(values.value.shape) does not fit the selected shape \(viewShape)", kind: .type)
        }
        values = try values.add(Variable(try Tensor.zeros(viewShape))).reshaped(to: [positions.count])
      }
    }
    if values.value.count != 1 && values.value.count != positions.count {
      throw LatheError("index assignment: \(positions.count) elements are selected but the value has shape \(values.value.shape)", kind: .type)
    }
    if values.value.count == 1 { values = try values.reshaped(to: [1]) }
    return .host(TensorValue(variable: try variable.replacing(at: positions, with: values)))
  }

  static func components(_ items: [IndexValue]) throws -> [Tensor.IndexComponent] {
    try items.map { item -> Tensor.IndexComponent in
      switch item {
      case .single(.int(let i)): return .index(i)
      case .single(.none): return .newAxis
      case .single(let v): throw LatheError("tensor indices are ints, slices, ..., none or one mask, got \(v.typeName)", kind: .type)
      case .slice(let a, let b, let c): return .slice(a, b, c)
      case .ellipsis: return .ellipsis
      }
    }
  }

  public func index(_ items: [IndexValue]) throws -> Value {
    if items.count == 1, case .single(.host(let h as TensorValue)) = items[0] {
      let (positions, _) = try positions(items)
      _ = h
      return .host(TensorValue(variable: try variable.selected(at: positions)))
    }
    let components = try TensorValue.components(items)
    let view = try variable.indexed(components)
    if view.value.rank == 0 { return TensorValue.scalar(view.value) }
    return .host(TensorValue(variable: view))
  }

  /// A rank-0 result as a number: an int for i32, a float otherwise.
  static func scalar(_ t: Tensor) -> Value {
    let x = t.scalars.first ?? 0
    return t.dtype.isInteger ? .int(Int(x)) : .float(Double(x))
  }

  public func reduced(_ op: String, axis: Int?, keepdims: Bool) throws -> Value {
    let kind: Reduction
    switch op {
    case "sum": kind = .sum
    case "mean": kind = .mean
    case "max": kind = .max
    default: kind = .min
    }
    // sum and mean keep the graph (a 0-d tensor when everything is reduced and a gradient flows).
    if (kind == .sum || kind == .mean) && variable.requiresGrad {
      let out = kind == .sum ? try variable.sum(axis: axis, keepdims: keepdims) : try variable.mean(axis: axis, keepdims: keepdims)
      return .host(TensorValue(variable: out))
    }
    var out = try tensor.reduce(kind, axis: axis, keepdims: keepdims)
    // The sum of a mask counts, as numpy's does: integers in, integers out (except for mean).
    if tensor.dtype.isInteger && kind != .mean { out = try out.copied(as: .i32) }
    return axis == nil && !keepdims ? TensorValue.scalar(out) : .host(TensorValue(out))
  }

  public func elements() throws -> [Value] {
    guard tensor.rank > 0 else { throw LatheError("cannot iterate over a 0-d tensor", kind: .type) }
    return try (0..<tensor.shape[0]).map { i in
      let row = try variable.indexed([.index(i)])
      return row.value.rank == 0 ? TensorValue.scalar(row.value) : .host(TensorValue(variable: row))
    }
  }

  /// Saved as: rank (UInt32), each dimension (UInt64), a format byte (0: f32 elements), then the elements
  /// little-endian. i32 tensors are saved as f32 (exact up to 2^24).
  public func serialized() throws -> (kind: String, bytes: [UInt8])? {
    let t = try tensor.contiguous()
    var out: [UInt8] = []
    func put<T: FixedWidthInteger>(_ x: T) { withUnsafeBytes(of: x.littleEndian) { out += $0 } }
    put(UInt32(t.rank))
    for d in t.shape { put(UInt64(d)) }
    put(UInt8(0))
    for x in t.scalars { put(x.bitPattern) }
    return ("tensor", out)
  }

  static func deserialize(_ bytes: [UInt8]) throws -> Value {
    var p = 0
    func take<T: FixedWidthInteger>(_: T.Type) throws -> T {
      guard bytes.count - p >= MemoryLayout<T>.size else { throw LatheError("load: saved tensor is truncated") }
      var x: T = 0
      withUnsafeMutableBytes(of: &x) { $0.copyBytes(from: bytes[p..<(p + MemoryLayout<T>.size)]) }
      p += MemoryLayout<T>.size
      return T(littleEndian: x)
    }
    let rank = Int(try take(UInt32.self))
    guard rank <= 32 else { throw LatheError("load: saved tensor has rank \(rank)") }
    var shape: [Int] = []
    for _ in 0..<rank {
      let d = try take(UInt64.self)
      guard d <= UInt64(Int32.max) else { throw LatheError("load: saved tensor has a dimension of \(d)") }
      shape.append(Int(d))
    }
    _ = try take(UInt8.self)
    guard let n = Memory.count(shape), n == (bytes.count - p) / 4, (bytes.count - p) % 4 == 0 else {
      throw LatheError("load: saved tensor of shape \(shape) has \(bytes.count - p) bytes of data")
    }
    var values: [Float] = []
    values.reserveCapacity(n)
    for _ in 0..<n { values.append(Float(bitPattern: try take(UInt32.self))) }
    return .host(TensorValue(try Tensor(values, shape: shape)))
  }
}
