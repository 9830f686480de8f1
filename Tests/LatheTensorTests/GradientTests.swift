// Every differentiable op against central finite differences (the analytic rule is in Variable+Ops.swift).

import Testing
@testable import LatheTensor

/// Numerical ∂f/∂x by central differences, accumulated in Double.
func numericGradient(_ x: Tensor, eps: Float = 1e-2, _ f: (Variable) throws -> Variable) throws -> [Float] {
  var out: [Float] = []
  let base = try x.contiguous()
  for i in 0..<x.count {
    var plus = try base.copied(), minus = try base.copied()
    try plus.mutablePointer()[i] += eps
    try minus.mutablePointer()[i] -= eps
    let fp = Double(try f(Variable(plus)).value.scalars.reduce(0, +))
    let fm = Double(try f(Variable(minus)).value.scalars.reduce(0, +))
    out.append(Float((fp - fm) / Double(2 * eps)))
  }
  return out
}

func checkGradient(_ name: String, _ x: Tensor, tolerance: Float = 2e-2, _ f: (Variable) throws -> Variable,
                   sourceLocation: SourceLocation = #_sourceLocation) throws {
  let v = Variable(x, requiresGrad: true)
  try f(v).sum().backward()
  let analytic = try #require(v.grad, "\(name): no gradient").scalars
  let numeric = try numericGradient(x, f)
  let worst = zip(analytic, numeric).map { Swift.abs($0 - $1) / Swift.max(1, Swift.abs($1)) }.max() ?? 0
  #expect(worst <= tolerance, "\(name): gradient differs by \(worst)\n analytic \(analytic.prefix(6))\n numeric  \(numeric.prefix(6))",
          sourceLocation: sourceLocation)
}

@Test func elementwiseGradients() throws {
  let x = try Tensor.randn([2, 3], seed: 1)
  let positive = try Tensor.rand([2, 3], seed: 2).add(Tensor.full([1], 0.5))
  let w = Variable(try Tensor.randn([2, 3], seed: 3)), row = Variable(try Tensor.randn([3], seed: 4))
  try checkGradient("add", x) { try $0.add(w) }
  try checkGradient("add broadcast (row side)", try Tensor.randn([3], seed: 5)) { try w.add($0) }
  try checkGradient("subtract", x) { try w.subtract($0) }
  try checkGradient("multiply", x) { try $0.multiply(row) }
  try checkGradient("multiply broadcast", try Tensor.randn([3], seed: 6)) { try w.multiply($0) }
  try checkGradient("divide numerator", x) { try $0.divide(Variable(positive)) }
  try checkGradient("divide denominator", positive) { try w.divide($0) }
  try checkGradient("scale+shift", x) { try $0.scaled(by: 3).shifted(by: 1) }
  try checkGradient("power", positive) { try $0.power(3) }
  try checkGradient("negate", x) { try $0.negated() }
  for kernel in [UnaryKernel.exp, .tanh, .sigmoid, .silu, .gelu] { try checkGradient(kernel.rawValue, x) { try $0.unary(kernel) } }
  try checkGradient("log", positive) { try $0.unary(.log) }
  try checkGradient("sqrt", positive) { try $0.unary(.sqrt) }
  // relu and abs away from their kink.
  let away = try x.map { $0 + ($0 >= 0 ? 0.1 : -0.1) }
  try checkGradient("relu", away) { try $0.unary(.relu) }
  try checkGradient("abs", away) { try $0.unary(.abs) }
}

@Test func linearAlgebraAndReductionGradients() throws {
  let a = try Tensor.randn([3, 4], seed: 7), b = Variable(try Tensor.randn([4, 2], seed: 8))
  try checkGradient("matmul left", a) { try $0.matmul(b) }
  try checkGradient("matmul right", try Tensor.randn([4, 2], seed: 9)) { try Variable(a).matmul($0) }
  try checkGradient("batched matmul", try Tensor.randn([2, 3, 4], seed: 10)) { try $0.matmul(b) }
  try checkGradient("batched matmul shared right", try Tensor.randn([4, 2], seed: 11)) {
    try Variable(try Tensor.randn([2, 3, 4], seed: 12)).matmul($0)
  }
  let weights = Variable(try Tensor.randn([3, 4], seed: 13))
  try checkGradient("sum axis", a) { try $0.sum(axis: 1).multiply(Variable(try Tensor.randn([3], seed: 14))) }
  try checkGradient("mean keepdims", a) { try $0.mean(axis: 0, keepdims: true).multiply(Variable(try Tensor.randn([1, 4], seed: 15))) }
  try checkGradient("reshape", a) { try $0.reshaped(to: [4, 3]).multiply(Variable(try Tensor.randn([4, 3], seed: 16))) }
  try checkGradient("transpose", a) { try $0.transposed().multiply(Variable(try Tensor.randn([4, 3], seed: 17))) }
  try checkGradient("permute", try Tensor.randn([2, 3, 4], seed: 18)) {
    try $0.permuted([2, 0, 1]).multiply(Variable(try Tensor.randn([4, 2, 3], seed: 19)))
  }
  try checkGradient("softmax", a) { try $0.softmax().multiply(weights) }
  try checkGradient("logsoftmax", a) { try $0.logSoftmax().multiply(weights) }
}

