// Elementwise kernels over contiguous f32 buffers: SIMD16 loops, each with a plain scalar twin for the tests.

import Foundation

public enum BinaryKernel: String, Sendable {
  case add, subtract, multiply, divide, maximum, minimum, power

  @inline(__always) func scalar(_ a: Float, _ b: Float) -> Float {
    switch self {
    case .add: return a + b
    case .subtract: return a - b
    case .multiply: return a * b
    case .divide: return a / b
    case .maximum: return a.isNaN || b.isNaN ? .nan : max(a, b)
    case .minimum: return a.isNaN || b.isNaN ? .nan : min(a, b)
    case .power: return Foundation.pow(a, b)
    }
  }
}

enum Elementwise {
  typealias V = SIMD16<Float>

  /// The four SIMD arithmetic kernels on 16 lanes (the callers pass only add, subtract, multiply, divide).
  @inline(__always) static func arithmetic(_ kernel: BinaryKernel, _ x: V, _ y: V) -> V {
    switch kernel {
    case .add: return x + y
    case .subtract: return x - y
    case .multiply: return x * y
    default: return x / y
    }
  }

  /// out[i] = a[i] ∘ b[i] for i < count. Precondition: all three hold `count` floats (out may alias a or b).
  static func binary(_ kernel: BinaryKernel, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                     _ out: UnsafeMutablePointer<Float>, count: Int) {
    var i = 0
    switch kernel {
    case .add, .subtract, .multiply, .divide:
      while i + V.scalarCount <= count {
        let x = UnsafeRawPointer(a + i).loadUnaligned(as: V.self), y = UnsafeRawPointer(b + i).loadUnaligned(as: V.self)
        UnsafeMutableRawPointer(out + i).storeBytes(of: arithmetic(kernel, x, y), as: V.self)
        i += V.scalarCount
      }
    default: break
    }
    while i < count { out[i] = kernel.scalar(a[i], b[i]); i += 1 }
  }

  /// The scalar twin of `binary`.
  static func binaryReference(_ kernel: BinaryKernel, _ a: [Float], _ b: [Float]) -> [Float] {
    zip(a, b).map { kernel.scalar($0, $1) }
  }

  /// out[i] = a[i] ∘ s (or s ∘ a[i] when `scalarOnLeft`).
  static func binaryScalar(_ kernel: BinaryKernel, _ a: UnsafePointer<Float>, _ s: Float, scalarOnLeft: Bool,
                           _ out: UnsafeMutablePointer<Float>, count: Int) {
    var i = 0
    let sv = V(repeating: s)
    if kernel == .add || kernel == .multiply || kernel == .subtract || kernel == .divide {
      while i + V.scalarCount <= count {
        let x = UnsafeRawPointer(a + i).loadUnaligned(as: V.self)
        let (l, r) = scalarOnLeft ? (sv, x) : (x, sv)
        UnsafeMutableRawPointer(out + i).storeBytes(of: arithmetic(kernel, l, r), as: V.self)
        i += V.scalarCount
      }
    }
    while i < count { out[i] = scalarOnLeft ? kernel.scalar(s, a[i]) : kernel.scalar(a[i], s); i += 1 }
  }
}

