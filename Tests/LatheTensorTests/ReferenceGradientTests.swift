// Every differentiable op against a float64 reference of its forward, written here as plain scalar loops: the
// engine's f32 forward must agree with the reference, and the engine's analytic gradient (f32 autograd) with
// central differences of the reference. GradientTests.swift differences the f32 forward itself, which cannot
// catch a forward bug and needs a loose tolerance; this does not. (The losses are in LatheNNTests.)

import Foundation
import Testing
@testable import LatheTensor

/// A float64 tensor: a shape and its elements in row-major order.
struct Ref {
  var shape: [Int]
  var data: [Double]

  init(_ shape: [Int], _ data: [Double]) {
    precondition(shape.reduce(1, *) == data.count, "Ref: \(data.count) elements for shape \(shape)")
    self.shape = shape; self.data = data
  }
  init(zeros shape: [Int]) { self.init(shape, [Double](repeating: 0, count: shape.reduce(1, *))) }
  init(_ t: Tensor) { self.init(t.shape, t.scalars.map(Double.init)) }

  var count: Int { data.count }
  var rank: Int { shape.count }

  static func strides(_ shape: [Int]) -> [Int] {
    var s = [Int](repeating: 1, count: shape.count), acc = 1
    for d in stride(from: shape.count - 1, through: 0, by: -1) { s[d] = acc; acc *= shape[d] }
    return s
  }
  /// The multi-index of the element at row-major position `flat`.
  func index(of flat: Int) -> [Int] {
    var idx = [Int](repeating: 0, count: rank), r = flat
    for d in stride(from: rank - 1, through: 0, by: -1) { idx[d] = r % shape[d]; r /= shape[d] }
    return idx
  }
  func position(_ idx: [Int]) -> Int { zip(idx, Ref.strides(shape)).reduce(0) { $0 + $1.0 * $1.1 } }
  func axis(_ a: Int) -> Int { a < 0 ? a + rank : a }

  // MARK: Elementwise

  func map(_ f: (Double) -> Double) -> Ref { Ref(shape, data.map(f)) }

  /// numpy broadcasting: shapes aligned at the right, axes of size 1 stretched.
  static func broadcast(_ a: Ref, _ b: Ref, _ f: (Double, Double) -> Double) -> Ref {
    let rank = Swift.max(a.rank, b.rank)
    let pa = [Int](repeating: 1, count: rank - a.rank) + a.shape, pb = [Int](repeating: 1, count: rank - b.rank) + b.shape
    var out = Ref(zeros: zip(pa, pb).map { Swift.max($0, $1) })
    let sa = strides(pa), sb = strides(pb)
    for i in 0..<out.count {
      let idx = out.index(of: i)
      var ia = 0, ib = 0
      for d in 0..<rank {
        if pa[d] != 1 { ia += idx[d] * sa[d] }
        if pb[d] != 1 { ib += idx[d] * sb[d] }
      }
      out.data[i] = f(a.data[ia], b.data[ib])
    }
    return out
  }
  static func + (a: Ref, b: Ref) -> Ref { broadcast(a, b, +) }
  static func - (a: Ref, b: Ref) -> Ref { broadcast(a, b, -) }
  static func * (a: Ref, b: Ref) -> Ref { broadcast(a, b, *) }
  static func / (a: Ref, b: Ref) -> Ref { broadcast(a, b, /) }

  // MARK: Reductions and movement

  func sum(axis: Int? = nil, keepdims: Bool = false) -> Ref {
    guard let axis else { return Ref(keepdims ? shape.map { _ in 1 } : [], [data.reduce(0, +)]) }
    let a = self.axis(axis)
    var kept = shape
    kept[a] = 1
    var out = Ref(zeros: kept)
    for i in 0..<count { var idx = index(of: i); idx[a] = 0; out.data[out.position(idx)] += data[i] }
    if !keepdims { out.shape.remove(at: a) }
    return out
  }
  func mean(axis: Int? = nil, keepdims: Bool = false) -> Ref {
    let n = axis.map { shape[self.axis($0)] } ?? count
    return sum(axis: axis, keepdims: keepdims).map { $0 / Double(n) }
  }
  func reshaped(_ s: [Int]) -> Ref { Ref(s, data) }
  func permuted(_ axes: [Int]) -> Ref {
    var out = Ref(zeros: axes.map { shape[$0] })
    for o in 0..<out.count {
      let idxOut = out.index(of: o)
      var idxIn = [Int](repeating: 0, count: rank)
      for d in 0..<rank { idxIn[axes[d]] = idxOut[d] }
      out.data[o] = data[position(idxIn)]
    }
    return out
  }
  /// Elements `positions` (in order) along `axis`; `dropAxis` removes the axis (integer indexing).
  func taken(axis: Int, _ positions: [Int], dropAxis: Bool = false) -> Ref {
    var s = shape
    s[axis] = positions.count
    var out = Ref(zeros: s)
    for o in 0..<out.count {
      var idx = out.index(of: o)
      idx[axis] = positions[idx[axis]]
      out.data[o] = data[position(idx)]
    }
    if dropAxis { out.shape.remove(at: axis) }
    return out
  }

