// The differentiable pieces of a decoder-only transformer, each one node with a forward and a backward written
// over buffers (as llm.c does), so that training a language model costs its matrix products and little else:
// x·Wᵀ, RMSNorm, rotary embedding over heads, grouped-query attention with a causal cut, an additive mask and key
// padding, the gated feed-forward activation, and next-token cross-entropy with an optional z-loss.
// The matrix products are cblas_sgemm (threaded by OpenBLAS); row-wise work goes over the thread pool.

import CBLAS
import Foundation

extension Variable {
  /// x [..., in] · Wᵀ for W [out, in] (the layout of GGUF files and PyTorch's Linear): [..., out].
  /// Backward: dx = g·W, dW = gᵀ·x.
  public func linear(_ weight: Variable) throws -> Variable {
    guard weight.value.rank == 2, let inner = shape.last, weight.shape[1] == inner else {
      throw TensorError.shapeMismatch(op: "linear", lhs: shape, rhs: weight.shape)
    }
    let x = try value.contiguous(), w = try weight.value.contiguous()
    let outFeatures = weight.shape[0], n = x.count / Swift.max(1, inner)
    var y = try Tensor(uninitialized: Array(shape.dropLast()) + [outFeatures], op: "linear")
    if n > 0 && outFeatures > 0 {
      if inner == 0 { _ = try y.mutablePointer().initialize(repeating: 0, count: y.count) } else {
        Gemm.multiply(transposeA: false, transposeB: true, m: n, n: outFeatures, k: inner, x.readPointer(), lda: inner,
                      w.readPointer(), ldb: inner, try y.mutablePointer(), ldc: outFeatures)
      }
    }
    let wantsX = requiresGrad, wantsW = weight.requiresGrad
    return Variable(y, parents: [self, weight]) { g in
      let gc = try g.contiguous()
      var dx: Tensor? = nil, dw: Tensor? = nil
      if wantsX {
        var t = try Tensor(zeros: x.shape, op: "linear backward")
        if n > 0 && outFeatures > 0 && inner > 0 {
          Gemm.multiply(transposeA: false, transposeB: false, m: n, n: inner, k: outFeatures, gc.readPointer(), lda: outFeatures,
                        w.readPointer(), ldb: inner, try t.mutablePointer(), ldc: inner)
        }
        dx = t
      }
      if wantsW {
        var t = try Tensor(zeros: w.shape, op: "linear backward")
        if n > 0 && outFeatures > 0 && inner > 0 {
          Gemm.multiply(transposeA: true, transposeB: false, m: outFeatures, n: inner, k: n, gc.readPointer(), lda: outFeatures,
                        x.readPointer(), ldb: inner, try t.mutablePointer(), ldc: inner)
        }
        dw = t
      }
      return [dx, dw]
    }
  }

  /// RMSNorm over the last axis in one node: y = x·r·w with r = 1/sqrt(mean(x²) + eps), the mean taken in Double
  /// (as the inference forward does). Backward: dx = r·(g∘w) − x·r³·Σ(g∘w∘x)/d, dw = Σ_rows g∘x·r.
  public func rmsNormRows(weight: Variable, eps: Float) throws -> Variable {
    guard let d = shape.last, d > 0, weight.shape == [d] else {
      throw TensorError.shapeMismatch(op: "rmsnorm", lhs: shape, rhs: weight.shape)
    }
    let x = try value.contiguous(), w = try weight.value.contiguous()
    let rows = x.count / d
    var y = try Tensor(uninitialized: shape, op: "rmsnorm")
    var inverse = [Float](repeating: 0, count: rows)
    let xp = x.readPointer(), wp = w.readPointer(), yp = try y.mutablePointer()
    inverse.withUnsafeMutableBufferPointer { r in
      guard let rp = r.baseAddress else { return }
      for row in 0..<rows {
        let a = xp + row * d, o = yp + row * d
        var s: Double = 0
        for j in 0..<d { s += Double(a[j]) * Double(a[j]) }
        let scale = Float(1 / (s / Double(d) + Double(eps)).squareRoot())
        rp[row] = scale
        for j in 0..<d { o[j] = a[j] * scale * wp[j] }
      }
    }
    let wantsX = requiresGrad, wantsW = weight.requiresGrad
    return Variable(y, parents: [self, weight]) { g in
      let gc = try g.contiguous(), gp = gc.readPointer()
      var dx = try Tensor(zeros: x.shape, op: "rmsnorm backward"), dw = try Tensor(zeros: [d], op: "rmsnorm backward")
      let dxp = try dx.mutablePointer(), dwp = try dw.mutablePointer()
      var dwSum = [Double](repeating: 0, count: d)
      for row in 0..<rows {
        let a = xp + row * d, gr = gp + row * d, r = inverse[row]
        if wantsX {
          var dot: Double = 0
          for j in 0..<d { dot += Double(gr[j] * wp[j]) * Double(a[j]) }
          let c = Float(dot / Double(d)) * r * r * r
          let o = dxp + row * d
          for j in 0..<d { o[j] = r * gr[j] * wp[j] - a[j] * c }
        }
        if wantsW { for j in 0..<d { dwSum[j] += Double(gr[j] * a[j] * r) } }
      }
      for j in 0..<d { dwp[j] = Float(dwSum[j]) }
      return [wantsX ? dx : nil, wantsW ? dw : nil]
    }
  }