extension Elementwise {
  /// out[i] = f(a[i]): SIMD16 for relu, negate and abs; the scalar form for the transcendental ones.
  static func unary(_ kernel: UnaryKernel, _ a: UnsafePointer<Float>, _ out: UnsafeMutablePointer<Float>, count: Int) {
    var i = 0
    let zero = V(repeating: 0)
    switch kernel {
    case .relu, .negate, .abs, .exp, .sigmoid, .silu, .tanh, .gelu:
      let one = V(repeating: 1), half = V(repeating: 0.5), two = V(repeating: 2)
      while i + V.scalarCount <= count {
        let x = UnsafeRawPointer(a + i).loadUnaligned(as: V.self)
        let y: V
        switch kernel {
        case .relu: y = x.replacing(with: zero, where: x .< zero)
        case .negate: y = zero - x
        case .abs: y = x.replacing(with: zero - x, where: x .< zero)
        case .exp: y = Elementwise.exp(x)
        case .sigmoid: y = one / (one + Elementwise.exp(zero - x))
        case .silu: y = x / (one + Elementwise.exp(zero - x))
        case .tanh: y = two / (one + Elementwise.exp(x * V(repeating: -2))) - one          // tanh x = 2σ(2x) − 1
        default:
          let u = V(repeating: 0.7978845608) * (x + V(repeating: 0.044715) * x * x * x)
          y = half * x * (one + two / (one + Elementwise.exp(u * V(repeating: -2))) - one)
        }
        UnsafeMutableRawPointer(out + i).storeBytes(of: y, as: V.self)
        i += V.scalarCount
      }
    default: break
    }
    while i < count { out[i] = kernel.scalar(a[i]); i += 1 }
  }

  /// e^x for 16 lanes (Cephes' expf: x = n·ln 2 + r, a degree-6 polynomial for e^r, 2^n from the exponent bits);
  /// relative error about 2e-7 against Foundation's exp. Inputs are clamped to ±87.3, so large ones saturate
  /// (e^88 and beyond would overflow f32 anyway; NaN lanes give NaN).
  @inline(__always) static func exp(_ x: V) -> V {
    let limit = V(repeating: 87.3)
    var v = x.replacing(with: limit, where: x .> limit)
    v = v.replacing(with: -limit, where: v .< -limit)
    let shifter = V(repeating: 12_582_912)                                   // 1.5·2^23: rounds to an integer
    let nShifted = v * V(repeating: 1.442_695_04) + shifter
    let n = nShifted - shifter
    let r = v - n * V(repeating: 0.693_359_375) + n * V(repeating: 2.121_944_4e-4)
    var p = V(repeating: 1.987_569_15e-4)
    p = p * r + V(repeating: 1.398_199_95e-3)
    p = p * r + V(repeating: 8.333_451_9e-3)
    p = p * r + V(repeating: 4.166_579_59e-2)
    p = p * r + V(repeating: 1.666_666_55e-1)
    p = p * r + V(repeating: 5.000_000_12e-1)
    p = p * r * r + r + V(repeating: 1)
    // 2^n: n sits in the low mantissa bits of nShifted; move it into the exponent field.
    let nBits = unsafeBitCast(nShifted, to: SIMD16<UInt32>.self) &- SIMD16<UInt32>(repeating: 0x4B40_0000)
    let scale = unsafeBitCast((nBits &+ SIMD16<UInt32>(repeating: 127)) &<< SIMD16<UInt32>(repeating: 23), to: V.self)
    let result = p * scale
    return result.replacing(with: x, where: x .!= x)                         // NaN in, NaN out
  }

  /// The scalar twin of `unary`.
  static func unaryReference(_ kernel: UnaryKernel, _ a: [Float]) -> [Float] { a.map { kernel.scalar($0) } }
}

public enum UnaryKernel: String, Sendable {
  case negate, exp, log, sqrt, abs, relu, sigmoid, tanh, silu, gelu

  @inline(__always) func scalar(_ x: Float) -> Float {
    switch self {
    case .negate: return -x
    case .exp: return Foundation.exp(x)
    case .log: return Foundation.log(x)
    case .sqrt: return x.squareRoot()
    case .abs: return Swift.abs(x)
    case .relu: return x < 0 ? 0 : x                      // NaN stays NaN, as in PyTorch
    case .sigmoid: return 1 / (1 + Foundation.exp(-x))
    case .tanh: return Foundation.tanh(x)
    case .silu: return x / (1 + Foundation.exp(-x))
    case .gelu: return 0.5 * x * (1 + Foundation.tanh(0.7978845608 * (x + 0.044715 * x * x * x)))
    }
  }
}
