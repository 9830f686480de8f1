// Differentiable versions of numpy's selection functions: maximum and minimum, clamp, std, cumsum, sort, quantile,
// boolean-mask selection and assignment. Rounding functions pass a zero gradient, as in PyTorch.

import Foundation

extension Variable {
  // d max(a, b) = g to the larger side; a tie splits g in half (PyTorch's rule). min is the mirror image.
  public func extremum(_ other: Variable, maximum: Bool) throws -> Variable {
    let a = value, b = other.value
    let out = maximum ? try a.maximum(b) : try a.minimum(b)
    return Variable(out, parents: [self, other]) { g in
      let toA = try a.zipBroadcast(b, op: "maximum") { x, y in x == y ? 0.5 : ((x > y) == maximum ? 1 : 0) }
      let toB = try toA.map { 1 - $0 }
      return [try g.multiply(toA).summed(toShape: a.shape), try g.multiply(toB).summed(toShape: b.shape)]
    }
  }

  // d clamp(x) = g where lo ≤ x ≤ hi, else 0.
  public func clamped(min lo: Float?, max hi: Float?) throws -> Variable {
    let x = value
    return Variable(try x.clamped(min: lo, max: hi), parents: [self]) { g in
      let inside = try x.map { v in (lo.map { v >= $0 } ?? true) && (hi.map { v <= $0 } ?? true) ? 1 : 0 }
      return [try g.multiply(inside)]
    }
  }

  /// A result that is piecewise constant in x (round, floor, ceil, sign): its gradient is zero.
  public func piecewiseConstant(_ y: Tensor) -> Variable {
    let shape = value.shape
    return Variable(y, parents: [self]) { _ in [try Tensor.zeros(shape)] }
  }

  // d std = g·(x − mean) / ((n − ddof)·std), broadcast over the reduced axis.
  public func std(axis: Int? = nil, keepdims: Bool = false, ddof: Int = 0) throws -> Variable {
    let x = value
    let s = try x.reduce(.variance, axis: axis, keepdims: true, ddof: ddof).unary(.sqrt)
    let n = axis.map { x.shape[(try? x.normalizedAxis($0, op: "std")) ?? 0] } ?? x.count
    var outShape = s.shape
    if !keepdims { outShape = axis == nil ? [] : { var t = x.shape; t.remove(at: (try? x.normalizedAxis(axis ?? 0, op: "std")) ?? 0); return t }() }
    let out = try s.reshaped(to: outShape)
    return Variable(out, parents: [self]) { g in
      let mean = try x.reduce(.mean, axis: axis, keepdims: true)
      let scale = try s.binary(.multiply, scalar: Float(n - ddof))
      let gk = try g.reshaped(to: s.shape)
      return [try x.subtract(mean).divide(scale).multiply(gk)]
    }
  }

  // d cumsum = the reversed running sum of g.
  public func cumsum(axis: Int?) throws -> Variable {
    let x = value
    return Variable(try x.cumsum(axis: axis), parents: [self]) { g in
      guard let axis else {
        let flat = try g.reshaped(to: [g.count])
        let total = try flat.reduce(.sum, axis: 0)
        return [try total.subtract(flat.cumsum(axis: 0)).add(flat).reshaped(to: x.shape)]
      }
      let total = try g.reduce(.sum, axis: axis, keepdims: true)
      return [try total.subtract(g.cumsum(axis: axis)).add(g)]
    }
  }

  /// The values of a sort along `axis` (the gradient goes back to where each value came from) and the indices.
  public func sorted(axis: Int = -1, descending: Bool = false) throws -> (values: Variable, indices: Tensor) {
    let x = value
    let (values, indices) = try x.sorted(axis: axis, descending: descending)
    guard x.rank > 0 else { return (self, indices) }
    let (_, outer, n, inner) = try x.lanes(axis, op: "sort")
    let result = Variable(values, parents: [self]) { g in
      let gp = try g.contiguous().readPointer(), ip = indices.storage.ints()
      var out = try Tensor(zeros: x.shape, op: "sort")
      let q = try out.mutablePointer()
      for o in 0..<outer {
        for i in 0..<inner {
          let base = o * n * inner + i
          for k in 0..<n { q[base + Int(ip[base + k * inner]) * inner] += gp[base + k * inner] }
        }
      }
      return [out]
    }
    return (result, indices)
  }

  // d quantile = g·(1 − w) to the lower neighbour and g·w to the upper one.
  public func quantile(_ qs: [Float], scalarQ: Bool, axis: Int?, keepdims: Bool = false) throws -> Variable {
    let x = value
    let r = try x.quantile(qs, scalarQ: scalarQ, axis: axis, keepdims: keepdims)
    return Variable(r.values, parents: [self]) { g in
      let gv = try g.contiguous().scalars
      var out = [Float](repeating: 0, count: x.count)
      for k in gv.indices { out[r.lower[k]] += gv[k] * (1 - r.weight[k]); out[r.upper[k]] += gv[k] * r.weight[k] }
      return [try Tensor(out, shape: x.shape)]
    }
  }

  /// `x[mask]`: the selected elements as a 1-D tensor; the gradient is scattered back.
  public func selected(at positions: [Int]) throws -> Variable {
    let shape = value.shape
    return Variable(try value.gathered(at: positions), parents: [self]) { g in
      var out = [Float](repeating: 0, count: shape.reduce(1, *))
      for (k, v) in g.scalars.enumerated() { out[positions[k]] += v }
      return [try Tensor(out, shape: shape)]
    }
  }

  /// `x[mask] = values`: a copy with the selected elements replaced by `values` (as many as selected, or one);
  /// the gradient goes to x where not replaced, and to the values that replaced.
  public func replacing(at positions: [Int], with values: Variable) throws -> Variable {
    let shape = value.shape, valueShape = values.value.shape
    let out = try value.replacing(at: positions, with: values.value.scalars)
    return Variable(out, parents: [self, values]) { g in
      var gx = g.scalars
      var gv = [Float](repeating: 0, count: Swift.max(1, valueShape.reduce(1, *)))
      for (k, at) in positions.enumerated() { gv[gv.count == 1 ? 0 : k] += gx[at]; gx[at] = 0 }
      return [try Tensor(gx, shape: shape), try Tensor(gv, shape: valueShape)]
    }
  }
}
