// Builtin rows for tensors: creation, shape changes, matmul, elementwise math, reductions and softmax.

import LatheLang
import LatheTensor

public enum Builtins {
  /// The registry a session uses: the language's core rows plus tensors, data, models and plots.
  public static func standard() -> BuiltinRegistry {
    Cancellation.flag = Interrupt.flag                  // long kernels stop on Ctrl-C between tiles
    let r = BuiltinRegistry.core
    TensorBuiltins.register(into: r)
    DataBuiltins.register(into: r)
    NNBuiltins.register(into: r)
    PlotBuiltins.register(into: r)
    FileBuiltins.register(into: r)
    ModelBuiltins.register(into: r)
    TrainingBuiltins.register(into: r)
    TechniqueBuiltins.register(into: r)
    ParallelBuiltins.register(into: r)
    return r
  }
}

extension TensorError: InterruptionReporting {
  public var isInterruption: Bool { if case .interrupted = self { return true } else { return false } }
}

enum TensorBuiltins {
  static func register(into r: BuiltinRegistry) {
    r.addHostDecoder(kind: "tensor", TensorValue.deserialize)
    registerCreation(r)
    registerShape(r)
    registerMath(r, previous: r)
    registerReductions(r)
    registerLayersOps(r)
    registerAttention(r)
    registerNumpy(r)
  }

  // MARK: - Converting arguments

  static func tensor(_ v: Value, _ what: String) throws -> Tensor {
    switch v {
    case .host(let h):
      guard let t = h as? TensorValue else { throw LatheError("\(what) must be a tensor, got \(h.typeName)", kind: .type) }
      return t.tensor
    case .list, .int, .float, .range:
      return try fromNested(v, what)
    default:
      throw LatheError("\(what) must be a tensor or a list of numbers, got \(v.typeName)", kind: .type)
    }
  }

  /// A tensor from nested lists of numbers (rectangular), a number (0-d) or a range.
  static func fromNested(_ v: Value, _ what: String) throws -> Tensor {
    var shape: [Int] = []
    var probe = v
    while true {
      if case .list(let xs) = probe { shape.append(xs.count); guard let first = xs.first else { break }; probe = first }
      else if case .range(let rg) = probe { shape.append(rg.count); break }
      else { break }
      if shape.count > 32 { throw LatheError("\(what): lists nested more than 32 deep") }
    }
    guard let n = Memory.count(shape), n <= Limits.maxElements else { throw LatheError("\(what): too many elements", kind: .limit) }
    var values: [Float] = []
    values.reserveCapacity(n)
    func walk(_ x: Value, _ depth: Int) throws {
      switch x {
      case .int(let i) where depth == shape.count: values.append(Float(i))
      case .float(let d) where depth == shape.count: values.append(Float(d))
      case .bool(let b) where depth == shape.count: values.append(b ? 1 : 0)
      case .list(let xs) where depth < shape.count && xs.count == shape[depth]: for e in xs { try walk(e, depth + 1) }
      case .range(let rg) where depth == shape.count - 1 && rg.count == shape[depth]:
        for i in 0..<rg.count { values.append(Float(rg.element(i))) }
      default:
        throw LatheError("\(what): not a rectangular list of numbers (expected shape \(shape))", kind: .type)
      }
    }
    try walk(v, 0)
    return try Tensor(values, shape: shape)
  }

  static func shape(_ v: Value, _ what: String) throws -> [Int] {
    switch v {
    case .int(let n): return [n]
    case .list(let xs):
      return try xs.map {
        guard case .int(let d) = $0 else { throw LatheError("\(what) must be a list of ints, got \($0.typeName) in it", kind: .type) }
        return d
      }
    default: throw LatheError("\(what) must be a shape: an int or a list of ints, got \(v.typeName)", kind: .type)
    }
  }

  static func wrap(_ t: Tensor) -> Value { .host(TensorValue(t)) }
  static func wrap(_ v: Variable) -> Value { .host(TensorValue(variable: v)) }

  /// The autograd variable of a tensor argument (a list becomes a constant).
  static func variable(_ v: Value, _ what: String) throws -> Variable {
    if case .host(let h) = v, let t = h as? TensorValue { return t.variable }
    return Variable(try tensor(v, what))
  }

