// Builtin rows for numpy's everyday functions on tensors: rounding, clamp, maximum and minimum, std, quantile,
// cumsum, item, allclose and equal, any and all. Each keeps working on plain numbers where the core has a row.

import LatheLang
import LatheTensor

extension TensorBuiltins {
  /// Whether a value is (or holds) a tensor: numbers keep the core's number rows.
  static func isTensor(_ v: Value) -> Bool {
    if case .host(let h) = v, h is TensorValue { return true }
    if case .list = v { return true }
    return false
  }

  /// A tensor result, or its one number when it is 0-d and nothing needs its gradient.
  static func result(_ v: Variable) -> Value {
    v.value.rank == 0 && !v.requiresGrad ? TensorValue.scalar(v.value) : wrap(v)
  }

  static func optionalFloat(_ c: NativeCall, _ i: Int) throws -> Float? { c.isNone(i) ? nil : Float(try c.double(i)) }

  static func registerNumpy(_ r: BuiltinRegistry) {
    let rounding: [(String, String, (Tensor) throws -> Tensor)] = [
      ("floor", "Largest integer not above x", { try $0.floored() }),
      ("ceil", "Smallest integer not below x", { try $0.ceiled() }),
      ("sign", "-1, 0 or 1 by the sign of x (NaN stays NaN)", { try $0.sign() }),
    ]
    for (name, doc, f) in rounding {
      let numeric = r.lookup(name)
      r.add(name, [ParameterSpec("x")], doc: "\(doc); elementwise on tensors (an int for a number).",
            example: "\(name)(tensor([-1.5, 0.2, 2.7]))") { c in
        if !isTensor(c[0]), let numeric { return try c.interpreter.call(.function(numeric), [c[0]]) }
        if !isTensor(c[0]) { let x = try c.double(0); return .float(Double(try f(try Tensor([Float(x)], shape: [])).scalars[0])) }
        let x = try variable(c[0], "\(name): x")
        return wrap(x.piecewiseConstant(try f(x.value)))
      }
    }
    let numericRound = r.lookup("round")
    r.add("round", [ParameterSpec("x"), ParameterSpec("digits", default: Value.none)],
          doc: "Rounds half to even (numpy's round), to an int or to `digits` decimals; elementwise on tensors.",
          example: "round(tensor([0.5, 1.5, 2.675]), digits: 2)") { c in
      if !isTensor(c[0]), let numericRound { return try c.interpreter.call(.function(numericRound), [c[0], c[1]]) }
      let x = try variable(c[0], "round: x")
      return wrap(x.piecewiseConstant(try x.value.rounded(digits: c.isNone(1) ? 0 : try c.int(1))))
    }
    r.add("clamp", [ParameterSpec("x"), ParameterSpec("min", default: Value.none), ParameterSpec("max", default: Value.none)],
          doc: "x limited to [min, max] (numpy's clip, torch's clamp); either bound may be left out. The gradient "
            + "passes where x is inside.", example: "clamp(tensor([-2, 0.5, 3]), min: -1, max: 1)") { c in
      let lo = try optionalFloat(c, 1), hi = try optionalFloat(c, 2)
      if case .int(let i) = c[0], [c[1], c[2]].allSatisfy({ if case .float = $0 { return false }; return true }) {
        // Ints stay ints, compared as ints (a double would round Int.max up past it).
        let lo = c.isNone(1) ? Int.min : try c.int(1), hi = c.isNone(2) ? Int.max : try c.int(2)
        guard lo <= hi else { throw LatheError("clamp: min \(lo) is greater than max \(hi)") }
        return .int(Swift.min(hi, Swift.max(lo, i)))
      }
      if case .int(let i) = c[0] {
        if let lo, let hi, lo > hi { throw LatheError("clamp: min \(lo) is greater than max \(hi)") }
        return .float(Swift.min(Double(hi ?? .infinity), Swift.max(Double(lo ?? -.infinity), Double(i))))
      }
      if case .float(let d) = c[0] {
        if let lo, let hi, lo > hi { throw LatheError("clamp: min \(lo) is greater than max \(hi)") }
        return .float(d.isNaN ? d : Swift.min(Double(hi ?? .infinity), Swift.max(Double(lo ?? -.infinity), d)))
      }
      return wrap(try variable(c[0], "clamp: x").clamped(min: lo, max: hi))
    }
    for (name, isMax) in [("maximum", true), ("minimum", false)] {
      r.add(name, [ParameterSpec("a"), ParameterSpec("b")],
            doc: "The elementwise \(isMax ? "larger" : "smaller") of a and b, broadcast; NaN wins (numpy's \(name)). "
              + "The gradient goes to the chosen side (half each on a tie).", example: "\(name)(tensor([1, 5]), tensor([3, 2]))") { c in
        if !isTensor(c[0]) && !isTensor(c[1]) {
          if case .int(let a) = c[0], case .int(let b) = c[1] { return .int(isMax ? Swift.max(a, b) : Swift.min(a, b)) }
          let a = try c.double(0), b = try c.double(1)
          return .float(a.isNaN || b.isNaN ? Double.nan : (isMax ? Swift.max(a, b) : Swift.min(a, b)))
        }
        return wrap(try variable(c[0], "\(name): a").extremum(try variable(c[1], "\(name): b"), maximum: isMax))
      }
    }
    r.add("std", [ParameterSpec("x"), ParameterSpec("axis", default: Value.none), ParameterSpec("keepdims", default: .bool(false)),
                  ParameterSpec("ddof", default: .int(0))],
          doc: "Standard deviation (numpy's std: ddof 0 by default), along an axis or over all; differentiable.",
          example: "std(tensor([1, 2, 3, 4]))") { c in
      result(try variable(c[0], "std: x").std(axis: try optionalAxis(c[1], "std"), keepdims: try c.bool(2), ddof: try c.int(3)))
    }
    r.add("quantile", [ParameterSpec("x"), ParameterSpec("q"), ParameterSpec("axis", default: Value.none),
                       ParameterSpec("keepdims", default: .bool(false))],
          doc: "numpy's quantile (linear interpolation): q in [0, 1], one number or a list (a leading axis per q); "
            + "NaN in a lane gives NaN.", example: "quantile(tensor([1, 2, 3, 4]), 0.5)") { c in
      let qs: [Float], scalarQ: Bool
      switch c[1] {
      case .int, .float: qs = [Float(try c.double(1))]; scalarQ = true
      default: qs = try tensor(c[1], "quantile: q").scalars; scalarQ = false
      }
      return result(try variable(c[0], "quantile: x").quantile(qs, scalarQ: scalarQ, axis: try optionalAxis(c[2], "quantile"),
                                                                keepdims: try c.bool(3)))
    }
    r.add("cumsum", [ParameterSpec("x"), ParameterSpec("axis", default: Value.none)],
          doc: "Running sums along an axis (of the flattened tensor without one); differentiable.",
          example: "cumsum(tensor([1, 2, 3]))") { c in
      wrap(try variable(c[0], "cumsum: x").cumsum(axis: try optionalAxis(c[1], "cumsum")))
    }
    r.add("bincount", [ParameterSpec("x"), ParameterSpec("length", default: Value.none)],
          doc: "How often each value 0, 1, 2, … occurs in x (non-negative integers: a tensor or a list, such as token ids), as a float tensor of max(x) + 1 counts, or `length` (numpy's bincount with minlength, and no longer).",
          example: "bincount([0, 2, 2, 5], length: 8)") { c in
      let values: [Float]
      if case .list(let items) = c[0] {
        values = try items.map { v -> Float in
          guard case .int(let i) = v else { throw LatheError("bincount: x must hold ints, got \(v.typeName)", kind: .type) }
          return Float(i)
        }
      } else {
        values = try tensor(c[0], "bincount: x").scalars
      }
      var top = -1
      for v in values {
        guard v >= 0, v == v.rounded(), v < 16_777_216 else { throw LatheError("bincount: x must hold integers in 0..<16777216, got \(v)") }
        top = max(top, Int(v))
      }
      var length = top + 1
      if !c.isNone(1) {
        let given = try c.int(1)
        guard given >= 0, given <= 16_777_216 else { throw LatheError("bincount: length must be in 0...16777216, got \(given)") }
        guard given > top else { throw LatheError("bincount: x holds \(top), which does not fit length \(given)") }
        length = given
      }
      var counts = [Float](repeating: 0, count: length)
      for v in values { counts[Int(v)] += 1 }
      return wrap(try Tensor(counts, shape: [length]))
    }
    r.add("item", [ParameterSpec("x")], doc: "The one element of a tensor as a number (an int for integer dtypes).",
          example: "item(tensor([[2.5]]))") { c in
      if case .int = c[0] { return c[0] }
      if case .float = c[0] { return c[0] }
      let t = try tensor(c[0], "item: x")
      guard t.count == 1 else { throw LatheError("item: needs a tensor of one element, got shape \(t.shape)", kind: .type) }
      return TensorValue.scalar(try t.reshaped(to: []))
    }
    r.add("allclose", [ParameterSpec("a"), ParameterSpec("b"), ParameterSpec("rtol", default: .float(1e-5)),
                       ParameterSpec("atol", default: .float(1e-8)), ParameterSpec("equalNan", default: .bool(false))],
          doc: "Whether |a − b| ≤ atol + rtol·|b| everywhere (numpy's allclose, broadcast; NaNs equal only with equalNan).",
          example: "allclose(tensor([1, 2]), tensor([1, 2.000001]))") { c in
      .bool(try tensor(c[0], "allclose: a").allClose(try tensor(c[1], "allclose: b"), rtol: Float(try c.double(2)),
                                                      atol: Float(try c.double(3)), equalNaN: try c.bool(4)))
    }
    r.add("equal", [ParameterSpec("a"), ParameterSpec("b")],
          doc: "Whether two tensors have the same shape and elements (numpy's array_equal; NaN is not equal to NaN).",
          example: "equal(tensor([1, 2]), tensor([1, 2]))") { c in
      .bool(try tensor(c[0], "equal: a").equals(try tensor(c[1], "equal: b")))
    }
    for (name, isAll) in [("any", false), ("all", true)] {
      r.add(name, [ParameterSpec("xs"), ParameterSpec("keep", default: Value.none), ParameterSpec("axis", default: Value.none)],
            doc: "Whether \(isAll ? "every" : "any") element holds: of a mask or tensor (nonzero; a mask along an axis), "
              + "of a list of bools, or keep(x) for each element of a list.",
            example: "\(name)(tensor([0, 1, 0]) > 0)") { c in
        if !c.isNone(1) {
          let keep = try c.function(1)
          for x in try c.list(0) {
            let v = try c.interpreter.call(.function(keep), [x])
            guard let holds = try v.conditionValue() else {
              throw LatheError("\(name): keep must return a bool, got \(v.typeName)", kind: .type)
            }
            if holds != isAll { return .bool(!isAll) }
          }
          return .bool(isAll)
        }
        if case .list(let xs) = c[0], xs.allSatisfy({ if case .bool = $0 { return true }; return false }) {
          let flags = xs.map { if case .bool(let b) = $0 { return b }; return false }
          return .bool(isAll ? flags.allSatisfy { $0 } : flags.contains(true))
        }
        let nonzero = try tensor(c[0], "\(name): xs").mapped(op: name) { $0 != 0 ? 1 : 0 }
        guard let axis = try optionalAxis(c[2], name) else {
          let v = nonzero.scalars
          return .bool(isAll ? !v.contains(0) : v.contains(1))
        }
        guard nonzero.count > 0 else { return wrap(try Tensor.full(try nonzero.reduce(.sum, axis: axis).shape, isAll ? 1 : 0).copied(as: .u8)) }
        return wrap(try nonzero.reduce(isAll ? .min : .max, axis: axis).copied(as: .u8))
      }
    }
  }
}
