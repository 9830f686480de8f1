// Batch and group normalisation, rotary position embedding and scaled dot-product attention, with gradients.
// Most are compositions of differentiable ops, so their backward rules come from those ops' rules.

import Foundation

extension Variable {
  /// BatchNorm over [N, C, ...] in training mode: each channel normalised by its batch mean and (biased) variance.
  public func batchNorm(weight: Variable?, bias: Variable?, eps: Float = 1e-5) throws -> Variable {
    guard value.rank >= 2 else { throw TensorError.invalidShape(op: "batchnorm", shape: shape, reason: "needs [N, C, ...]") }
    let c = shape[1]
    var axes = Array(0..<value.rank)
    axes.swapAt(0, 1)
    let perChannel = try permuted(axes).reshaped(to: [c, -1])             // [C, N·H·W]
    let normalized = try perChannel.layerNorm(weight: nil, bias: nil, eps: eps)
    var restored = try normalized.reshaped(to: axes.map { shape[$0] }).permuted(axes)
    var broadcast = [Int](repeating: 1, count: value.rank)
    broadcast[1] = c
    if let weight { restored = try restored.multiply(weight.reshaped(to: broadcast)) }
    if let bias { restored = try restored.add(bias.reshaped(to: broadcast)) }
    return restored
  }

  /// GroupNorm over [N, C, ...]: channels in `groups` groups, each normalised over its channels and positions.
  public func groupNorm(groups: Int, weight: Variable?, bias: Variable?, eps: Float = 1e-5) throws -> Variable {
    guard value.rank >= 2, groups > 0, shape[1] % groups == 0 else {
      throw TensorError.invalidArgument(op: "groupnorm", reason: "channels of \(shape) must be a multiple of groups \(groups)")
    }
    let n = shape[0], c = shape[1]
    var y = try reshaped(to: [n, groups, -1]).layerNorm(weight: nil, bias: nil, eps: eps).reshaped(to: shape)
    var broadcast = [Int](repeating: 1, count: value.rank)
    broadcast[1] = c
    if let weight { y = try y.multiply(weight.reshaped(to: broadcast)) }
    if let bias { y = try y.add(bias.reshaped(to: broadcast)) }
    return y
  }

  /// Rotary position embedding on [..., T, D] (D even, pairs (2i, 2i+1)), positions from `start`:
  /// each pair rotated by θ = pos · base^(−2i/D) (Su et al. 2021). The backward is the rotation by −θ.
  public func rotaryEmbedding(base: Float = 10_000, start: Int = 0) throws -> Variable {
    guard value.rank >= 2, let d = shape.last, d % 2 == 0 else {
      throw TensorError.invalidShape(op: "rope", shape: shape, reason: "needs [..., positions, even dimension]")
    }
    let t = shape[value.rank - 2]
    var cosines = [Float](repeating: 0, count: t * d / 2), sines = cosines
    for p in 0..<t {
      for i in 0..<(d / 2) {
        let theta = (Double(p) + Double(start)) * Foundation.pow(Double(base), -2 * Double(i) / Double(d))   // no Int overflow
        cosines[p * d / 2 + i] = Float(Foundation.cos(theta)); sines[p * d / 2 + i] = Float(Foundation.sin(theta))
      }
    }
    func rotate(_ x: Tensor, sign: Float) throws -> Tensor {
      let src = try x.contiguous()
      var out = try Tensor(zeros: x.shape, op: "rope")
      let a = src.readPointer(), b = try out.mutablePointer()
      let rows = x.count / d
      for r in 0..<rows {
        let p = r % t
        for i in 0..<(d / 2) {
          let cs = cosines[p * d / 2 + i], sn = sign * sines[p * d / 2 + i]
          let x0 = a[r * d + 2 * i], x1 = a[r * d + 2 * i + 1]
          b[r * d + 2 * i] = x0 * cs - x1 * sn
          b[r * d + 2 * i + 1] = x0 * sn + x1 * cs
        }
      }
      return out
    }
    return Variable(try rotate(value, sign: 1), parents: [self]) { g in [try rotate(g, sign: -1)] }
  }

