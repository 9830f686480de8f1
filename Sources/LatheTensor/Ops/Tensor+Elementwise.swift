// Elementwise operations with numpy broadcasting: check shapes, then one kernel call (or a strided walk).

extension Tensor {
  /// numpy broadcasting: align trailing axes; each pair of sizes must be equal or contain a 1.
  public static func broadcastShape(_ a: [Int], _ b: [Int], op: String) throws -> [Int] {
    let n = max(a.count, b.count)
    var out = [Int](repeating: 1, count: n)
    for i in 0..<n {
      let x = i < n - a.count ? 1 : a[i - (n - a.count)]
      let y = i < n - b.count ? 1 : b[i - (n - b.count)]
      guard x == y || x == 1 || y == 1 else { throw TensorError.shapeMismatch(op: op, lhs: a, rhs: b) }
      out[i] = x == 1 ? y : x
    }
    return out
  }

  /// Strides that read this tensor as if it had `target` shape (0 along broadcast axes).
  func broadcastStrides(to target: [Int]) -> [Int] {
    var out = [Int](repeating: 0, count: target.count)
    let shift = target.count - rank
    for i in 0..<rank where shape[i] != 1 { out[i + shift] = strides[i] }
    return out
  }

  public func add(_ other: Tensor) throws -> Tensor { try binary(.add, other, op: "add") }
  public func subtract(_ other: Tensor) throws -> Tensor { try binary(.subtract, other, op: "subtract") }
  public func multiply(_ other: Tensor) throws -> Tensor { try binary(.multiply, other, op: "multiply") }
  public func divide(_ other: Tensor) throws -> Tensor { try binary(.divide, other, op: "divide") }
  public func power(_ other: Tensor) throws -> Tensor { try binary(.power, other, op: "power") }
  public func maximum(_ other: Tensor) throws -> Tensor { try binary(.maximum, other, op: "maximum") }
  public func minimum(_ other: Tensor) throws -> Tensor { try binary(.minimum, other, op: "minimum") }

  public func binary(_ kernel: BinaryKernel, _ other: Tensor, op: String) throws -> Tensor {
    let shape = try Tensor.broadcastShape(self.shape, other.shape, op: op)
    var out = try Tensor(uninitialized: shape, op: op)
    let dst = try out.mutablePointer()
    let n = out.count
    guard n > 0 else { return out }
    let a = try contiguousIfF32(), b = try other.contiguousIfF32()
    if a.shape == shape && b.shape == shape && a.isContiguous && b.isContiguous {
      Elementwise.binary(kernel, a.readPointer(), b.readPointer(), dst, count: n)
    } else if a.shape == shape && a.isContiguous && b.count == 1 {
      Elementwise.binaryScalar(kernel, a.readPointer(), b.element(atOffset: b.offset), scalarOnLeft: false, dst, count: n)
    } else if b.shape == shape && b.isContiguous && a.count == 1 {
      Elementwise.binaryScalar(kernel, b.readPointer(), a.element(atOffset: a.offset), scalarOnLeft: true, dst, count: n)
    } else {
      return try a.zipBroadcast(b, op: op) { kernel.scalar($0, $1) }      // general broadcast: one strided walk
    }
    return out
  }

  /// Self when it already holds f32 elements (any layout), else an f32 copy.
  func contiguousIfF32() throws -> Tensor { dtype == .f32 ? self : try copied(as: .f32) }

  public func unary(_ kernel: UnaryKernel) throws -> Tensor {
    let src = try contiguous()
    var out = try Tensor(uninitialized: shape, op: kernel.rawValue)
    Elementwise.unary(kernel, src.readPointer(), try out.mutablePointer(), count: out.count)
    return out
  }

  public func negated() throws -> Tensor { try unary(.negate) }

  /// `x op s` for a scalar s.
  public func binary(_ kernel: BinaryKernel, scalar s: Float, scalarOnLeft: Bool = false) throws -> Tensor {
    let src = try contiguous()
    var out = try Tensor(uninitialized: shape, op: kernel.rawValue)
    Elementwise.binaryScalar(kernel, src.readPointer(), s, scalarOnLeft: scalarOnLeft, try out.mutablePointer(), count: out.count)
    return out
  }
}