  /// A [B, m, k] or [m, k] times [k, n] or [B, k, n].
  func matmul(_ b: Ref) -> Ref {
    let batched = rank == 3
    let batch = batched ? shape[0] : 1, m = shape[rank - 2], k = shape[rank - 1], n = b.shape[b.rank - 1]
    var out = Ref(zeros: (batched ? [batch] : []) + [m, n])
    for p in 0..<batch { for i in 0..<m { for j in 0..<n {
      var s = 0.0
      for t in 0..<k {
        let bv = b.rank == 3 ? b.data[(p * k + t) * n + j] : b.data[t * n + j]
        s += data[(p * m + i) * k + t] * bv
      }
      out.data[(p * m + i) * n + j] = s
    } } }
    return out
  }

  /// `f` applied to each line of elements along `axis`.
  func alongAxis(_ axis: Int, _ f: ([Double]) -> [Double]) -> Ref {
    let a = self.axis(axis), n = shape[a], inner = shape[(a + 1)...].reduce(1, *), outer = count / Swift.max(n * inner, 1)
    var out = self
    for o in 0..<outer { for i in 0..<inner {
      let positions = (0..<n).map { (o * n + $0) * inner + i }
      for (p, v) in zip(positions, f(positions.map { data[$0] })) { out.data[p] = v }
    } }
    return out
  }

  func softmax(axis: Int = -1, log: Bool = false) -> Ref {
    alongAxis(axis) { v in
      let m = v.max() ?? 0, e = v.map { Foundation.exp($0 - m) }, s = e.reduce(0, +)
      return log ? v.map { $0 - m - Foundation.log(s) } : e.map { $0 / s }
    }
  }

  // MARK: Normalisation

  /// The elements at each group of positions normalised by the group's mean (when `centered`) and (biased)
  /// mean square: (x − μ) / √(σ² + eps).
  func normalized(groups: [[Int]], centered: Bool, eps: Double) -> Ref {
    var out = self
    for g in groups {
      let n = Double(g.count)
      let mu = centered ? g.reduce(0) { $0 + data[$1] } / n : 0
      let ms = g.reduce(0) { $0 + (data[$1] - mu) * (data[$1] - mu) } / n
      for p in g { out.data[p] = (data[p] - mu) / (ms + eps).squareRoot() }
    }
    return out
  }
  var lastAxisGroups: [[Int]] {
    let d = shape[rank - 1]
    return (0..<(count / d)).map { r in Array((r * d)..<((r + 1) * d)) }
  }
  /// Positions grouped by `key` of their multi-index.
  func groups(by key: ([Int]) -> Int, count groupCount: Int) -> [[Int]] {
    var g = [[Int]](repeating: [], count: groupCount)
    for i in 0..<count { g[key(index(of: i))].append(i) }
    return g
  }
  /// A per-channel vector [C] shaped to broadcast over [N, C, ...].
  func channelwise(rank r: Int) -> Ref { var s = [Int](repeating: 1, count: r); s[1] = count; return reshaped(s) }

  // MARK: Convolution and pooling, on [N, C, H, W]

