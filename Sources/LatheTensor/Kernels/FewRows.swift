// Products of a few input rows with an f32 weight matrix, reading each weight once: out[t, r] = x[t]·w[r]. For a
// handful of rows (a draft tree, its streams, a head over a few rows) sgemm spends as long packing the weights as
// computing, and one matrix-vector product per row reads the weights once per row; this reads them once, keeping
// four weight rows in L1 while two input rows at a time pass over them (6 loads per 8 FMAs of 16 lanes).
//
// Every dot product is summed the same way whatever the blocking (16-lane partial sums over the columns in order,
// the lanes added pairwise, then the tail), so a row's output does not depend on how many rows run with it.

import CPrefetch

public enum FewRows {
  /// Up to this many input rows the forward pass uses this kernel in place of sgemm.
  public static let maxRows = 32

  @inline(__always) static func load(_ p: UnsafePointer<Float>) -> SIMD16<Float> {
    UnsafeRawPointer(p).loadUnaligned(as: SIMD16<Float>.self)
  }

  /// The 16 lanes added pairwise (8, 4, 2, 1): the same order for every dot product.
  @inline(__always) static func reduce(_ v: SIMD16<Float>) -> Float {
    let a = v.lowHalf + v.highHalf, b = a.lowHalf + a.highHalf, c = b.lowHalf + b.highHalf
    return c[0] + c[1]
  }

  @inline(__always) static func finish(_ acc: SIMD16<Float>, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, from: Int, to: Int) -> Float {
    var s = reduce(acc)
    var c = from
    while c < to { s += a[c] * b[c]; c += 1 }
    return s
  }

  /// out[t·outStride + r] = Σ_c x[t·cols + c]·w[r·cols + c] for t in 0..<rows, r in 0..<features.
  public static func multiply(_ x: UnsafePointer<Float>, rows n: Int, _ w: UnsafePointer<Float>, features: Int, cols: Int,
                              into out: UnsafeMutablePointer<Float>, outStride: Int) {
    let vec = cols / 16 * 16
    var r = 0
    // Four weight rows at a time: two input rows (8 accumulators), then a last odd row (4 independent chains).
    while r + 4 <= features {
      let w0 = w + r * cols, w1 = w0 + cols, w2 = w1 + cols, w3 = w2 + cols
      // The next four weight rows are asked for during the first pass over these (one line of each per step).
      let next = r + 8 <= features ? w + (r + 4) * cols : w0
      var t = 0
      while t + 2 <= n {
        let x0 = x + t * cols, x1 = x0 + cols, ahead = t == 0
        var a00 = SIMD16<Float>(), a10 = SIMD16<Float>(), a20 = SIMD16<Float>(), a30 = SIMD16<Float>()
        var a01 = SIMD16<Float>(), a11 = SIMD16<Float>(), a21 = SIMD16<Float>(), a31 = SIMD16<Float>()
        var c = 0
        while c < vec {
          if ahead {
            lathe_prefetch(next + c); lathe_prefetch(next + cols + c); lathe_prefetch(next + 2 * cols + c); lathe_prefetch(next + 3 * cols + c)
          }
          let p0 = load(x0 + c), p1 = load(x1 + c)
          let u0 = load(w0 + c), u1 = load(w1 + c), u2 = load(w2 + c), u3 = load(w3 + c)
          a00.addProduct(p0, u0); a10.addProduct(p0, u1); a20.addProduct(p0, u2); a30.addProduct(p0, u3)
          a01.addProduct(p1, u0); a11.addProduct(p1, u1); a21.addProduct(p1, u2); a31.addProduct(p1, u3)
          c += 16
        }
        let o0 = out + t * outStride + r, o1 = o0 + outStride
        o0[0] = finish(a00, x0, w0, from: vec, to: cols); o0[1] = finish(a10, x0, w1, from: vec, to: cols)
        o0[2] = finish(a20, x0, w2, from: vec, to: cols); o0[3] = finish(a30, x0, w3, from: vec, to: cols)
        o1[0] = finish(a01, x1, w0, from: vec, to: cols); o1[1] = finish(a11, x1, w1, from: vec, to: cols)
        o1[2] = finish(a21, x1, w2, from: vec, to: cols); o1[3] = finish(a31, x1, w3, from: vec, to: cols)
        t += 2
      }
      if t < n {
        let x0 = x + t * cols
        var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
        let ahead = t == 0
        var c = 0
        while c < vec {
          if ahead {
            lathe_prefetch(next + c); lathe_prefetch(next + cols + c); lathe_prefetch(next + 2 * cols + c); lathe_prefetch(next + 3 * cols + c)
          }
          let p0 = load(x0 + c)
          a0.addProduct(p0, load(w0 + c)); a1.addProduct(p0, load(w1 + c)); a2.addProduct(p0, load(w2 + c)); a3.addProduct(p0, load(w3 + c))
          c += 16
        }
        let o0 = out + t * outStride + r
        o0[0] = finish(a0, x0, w0, from: vec, to: cols); o0[1] = finish(a1, x0, w1, from: vec, to: cols)
        o0[2] = finish(a2, x0, w2, from: vec, to: cols); o0[3] = finish(a3, x0, w3, from: vec, to: cols)
      }
      r += 4
    }
    while r < features {
      for t in 0..<n { out[t * outStride + r] = dot(x + t * cols, w + r * cols, cols: cols, vec: vec) }
      r += 1
    }
  }

  @inline(__always) static func dot(_ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>, cols: Int, vec: Int) -> Float {
    var acc = SIMD16<Float>()
    var c = 0
    while c < vec { acc.addProduct(load(a + c), load(b + c)); c += 16 }
    return finish(acc, a, b, from: vec, to: cols)
  }
}
