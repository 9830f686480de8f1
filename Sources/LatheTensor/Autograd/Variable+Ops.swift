// Differentiable operations: each forward beside its backward rule (the closed form in a comment).

import Foundation

extension Tensor {
  /// Sums a broadcast gradient back to `target` shape: over leading axes, and over axes where target has 1.
  public func summed(toShape target: [Int]) throws -> Tensor {
    if shape == target { return self }
    var t = self
    while t.rank > target.count { t = try t.reduce(.sum, axis: 0) }
    for axis in 0..<target.count where target[axis] == 1 && t.shape[axis] != 1 {
      t = try t.reduce(.sum, axis: axis, keepdims: true)
    }
    return try t.reshaped(to: target)
  }
}

extension Variable {
  // d(a+b) = (g, g), each summed to its operand's shape.
  public func add(_ other: Variable) throws -> Variable {
    let a = value, b = other.value
    return Variable(try a.add(b), parents: [self, other]) { g in [try g.summed(toShape: a.shape), try g.summed(toShape: b.shape)] }
  }

  public func subtract(_ other: Variable) throws -> Variable {
    let a = value, b = other.value
    return Variable(try a.subtract(b), parents: [self, other]) { g in
      [try g.summed(toShape: a.shape), try g.negated().summed(toShape: b.shape)]
    }
  }

  // d(a·b) = (g·b, g·a).
  public func multiply(_ other: Variable) throws -> Variable {
    let a = value, b = other.value
    return Variable(try a.multiply(b), parents: [self, other]) { g in
      [try g.multiply(b).summed(toShape: a.shape), try g.multiply(a).summed(toShape: b.shape)]
    }
  }

  // d(a/b) = (g/b, -g·a/b²).
  public func divide(_ other: Variable) throws -> Variable {
    let a = value, b = other.value
    return Variable(try a.divide(b), parents: [self, other]) { g in
      [try g.divide(b).summed(toShape: a.shape), try g.multiply(a).divide(b.multiply(b)).negated().summed(toShape: b.shape)]
    }
  }

  public func scaled(by s: Float) throws -> Variable {
    Variable(try value.binary(.multiply, scalar: s), parents: [self]) { g in [try g.binary(.multiply, scalar: s)] }
  }

  /// x / s, divided (not multiplied by 1/s) so the result is the correctly rounded quotient, as in numpy.
  public func divided(by s: Float) throws -> Variable {
    Variable(try value.binary(.divide, scalar: s), parents: [self]) { g in [try g.binary(.divide, scalar: s)] }
  }

  public func shifted(by s: Float) throws -> Variable {
    Variable(try value.binary(.add, scalar: s), parents: [self]) { g in [g] }
  }

  // d(x^p) = g·p·x^(p-1) for a constant p.
  public func power(_ p: Float) throws -> Variable {
    let x = value
    return Variable(try x.binary(.power, scalar: p), parents: [self]) { g in
      [try g.multiply(x.binary(.power, scalar: p - 1)).binary(.multiply, scalar: p)]
    }
  }

  public func negated() throws -> Variable {
    Variable(try value.negated(), parents: [self]) { g in [try g.negated()] }
  }

  // d(A·B) = (g·Bᵀ, Aᵀ·g); batched: per batch, summed when B is shared.
  public func matmul(_ other: Variable) throws -> Variable {
    let a = value, b = other.value
    return Variable(try a.matmul(b), parents: [self, other]) { g in
      if a.rank == 2 { return [try g.matmul(b.transposed()), try a.transposed().matmul(g)] }
      let ga = try g.matmul(b.rank == 3 ? b.swappedAxes(1, 2) : b.transposed())
      var gb = try a.swappedAxes(1, 2).matmul(g)
      if b.rank == 2 { gb = try gb.reduce(.sum, axis: 0) }
      return [ga, gb]
    }
  }