  static func conv2d(_ x: Ref, _ w: Ref, _ b: Ref?, stride: Int, padding: Int, dilation: Int, groups: Int) -> Ref {
    let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
    let (o, cg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
    let oh = (h + 2 * padding - dilation * (kh - 1) - 1) / stride + 1, ow = (wd + 2 * padding - dilation * (kw - 1) - 1) / stride + 1
    var out = Ref(zeros: [n, o, oh, ow])
    for b0 in 0..<n { for oc in 0..<o { for y in 0..<oh { for xx in 0..<ow {
      var s = b?.data[oc] ?? 0
      let group = oc / (o / groups)
      for ic in 0..<cg { for i in 0..<kh { for j in 0..<kw {
        let iy = y * stride - padding + i * dilation, ix = xx * stride - padding + j * dilation
        guard iy >= 0, iy < h, ix >= 0, ix < wd else { continue }
        s += x.data[((b0 * c + group * cg + ic) * h + iy) * wd + ix] * w.data[((oc * cg + ic) * kh + i) * kw + j]
      } } }
      out.data[((b0 * o + oc) * oh + y) * ow + xx] = s
    } } } }
    return out
  }

  /// Each output cell from the input cells of its window (rows `rows(i)`, columns `cols(j)`, clipped to the image).
  func pooled(oh: Int, ow: Int, rows: (Int) -> Range<Int>, cols: (Int) -> Range<Int>, _ f: ([Double], Int) -> Double) -> Ref {
    let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
    var out = Ref(zeros: [n, c, oh, ow])
    for plane in 0..<(n * c) { for i in 0..<oh { for j in 0..<ow {
      let rs = rows(i).clamped(to: 0..<h), cs = cols(j).clamped(to: 0..<w)
      var window: [Double] = []
      for y in rs { for x in cs { window.append(data[(plane * h + y) * w + x]) } }
      out.data[(plane * oh + i) * ow + j] = f(window, rows(i).count * cols(j).count)
    } } }
    return out
  }
  func maxPool2d(kernel: Int, stride: Int, padding: Int) -> Ref {
    let oh = (shape[2] + 2 * padding - kernel) / stride + 1, ow = (shape[3] + 2 * padding - kernel) / stride + 1
    let window = { (i: Int) in (i * stride - padding)..<(i * stride - padding + kernel) }
    return pooled(oh: oh, ow: ow, rows: window, cols: window) { v, _ in v.max() ?? 0 }
  }
  /// Padding counts as zeros (divides by kernel², PyTorch's count_include_pad).
  func avgPool2d(kernel: Int, stride: Int, padding: Int) -> Ref {
    let oh = (shape[2] + 2 * padding - kernel) / stride + 1, ow = (shape[3] + 2 * padding - kernel) / stride + 1
    let window = { (i: Int) in (i * stride - padding)..<(i * stride - padding + kernel) }
    return pooled(oh: oh, ow: ow, rows: window, cols: window) { v, size in v.reduce(0, +) / Double(size) }
  }
  /// PyTorch's windows: rows ⌊i·H/oh⌋ ..< ⌈(i+1)·H/oh⌉.
  func adaptiveAvgPool2d(_ oh: Int, _ ow: Int) -> Ref {
    let (h, w) = (shape[2], shape[3])
    return pooled(oh: oh, ow: ow, rows: { (($0 * h) / oh)..<((($0 + 1) * h + oh - 1) / oh) },
                  cols: { (($0 * w) / ow)..<((($0 + 1) * w + ow - 1) / ow) }) { v, size in v.reduce(0, +) / Double(size) }
  }

  // MARK: Gathering and joining

  /// Rows of a [vocab, dim] table at `ids` → idsShape + [dim].
  static func embedding(_ ids: [Int], shape idsShape: [Int], table: Ref) -> Ref {
    let dim = table.shape[1]
    return Ref(idsShape + [dim], ids.flatMap { table.data[($0 * dim)..<(($0 + 1) * dim)] })
  }
  static func concat(_ parts: [Ref], axis: Int) -> Ref {
    var s = parts[0].shape
    s[axis] = parts.reduce(0) { $0 + $1.shape[axis] }
    var out = Ref(zeros: s)
    for o in 0..<out.count {
      var idx = out.index(of: o), part = 0
      while idx[axis] >= parts[part].shape[axis] { idx[axis] -= parts[part].shape[axis]; part += 1 }
      out.data[o] = parts[part].data[parts[part].position(idx)]
    }
    return out
  }
  static func scatterAdd(_ base: Ref, indices: [Int], values: Ref) -> Ref {
    var out = base
    let row = base.count / base.shape[0]
    for (k, r) in indices.enumerated() { for j in 0..<row { out.data[r * row + j] += values.data[k * row + j] } }
    return out
  }

  // MARK: Positions and attention

  /// Pairs (2i, 2i+1) of the last axis at position p (the second-last axis, counted from `start`) rotated by
  /// θ = p · base^(−2i/D).
  func rotaryEmbedding(start: Int, base: Double = 10_000) -> Ref {
    let d = shape[rank - 1], t = shape[rank - 2]
    var out = self
    for r in 0..<(count / d) {
      let p = Double(r % t + start)
      for i in 0..<(d / 2) {
        let theta = p * Foundation.pow(base, -2 * Double(i) / Double(d))
        let x0 = data[r * d + 2 * i], x1 = data[r * d + 2 * i + 1]
        out.data[r * d + 2 * i] = x0 * Foundation.cos(theta) - x1 * Foundation.sin(theta)
        out.data[r * d + 2 * i + 1] = x0 * Foundation.sin(theta) + x1 * Foundation.cos(theta)
      }
    }
    return out
  }

  /// softmax(q·kᵀ/√d)·v per batch, query i seeing keys j ≤ i + Tk − Tq when causal.
  static func attention(_ q: Ref, _ k: Ref, _ v: Ref, causal: Bool) -> Ref {
    let (batch, tq, d) = (q.shape[0], q.shape[1], q.shape[2]), tk = k.shape[1], dv = v.shape[2]
    var out = Ref(zeros: [batch, tq, dv])
    for b in 0..<batch { for i in 0..<tq {
      let visible = (0..<tk).filter { !causal || $0 <= i + tk - tq }
      let scores = visible.map { j in (0..<d).reduce(0.0) { $0 + q.data[(b * tq + i) * d + $1] * k.data[(b * tk + j) * d + $1] } / Double(d).squareRoot() }
      let m = scores.max() ?? 0, e = scores.map { Foundation.exp($0 - m) }, s = e.reduce(0, +)
      for (j, p) in zip(visible, e) { for c in 0..<dv { out.data[(b * tq + i) * dv + c] += p / s * v.data[(b * tk + j) * dv + c] } }
    } }
    return out
  }
}

// MARK: - The check

/// The forward tolerance, as numpy's allclose: |engine − reference| ≤ 1e-5 + 1e-5·|reference|.
let referenceForwardTolerance = 1e-5
/// The gradient tolerance: each element within 1e-3 relative of the reference, relative to
/// max(|reference element|, 1e-2 · the largest |element| of that gradient) so near-zero elements are not held to
/// a relative error they cannot have in f32.
let referenceGradientTolerance = 1e-3
/// The central-difference step on the float64 reference.
let referenceStep = 1e-6

/// Runs `engine` on `inputs` (as Variables; those in `wrt` require gradients, by default all) and `reference` on
/// their float64 copies; checks the forward, then the gradient of L = Σ w·y (w fixed random, so every output
/// element matters; a plain sum would make softmax gradients vanish) against (L(x+h) − L(x−h)) / 2h on the reference.
func checkAgainstReference(_ name: String, _ inputs: [Tensor], wrt: [Int]? = nil,
                           engine: ([Variable]) throws -> Variable, reference: ([Ref]) -> Ref,
                           sourceLocation: SourceLocation = #_sourceLocation) throws {
  let differentiated = wrt ?? Array(inputs.indices)
  let variables = inputs.enumerated().map { Variable($0.element, requiresGrad: differentiated.contains($0.offset)) }
  let y = try engine(variables)
  var refs = inputs.map(Ref.init)
  let expected = reference(refs)
  guard y.shape == expected.shape else {
    Issue.record("\(name): engine shape \(y.shape), reference \(expected.shape)", sourceLocation: sourceLocation)
    return
  }
  let got = y.value.scalars.map(Double.init)
  let forwardWorst = zip(got, expected.data).map { Swift.abs($0 - $1) / (1 + Swift.abs($1)) }.max() ?? 0
  #expect(forwardWorst <= referenceForwardTolerance, "\(name): forward differs from the float64 reference by \(forwardWorst)",
          sourceLocation: sourceLocation)

