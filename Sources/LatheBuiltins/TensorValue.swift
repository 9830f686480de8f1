// Tensors as values of the language: members, operators, indexing, iteration over rows, save and load.

import LatheLang
import LatheTensor

public final class TensorValue: IterableHostObject, ReducibleHostObject {
  public let tensor: Tensor
  public init(_ tensor: Tensor) { self.tensor = tensor }

  public var typeName: String { "tensor" }
  public var description: String { tensor.description }
  public var memberNames: [String] { ["shape", "dtype", "T", "ndim", "size", "count"] }

  public func member(_ name: String) throws -> Value? {
    switch name {
    case "shape": return .list(tensor.shape.map { .int($0) })
    case "dtype": return .string(tensor.dtype.rawValue)
    case "T": return .host(TensorValue(try tensor.transposed()))
    case "ndim": return .int(tensor.rank)
    case "size": return .int(tensor.count)
    case "count": return .int(tensor.rank == 0 ? 1 : tensor.shape[0])
    default: return nil
    }
  }

  public func binary(_ op: BinaryOperator, _ other: Value, hostOnLeft: Bool) throws -> Value? {
    let kernel: BinaryKernel
    switch op {
    case .add: kernel = .add
    case .subtract: kernel = .subtract
    case .multiply: kernel = .multiply
    case .divide: kernel = .divide
    case .power: kernel = .power
    case .matmul:
      guard case .host(let h) = other, let rhs = h as? TensorValue else {
        throw LatheError("'@' needs two tensors, got tensor and \(other.typeName)", kind: .type)
      }
      return .host(TensorValue(hostOnLeft ? try tensor.matmul(rhs.tensor) : try rhs.tensor.matmul(tensor)))
    default: return nil
    }
    switch other {
    case .int, .float:
      let s = Float(other.asDouble ?? 0)
      return .host(TensorValue(try tensor.binary(kernel, scalar: s, scalarOnLeft: !hostOnLeft)))
    case .host(let h):
      guard let rhs = h as? TensorValue else { return nil }
      let (a, b) = hostOnLeft ? (tensor, rhs.tensor) : (rhs.tensor, tensor)
      return .host(TensorValue(try a.binary(kernel, b, op: TensorValue.opName(op))))
    default:
      return nil
    }
  }

  static func opName(_ op: BinaryOperator) -> String {
    switch op {
    case .add: return "add"
    case .subtract: return "subtract"
    case .multiply: return "multiply"
    case .divide: return "divide"
    case .power: return "power"
    default: return op.rawValue
    }
  }

  public func unary(_ op: UnaryOperator) throws -> Value? {
    switch op {
    case .negate: return .host(TensorValue(try tensor.negated()))
    case .plus: return .host(self)
    case .not: return nil
    }
  }

  public func index(_ items: [IndexValue]) throws -> Value {
    let components = try items.map { item -> Tensor.IndexComponent in
      switch item {
      case .single(.int(let i)): return .index(i)
      case .single(.none): return .newAxis
      case .single(let v): throw LatheError("tensor indices are ints, slices, ... or none, got \(v.typeName)", kind: .type)
      case .slice(let a, let b, let c): return .slice(a, b, c)
      case .ellipsis: return .ellipsis
      }
    }
    let view = try tensor.indexed(components)
    if view.rank == 0 { return TensorValue.scalar(view) }
    return .host(TensorValue(view))
  }

  /// A rank-0 result as a number: an int for i32, a float otherwise.
  static func scalar(_ t: Tensor) -> Value {
    let x = t.scalars.first ?? 0
    return t.dtype == .i32 ? .int(Int(x)) : .float(Double(x))
  }

  public func reduced(_ op: String, axis: Int?, keepdims: Bool) throws -> Value {
    let kind: Reduction
    switch op {
    case "sum": kind = .sum
    case "mean": kind = .mean
    case "max": kind = .max
    default: kind = .min
    }
    let out = try tensor.reduce(kind, axis: axis, keepdims: keepdims)
    return axis == nil && !keepdims ? TensorValue.scalar(out) : .host(TensorValue(out))
  }

  public func elements() throws -> [Value] {
    guard tensor.rank > 0 else { throw LatheError("cannot iterate over a 0-d tensor", kind: .type) }
    return try (0..<tensor.shape[0]).map { i in
      let row = try tensor.indexed([.index(i)])
      return row.rank == 0 ? TensorValue.scalar(row) : .host(TensorValue(row))
    }
  }

  /// Saved as: rank (UInt32), each dimension (UInt64), dtype tag (UInt8), then the elements little-endian.
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
