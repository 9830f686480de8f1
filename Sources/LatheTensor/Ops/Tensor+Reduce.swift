// Reductions along one axis or over everything: sum, mean, max, min, argmax, var; and softmax.

import Foundation

public enum Reduction: String { case sum, mean, max, min, argmax, variance = "var" }

extension Tensor {
  func normalizedAxis(_ axis: Int, op: String) throws -> Int {
    let a = axis < 0 ? axis + rank : axis
    guard a >= 0 && a < rank else { throw TensorError.invalidAxis(op: op, axis: axis, rank: rank) }
    return a
  }

  /// Reduces along `axis` (all elements when nil). `ddof` applies to `var` (numpy's default 0).
  public func reduce(_ r: Reduction, axis: Int? = nil, keepdims: Bool = false, ddof: Int = 0) throws -> Tensor {
    let op = r.rawValue
    let src = try contiguous()
    guard let axis else {
      let flat = try src.reshaped(to: [count])
      let out = try flat.reduce(r, axis: 0, keepdims: false, ddof: ddof)
      return keepdims ? try out.reshaped(to: [Int](repeating: 1, count: rank)) : out
    }
    let a = try normalizedAxis(axis, op: op)
    let n = shape[a]
    if n == 0 && r != .sum && r != .mean && r != .variance {
      throw TensorError.invalidArgument(op: op, reason: "cannot reduce an empty axis \(axis) of shape \(shape)")
    }
    let outer = shape[..<a].reduce(1, *), inner = shape[(a + 1)...].reduce(1, *)
    var outShape = shape
    if keepdims { outShape[a] = 1 } else { outShape.remove(at: a) }
    var out = try Tensor(zeros: outShape, dtype: r == .argmax ? .i32 : .f32, op: op)
    let p = src.readPointer()
    for o in 0..<outer {
      for i in 0..<inner {
        let base = o * n * inner + i
        let value: Float
        switch r {
        case .sum, .mean:
          var s: Double = 0
          for k in 0..<n { s += Double(p[base + k * inner]) }
          value = Float(r == .mean ? s / Double(max(n, 1)) : s)
          if r == .mean && n == 0 { out.storage.floats()[o * inner + i] = .nan; continue }
        case .max, .min:
          var m = p[base]
          for k in 1..<n {
            let x = p[base + k * inner]
            if x.isNaN || m.isNaN { m = .nan } else if r == .max ? x > m : x < m { m = x }
          }
          value = m
        case .argmax:
          // The first largest element; a NaN wins, as in numpy.
          var best = 0, m = p[base]
          if !m.isNaN {
            for k in 1..<n {
              let x = p[base + k * inner]
              if x.isNaN { best = k; break }
              if x > m { m = x; best = k }
            }
          }
          out.storage.ints()[o * inner + i] = Int32(best)
          continue
        case .variance:
          // No degrees of freedom left (an empty axis, or ddof ≥ n): NaN, as numpy gives.
          guard n - ddof > 0 else { out.storage.floats()[o * inner + i] = .nan; continue }
          var s: Double = 0
          for k in 0..<n { s += Double(p[base + k * inner]) }
          let mean = s / Double(n)
          var ss: Double = 0
          for k in 0..<n { let d = Double(p[base + k * inner]) - mean; ss += d * d }
          value = Float(ss / Double(n - ddof))
        }
        out.storage.floats()[o * inner + i] = value
      }
    }
    return out
  }

  /// exp(x - max) / Σ exp(x - max) along `axis`, stable for large inputs.
  public func softmax(axis: Int = -1, log: Bool = false) throws -> Tensor {
    let op = log ? "logsoftmax" : "softmax"
    let a = try normalizedAxis(axis, op: op)
    let src = try contiguous()
    var out = try Tensor(uninitialized: shape, op: op)
    let n = shape[a], inner = shape[(a + 1)...].reduce(1, *), outer = shape[..<a].reduce(1, *)
    let p = src.readPointer(), q = try out.mutablePointer()
    for o in 0..<outer {
      for i in 0..<inner {
        let base = o * n * inner + i
        var m = -Float.infinity
        for k in 0..<n { m = Swift.max(m, p[base + k * inner]) }
        var s: Float = 0
        for k in 0..<n { s += Foundation.exp(p[base + k * inner] - m) }
        let logS = Foundation.log(s)
        for k in 0..<n {
          let x = p[base + k * inner] - m
          q[base + k * inner] = log ? x - logS : Foundation.exp(x) / s
        }
      }
    }
    return out
  }
}