  let weights = try Tensor.randn(y.shape, seed: 1234)
  let w = weights.scalars.map(Double.init)
  try y.backward(seed: weights)
  func loss(_ r: [Ref]) -> Double { zip(reference(r).data, w).reduce(0) { $0 + $1.0 * $1.1 } }
  for k in differentiated {
    let analytic = try #require(variables[k].grad, "\(name): no gradient for input \(k)", sourceLocation: sourceLocation)
      .scalars.map(Double.init)
    var numeric: [Double] = []
    for j in 0..<refs[k].count {
      let saved = refs[k].data[j]
      refs[k].data[j] = saved + referenceStep
      let plus = loss(refs)
      refs[k].data[j] = saved - referenceStep
      let minus = loss(refs)
      refs[k].data[j] = saved
      numeric.append((plus - minus) / (2 * referenceStep))
    }
    let scale = 1e-2 * (numeric.map(Swift.abs).max() ?? 0)
    let errors = zip(analytic, numeric).map { Swift.abs($0 - $1) / Swift.max(Swift.abs($1), scale, 1e-9) }
    let worst = errors.max() ?? 0
    #expect(analytic.count == numeric.count && worst <= referenceGradientTolerance,
            "\(name): gradient of input \(k) differs from the float64 reference by \(worst)\n analytic \(analytic.prefix(6))\n numeric  \(numeric.prefix(6))",
            sourceLocation: sourceLocation)
  }
}

