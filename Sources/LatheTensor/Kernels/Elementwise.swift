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

  /// out[i] = a[i] ∘ b[i] for i < count. Precondition: all three hold `count` floats (out may alias a or b).
  static func binary(_ kernel: BinaryKernel, _ a: UnsafePointer<Float>, _ b: UnsafePointer<Float>,
                     _ out: UnsafeMutablePointer<Float>, count: Int) {
    var i = 0
    switch kernel {
    case .add, .subtract, .multiply, .divide:
      while i + V.scalarCount <= count {
        let x = UnsafeRawPointer(a + i).loadUnaligned(as: V.self), y = UnsafeRawPointer(b + i).loadUnaligned(as: V.self)
        let r: V
        switch kernel {
        case .add: r = x + y
        case .subtract: r = x - y
        case .multiply: r = x * y
        default: r = x / y
        }
        UnsafeMutableRawPointer(out + i).storeBytes(of: r, as: V.self)
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
        let y: V
        switch kernel {
        case .add: y = l + r
        case .subtract: y = l - r
        case .multiply: y = l * r
        default: y = l / r
        }
        UnsafeMutableRawPointer(out + i).storeBytes(of: y, as: V.self)
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
    case .relu, .negate, .abs:
      while i + V.scalarCount <= count {
        let x = UnsafeRawPointer(a + i).loadUnaligned(as: V.self)
        let y: V
        switch kernel {
        case .relu: y = x.replacing(with: zero, where: x .< zero)
        case .negate: y = zero - x
        default: y = x.replacing(with: zero - x, where: x .< zero)
        }
        UnsafeMutableRawPointer(out + i).storeBytes(of: y, as: V.self)
        i += V.scalarCount
      }
    default: break
    }
    while i < count { out[i] = kernel.scalar(a[i]); i += 1 }
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
