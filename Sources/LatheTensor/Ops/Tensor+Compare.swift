// numpy's comparison and selection functions: masks (u8 of 0 and 1) from comparisons, rounding, clip, sort,
// cumsum, quantile, allclose and array_equal, and boolean-mask selection. Not hot paths: a plain loop each.

import Foundation

/// An elementwise comparison; NaN compares false except under `notEqual`, as in IEEE and numpy.
public enum Comparison: String, Sendable {
  case equal = "==", notEqual = "!=", less = "<", lessEqual = "<=", greater = ">", greaterEqual = ">="

  @inline(__always) public func holds(_ a: Float, _ b: Float) -> Bool {
    switch self {
    case .equal: return a == b
    case .notEqual: return a != b
    case .less: return a < b
    case .lessEqual: return a <= b
    case .greater: return a > b
    case .greaterEqual: return a >= b
    }
  }
}

extension Tensor {
  /// `f(a, b)` over the broadcast shape of two tensors, into a new tensor of `dtype` (any dtype reads as f32).
  public func zipBroadcast(_ other: Tensor, op: String, dtype: DType = .f32, _ f: (Float, Float) -> Float) throws -> Tensor {
    let shape = try Tensor.broadcastShape(self.shape, other.shape, op: op)
    let out = try Tensor(zeros: shape, dtype: dtype, op: op)
    let n = out.count
    guard n > 0 else { return out }
    let sa = broadcastStrides(to: shape), sb = other.broadcastStrides(to: shape)
    var index = [Int](repeating: 0, count: shape.count)
    var oa = offset, ob = other.offset
    let dst = out.storage.bytes
    for i in 0..<n {
      dtype.store(f(element(atOffset: oa), other.element(atOffset: ob)), dst, i)
      var axis = shape.count - 1
      while axis >= 0 {
        index[axis] += 1; oa += sa[axis]; ob += sb[axis]
        if index[axis] < shape[axis] { break }
        oa -= sa[axis] * shape[axis]; ob -= sb[axis] * shape[axis]
        index[axis] = 0
        axis -= 1
      }
    }
    return out
  }

  /// A u8 mask of 0 and 1: `self c other`, broadcast.
  public func compared(_ c: Comparison, _ other: Tensor) throws -> Tensor {
    try zipBroadcast(other, op: c.rawValue, dtype: .u8) { c.holds($0, $1) ? 1 : 0 }
  }

  /// `f(x)` of every element into a new tensor of `dtype`.
  public func mapped(op: String, dtype: DType = .f32, _ f: (Float) -> Float) throws -> Tensor {
    let out = try Tensor(zeros: shape, dtype: dtype, op: op)
    var i = 0
    let dst = out.storage.bytes
    forEachOffset { dtype.store(f(self.element(atOffset: $0)), dst, i); i += 1 }
    return out
  }

  /// Whether this is a mask: u8 elements, each 0 or 1.
  public var isMask: Bool { dtype == .u8 }

  /// numpy's round (half to even, to `digits` decimals), floor, ceil and sign; NaN stays NaN.
  public func rounded(digits: Int = 0) throws -> Tensor {
    guard digits != 0 else { return try mapped(op: "round") { $0.rounded(.toNearestOrEven) } }
    let scale = Foundation.pow(10, Double(digits))
    return try mapped(op: "round") { Float((Double($0) * scale).rounded(.toNearestOrEven) / scale) }
  }
  public func floored() throws -> Tensor { try mapped(op: "floor") { $0.rounded(.down) } }
  public func ceiled() throws -> Tensor { try mapped(op: "ceil") { $0.rounded(.up) } }
  public func sign() throws -> Tensor { try mapped(op: "sign") { $0.isNaN ? .nan : ($0 > 0 ? 1 : ($0 < 0 ? -1 : 0)) } }

  /// numpy's clip: each element limited to [lo, hi] (either may be absent); NaN stays NaN.
  public func clamped(min lo: Float?, max hi: Float?) throws -> Tensor {
    if let lo, let hi, lo > hi {
      throw TensorError.invalidArgument(op: "clamp", reason: "min \(lo) is greater than max \(hi)")
    }
    return try mapped(op: "clamp") { x in
      if x.isNaN { return x }
      var y = x
      if let lo, y < lo { y = lo }
      if let hi, y > hi { y = hi }
      return y
    }
  }