/// Standard normal values moved at least 0.1 away from 0 (for relu and abs, whose kink the difference must not cross).
func awayFromZero(_ shape: [Int], seed: UInt64) throws -> Tensor { try Tensor.randn(shape, seed: seed).map { $0 + ($0 >= 0 ? 0.1 : -0.1) } }
func positive(_ shape: [Int], seed: UInt64) throws -> Tensor { try Tensor.rand(shape, seed: seed).map { $0 + 0.5 } }

// MARK: - The ops

@Test func elementwiseOpsMatchTheFloat64Reference() throws {
  let x = try Tensor.randn([2, 3], seed: 1), y = try Tensor.randn([2, 3], seed: 2), row = try Tensor.randn([3], seed: 3)
  let column = try Tensor.randn([2, 1], seed: 4)
  try checkAgainstReference("add", [x, y], engine: { try $0[0].add($0[1]) }, reference: { $0[0] + $0[1] })
  try checkAgainstReference("add broadcast", [x, row], engine: { try $0[0].add($0[1]) }, reference: { $0[0] + $0[1] })
  try checkAgainstReference("subtract broadcast", [column, x], engine: { try $0[0].subtract($0[1]) }, reference: { $0[0] - $0[1] })
  try checkAgainstReference("multiply broadcast", [x, row], engine: { try $0[0].multiply($0[1]) }, reference: { $0[0] * $0[1] })
  try checkAgainstReference("multiply column", [x, column], engine: { try $0[0].multiply($0[1]) }, reference: { $0[0] * $0[1] })
  try checkAgainstReference("divide broadcast", [x, try positive([3], seed: 5)], engine: { try $0[0].divide($0[1]) }, reference: { $0[0] / $0[1] })
  try checkAgainstReference("divide", [try Tensor.randn([3], seed: 6), try positive([2, 3], seed: 7)],
                            engine: { try $0[0].divide($0[1]) }, reference: { $0[0] / $0[1] })
  try checkAgainstReference("scale, shift", [x], engine: { try $0[0].scaled(by: 3).shifted(by: 1) }, reference: { $0[0].map { 3 * $0 + 1 } })
  for p in [3.0, 0.5, -0.5, 2.5] {
    try checkAgainstReference("power \(p)", [try positive([2, 3], seed: 8)], engine: { try $0[0].power(Float(p)) },
                              reference: { $0[0].map { Foundation.pow($0, p) } })
  }
  try checkAgainstReference("negate", [x], engine: { try $0[0].negated() }, reference: { $0[0].map { -$0 } })
  let functions: [(UnaryKernel, (Double) -> Double)] = [
    (.exp, { Foundation.exp($0) }), (.tanh, { Foundation.tanh($0) }), (.sigmoid, { 1 / (1 + Foundation.exp(-$0)) }),
    (.silu, { $0 / (1 + Foundation.exp(-$0)) }),
    // The engine's gelu is the tanh approximation (Hendrycks & Gimpel): ½x(1 + tanh(√(2/π)(x + 0.044715x³))).
    (.gelu, { 0.5 * $0 * (1 + Foundation.tanh((2 / Double.pi).squareRoot() * ($0 + 0.044715 * $0 * $0 * $0))) }),
    (.negate, { -$0 }),
  ]
  let wide = try Tensor.randn([3, 4], seed: 9).binary(.multiply, scalar: 2)
  for (kernel, f) in functions {
    try checkAgainstReference(kernel.rawValue, [wide], engine: { try $0[0].unary(kernel) }, reference: { $0[0].map(f) })
  }
  try checkAgainstReference("log", [try positive([3, 4], seed: 10)], engine: { try $0[0].unary(.log) }, reference: { $0[0].map { Foundation.log($0) } })
  try checkAgainstReference("sqrt", [try positive([3, 4], seed: 11)], engine: { try $0[0].unary(.sqrt) }, reference: { $0[0].map { $0.squareRoot() } })
  try checkAgainstReference("relu", [try awayFromZero([3, 4], seed: 12)], engine: { try $0[0].unary(.relu) }, reference: { $0[0].map { Swift.max($0, 0) } })
  try checkAgainstReference("abs", [try awayFromZero([3, 4], seed: 13)], engine: { try $0[0].unary(.abs) }, reference: { $0[0].map(Swift.abs) })
}