@Test func graphRulesNoGradDetachAndCustom() throws {
  let x = Variable(try Tensor([1, 2, 3], shape: [3]), requiresGrad: true)
  let y = try Autograd.noGrad { try x.multiply(x) }
  #expect(!y.requiresGrad)
  #expect(!x.detached().requiresGrad)
  // Straight-through estimator: forward sign(x), backward identity.
  let sign = Variable.custom(try x.value.map { $0 >= 0 ? 1 : -1 }, inputs: [x]) { g in [g] }
  try sign.sum().backward()
  #expect(x.grad?.scalars == [1, 1, 1])
  // Gradients accumulate until zeroed; a reused variable gets both paths.
  x.zeroGrad()
  try x.multiply(x).add(x).sum().backward()
  #expect(x.grad?.scalars == [3, 5, 7])
  #expect(throws: TensorError.self) { try Variable(try Tensor.ones([2])).sum().backward() }
}

@Test func indexingGradient() throws {
  try checkGradient("index row", try Tensor.randn([3, 4], seed: 20)) { try $0.indexed([.index(1)]) }
  try checkGradient("slice columns", try Tensor.randn([3, 4], seed: 21)) {
    try $0.indexed([.slice(nil, nil, nil), .slice(1, nil, 2)]).multiply(Variable(try Tensor.randn([3, 2], seed: 22)))
  }
  try checkGradient("swapaxes", try Tensor.randn([2, 3], seed: 23)) {
    try $0.swappedAxes(0, 1).multiply(Variable(try Tensor.randn([3, 2], seed: 24)))
  }
}

@Test func normsEmbeddingConcatAndDropoutGradients() throws {
  let x = try Tensor.randn([3, 5], seed: 40)
  let w = Variable(try Tensor.randn([5], seed: 41)), b = Variable(try Tensor.randn([5], seed: 42))
  let mix = Variable(try Tensor.randn([3, 5], seed: 43))
  try checkGradient("rmsnorm input", x) { try $0.rmsNorm(weight: w).multiply(mix) }
  try checkGradient("rmsnorm weight", w.value) { try Variable(x).rmsNorm(weight: $0).multiply(mix) }
  try checkGradient("layernorm input", x) { try $0.layerNorm(weight: w, bias: b).multiply(mix) }
  try checkGradient("layernorm bias", b.value) { try Variable(x).layerNorm(weight: w, bias: $0).multiply(mix) }
  let ids = try Tensor([2, 0, 2, 3], shape: [2, 2])
  try checkGradient("embedding table", try Tensor.randn([4, 3], seed: 44)) {
    try Variable.embedding(ids, table: $0).multiply(Variable(try Tensor.randn([2, 2, 3], seed: 45)))
  }
  let other = Variable(try Tensor.randn([3, 2], seed: 46))
  try checkGradient("concat", x) { try Variable.concat([$0, other], axis: 1).multiply(Variable(try Tensor.randn([3, 7], seed: 47))) }
  try checkGradient("stack", try Tensor.randn([3], seed: 48)) {
    try Variable.stack([$0, Variable(try Tensor.randn([3], seed: 49))], axis: 1).multiply(Variable(try Tensor.randn([3, 2], seed: 50)))
  }
  try checkGradient("dropout", x) { try $0.dropout(0.5, seed: 7).multiply(mix) }
}