  static func optionalAxis(_ v: Value, _ op: String) throws -> Int? {
    switch v {
    case .none: return nil
    case .int(let a): return a
    default: throw LatheError("\(op): axis must be an int or none, got \(v.typeName)", kind: .type)
    }
  }

  /// The seed for rand/randn: the one given, else one drawn from the session's stream (so reruns repeat it).
  static func seed(_ c: NativeCall, _ i: Int) throws -> UInt64 {
    if c.isNone(i) { return c.interpreter.randomBits() }
    return UInt64(bitPattern: Int64(try c.int(i)))
  }

  // MARK: - Rows

  static func registerCreation(_ r: BuiltinRegistry) {
    r.add("tensor", [ParameterSpec("values")], doc: "A tensor from nested lists of numbers (a tensor is returned as it is).",
          example: "tensor([[1, 2], [3, 4]])") { c in
      if case .host(let h) = c[0], h is TensorValue { return c[0] }
      return wrap(try fromNested(c[0], "tensor"))
    }
    r.add("zeros", [ParameterSpec("shape", variadic: true)], doc: "A tensor of zeros (f32): zeros(2, 3) or zeros([2, 3]).",
          example: "zeros(2, 3)") { c in
      wrap(try Tensor.zeros(try varargsShape(c, 0, "zeros")))
    }
    r.add("ones", [ParameterSpec("shape", variadic: true)], doc: "A tensor of ones: ones(2, 3) or ones([2, 3]).", example: "ones(2, 3)") { c in
      wrap(try Tensor.ones(try varargsShape(c, 0, "ones")))
    }
    r.add("full", [ParameterSpec("shape"), ParameterSpec("value")], doc: "A tensor filled with value.",
          example: "full([2, 2], 0.5)") { c in
      wrap(try Tensor.full(try shape(c[0], "full: shape"), Float(try c.double(1))))
    }
    r.add("arange", [ParameterSpec("start"), ParameterSpec("stop", default: Value.none), ParameterSpec("step", default: .int(1))],
          doc: "Evenly spaced values from start up to stop (exclusive); arange(n) is 0..n-1.", example: "arange(0, 1, 0.25)") { c in
      var start = try c.double(0), stop: Double
      if c.isNone(1) { stop = start; start = 0 } else { stop = try c.double(1) }
      return wrap(try Tensor.arange(start, stop, step: try c.double(2)))
    }
    r.add("linspace", [ParameterSpec("start"), ParameterSpec("stop"), ParameterSpec("num", default: .int(50))],
          doc: "num values from start to stop, both included.", example: "linspace(0, 1, num: 5)") { c in
      wrap(try Tensor.linspace(try c.double(0), try c.double(1), count: try c.int(2)))
    }
    r.add("eye", [ParameterSpec("n")], doc: "The n by n identity matrix.", example: "eye(3)") { c in wrap(try Tensor.eye(try c.int(0))) }
    let uniform = r.lookup("rand")
    r.add("rand", [ParameterSpec("shape", variadic: true), ParameterSpec("seed", default: Value.none)],
          doc: "Uniform [0, 1) values: rand() is one float from the session's stream; rand(2, 3) a tensor whose stream "
            + "depends only on seed: (by label; default: drawn from the session seed).", example: "rand(2, 3, seed: 0)") { c in
      if case .list(let dims) = c[0], dims.isEmpty, c.isNone(1), let uniform { return try c.interpreter.call(.function(uniform), []) }
      return wrap(try Tensor.rand(try varargsShape(c, 0, "rand"), seed: try seed(c, 1)))
    }
    r.add("randn", [ParameterSpec("shape", variadic: true), ParameterSpec("seed", default: Value.none)],
          doc: "Standard normal values, randn(2, 3) or randn([2, 3]); the stream depends only on seed: (by label).",
          example: "randn(4, seed: 1)") { c in
      wrap(try Tensor.randn(try varargsShape(c, 0, "randn"), seed: try seed(c, 1)))
    }
  }