  /// Rotary position embedding over [..., T, heads, hd]: token t (position start + t) has each pair of every head
  /// rotated by θ_i = position · base^(−2i/hd), pairs (2i, 2i+1) or, with `halves`, (i, i + hd/2). The angles are
  /// computed in Double, as the inference forward does. Backward: the rotation by −θ. `positions` (T of them) gives
  /// each row its own position instead (stream rows share their main token's).
  public func rotaryHeads(base: Double, halves: Bool, start: Int = 0, positions: [Int]? = nil) throws -> Variable {
    guard value.rank >= 3, let hd = shape.last, hd % 2 == 0, hd > 0, base > 0 else {
      throw TensorError.invalidShape(op: "rope", shape: shape, reason: "needs [..., positions, heads, even head dimension]")
    }
    let t = shape[value.rank - 3], heads = shape[value.rank - 2], half = hd / 2
    if let positions, positions.count != t {
      throw TensorError.shapeMismatch(op: "rope positions", lhs: [positions.count], rhs: [t])
    }
    var cosines = [Float](repeating: 0, count: t * half), sines = cosines
    for p in 0..<t {
      let position = positions?[p] ?? start + p
      for i in 0..<half {
        let angle = Double(position) * Foundation.pow(base, -2 * Double(i) / Double(hd))
        cosines[p * half + i] = Float(Foundation.cos(angle)); sines[p * half + i] = Float(Foundation.sin(angle))
      }
    }
    let (step, partner) = halves ? (1, half) : (2, 1)
    func rotate(_ x: Tensor, sign: Float) throws -> Tensor {
      let src = try x.contiguous()
      var out = try Tensor(uninitialized: x.shape, op: "rope")
      let a = src.readPointer(), b = try out.mutablePointer()
      let rows = x.count / (heads * hd)
      for r in 0..<rows {
        let p = r % t
        for h in 0..<heads {
          let base = (r * heads + h) * hd
          for i in 0..<half {
            let c = cosines[p * half + i], s = sign * sines[p * half + i]
            let j = base + i * step
            let x0 = a[j], x1 = a[j + partner]
            b[j] = x0 * c - x1 * s
            b[j + partner] = x0 * s + x1 * c
          }
        }
      }
      return out
    }
    return Variable(try rotate(value, sign: 1), parents: [self]) { g in [try rotate(g, sign: -1)] }
  }