  /// Elementwise functions with their derivatives written out (y is the output, x the input).
  public func unary(_ kernel: UnaryKernel) throws -> Variable {
    let x = value
    let y = try x.unary(kernel)
    return Variable(y, parents: [self]) { g in
      let d: Tensor
      switch kernel {
      case .negate: d = try Tensor.full(x.shape, -1)
      case .exp: d = y                                              // e^x
      case .log: d = try x.binary(.divide, scalar: 1, scalarOnLeft: true)   // 1/x
      case .sqrt: d = try y.binary(.multiply, scalar: 2).binary(.divide, scalar: 1, scalarOnLeft: true)  // 1/(2√x)
      case .abs: d = try x.map { $0 > 0 ? 1 : ($0 < 0 ? -1 : 0) }
      case .relu: d = try x.map { $0 > 0 ? 1 : 0 }
      case .sigmoid: d = try y.map { $0 * (1 - $0) }                    // σ(1-σ)
      case .tanh: d = try y.map { 1 - $0 * $0 }                          // 1 - tanh²
      case .silu: d = try x.map { v in let s = 1 / (1 + Foundation.exp(-v)); return s * (1 + v * (1 - s)) }
      case .gelu:
        d = try x.map { v in                                            // derivative of the tanh form
          let c: Float = 0.7978845608, k: Float = 0.044715
          let u = c * (v + k * v * v * v), t = Foundation.tanh(u)
          return 0.5 * (1 + t) + 0.5 * v * (1 - t * t) * c * (1 + 3 * k * v * v)
        }
      }
      return [try g.multiply(d)]
    }
  }

  // d(Σ x) = g broadcast back over the reduced axis.
  public func sum(axis: Int? = nil, keepdims: Bool = false) throws -> Variable {
    let x = value
    let out = try x.reduce(.sum, axis: axis, keepdims: keepdims)
    return Variable(out, parents: [self]) { g in
      var gk = g
      if let axis, !keepdims { var s = x.shape; s[try x.normalizedAxis(axis, op: "sum")] = 1; gk = try g.reshaped(to: s) }
      return [try gk.add(Tensor.zeros(x.shape))]
    }
  }

  public func mean(axis: Int? = nil, keepdims: Bool = false) throws -> Variable {
    let n = axis.map { value.shape[(try? value.normalizedAxis($0, op: "mean")) ?? 0] } ?? value.count
    return try sum(axis: axis, keepdims: keepdims).scaled(by: 1 / Float(Swift.max(n, 1)))
  }

  public func reshaped(to shape: [Int]) throws -> Variable {
    let original = value.shape
    return Variable(try value.reshaped(to: shape), parents: [self]) { g in [try g.reshaped(to: original)] }
  }

  public func transposed() throws -> Variable {
    Variable(try value.transposed(), parents: [self]) { g in [try g.transposed()] }
  }

  public func permuted(_ axes: [Int]) throws -> Variable {
    let inverse = try axes.enumerated().sorted { $0.element < $1.element }.map(\.offset)
    _ = try value.permuted(axes)
    return Variable(try value.permuted(axes), parents: [self]) { g in [try g.permuted(inverse)] }
  }

  // log-softmax: y = x - logΣe^x; dx = g - softmax(x)·Σg (along the axis).
  public func logSoftmax(axis: Int = -1) throws -> Variable {
    let y = try value.softmax(axis: axis, log: true)
    return Variable(y, parents: [self]) { g in
      let p = try y.unary(.exp)
      let s = try g.reduce(.sum, axis: axis, keepdims: true)
      return [try g.subtract(p.multiply(s))]
    }
  }

  public func softmax(axis: Int = -1) throws -> Variable {
    let y = try value.softmax(axis: axis)
    return Variable(y, parents: [self]) { g in
      let s = try g.multiply(y).reduce(.sum, axis: axis, keepdims: true)   // dx = y·(g - Σ g·y)
      return [try y.multiply(g.subtract(s))]
    }
  }
}