  /// PyTorch's shape arguments: `f(2, 3)`, `f([2, 3])` or `f()` (a 0-d tensor). A seed is given by label only.
  static func varargsShape(_ c: NativeCall, _ i: Int, _ op: String) throws -> [Int] {
    guard case .list(let dims) = c[i] else { return try shape(c[i], "\(op): shape") }
    if dims.count == 1, case .list = dims[0] { return try shape(dims[0], "\(op): shape") }
    return try dims.map {
      guard case .int(let d) = $0 else {
        let seeded = c.function.parameters.contains { $0.name == "seed" }
        throw LatheError("\(op): the shape is ints, as in \(op)(2, 3) or \(op)([2, 3]), got \($0.typeName) \($0.brief)"
                         + (seeded ? " (a seed is given by label: \(op)(2, 3, seed: 0))" : ""), kind: .type)
      }
      return d
    }
  }

  static func registerShape(_ r: BuiltinRegistry) {
    r.add("shape", [ParameterSpec("x")], doc: "The shape of a tensor as a list.", example: "shape(zeros([2, 3]))") { c in
      .list(try tensor(c[0], "shape: x").shape.map { .int($0) })
    }
    r.add("reshape", [ParameterSpec("x"), ParameterSpec("shape")], doc: "The same elements in a new shape (one -1 is inferred).",
          example: "reshape(arange(6), [2, -1])") { c in
      wrap(try variable(c[0], "reshape: x").reshaped(to: try shape(c[1], "reshape: shape")))
    }
    r.add("transpose", [ParameterSpec("x"), ParameterSpec("axes", default: Value.none)],
          doc: "Axes reversed, or in the order given (numpy's transpose).", example: "transpose(zeros([2, 3]))") { c in
      let t = try variable(c[0], "transpose: x")
      return wrap(c.isNone(1) ? try t.transposed() : try t.permuted(try shape(c[1], "transpose: axes")))
    }
    r.add("permute", [ParameterSpec("x"), ParameterSpec("axes")], doc: "Axes in the given order.",
          example: "permute(zeros([2, 3, 4]), [2, 0, 1])") { c in
      wrap(try variable(c[0], "permute: x").permuted(try shape(c[1], "permute: axes")))
    }
    r.add("swapaxes", [ParameterSpec("x"), ParameterSpec("a"), ParameterSpec("b")], doc: "Two axes swapped (torch's transpose).",
          example: "swapaxes(zeros([2, 3, 4]), 0, 2)") { c in
      wrap(try variable(c[0], "swapaxes: x").swappedAxes(try c.int(1), try c.int(2)))
    }
    r.add("matmul", [ParameterSpec("a"), ParameterSpec("b")], doc: "Matrix product (also a @ b), batched over a leading axis.",
          example: "matmul(eye(2), ones([2, 3]))") { c in
      wrap(try variable(c[0], "matmul: a").matmul(try variable(c[1], "matmul: b")))
    }
    r.add("astype", [ParameterSpec("x"), ParameterSpec("dtype")],
          doc: "A copy in another dtype: f32, f16, bf16, i32, i8 or u8 (integers truncate and saturate).",
          example: "astype(tensor([1.7, -300]), \"i8\")") { c in
      let name = try c.string(1)
      guard let dtype = DType(rawValue: name) else {
        throw LatheError("astype: dtype must be one of \(DType.allCases.map(\.rawValue).joined(separator: ", ")), got \"\(name)\"", kind: .type)
      }
      return wrap(try tensor(c[0], "astype: x").copied(as: dtype))
    }
    r.add("tolist", [ParameterSpec("x")], doc: "A tensor's elements as nested lists (floats, or ints for i32).", example: "tolist(eye(2))") { c in
      let t = try tensor(c[0], "tolist: x")
      let values = t.scalars
      func build(_ axis: Int, _ base: Int) -> Value {
        if axis == t.rank { return t.dtype.isInteger ? .int(Int(values[base])) : .float(Double(values[base])) }
        let stride = t.shape[(axis + 1)...].reduce(1, *)
        return .list((0..<t.shape[axis]).map { build(axis + 1, base + $0 * stride) })
      }
      return build(0, 0)
    }
  }