@Test func matmulReductionsAndMovementMatchTheFloat64Reference() throws {
  let a = try Tensor.randn([3, 4], seed: 20), b = try Tensor.randn([4, 2], seed: 21)
  let batch = try Tensor.randn([2, 3, 4], seed: 22), batchRight = try Tensor.randn([2, 4, 5], seed: 23)
  try checkAgainstReference("matmul", [a, b], engine: { try $0[0].matmul($0[1]) }, reference: { $0[0].matmul($0[1]) })
  try checkAgainstReference("batched matmul, shared right", [batch, b], engine: { try $0[0].matmul($0[1]) }, reference: { $0[0].matmul($0[1]) })
  try checkAgainstReference("batched matmul", [batch, batchRight], engine: { try $0[0].matmul($0[1]) }, reference: { $0[0].matmul($0[1]) })
  try checkAgainstReference("sum", [batch], engine: { try $0[0].sum() }, reference: { $0[0].sum() })
  for axis in [0, 1, -1] {
    for keepdims in [false, true] {
      try checkAgainstReference("sum axis \(axis) keepdims \(keepdims)", [batch], engine: { try $0[0].sum(axis: axis, keepdims: keepdims) },
                                reference: { $0[0].sum(axis: axis, keepdims: keepdims) })
      try checkAgainstReference("mean axis \(axis) keepdims \(keepdims)", [batch], engine: { try $0[0].mean(axis: axis, keepdims: keepdims) },
                                reference: { $0[0].mean(axis: axis, keepdims: keepdims) })
    }
  }
  try checkAgainstReference("mean", [batch], engine: { try $0[0].mean() }, reference: { $0[0].mean() })
  try checkAgainstReference("reshape", [batch], engine: { try $0[0].reshaped(to: [4, 6]) }, reference: { $0[0].reshaped([4, 6]) })
  try checkAgainstReference("transpose", [a], engine: { try $0[0].transposed() }, reference: { $0[0].permuted([1, 0]) })
  try checkAgainstReference("permute", [batch], engine: { try $0[0].permuted([2, 0, 1]) }, reference: { $0[0].permuted([2, 0, 1]) })
  try checkAgainstReference("swapaxes", [batch], engine: { try $0[0].swappedAxes(1, 2) }, reference: { $0[0].permuted([0, 2, 1]) })
  // A view fed to another op (the transposed strides reach the next kernel).
  try checkAgainstReference("transpose then matmul", [a, try Tensor.randn([3, 2], seed: 24)],
                            engine: { try $0[0].transposed().matmul($0[1]) }, reference: { $0[0].permuted([1, 0]).matmul($0[1]) })
  try checkAgainstReference("index row", [a], engine: { try $0[0].indexed([.index(1)]) }, reference: { $0[0].taken(axis: 0, [1], dropAxis: true) })
  try checkAgainstReference("slice columns", [a], engine: { try $0[0].indexed([.slice(nil, nil, nil), .slice(1, nil, 2)]) },
                            reference: { $0[0].taken(axis: 1, [1, 3]) })
  try checkAgainstReference("index and slice", [batch], engine: { try $0[0].indexed([.index(1), .slice(0, 3, 2), .slice(1, 3, nil)]) },
                            reference: { $0[0].taken(axis: 0, [1], dropAxis: true).taken(axis: 0, [0, 2]).taken(axis: 1, [1, 2]) })
  for axis in [-1, 0] {
    try checkAgainstReference("softmax axis \(axis)", [a], engine: { try $0[0].softmax(axis: axis) }, reference: { $0[0].softmax(axis: axis) })
    try checkAgainstReference("logsoftmax axis \(axis)", [a], engine: { try $0[0].logSoftmax(axis: axis) },
                              reference: { $0[0].softmax(axis: axis, log: true) })
  }
  // Larger logits (×5). Much further into saturation (×20) the f32 rule y·(g − Σg·y) cancels: the small entries of
  // the gradient keep only an absolute error of about 1e-7 (measured 1e-7 on entries of 7e-7), as in any f32 engine.
  try checkAgainstReference("softmax of large logits", [try Tensor.randn([2, 5], seed: 25).binary(.multiply, scalar: 5)],
                            engine: { try $0[0].softmax() }, reference: { $0[0].softmax() })
}