  /// act(gate) ⊙ up, elementwise (SwiGLU with .silu; .relu and .gelu (tanh form) for other feed-forwards).
  public static func gatedActivation(_ gate: Variable, _ up: Variable, _ kind: UnaryKernel) throws -> Variable {
    guard gate.shape == up.shape else { throw TensorError.shapeMismatch(op: "gated activation", lhs: gate.shape, rhs: up.shape) }
    guard [.silu, .relu, .gelu].contains(kind) else {
      throw TensorError.invalidArgument(op: "gated activation", reason: "act must be silu, relu or gelu, got \(kind.rawValue)")
    }
    let a = try gate.value.contiguous(), u = try up.value.contiguous(), n = a.count
    let ap = a.readPointer(), up0 = u.readPointer()
    var y = try Tensor(uninitialized: gate.shape, op: "gated activation")
    let yp = try y.mutablePointer()
    let chunk = 1 << 14
    ThreadPool.shared.parallelFor((n + chunk - 1) / chunk) { c in
      for i in (c * chunk)..<Swift.min(n, (c + 1) * chunk) { yp[i] = GatedActivation.value(kind, ap[i]) * up0[i] }
    }
    return Variable(y, parents: [gate, up]) { g in
      let gp = try g.contiguous().readPointer()
      var dg = try Tensor(uninitialized: a.shape, op: "gated activation backward")
      var du = try Tensor(uninitialized: a.shape, op: "gated activation backward")
      let dgp = try dg.mutablePointer(), dup = try du.mutablePointer()
      ThreadPool.shared.parallelFor((n + chunk - 1) / chunk) { c in
        for i in (c * chunk)..<Swift.min(n, (c + 1) * chunk) {
          let x = ap[i]
          dgp[i] = gp[i] * up0[i] * GatedActivation.derivative(kind, x)
          dup[i] = gp[i] * GatedActivation.value(kind, x)
        }
      }
      return [dg, du]
    }
  }