@Test func normsAndConcatValues() throws {
  let x = try Tensor([1, 2, 3, 4], shape: [1, 4])
  let ln = try Variable(x).layerNorm(weight: nil, bias: nil).value
  expectClose(ln.scalars, [-1.3416, -0.4472, 0.4472, 1.3416], tolerance: 1e-3)
  expectClose(try Variable(x).rmsNorm(weight: nil).value.scalars, [0.3651, 0.7303, 1.0954, 1.4606], tolerance: 1e-3)
  let c = try Variable.concat([Variable(try Tensor([1, 2], shape: [1, 2])), Variable(try Tensor([3], shape: [1, 1]))], axis: 1)
  #expect(c.value.scalars == [1, 2, 3] && c.shape == [1, 3])
  #expect(try Variable.stack([Variable(x), Variable(x)]).shape == [2, 1, 4])
  #expect(throws: TensorError.self) { try Variable.concat([Variable(x), Variable(try Tensor.zeros([2, 3]))], axis: 1) }
  #expect(throws: TensorError.indexOutOfRange(op: "embedding", index: 9, size: 4, axis: 0)) {
    try Variable.embedding(try Tensor([9], shape: [1]), table: Variable(try Tensor.zeros([4, 2])))
  }
  let kept = try Variable(try Tensor.ones([10_000])).dropout(0.3, seed: 1).value.scalars
  let zeros = kept.filter { $0 == 0 }.count
  #expect(zeros > 2700 && zeros < 3300, "\(zeros) dropped of 10000 at p 0.3")
}

@Test func attentionNormsAndSelectGradients() throws {
  let x = try Tensor.randn([4, 3, 2, 2], seed: 60)
  let mix = Variable(try Tensor.randn([4, 3, 2, 2], seed: 61))
  let w = Variable(try Tensor.randn([3], seed: 62)), b = Variable(try Tensor.randn([3], seed: 63))
  try checkGradient("batchnorm", x) { try $0.batchNorm(weight: w, bias: b).multiply(mix) }
  let y = try Tensor.randn([2, 4, 3], seed: 64)
  try checkGradient("groupnorm", y) {
    try $0.groupNorm(groups: 2, weight: Variable(try Tensor.randn([4], seed: 65)), bias: nil)
      .multiply(Variable(try Tensor.randn([2, 4, 3], seed: 66)))
  }
  let q = try Tensor.randn([2, 3, 4], seed: 67)
  let k = Variable(try Tensor.randn([2, 5, 4], seed: 68)), v = Variable(try Tensor.randn([2, 5, 4], seed: 69))
  let out = Variable(try Tensor.randn([2, 3, 4], seed: 70))
  try checkGradient("attention q", q) { try Variable.scaledDotProductAttention($0, k, v, causal: true).multiply(out) }
  try checkGradient("attention k", k.value) { try Variable.scaledDotProductAttention(Variable(q), $0, v, causal: true).multiply(out) }
  try checkGradient("attention v", v.value) { try Variable.scaledDotProductAttention(Variable(q), k, $0, causal: false).multiply(out) }
  try checkGradient("rope", try Tensor.randn([2, 3, 4], seed: 71)) {
    try $0.rotaryEmbedding(start: 2).multiply(Variable(try Tensor.randn([2, 3, 4], seed: 72)))
  }
  let cond = try Tensor([1, 0, 1], shape: [3])
  try checkGradient("where a", try Tensor.randn([2, 3], seed: 73)) {
    try Variable.select(cond, $0, Variable(try Tensor.zeros([2, 3]))).multiply(Variable(try Tensor.randn([2, 3], seed: 74)))
  }
}

@Test func attentionRopeAndTopKValues() throws {
  // Causal attention: the first query sees only the first key, so it returns the first value row.
  let q = Variable(try Tensor.randn([1, 3, 2], seed: 80)), k = Variable(try Tensor.randn([1, 3, 2], seed: 81))
  let v = Variable(try Tensor([1, 2, 3, 4, 5, 6], shape: [1, 3, 2]))
  let a = try Variable.scaledDotProductAttention(q, k, v, causal: true)
  #expect(Array(a.value.scalars.prefix(2)) == [1, 2])
  // RoPE keeps norms and rotates position 0 not at all.
  let x = try Tensor.randn([1, 4, 6], seed: 82)
  let r = try Variable(x).rotaryEmbedding().value
  expectClose(Array(r.scalars.prefix(6)), Array(x.scalars.prefix(6)))
  let norm: ([Float]) -> Float = { $0.reduce(0) { $0 + $1 * $1 } }
  #expect(Swift.abs(norm(r.scalars) - norm(x.scalars)) < 1e-3)
  let (values, indices) = try Tensor([3, 1, 4, 1, 5, 9], shape: [2, 3]).topK(2)
  #expect(values.scalars == [4, 3, 9, 5] && indices.scalars == [2, 0, 2, 1])
  let (low, _) = try Tensor([3, 1, 4], shape: [3]).topK(3, largest: false)
  #expect(low.scalars == [1, 3, 4])
  #expect(throws: TensorError.self) { try Tensor.zeros([3]).topK(4) }
}