@Test func convolutionAndPoolingMatchTheFloat64Reference() throws {
  let x = try Tensor.randn([2, 2, 5, 5], seed: 30)
  for (stride, padding, dilation) in [(1, 0, 1), (2, 1, 1), (1, 2, 2)] {
    try checkAgainstReference("conv2d stride \(stride) padding \(padding) dilation \(dilation)",
                              [x, try Tensor.randn([3, 2, 3, 3], seed: 31), try Tensor.randn([3], seed: 32)],
                              engine: { try Variable.conv2d($0[0], $0[1], bias: $0[2], stride: stride, padding: padding, dilation: dilation) },
                              reference: { Ref.conv2d($0[0], $0[1], $0[2], stride: stride, padding: padding, dilation: dilation, groups: 1) })
  }
  let x4 = try Tensor.randn([1, 4, 4, 4], seed: 33)
  try checkAgainstReference("conv2d groups 2", [x4, try Tensor.randn([6, 2, 2, 2], seed: 34)],
                            engine: { try Variable.conv2d($0[0], $0[1], bias: nil, padding: 1, groups: 2) },
                            reference: { Ref.conv2d($0[0], $0[1], nil, stride: 1, padding: 1, dilation: 1, groups: 2) })
  try checkAgainstReference("depthwise conv2d", [x4, try Tensor.randn([4, 1, 3, 3], seed: 35), try Tensor.randn([4], seed: 36)],
                            engine: { try Variable.conv2d($0[0], $0[1], bias: $0[2], stride: 2, padding: 1, groups: 4) },
                            reference: { Ref.conv2d($0[0], $0[1], $0[2], stride: 2, padding: 1, dilation: 1, groups: 4) })
  // Continuous random inputs have no ties, so the difference never moves a window's maximum.
  for (kernel, stride, padding) in [(2, 2, 0), (3, 2, 1), (2, 1, 0)] {
    try checkAgainstReference("maxpool \(kernel) stride \(stride) padding \(padding)", [x],
                              engine: { try $0[0].maxPool2d(kernel: kernel, stride: stride, padding: padding) },
                              reference: { $0[0].maxPool2d(kernel: kernel, stride: stride, padding: padding) })
    try checkAgainstReference("avgpool \(kernel) stride \(stride) padding \(padding)", [x],
                              engine: { try $0[0].avgPool2d(kernel: kernel, stride: stride, padding: padding) },
                              reference: { $0[0].avgPool2d(kernel: kernel, stride: stride, padding: padding) })
  }
  let odd = try Tensor.randn([1, 2, 5, 7], seed: 37)
  for (oh, ow) in [(2, 3), (1, 1), (5, 7), (3, 4)] {
    try checkAgainstReference("adaptive avgpool \(oh)×\(ow)", [odd], engine: { try $0[0].adaptiveAvgPool2d(oh, ow) },
                              reference: { $0[0].adaptiveAvgPool2d(oh, ow) })
  }
}

@Test func normsMatchTheFloat64Reference() throws {
  let x = try Tensor.randn([3, 5], seed: 40), w = try Tensor.randn([5], seed: 41), b = try Tensor.randn([5], seed: 42)
  try checkAgainstReference("rmsnorm", [x, w], engine: { try $0[0].rmsNorm(weight: $0[1]) },
                            reference: { $0[0].normalized(groups: $0[0].lastAxisGroups, centered: false, eps: 1e-6) * $0[1] })
  try checkAgainstReference("layernorm", [x, w, b], engine: { try $0[0].layerNorm(weight: $0[1], bias: $0[2]) },
                            reference: { $0[0].normalized(groups: $0[0].lastAxisGroups, centered: true, eps: 1e-5) * $0[1] + $0[2] })
  try checkAgainstReference("layernorm without affine", [x], engine: { try $0[0].layerNorm(weight: nil, bias: nil) },
                            reference: { $0[0].normalized(groups: $0[0].lastAxisGroups, centered: true, eps: 1e-5) })
  let images = try Tensor.randn([4, 3, 2, 2], seed: 43), cw = try Tensor.randn([3], seed: 44), cb = try Tensor.randn([3], seed: 45)
  try checkAgainstReference("batchnorm", [images, cw, cb], engine: { try $0[0].batchNorm(weight: $0[1], bias: $0[2]) }, reference: { r in
    let x = r[0]
    return x.normalized(groups: x.groups(by: { $0[1] }, count: 3), centered: true, eps: 1e-5) * r[1].channelwise(rank: 4) + r[2].channelwise(rank: 4)
  })
  let sequence = try Tensor.randn([2, 4, 3], seed: 46), gw = try Tensor.randn([4], seed: 47), gb = try Tensor.randn([4], seed: 48)
  try checkAgainstReference("groupnorm", [sequence, gw, gb], engine: { try $0[0].groupNorm(groups: 2, weight: $0[1], bias: $0[2]) }, reference: { r in
    let x = r[0]
    return x.normalized(groups: x.groups(by: { $0[0] * 2 + $0[1] / 2 }, count: 4), centered: true, eps: 1e-5)
      * r[1].channelwise(rank: 3) + r[2].channelwise(rank: 3)
  })
}