  /// softmax(q·kᵀ/√d + mask)·v for q [..., Tq, d], k, v [..., Tk, d] (rank 3: batch·heads first); `causal` masks
  /// the future (query i sees keys ≤ i + Tk − Tq).
  public static func scaledDotProductAttention(_ q: Variable, _ k: Variable, _ v: Variable, causal: Bool) throws -> Variable {
    guard q.value.rank == 3, k.value.rank == 3, v.value.rank == 3, q.shape[2] == k.shape[2], k.shape[1] == v.shape[1],
          q.shape[0] == k.shape[0], k.shape[0] == v.shape[0] else {
      throw TensorError.shapeMismatch(op: "attention", lhs: q.shape, rhs: k.shape)
    }
    let d = q.shape[2], tq = q.shape[1], tk = k.shape[1]
    var scores = try q.matmul(k.swappedAxes(1, 2)).scaled(by: 1 / Float(d).squareRoot())
    if causal {
      var mask = try Tensor(zeros: [tq, tk], op: "attention")
      let m = try mask.mutablePointer()
      for i in 0..<tq { for j in 0..<tk where j > i + tk - tq { m[i * tk + j] = -.infinity } }
      scores = try scores.add(Variable(mask))
    }
    return try scores.softmax().matmul(v)
  }

  /// Elementwise choice: a where `condition` is nonzero, else b, broadcast (gradients go to the chosen side).
  /// The unchosen side never leaks in, so NaN or inf there does not reach the result.
  public static func select(_ condition: Tensor, _ a: Variable, _ b: Variable) throws -> Variable {
    let shape = try Tensor.broadcastShape(try Tensor.broadcastShape(condition.shape, a.shape, op: "where"), b.shape, op: "where")
    let mask = try condition.mapped(op: "where") { $0 != 0 && !$0.isNaN ? 1 : 0 }.add(Tensor.zeros(shape))
    let inverse = try mask.map { 1 - $0 }
    let av = a.value, bv = b.value
    let left = try av.add(Tensor.zeros(shape)), right = try bv.add(Tensor.zeros(shape))
    let out = try mask.zipBroadcast(left, op: "where") { m, x in m != 0 ? x : 0 }
      .add(inverse.zipBroadcast(right, op: "where") { m, y in m != 0 ? y : 0 })
    return Variable(out, parents: [a, b]) { g in
      [try g.multiply(mask).summed(toShape: av.shape), try g.multiply(inverse).summed(toShape: bv.shape)]
    }
  }
}

extension Tensor {
  /// The k largest (or smallest) values along the last axis and their indices (i32), largest first.
  public func topK(_ k: Int, largest: Bool = true) throws -> (values: Tensor, indices: Tensor) {
    guard rank >= 1, let n = shape.last, k >= 0, k <= n else {
      throw TensorError.invalidArgument(op: "topk", reason: "k must be between 0 and the last axis size of \(shape), got \(k)")
    }
    let src = try contiguous(), p = src.readPointer()
    let rows = n == 0 ? 0 : count / n
    var values = try Tensor(zeros: Array(shape.dropLast()) + [k], op: "topk")
    var indices = try Tensor(zeros: Array(shape.dropLast()) + [k], dtype: .i32, op: "topk")
    let vp = try values.mutablePointer(), ip = indices.storage.ints()
    for r in 0..<rows {
      // Stable: ties keep the lower index first; NaN counts as largest, as in numpy's sort.
      let order = (0..<n).sorted { i, j in
        let x = p[r * n + i], y = p[r * n + j]
        if x == y || (x.isNaN && y.isNaN) { return i < j }
        if x.isNaN { return largest }
        if y.isNaN { return !largest }
        return largest ? x > y : x < y
      }
      for (c, i) in order.prefix(k).enumerated() { vp[r * k + c] = p[r * n + i]; ip[r * k + c] = Int32(i) }
    }
    return (values, indices)
  }
}