  /// Elementwise math on tensors. The rows the core has for numbers (exp, log, sqrt, abs, tanh) keep working on
  /// numbers; relu, sigmoid, silu and gelu are tensor functions (a number or list becomes a tensor first).
  static func registerMath(_ r: BuiltinRegistry, previous: BuiltinRegistry) {
    let kernels: [(String, UnaryKernel, String)] = [
      ("exp", .exp, "e to the power x"), ("log", .log, "natural logarithm"), ("sqrt", .sqrt, "square root"),
      ("abs", .abs, "absolute value"), ("tanh", .tanh, "hyperbolic tangent"), ("relu", .relu, "max(x, 0)"),
      ("sigmoid", .sigmoid, "1 / (1 + e^-x)"), ("silu", .silu, "x · sigmoid(x)"), ("gelu", .gelu, "GELU (tanh form)"),
    ]
    for (name, kernel, doc) in kernels {
      let numeric = previous.lookup(name)
      r.add(name, [ParameterSpec("x")], doc: "\(doc), elementwise on tensors.", example: "\(name)(tensor([0.5, 2]))") { c in
        if case .host = c[0] { return wrap(try variable(c[0], "\(name): x").unary(kernel)) }
        if let numeric { return try c.interpreter.call(.function(numeric), [c[0]]) }
        return wrap(try fromNested(c[0], "\(name): x").unary(kernel))
      }
    }
    r.add("softmax", [ParameterSpec("x"), ParameterSpec("axis", default: .int(-1))],
          doc: "exp(x) / sum(exp(x)) along an axis, computed stably.", example: "softmax(tensor([1, 2, 3]))") { c in
      wrap(try variable(c[0], "softmax: x").softmax(axis: try c.int(1)))
    }
    r.add("logsoftmax", [ParameterSpec("x"), ParameterSpec("axis", default: .int(-1))],
          doc: "log(softmax(x)) along an axis, computed stably.", example: "logsoftmax(tensor([1, 2, 3]))") { c in
      wrap(try variable(c[0], "logsoftmax: x").logSoftmax(axis: try c.int(1)))
    }
  }

  static func optionalVariable(_ c: NativeCall, _ i: Int, _ what: String) throws -> Variable? {
    c.isNone(i) ? nil : try variable(c[i], what)
  }

  static func variables(_ v: Value, _ what: String) throws -> [Variable] {
    guard case .list(let xs) = v, !xs.isEmpty else { throw LatheError("\(what) must be a non-empty list of tensors", kind: .type) }
    return try xs.map { try variable($0, what) }
  }

  static func registerLayersOps(_ r: BuiltinRegistry) {
    r.add("rmsnorm", [ParameterSpec("x"), ParameterSpec("weight", default: Value.none), ParameterSpec("eps", default: .float(1e-6))],
          doc: "x / sqrt(mean(x²) + eps) · weight over the last axis.", example: "rmsnorm(tensor([[1, 2, 3]]))") { c in
      wrap(try variable(c[0], "rmsnorm: x").rmsNorm(weight: try optionalVariable(c, 1, "rmsnorm: weight"), eps: Float(try c.double(2))))
    }
    r.add("layernorm", [ParameterSpec("x"), ParameterSpec("weight", default: Value.none), ParameterSpec("bias", default: Value.none),
                        ParameterSpec("eps", default: .float(1e-5))],
          doc: "(x − mean) / sqrt(var + eps) · weight + bias over the last axis.", example: "layernorm(tensor([[1, 2, 3]]))") { c in
      wrap(try variable(c[0], "layernorm: x").layerNorm(weight: try optionalVariable(c, 1, "layernorm: weight"),
                                                         bias: try optionalVariable(c, 2, "layernorm: bias"), eps: Float(try c.double(3))))
    }
    r.add("embedding", [ParameterSpec("ids"), ParameterSpec("table")],
          doc: "Rows of table [vocab, dim] at integer ids: shape ids.shape + [dim].", example: "embedding(tensor([0, 2]), eye(3))") { c in
      wrap(try Variable.embedding(try tensor(c[0], "embedding: ids"), table: try variable(c[1], "embedding: table")))
    }
    r.add("concat", [ParameterSpec("xs"), ParameterSpec("axis", default: .int(0))],
          doc: "Tensors joined along an existing axis.", example: "concat([ones([2]), zeros([3])])") { c in
      wrap(try Variable.concat(try variables(c[0], "concat: xs"), axis: try c.int(1)))
    }
    r.add("stack", [ParameterSpec("xs"), ParameterSpec("axis", default: .int(0))],
          doc: "Tensors of one shape joined along a new axis.", example: "stack([ones([2]), zeros([2])])") { c in
      wrap(try Variable.stack(try variables(c[0], "stack: xs"), axis: try c.int(1)))
    }
    r.add("dropout", [ParameterSpec("x"), ParameterSpec("p", default: .float(0.5)), ParameterSpec("seed", default: Value.none)],
          doc: "Zeroes elements with probability p and scales the rest by 1/(1−p); the mask comes from the seed.",
          example: "dropout(ones([8]), p: 0.25, seed: 1)") { c in
      wrap(try variable(c[0], "dropout: x").dropout(Float(try c.double(1)), seed: try seed(c, 2)))
    }
  }