@Test func gatherJoinAttentionAndSelectMatchTheFloat64Reference() throws {
  let ids = [2, 0, 2, 3]
  try checkAgainstReference("embedding", [try Tensor.randn([4, 3], seed: 50)],
                            engine: { try Variable.embedding(try Tensor(ids.map(Float.init), shape: [2, 2]), table: $0[0]) },
                            reference: { Ref.embedding(ids, shape: [2, 2], table: $0[0]) })
  let x = try Tensor.randn([3, 5], seed: 51), other = try Tensor.randn([3, 2], seed: 52)
  try checkAgainstReference("concat axis 1", [x, other], engine: { try Variable.concat([$0[0], $0[1]], axis: 1) },
                            reference: { Ref.concat([$0[0], $0[1]], axis: 1) })
  try checkAgainstReference("concat axis 0", [x, try Tensor.randn([1, 5], seed: 53), x], engine: { try Variable.concat($0, axis: 0) },
                            reference: { Ref.concat($0, axis: 0) })
  try checkAgainstReference("stack axis 1", [try Tensor.randn([3], seed: 54), try Tensor.randn([3], seed: 55)],
                            engine: { try Variable.stack($0, axis: 1) },
                            reference: { Ref.concat($0.map { $0.reshaped([3, 1]) }, axis: 1) })
  try checkAgainstReference("rope", [try Tensor.randn([2, 3, 4], seed: 56)], engine: { try $0[0].rotaryEmbedding(start: 2) },
                            reference: { $0[0].rotaryEmbedding(start: 2) })
  let q = try Tensor.randn([2, 3, 4], seed: 57), k = try Tensor.randn([2, 5, 4], seed: 58), v = try Tensor.randn([2, 5, 3], seed: 59)
  for causal in [true, false] {
    try checkAgainstReference("attention causal \(causal)", [q, k, v],
                              engine: { try Variable.scaledDotProductAttention($0[0], $0[1], $0[2], causal: causal) },
                              reference: { Ref.attention($0[0], $0[1], $0[2], causal: causal) })
  }
  let condition = try Tensor([1, 0, 1], shape: [3])
  try checkAgainstReference("where", [try Tensor.randn([2, 3], seed: 60), try Tensor.randn([3], seed: 61)],
                            engine: { try Variable.select(condition, $0[0], $0[1]) }, reference: { r in
    let c = Ref(condition)
    return Ref.broadcast(c, r[0]) { $0 != 0 ? $1 : 0 } + Ref.broadcast(c, r[1]) { $0 != 0 ? 0 : $1 }
  })
  try checkAgainstReference("scatter add", [try Tensor.randn([3, 2], seed: 62), try Tensor.randn([4, 2], seed: 63)],
                            engine: { try Variable.scatterAdd($0[0], indices: [2, 0, 2, 1], values: $0[1]) },
                            reference: { Ref.scatterAdd($0[0], indices: [2, 0, 2, 1], values: $0[1]) })
  // Dropout's mask is drawn from the seed, so the reference draws the same one.
  let p: Float = 0.3
  try checkAgainstReference("dropout", [x], engine: { try $0[0].dropout(p, seed: 7) }, reference: { r in
    Ref(r[0].shape, r[0].data.enumerated().map { i, v in
      CounterRandom.uniform(seed: 7, index: UInt64(i)) < p ? 0 : v / (1 - Double(p))
    })
  })
}