@Test func adaptivePoolingAndScatterGradients() throws {
  let x = try Tensor.randn([1, 2, 5, 7], seed: 90)
  try checkGradient("adaptive avg pool", x) { try $0.adaptiveAvgPool2d(2, 3).multiply(Variable(try Tensor.randn([1, 2, 2, 3], seed: 91))) }
  let pooled = try Variable(try Tensor.arange(0, 16).reshaped(to: [1, 1, 4, 4])).adaptiveAvgPool2d(1, 1).value.scalars
  #expect(pooled == [7.5])
  let base = Variable(try Tensor.zeros([3, 2]))
  try checkGradient("scatter values", try Tensor.randn([4, 2], seed: 92)) {
    try Variable.scatterAdd(base, indices: [2, 0, 2, 1], values: $0).multiply(Variable(try Tensor.randn([3, 2], seed: 93)))
  }
  let added = try Variable.scatterAdd(base, indices: [2, 2], values: Variable(try Tensor.ones([2, 2]))).value.scalars
  #expect(added == [0, 0, 0, 0, 2, 2])
  #expect(throws: TensorError.self) { try Variable.scatterAdd(base, indices: [3], values: Variable(try Tensor.ones([1, 2]))) }
}

// clamp, maximum/minimum, where (both sides), std, cumsum, sort, quantile and mask selection/assignment. Inputs
// keep away from the kinks (clamp bounds, ties) where the finite difference straddles two pieces.
@Test func selectionGradients() throws {
  let x = try Tensor([-1.7, -0.6, 0.3, 0.8, 1.4, 2.2], shape: [2, 3])
  let mix = Variable(try Tensor.randn([2, 3], seed: 80))
  try checkGradient("clamp", x) { try $0.clamped(min: -1, max: 1).multiply(mix) }
  try checkGradient("clamp min only", x) { try $0.clamped(min: 0, max: nil).multiply(mix) }
  let other = Variable(try Tensor([-1.2, 0.1, -0.2, 1.5, 0.9, 3.0], shape: [2, 3]))
  try checkGradient("maximum a", x) { try $0.extremum(other, maximum: true).multiply(mix) }
  try checkGradient("maximum b", other.value) { try Variable(x).extremum($0, maximum: true).multiply(mix) }
  try checkGradient("minimum broadcast", try Tensor([0.25, -0.5, 2.5], shape: [3])) { try Variable(x).extremum($0, maximum: false).multiply(mix) }
  let cond = try Tensor([1, 0, 1, 0, 0, 1], shape: [2, 3]).copied(as: .u8)
  try checkGradient("where a", x) { try Variable.select(cond, $0, other).multiply(mix) }
  try checkGradient("where b", other.value) { try Variable.select(cond, Variable(x), $0).multiply(mix) }
  try checkGradient("std", x) { try $0.std().multiply(Variable(try Tensor.full([], 1.5))) }
  try checkGradient("std axis 1 ddof 1", x) { try $0.std(axis: 1, ddof: 1).multiply(Variable(try Tensor([0.7, -1.3], shape: [2]))) }
  try checkGradient("std axis 0 keepdims", x) { try $0.std(axis: 0, keepdims: true).multiply(Variable(try Tensor.randn([1, 3], seed: 81))) }
  try checkGradient("cumsum", x) { try $0.cumsum(axis: 1).multiply(mix) }
  try checkGradient("cumsum flat", x) { try $0.cumsum(axis: nil).multiply(Variable(try Tensor.randn([6], seed: 82))) }
  try checkGradient("sort", x) { try $0.sorted(axis: 0, descending: true).values.multiply(mix) }
  try checkGradient("quantile", x) { try $0.quantile([0.3, 0.9], scalarQ: false, axis: 1).multiply(Variable(try Tensor.randn([2, 2], seed: 83))) }
  let positions = try x.maskPositions(try x.compared(.greater, try Tensor.zeros([]))), values = try Tensor([5, 6, 7, 8], shape: [4])
  try checkGradient("mask select", x) { try $0.selected(at: positions).multiply(Variable(values)) }
  try checkGradient("mask assign x", x) { try $0.replacing(at: positions, with: Variable(values)).multiply(mix) }
  try checkGradient("mask assign values", values) { try Variable(x).replacing(at: positions, with: $0).multiply(mix) }
}
