// Element types of tensors. Arithmetic runs in f32 (other types convert on the way in); i32 holds indices and
// labels (argmax, class ids); f16, bf16, i8 and u8 store weights and data compactly. GGUF's packed blocks come
// with the model formats.

public enum DType: String, CaseIterable, Sendable, CustomStringConvertible {
  case f32, f16, bf16, i32, i8, u8

  public var byteSize: Int {
    switch self {
    case .f32, .i32: return 4
    case .f16, .bf16: return 2
    case .i8, .u8: return 1
    }
  }

  public var isInteger: Bool { self == .i32 || self == .i8 || self == .u8 }
  public var description: String { rawValue }

  /// Reads element `index` (in elements) of raw storage as a Float.
  @inline(__always) func load(_ base: UnsafeMutableRawPointer, _ index: Int) -> Float {
    switch self {
    case .f32: return base.load(fromByteOffset: index * 4, as: Float.self)
    case .i32: return Float(base.load(fromByteOffset: index * 4, as: Int32.self))
    case .f16: return Float(Float16(bitPattern: base.load(fromByteOffset: index * 2, as: UInt16.self)))
    case .bf16: return Float(bitPattern: UInt32(base.load(fromByteOffset: index * 2, as: UInt16.self)) << 16)
    case .i8: return Float(base.load(fromByteOffset: index, as: Int8.self))
    case .u8: return Float(base.load(fromByteOffset: index, as: UInt8.self))
    }
  }

  /// Stores `x` as element `index`: integers truncate toward zero and saturate (NaN becomes 0); bf16 rounds to
  /// nearest even.
  @inline(__always) func store(_ x: Float, _ base: UnsafeMutableRawPointer, _ index: Int) {
    func integer(_ lo: Float, _ hi: Float) -> Float { x.isNaN ? 0 : Swift.min(hi, Swift.max(lo, x.rounded(.towardZero))) }
    switch self {
    case .f32: base.storeBytes(of: x, toByteOffset: index * 4, as: Float.self)
    case .i32: base.storeBytes(of: Int32(integer(-2_147_483_648, 2_147_483_520)), toByteOffset: index * 4, as: Int32.self)
    case .f16: base.storeBytes(of: Float16(x).bitPattern, toByteOffset: index * 2, as: UInt16.self)
    case .bf16:
      let bits = x.bitPattern
      let rounded: UInt32 = x.isNaN ? 0x7FC0_0000 : bits &+ 0x7FFF &+ ((bits >> 16) & 1)
      base.storeBytes(of: UInt16(truncatingIfNeeded: rounded >> 16), toByteOffset: index * 2, as: UInt16.self)
    case .i8: base.storeBytes(of: Int8(integer(-128, 127)), toByteOffset: index, as: Int8.self)
    case .u8: base.storeBytes(of: UInt8(integer(0, 255)), toByteOffset: index, as: UInt8.self)
    }
  }
}