  /// Attention of queries [B, T, H, hd] over keys and values [B, T, KV, hd] (H a multiple of KV: query head h reads
  /// KV head h / (H/KV)): softmax(Q·Kᵀ/√hd + mask)·V per head, with the future cut when `causal`, an additive `mask`
  /// [T, T] or [B, T, T] (-inf entries drop a key), and `keyPadding` [B, T] (nonzero: that key is padding, seen by
  /// no query). A query that sees no key gets zeros. Keeps the probabilities [B, H, T, T] for the backward:
  /// dV = Pᵀ·dO, dS = P∘(dO·Vᵀ − rowsum(P∘dO·Vᵀ)), dQ = dS·K/√hd, dK = dSᵀ·Q/√hd.
  public static func groupedAttention(_ q: Variable, _ k: Variable, _ v: Variable, causal: Bool, mask: Tensor? = nil,
                                      keyPadding: Tensor? = nil) throws -> Variable {
    guard q.value.rank == 4, k.value.rank == 4, k.shape == v.shape, q.shape[0] == k.shape[0], q.shape[1] == k.shape[1],
          q.shape[3] == k.shape[3], k.shape[2] > 0, q.shape[2] % k.shape[2] == 0 else {
      throw TensorError.shapeMismatch(op: "attention", lhs: q.shape, rhs: k.shape)
    }
    let b = q.shape[0], t = q.shape[1], heads = q.shape[2], kvHeads = k.shape[2], hd = q.shape[3]
    let group = heads / kvHeads
    var maskPerBatch = false
    if let mask {
      if mask.shape == [b, t, t] { maskPerBatch = b > 1 } else if mask.shape != [t, t] {
        throw TensorError.shapeMismatch(op: "attention mask", lhs: mask.shape, rhs: [b, t, t])
      }
    }
    if let keyPadding, keyPadding.shape != [b, t] { throw TensorError.shapeMismatch(op: "attention key padding", lhs: keyPadding.shape, rhs: [b, t]) }
    let qc = try q.value.contiguous(), kc = try k.value.contiguous(), vc = try v.value.contiguous()
    let maskValues = try mask.map { try $0.contiguous() }, padding = try keyPadding.map { try $0.contiguous() }
    var probabilities = try Tensor(uninitialized: [b, heads, t, t], op: "attention")
    var out = try Tensor(zeros: q.shape, op: "attention")
    let qp = qc.readPointer(), kp = kc.readPointer(), vp = vc.readPointer()
    let pp = try probabilities.mutablePointer(), op = try out.mutablePointer()
    let scale = 1 / Float(hd).squareRoot()
    let qStride = heads * hd, kvStride = kvHeads * hd
    let mp = maskValues?.readPointer(), padp = padding?.readPointer()
    // One task per (batch, KV head): its query heads one after the other, so tasks write disjoint outputs.
    ThreadPool.shared.parallelFor(b * kvHeads) { item in
      let bi = item / kvHeads, kvh = item % kvHeads
      let keys = kp + bi * t * kvStride + kvh * hd, values = vp + bi * t * kvStride + kvh * hd
      for h in (kvh * group)..<((kvh + 1) * group) {
        let queries = qp + bi * t * qStride + h * hd
        let p = pp + (bi * heads + h) * t * t
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(t), Int32(t), Int32(hd), scale, queries, Int32(qStride),
                    keys, Int32(kvStride), 0, p, Int32(t))
        for i in 0..<t {
          let row = p + i * t
          let add = mp.map { $0 + (maskPerBatch ? bi * t * t : 0) + i * t }
          let pad = padp.map { $0 + bi * t }
          var top = -Float.infinity
          for j in 0..<t {
            var s = row[j]
            if causal && j > i { s = -.infinity }
            if let add { s += add[j] }
            if let pad, pad[j] != 0 { s = -.infinity }
            row[j] = s
            top = Swift.max(top, s)
          }
          guard top > -.infinity else { row.update(repeating: 0, count: t); continue }
          var sum: Float = 0
          for j in 0..<t { let e = FastExp.exp(row[j] - top); row[j] = e; sum += e }
          let inv = 1 / sum
          for j in 0..<t { row[j] *= inv }
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(t), Int32(hd), Int32(t), 1, p, Int32(t), values, Int32(kvStride),
                    0, op + bi * t * qStride + h * hd, Int32(qStride))
      }
    }
    let probs = probabilities
    return Variable(out, parents: [q, k, v]) { g in
      let gc = try g.contiguous(), gp = gc.readPointer()
      var dq = try Tensor(zeros: q.shape, op: "attention backward"), dk = try Tensor(zeros: k.shape, op: "attention backward")
      var dv = try Tensor(zeros: v.shape, op: "attention backward")
      let dqp = try dq.mutablePointer(), dkp = try dk.mutablePointer(), dvp = try dv.mutablePointer()
      let probabilities = probs.readPointer()
      let scratch = try (0..<ThreadPool.shared.threadCount).map { _ in try Tensor(uninitialized: [t, t], op: "attention backward") }
      let scratchPointers = scratch.map { $0.readPointer() }
      let next = ScratchDealer(count: scratchPointers.count)
      ThreadPool.shared.parallelFor(b * kvHeads) { item in
        let bi = item / kvHeads, kvh = item % kvHeads
        let slot = next.take()
        defer { next.give(slot) }
        let ds = scratchPointers[slot]
        let keys = kp + bi * t * kvStride + kvh * hd, values = vp + bi * t * kvStride + kvh * hd
        let dKeys = dkp + bi * t * kvStride + kvh * hd, dValues = dvp + bi * t * kvStride + kvh * hd
        for h in (kvh * group)..<((kvh + 1) * group) {
          let queries = qp + bi * t * qStride + h * hd, dOut = gp + bi * t * qStride + h * hd
          let p = probabilities + (bi * heads + h) * t * t
          // dV += Pᵀ·dO; dP = dO·Vᵀ (into ds).
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(t), Int32(hd), Int32(t), 1, p, Int32(t), dOut, Int32(qStride),
                      1, dValues, Int32(kvStride))
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(t), Int32(t), Int32(hd), 1, dOut, Int32(qStride), values, Int32(kvStride),
                      0, ds, Int32(t))
          for i in 0..<t {
            let pr = p + i * t, dr = ds + i * t
            var dot: Float = 0
            for j in 0..<t { dot += pr[j] * dr[j] }
            for j in 0..<t { dr[j] = pr[j] * (dr[j] - dot) }
          }
          // dQ = dS·K·scale; dK += dSᵀ·Q·scale.
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(t), Int32(hd), Int32(t), scale, ds, Int32(t), keys, Int32(kvStride),
                      0, dqp + bi * t * qStride + h * hd, Int32(qStride))
          cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, Int32(t), Int32(hd), Int32(t), scale, ds, Int32(t), queries, Int32(qStride),
                      1, dKeys, Int32(kvStride))
        }
      }
      withExtendedLifetime(scratch) {}
      return [dq, dk, dv]
    }
  }

  /// Mean next-token cross-entropy of logits [N, V] against `targets` (N ids; −1 skips a position), plus
  /// zLoss·mean(log Z²) (PaLM's z-loss) when zLoss > 0. The gradient is (softmax − onehot + 2·zLoss·log Z·softmax)/count.
  public static func tokenCrossEntropy(_ logits: Variable, targets: [Int], zLoss: Float = 0) throws -> Variable {
    guard logits.value.rank == 2, logits.shape[0] == targets.count else {
      throw TensorError.shapeMismatch(op: "token cross-entropy", lhs: logits.shape, rhs: [targets.count])
    }
    let n = logits.shape[0], vocab = logits.shape[1]
    if let bad = targets.first(where: { $0 < -1 || $0 >= vocab }) {
      throw TensorError.indexOutOfRange(op: "token cross-entropy", index: bad, size: vocab, axis: 1)
    }
    let counted = targets.filter { $0 >= 0 }.count
    guard counted > 0, vocab > 0 else { throw TensorError.invalidArgument(op: "token cross-entropy", reason: "no position has a target") }
    let x = try logits.value.contiguous(), xp = x.readPointer()
    var logZ = [Float](repeating: 0, count: n), nll = [Double](repeating: 0, count: n)
    logZ.withUnsafeMutableBufferPointer { lz in
      nll.withUnsafeMutableBufferPointer { nl in
        guard let lzp = lz.baseAddress, let nlp = nl.baseAddress else { return }
        ThreadPool.shared.parallelFor((n + 7) / 8) { chunk in
          for r in (chunk * 8)..<Swift.min(n, chunk * 8 + 8) where targets[r] >= 0 {
            let row = xp + r * vocab
            var top = -Float.infinity
            for j in 0..<vocab { top = Swift.max(top, row[j]) }
            var sum: Double = 0
            for j in 0..<vocab { sum += Double(FastExp.exp(row[j] - top)) }
            let z = Float(Foundation.log(sum)) + top
            lzp[r] = z
            nlp[r] = Double(z - row[targets[r]]) + Double(zLoss) * Double(z) * Double(z)
          }
        }
      }
    }
    let loss = nll.reduce(0, +) / Double(counted)
    let out = try Tensor([Float(loss)], shape: [])
    return Variable(out, parents: [logits]) { g in
      let scale = (g.scalars.first ?? 1) / Float(counted)
      var dx = try Tensor(zeros: x.shape, op: "token cross-entropy backward")
      let dp = try dx.mutablePointer()
      ThreadPool.shared.parallelFor((n + 7) / 8) { chunk in
        for r in (chunk * 8)..<Swift.min(n, chunk * 8 + 8) where targets[r] >= 0 {
          let row = xp + r * vocab, o = dp + r * vocab, z = logZ[r]
          let factor = scale * (1 + 2 * zLoss * z)
          for j in 0..<vocab { o[j] = FastExp.exp(row[j] - z) * factor }
          o[targets[r]] -= scale
        }
      }
      return [dx]
    }
  }
}