  /// Calls `body(outer, inner, n)` shape facts for walking `axis`: element k of lane (o, i) is at o·n·inner + k·inner + i.
  func lanes(_ axis: Int, op: String) throws -> (a: Int, outer: Int, n: Int, inner: Int) {
    let a = try normalizedAxis(axis, op: op)
    return (a, shape[..<a].reduce(1, *), shape[a], shape[(a + 1)...].reduce(1, *))
  }

  /// The order that sorts one lane ascending (or descending), stable; NaN sorts last either way, as in numpy.
  static func sortOrder(_ values: [Float], descending: Bool) -> [Int] {
    values.indices.sorted { i, j in
      let x = values[i], y = values[j]
      if x.isNaN || y.isNaN { return !x.isNaN && y.isNaN ? true : (x.isNaN && y.isNaN ? i < j : false) }
      if x == y { return i < j }
      return descending ? x > y : x < y
    }
  }

  /// Values sorted along `axis` and the indices (i32) they came from; the dtype is kept.
  public func sorted(axis: Int = -1, descending: Bool = false) throws -> (values: Tensor, indices: Tensor) {
    guard rank > 0 else { return (self, try Tensor(zeros: [], dtype: .i32, op: "sort")) }
    let (_, outer, n, inner) = try lanes(axis, op: "sort")
    let src = try contiguous(), p = src.readPointer()
    var values = try Tensor(zeros: shape, op: "sort")
    let indices = try Tensor(zeros: shape, dtype: .i32, op: "sort")
    let vp = try values.mutablePointer(), ip = indices.storage.ints()
    var lane = [Float](repeating: 0, count: n)
    for o in 0..<outer {
      for i in 0..<inner {
        let base = o * n * inner + i
        for k in 0..<n { lane[k] = p[base + k * inner] }
        for (k, j) in Tensor.sortOrder(lane, descending: descending).enumerated() {
          vp[base + k * inner] = lane[j]; ip[base + k * inner] = Int32(j)
        }
      }
    }
    return (dtype == .f32 ? values : try values.copied(as: dtype), indices)
  }

  /// Running sums along `axis` (of the flattened tensor when nil), accumulated in double.
  public func cumsum(axis: Int?) throws -> Tensor {
    guard let axis else { return try reshaped(to: [count]).cumsum(axis: 0) }
    let (_, outer, n, inner) = try lanes(axis, op: "cumsum")
    let src = try contiguous(), p = src.readPointer()
    var out = try Tensor(zeros: shape, op: "cumsum")
    let q = try out.mutablePointer()
    for o in 0..<outer {
      for i in 0..<inner {
        var s: Double = 0
        for k in 0..<n { let at = o * n * inner + k * inner + i; s += Double(p[at]); q[at] = Float(s) }
      }
    }
    return out
  }

  /// numpy's quantile (method "linear"): for each q in [0, 1], the value at position q·(n−1) of the sorted lane,
  /// interpolated between its neighbours. The result has shape `qs.shape + reduced shape` (no q axis for a scalar q);
  /// a lane holding NaN gives NaN. Also returns, per output, the two source indices and the weight of the upper one
  /// (for the gradient).
  public func quantile(_ qs: [Float], scalarQ: Bool, axis: Int?, keepdims: Bool = false) throws
    -> (values: Tensor, lower: [Int], upper: [Int], weight: [Float]) {
    guard let axis else {
      let flat = try reshaped(to: [count]).quantile(qs, scalarQ: scalarQ, axis: 0)
      guard keepdims else { return flat }
      let ones = [Int](repeating: 1, count: rank)
      return (try flat.values.reshaped(to: (scalarQ ? [] : [qs.count]) + ones), flat.lower, flat.upper, flat.weight)
    }
    for q in qs where !(q >= 0 && q <= 1) {
      throw TensorError.invalidArgument(op: "quantile", reason: "quantiles must be in [0, 1], got \(q)")
    }
    let (a, outer, n, inner) = try lanes(axis, op: "quantile")
    guard n > 0 else { throw TensorError.invalidArgument(op: "quantile", reason: "cannot take a quantile of the empty axis \(axis) of shape \(shape)") }
    var reduced = shape
    if keepdims { reduced[a] = 1 } else { reduced.remove(at: a) }
    let outShape = (scalarQ ? [] : [qs.count]) + reduced
    let src = try contiguous(), p = src.readPointer()
    var out = try Tensor(zeros: outShape, op: "quantile")
    let q = try out.mutablePointer()
    let lanesCount = outer * inner
    var lower = [Int](repeating: 0, count: qs.count * lanesCount), upper = lower
    var weight = [Float](repeating: 0, count: qs.count * lanesCount)
    var lane = [Float](repeating: 0, count: n)
    for o in 0..<outer {
      for i in 0..<inner {
        let base = o * n * inner + i
        for k in 0..<n { lane[k] = p[base + k * inner] }
        let order = Tensor.sortOrder(lane, descending: false)
        let hasNaN = lane.contains { $0.isNaN }
        for (qi, qv) in qs.enumerated() {
          let position = Double(qv) * Double(n - 1)
          let lo = Int(position.rounded(.down)), hi = Swift.min(lo + 1, n - 1)
          let frac = Float(position - Double(lo))
          let x = lane[order[lo]], y = lane[order[hi]]
          let at = qi * lanesCount + o * inner + i
          // numpy's lerp: a + (b − a)·t, switched to b − (b − a)·(1 − t) for t ≥ 0.5.
          let value = frac >= 0.5 ? y - (y - x) * (1 - frac) : x + (y - x) * frac
          q[at] = hasNaN ? .nan : (frac == 0 ? x : value)
          lower[at] = base + order[lo] * inner; upper[at] = base + order[hi] * inner; weight[at] = frac
        }
      }
    }
    return (out, lower, upper, weight)
  }