  static func registerAttention(_ r: BuiltinRegistry) {
    r.add("batchnorm", [ParameterSpec("x"), ParameterSpec("weight", default: Value.none), ParameterSpec("bias", default: Value.none),
                        ParameterSpec("eps", default: .float(1e-5))],
          doc: "Each channel of [N, C, ...] normalised by its batch statistics (training mode).",
          example: "batchnorm(randn([4, 3, 2, 2], seed: 0))") { c in
      wrap(try variable(c[0], "batchnorm: x").batchNorm(weight: try optionalVariable(c, 1, "batchnorm: weight"),
                                                         bias: try optionalVariable(c, 2, "batchnorm: bias"), eps: Float(try c.double(3))))
    }
    r.add("groupnorm", [ParameterSpec("x"), ParameterSpec("groups"), ParameterSpec("weight", default: Value.none),
                        ParameterSpec("bias", default: Value.none), ParameterSpec("eps", default: .float(1e-5))],
          doc: "Channels of [N, C, ...] normalised in groups.", example: "groupnorm(randn([2, 4, 3], seed: 0), 2)") { c in
      wrap(try variable(c[0], "groupnorm: x").groupNorm(groups: try c.int(1), weight: try optionalVariable(c, 2, "groupnorm: weight"),
                                                         bias: try optionalVariable(c, 3, "groupnorm: bias"), eps: Float(try c.double(4))))
    }
    r.add("rope", [ParameterSpec("x"), ParameterSpec("base", default: .float(10_000)), ParameterSpec("start", default: .int(0))],
          doc: "Rotary position embedding over [..., positions, dim] (pairs of the last axis), positions from start.",
          example: "rope(randn([1, 4, 8], seed: 0))") { c in
      wrap(try variable(c[0], "rope: x").rotaryEmbedding(base: Float(try c.double(1)), start: try c.int(2)))
    }
    r.add("attention", [ParameterSpec("q"), ParameterSpec("k"), ParameterSpec("v"), ParameterSpec("causal", default: .bool(false))],
          doc: "softmax(q·kᵀ/√d + mask)·v for [batch, tokens, dim] tensors; causal hides the future.",
          example: "attention(randn([1, 4, 8], seed: 0), randn([1, 4, 8], seed: 1), randn([1, 4, 8], seed: 2), causal: true)") { c in
      wrap(try Variable.scaledDotProductAttention(try variable(c[0], "attention: q"), try variable(c[1], "attention: k"),
                                                   try variable(c[2], "attention: v"), causal: try c.bool(3)))
    }
    r.add("where", [ParameterSpec("condition"), ParameterSpec("a"), ParameterSpec("b")],
          doc: "a where condition is nonzero, else b (broadcast).", example: "where(tensor([1, 0]), ones([2]), zeros([2]))") { c in
      wrap(try Variable.select(try tensor(c[0], "where: condition"), try variable(c[1], "where: a"), try variable(c[2], "where: b")))
    }
    r.add("adaptivepool", [ParameterSpec("x"), ParameterSpec("size", default: .int(1))],
          doc: "Adaptive average pooling of [N, C, H, W] to a size×size (or [h, w]) output.",
          example: "adaptivepool(randn([1, 2, 5, 5], seed: 0), size: 1)") { c in
      let size = try shape(c[1], "adaptivepool: size")
      guard size.count == 1 || size.count == 2 else { throw LatheError("adaptivepool: size must be an int or [h, w]", kind: .type) }
      return wrap(try variable(c[0], "adaptivepool: x").adaptiveAvgPool2d(size[0], size.count == 2 ? size[1] : size[0]))
    }
    r.add("scatteradd", [ParameterSpec("base"), ParameterSpec("indices"), ParameterSpec("values")],
          doc: "base with the rows of values added at the given row indices (repeats accumulate).",
          example: "scatteradd(zeros([3, 2]), [2, 0], ones([2, 2]))") { c in
      let indices = try c.list(1).map { v -> Int in
        guard case .int(let i) = v else { throw LatheError("scatteradd: indices must be ints, got \(v.typeName)", kind: .type) }
        return i
      }
      return wrap(try Variable.scatterAdd(try variable(c[0], "scatteradd: base"), indices: indices, values: try variable(c[2], "scatteradd: values")))
    }
    r.add("topk", [ParameterSpec("x"), ParameterSpec("k"), ParameterSpec("largest", default: .bool(true))],
          doc: "The k largest (or smallest) values along the last axis and their indices: [values, indices].",
          example: "topk(tensor([3, 1, 4, 1, 5]), 2)") { c in
      let (values, indices) = try tensor(c[0], "topk: x").topK(try c.int(1), largest: try c.bool(2))
      return .list([wrap(values), wrap(indices)])
    }
    r.add("sort", [ParameterSpec("x"), ParameterSpec("axis", default: .int(-1)), ParameterSpec("descending", default: .bool(false))],
          doc: "Values sorted along an axis (stable; NaN last, as in numpy); differentiable.",
          example: "sort(tensor([[3, 1, 2], [0, 5, 4]]), axis: 1)") { c in
      wrap(try variable(c[0], "sort: x").sorted(axis: try c.int(1), descending: try c.bool(2)).values)
    }
    r.add("argsort", [ParameterSpec("x"), ParameterSpec("axis", default: .int(-1)), ParameterSpec("descending", default: .bool(false))],
          doc: "The indices (i32) that sort x along an axis (stable; NaN last).", example: "argsort(tensor([3, 1, 2]))") { c in
      wrap(try tensor(c[0], "argsort: x").sorted(axis: try c.int(1), descending: try c.bool(2)).indices)
    }
  }