/// The activations of the gated feed-forward and their derivatives, scalar (the inference forward's formulas).
public enum GatedActivation {
  @inline(__always) public static func value(_ kind: UnaryKernel, _ x: Float) -> Float {
    switch kind {
    case .relu: return Swift.max(x, 0)
    case .gelu: return 0.5 * x * (1 + Foundation.tanh(0.7978845608 * (x + 0.044715 * x * x * x)))
    default: return x / (1 + Foundation.exp(-x))
    }
  }
  @inline(__always) public static func derivative(_ kind: UnaryKernel, _ x: Float) -> Float {
    switch kind {
    case .relu: return x > 0 ? 1 : 0
    case .gelu:
      let c: Float = 0.7978845608, k: Float = 0.044715
      let u = c * (x + k * x * x * x), th = Foundation.tanh(u)
      return 0.5 * (1 + th) + 0.5 * x * (1 - th * th) * c * (1 + 3 * k * x * x)
    default:
      let s = 1 / (1 + Foundation.exp(-x))
      return s * (1 + x * (1 - s))
    }
  }
}

/// Hands each running task one of `count` scratch slots (tasks ≤ pool threads run at once).
final class ScratchDealer: @unchecked Sendable {
  private let lock = NSLock()
  private var free: [Int]
  init(count: Int) { free = Array(0..<count) }
  func take() -> Int { lock.lock(); defer { lock.unlock() }; return free.popLast() ?? 0 }
  func give(_ slot: Int) { lock.lock(); free.append(slot); lock.unlock() }
}