  /// numpy's allclose: |a − b| ≤ atol + rtol·|b| everywhere (broadcast); NaNs equal only with `equalNaN`.
  public func allClose(_ other: Tensor, rtol: Float = 1e-5, atol: Float = 1e-8, equalNaN: Bool = false) throws -> Bool {
    let close = try zipBroadcast(other, op: "allclose", dtype: .u8) { a, b in
      if a.isNaN || b.isNaN { return equalNaN && a.isNaN && b.isNaN ? 1 : 0 }
      if a.isInfinite || b.isInfinite { return a == b ? 1 : 0 }
      return Swift.abs(a - b) <= atol + rtol * Swift.abs(b) ? 1 : 0
    }
    return !close.scalars.contains(0)
  }

  /// numpy's array_equal: the same shape and equal elements (NaN is not equal to NaN).
  public func equals(_ other: Tensor) -> Bool {
    guard shape == other.shape else { return false }
    let a = scalars, b = other.scalars
    return zip(a, b).allSatisfy { $0 == $1 }
  }

  /// The storage offsets (row-major) where a mask of this tensor's shape is nonzero: for `x[mask]`.
  public func maskPositions(_ mask: Tensor, op: String = "index") throws -> [Int] {
    guard mask.shape == shape else {
      throw TensorError.invalidArgument(op: op, reason: "a boolean mask must have the tensor's shape \(shape), got \(mask.shape)")
    }
    let m = mask.scalars
    return m.indices.filter { m[$0] != 0 }
  }

  /// The elements at row-major positions `positions`, as a 1-D tensor of the same dtype's values (f32).
  public func gathered(at positions: [Int]) throws -> Tensor {
    let values = scalars
    let out = try Tensor(positions.map { values[$0] }, shape: [positions.count])
    return dtype == .f32 ? out : try out.copied(as: dtype)
  }

  /// A copy with the elements at row-major `positions` replaced by `values` (one value each, or one for all).
  public func replacing(at positions: [Int], with values: [Float]) throws -> Tensor {
    guard values.count == positions.count || values.count == 1 else {
      throw TensorError.invalidArgument(op: "index assignment", reason: "\(positions.count) positions are selected but \(values.count) values were given")
    }
    var out = try copied(as: .f32)
    let p = try out.mutablePointer()
    for (k, at) in positions.enumerated() { p[at] = values.count == 1 ? values[0] : values[k] }
    return dtype == .f32 ? out : try out.copied(as: dtype)
  }

  /// The row-major positions a basic index (ints, slices, `...`, new axes) selects.
  public func positions(of items: [IndexComponent]) throws -> [Int] {
    let numbering = try Tensor(zeros: shape, dtype: .u8, op: "index")     // contiguous at offset 0: offsets are positions
    var out: [Int] = []
    try numbering.indexed(items).forEachOffset { out.append($0) }
    return out
  }
}