  static func registerReductions(_ r: BuiltinRegistry) {
    func reduction(_ name: String, _ kind: Reduction, _ doc: String) {
      r.add(name, [ParameterSpec("x"), ParameterSpec("axis", default: Value.none), ParameterSpec("keepdims", default: .bool(false))],
            doc: doc, example: "\(name)(tensor([[1, 2], [3, 4]]), axis: 1)") { c in
        let keepdims = try c.bool(2)
        let out = try tensor(c[0], "\(name): x").reduce(kind, axis: try optionalAxis(c[1], name), keepdims: keepdims)
        return out.rank == 0 || (c.isNone(1) && !keepdims) ? TensorValue.scalar(out) : wrap(out)
      }
    }
    reduction("argmax", .argmax, "Index of the largest element (along an axis): an int, or an i32 tensor.")
    r.add("variance", [ParameterSpec("x"), ParameterSpec("axis", default: Value.none), ParameterSpec("keepdims", default: .bool(false)),
                       ParameterSpec("ddof", default: .int(0))],
          doc: "Variance (numpy's var, ddof 0 by default; `var` is a keyword).", example: "variance(tensor([1, 2, 3, 4]))") { c in
      let keepdims = try c.bool(2)
      let out = try tensor(c[0], "variance: x").reduce(.variance, axis: try optionalAxis(c[1], "variance"),
                                                      keepdims: keepdims, ddof: try c.int(3))
      return out.rank == 0 || (c.isNone(1) && !keepdims) ? TensorValue.scalar(out) : wrap(out)
    }
  }
}
