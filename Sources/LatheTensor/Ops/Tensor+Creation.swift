// Creating tensors with numpy's names: zeros, ones, full, arange, linspace, eye, rand, randn.

import Foundation

extension Tensor {
  public static func zeros(_ shape: [Int]) throws -> Tensor { try Tensor(zeros: shape) }

  public static func full(_ shape: [Int], _ value: Float, op: String = "full") throws -> Tensor {
    var t = try Tensor(zeros: shape, op: op)
    try t.mutablePointer().update(repeating: value, count: t.count)
    return t
  }

  public static func ones(_ shape: [Int]) throws -> Tensor { try full(shape, 1, op: "ones") }

  /// Values from `start` up to (not including) `stop`, `step` apart.
  public static func arange(_ start: Double, _ stop: Double, step: Double = 1) throws -> Tensor {
    guard step != 0, step.isFinite, start.isFinite, stop.isFinite else {
      throw TensorError.invalidArgument(op: "arange", reason: "needs finite bounds and a nonzero step")
    }
    let steps = ((stop - start) / step).rounded(.up)
    guard steps < 9.0e15 else {                           // past that, the count is not an Int (the budget stops far sooner)
      throw TensorError.invalidArgument(op: "arange", reason: "\(start) to \(stop) in steps of \(step) is \(steps) values, too many")
    }
    let n = max(0, Int(steps))
    var t = try Tensor(zeros: [n], op: "arange")
    let p = try t.mutablePointer()
    for i in 0..<n { p[i] = Float(start + Double(i) * step) }
    return t
  }

  /// `count` values evenly spaced from `start` to `stop`, both included.
  public static func linspace(_ start: Double, _ stop: Double, count: Int) throws -> Tensor {
    guard count >= 0 else { throw TensorError.invalidArgument(op: "linspace", reason: "count must be >= 0, got \(count)") }
    var t = try Tensor(zeros: [count], op: "linspace")
    let p = try t.mutablePointer()
    for i in 0..<count {
      p[i] = count == 1 ? Float(start) : Float(start + (stop - start) * Double(i) / Double(count - 1))
    }
    return t
  }

  public static func eye(_ n: Int) throws -> Tensor {
    var t = try Tensor(zeros: [n, n], op: "eye")
    let p = try t.mutablePointer()
    for i in 0..<max(0, n) { p[i * n + i] = 1 }
    return t
  }

  /// Uniform values in [0, 1). Element i depends only on (seed, i): never on thread count or chunking.
  public static func rand(_ shape: [Int], seed: UInt64) throws -> Tensor {
    var t = try Tensor(zeros: shape, op: "rand")
    let p = try t.mutablePointer()
    for i in 0..<t.count { p[i] = CounterRandom.uniform(seed: seed, index: UInt64(i)) }
    return t
  }

  /// Standard normal values (Box–Muller on counter-based uniforms); element i depends only on (seed, i).
  public static func randn(_ shape: [Int], seed: UInt64) throws -> Tensor {
    var t = try Tensor(zeros: shape, op: "randn")
    let p = try t.mutablePointer()
    for i in 0..<t.count { p[i] = CounterRandom.normal(seed: seed, index: UInt64(i)) }
    return t
  }
}

/// Counter-based random numbers: a value is a hash of (seed, index), so any element can be made on its own.
public enum CounterRandom {
  @inline(__always) public static func bits(seed: UInt64, index: UInt64) -> UInt64 {
    var z = seed &+ index &* 0x9E37_79B9_7F4A_7C15 &+ 0x6A09_E667_F3BC_C909
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// Uniform in [0, 1) with 24 random bits.
  @inline(__always) public static func uniform(seed: UInt64, index: UInt64) -> Float {
    Float(bits(seed: seed, index: index) >> 40) * 0x1p-24
  }

  @inline(__always) public static func normal(seed: UInt64, index: UInt64) -> Float {
    let b = bits(seed: seed ^ 0xD1B5_4A32_D192_ED03, index: index)
    let u1 = (Double(b >> 11) + 1) * 0x1p-53                 // (0, 1]: log is finite
    let u2 = Double(bits(seed: seed ^ 0x8CB9_2BA7_2F3D_8DD7, index: index) >> 11) * 0x1p-53
    return Float((-2 * Foundation.log(u1)).squareRoot() * Foundation.cos(2 * Double.pi * u2))
  }
}