extension Tensor {
  /// A new tensor with `f` applied to each element (for backward rules; not a hot path).
  public func map(_ f: (Float) -> Float) throws -> Tensor {
    let src = try contiguous()
    var out = try Tensor(zeros: shape, op: "map")
    let p = src.readPointer(), q = try out.mutablePointer()
    for i in 0..<count { q[i] = f(p[i]) }
    return out
  }
}

extension Variable {
  // Indexing is a view; its gradient is g written into zeros of the input's shape at the viewed positions.
  public func indexed(_ items: [Tensor.IndexComponent]) throws -> Variable {
    let shape = value.shape
    return Variable(try value.indexed(items), parents: [self]) { g in [try Tensor.indexBackward(shape: shape, items: items, grad: g)] }
  }

  /// Two axes swapped (a view); the gradient swaps them back.
  public func swappedAxes(_ a: Int, _ b: Int) throws -> Variable {
    var axes = Array(0..<value.rank)
    axes.swapAt(try value.normalizedAxis(a, op: "swapaxes"), try value.normalizedAxis(b, op: "swapaxes"))
    return try permuted(axes)
  }
}

extension Tensor {
  /// Zeros of `shape` with `grad` added at the positions `items` select (the backward of `indexed`).
  public static func indexBackward(shape: [Int], items: [IndexComponent], grad: Tensor) throws -> Tensor {
    let out = try Tensor(zeros: shape, op: "index")
    let view = try out.indexed(items)
    let g = try grad.contiguous().scalars
    var i = 0
    let p = out.storage.floats()
    view.forEachOffset { o in p[o] += g[i]; i += 1 }
    return out
  }
}

extension Variable {
  public static func conv2d(_ x: Variable, _ weight: Variable, bias: Variable?, stride: Int = 1, padding: Int = 0,
                            dilation: Int = 1, groups: Int = 1) throws -> Variable {
    let xv = x.value, wv = weight.value
    let out = try Tensor.conv2d(xv, wv, bias: bias?.value, stride: stride, padding: padding, dilation: dilation, groups: groups)
    let parents = [x, weight] + (bias.map { [$0] } ?? [])
    return Variable(out, parents: parents) { g in
      let (dx, dw, db) = try Tensor.conv2dBackward(xv, wv, grad: g, stride: stride, padding: padding, dilation: dilation, groups: groups)
      return bias == nil ? [dx, dw] : [dx, dw, db]
    }
  }

  /// Max pooling; the gradient goes to each window's maximum.
  public func maxPool2d(kernel: Int, stride: Int? = nil, padding: Int = 0) throws -> Variable {
    let shape = value.shape
    let (out, argmax) = try Tensor.maxPool2d(value, kernel: kernel, stride: stride, padding: padding)
    return Variable(out, parents: [self]) { g in
      var dx = try Tensor(zeros: shape, op: "maxpool2d")
      let p = try dx.mutablePointer(), gv = try g.contiguous().readPointer()
      for (o, i) in argmax.enumerated() where i >= 0 { p[Int(i)] += gv[o] }
      return [dx]
    }
  }

  public func avgPool2d(kernel: Int, stride: Int? = nil, padding: Int = 0) throws -> Variable {
    let shape = value.shape
    let s = stride ?? kernel
    let out = try Tensor.avgPool2d(value, kernel: kernel, stride: s, padding: padding)
    return Variable(out, parents: [self]) { g in
      // The adjoint of averaging: each window's gradient spread evenly over it (a conv2d backward with a constant kernel).
      let c = shape[1]
      let w = try Tensor.full([c, 1, kernel, kernel], 1 / Float(kernel * kernel))
      let (dx, _, _) = try Tensor.conv2dBackward(try Tensor(zeros: shape), w, grad: g, stride: s, padding: padding, dilation: 1, groups: c)
      return [dx]
    }
  }
}
