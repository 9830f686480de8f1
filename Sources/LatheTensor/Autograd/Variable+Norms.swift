// Normalisation, embedding lookup, concatenation and dropout, each with its backward rule.

import Foundation

extension Variable {
  /// RMSNorm over the last axis: y = x / sqrt(mean(x²) + eps) · w   (Zhang & Sennrich 2019).
  public func rmsNorm(weight: Variable?, eps: Float = 1e-6) throws -> Variable {
    let ms = try multiply(self).mean(axis: -1, keepdims: true)
    let inv = try ms.shifted(by: eps).power(-0.5)
    let y = try multiply(inv)
    return try weight.map { try y.multiply($0) } ?? y
  }

  /// LayerNorm over the last axis: y = (x − mean) / sqrt(var + eps) · w + b   (Ba et al. 2016; biased variance).
  public func layerNorm(weight: Variable?, bias: Variable?, eps: Float = 1e-5) throws -> Variable {
    let mu = try mean(axis: -1, keepdims: true)
    let centered = try subtract(mu)
    let variance = try centered.multiply(centered).mean(axis: -1, keepdims: true)
    var y = try centered.multiply(variance.shifted(by: eps).power(-0.5))
    if let weight { y = try y.multiply(weight) }
    if let bias { y = try y.add(bias) }
    return y
  }

  /// Rows of `table` [vocab, dim] at integer `ids` (any shape) → ids.shape + [dim]; the table's gradient
  /// adds each output row's gradient back into its row.
  public static func embedding(_ ids: Tensor, table: Variable) throws -> Variable {
    guard table.value.rank == 2 else { throw TensorError.invalidShape(op: "embedding", shape: table.shape, reason: "table must be [vocab, dim]") }
    let vocab = table.shape[0], dim = table.shape[1]
    let rows = try ids.scalars.map { v -> Int in
      guard let i = Int(exactly: v) else { throw TensorError.invalidArgument(op: "embedding", reason: "id \(v) is not an integer") }
      guard i >= 0, i < vocab else { throw TensorError.indexOutOfRange(op: "embedding", index: i, size: vocab, axis: 0) }
      return i
    }
    let out = try table.value.gatheredRows(rows).reshaped(to: ids.shape + [dim])
    return Variable(out, parents: [table]) { g in
      var dt = try Tensor(zeros: [vocab, dim], op: "embedding")
      let p = try dt.mutablePointer(), gp = try g.contiguous().readPointer()
      for (k, r) in rows.enumerated() { for j in 0..<dim { p[r * dim + j] += gp[k * dim + j] } }
      return [dt]
    }
  }

  /// Joins variables of equal shapes except along `axis`.
  public static func concat(_ parts: [Variable], axis: Int) throws -> Variable {
    guard let first = parts.first else { throw TensorError.invalidArgument(op: "concat", reason: "needs at least one tensor") }
    let a = try first.value.normalizedAxis(axis, op: "concat")
    for p in parts where p.value.rank != first.value.rank || p.shape.enumerated().contains(where: { $0.offset != a && $0.element != first.shape[$0.offset] }) {
      throw TensorError.shapeMismatch(op: "concat", lhs: first.shape, rhs: p.shape)
    }
    let sizes = parts.map { $0.shape[a] }
    var shape = first.shape
    shape[a] = sizes.reduce(0, +)
    var out = try Tensor(zeros: shape, op: "concat")
    let outer = shape[..<a].reduce(1, *), inner = shape[(a + 1)...].reduce(1, *)
    let dst = try out.mutablePointer()
    var start = 0
    for (p, size) in zip(parts, sizes) {
      let src = try p.value.contiguous().readPointer()
      for o in 0..<outer {
        (dst + (o * shape[a] + start) * inner).update(from: src + o * size * inner, count: size * inner)
      }
      start += size
    }
    return Variable(out, parents: parts) { g in
      var grads: [Tensor?] = []
      var begin = 0
      for size in sizes {
        var items = [Tensor.IndexComponent](repeating: .slice(nil, nil, nil), count: a)
        items.append(.slice(begin, begin + size, 1))
        grads.append(try g.indexed(items).contiguous())
        begin += size
      }
      return grads
    }
  }

  /// New axis `axis`, then concatenation: `stack([a, b])` of [3] tensors is [2, 3].
  public static func stack(_ parts: [Variable], axis: Int = 0) throws -> Variable {
    guard let first = parts.first else { throw TensorError.invalidArgument(op: "stack", reason: "needs at least one tensor") }
    let rank = first.value.rank + 1
    let a = axis < 0 ? axis + rank : axis
    guard a >= 0 && a < rank else { throw TensorError.invalidAxis(op: "stack", axis: axis, rank: rank) }
    let expanded = try parts.map { p -> Variable in
      guard p.shape == first.shape else { throw TensorError.shapeMismatch(op: "stack", lhs: first.shape, rhs: p.shape) }
      var s = p.shape
      s.insert(1, at: a)
      return try p.reshaped(to: s)
    }
    return try concat(expanded, axis: a)
  }

  /// Inverted dropout: zeroes each element with probability p (mask from the seed) and scales the rest by 1/(1−p).
  public func dropout(_ p: Float, seed: UInt64) throws -> Variable {
    guard p >= 0 && p < 1 else { throw TensorError.invalidArgument(op: "dropout", reason: "p must be in [0, 1), got \(p)") }
    if p == 0 { return self }
    let scale = 1 / (1 - p)
    var mask = try Tensor(zeros: shape, op: "dropout")
    let m = try mask.mutablePointer()
    for i in 0..<mask.count { m[i] = CounterRandom.uniform(seed: seed, index: UInt64(i)) < p ? 0 : scale }
    let keep = mask
    return Variable(try value.multiply(keep), parents: [self]) { g in [try g.multiply(keep)] }
  }
}

extension Variable {
  /// Adaptive average pooling of [N, C, H, W] to [N, C, oh, ow]: output cell (i, j) averages input rows
  /// ⌊i·H/oh⌋ ..< ⌈(i+1)·H/oh⌉ and the same for columns (PyTorch's windows); the gradient spreads evenly back.
  public func adaptiveAvgPool2d(_ oh: Int, _ ow: Int) throws -> Variable {
    guard value.rank == 4, oh >= 1, ow >= 1 else {
      throw TensorError.invalidArgument(op: "adaptiveavgpool", reason: "needs [N, C, H, W] and an output size of at least 1×1, got \(shape) → \(oh)×\(ow)")
    }
    let (n, c, h, w) = (shape[0], shape[1], shape[2], shape[3])
    // Window bounds are products i·size: sizes within 2^24 (output) and 2^38 (input) keep them inside Int.
    guard oh <= 1 << 24, ow <= 1 << 24, h <= 1 << 38, w <= 1 << 38 else {
      throw TensorError.invalidArgument(op: "adaptiveavgpool", reason: "output \(oh)×\(ow) must be at most 2^24 a side, input \(shape) at most 2^38")
    }
    func window(_ i: Int, _ out: Int, _ size: Int) -> Range<Int> { (i * size / out)..<(((i + 1) * size + out - 1) / out) }
    let src = try value.contiguous(), sp = src.readPointer()
    var out = try Tensor(zeros: [n, c, oh, ow], op: "adaptiveavgpool")
    let op = try out.mutablePointer()
    for plane in 0..<(n * c) { for i in 0..<oh { for j in 0..<ow {
      let rows = window(i, oh, h), cols = window(j, ow, w)
      var s: Float = 0
      for y in rows { for x in cols { s += sp[plane * h * w + y * w + x] } }
      op[(plane * oh + i) * ow + j] = s / Float(rows.count * cols.count)
    } } }
    let inputShape = shape
    return Variable(out, parents: [self]) { g in
      var dx = try Tensor(zeros: inputShape, op: "adaptiveavgpool")
      let dp = try dx.mutablePointer(), gp = try g.contiguous().readPointer()
      for plane in 0..<(n * c) { for i in 0..<oh { for j in 0..<ow {
        let rows = window(i, oh, h), cols = window(j, ow, w)
        let share = gp[(plane * oh + i) * ow + j] / Float(rows.count * cols.count)
        for y in rows { for x in cols { dp[plane * h * w + y * w + x] += share } }
      } } }
      return [dx]
    }
  }

  /// `base` with `values` rows added at row `indices` (rows may repeat; they accumulate): PyTorch's index_add along
  /// axis 0. Gradients: to base unchanged, to values the gathered rows.
  public static func scatterAdd(_ base: Variable, indices: [Int], values: Variable) throws -> Variable {
    guard base.value.rank >= 1, values.value.rank == base.value.rank, values.shape.first == indices.count,
          Array(values.shape.dropFirst()) == Array(base.shape.dropFirst()) else {
      throw TensorError.shapeMismatch(op: "scatter", lhs: base.shape, rhs: values.shape)
    }
    let rows = base.shape[0], rowCount = base.value.count / Swift.max(rows, 1)
    for i in indices where i < 0 || i >= rows { throw TensorError.indexOutOfRange(op: "scatter", index: i, size: rows, axis: 0) }
    var out = try base.value.copied(as: .f32)
    let op = try out.mutablePointer(), vp = try values.value.contiguous().readPointer()
    for (k, r) in indices.enumerated() { for j in 0..<rowCount { op[r * rowCount + j] += vp[k * rowCount + j] } }
    return Variable(out, parents: [base, values]) { g in [g, try g.gatheredRows(indices)] }
  }
}
