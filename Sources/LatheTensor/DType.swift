// Element types of tensors. Arithmetic runs in f32 (other types convert on the way in); i32 holds indices and
// labels (argmax, class ids); f16, bf16, i8 and u8 store weights and data compactly; q8_0 and q4_1 are GGUF's
// block-quantised layouts (32 weights per block), read element by element through their blocks.

public enum DType: String, CaseIterable, Sendable, CustomStringConvertible {
  case f32, f16, bf16, i32, i8, u8, q8_0, q4_1

  /// Bytes per element for plain types; for block types, bytes per block (see `blockSize`).
  public var byteSize: Int {
    switch self {
    case .f32, .i32: return 4
    case .f16, .bf16: return 2
    case .i8, .u8: return 1
    case .q8_0: return 34          // f16 scale d, 32 × int8: w = d·q
    case .q4_1: return 20          // f16 scale d, f16 minimum m, 32 × 4-bit q in 16 bytes: w = d·q + m
    }
  }

  /// Elements per block: 32 for the GGUF block types, 1 otherwise.
  public var blockSize: Int { self == .q8_0 || self == .q4_1 ? 32 : 1 }
  public var isQuantized: Bool { blockSize > 1 }

  /// Bytes for `count` elements, or nil when the count is not a whole number of blocks (or overflows).
  public func bytes(forElements count: Int) -> Int? {
    guard count % blockSize == 0 else { return nil }
    let (b, o) = (count / blockSize).multipliedReportingOverflow(by: byteSize)
    return o ? nil : b
  }

  public var isInteger: Bool { self == .i32 || self == .i8 || self == .u8 }
  public var description: String { rawValue }

  /// Reads element `index` (in elements) of raw storage as a Float.
  @inline(__always) func load(_ base: UnsafeMutableRawPointer, _ index: Int) -> Float {
    switch self {
    case .q8_0: return GGMLBlocks.q8_0(base + (index / 32) * 34, index % 32)
    case .q4_1: return GGMLBlocks.q4_1(base + (index / 32) * 20, index % 32)
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
    case .q8_0, .q4_1: break       // block types are written a block at a time: `storeBlock`
    }
  }

  /// Quantises 32 values into block `block` by ggml's reference rules (see `GGMLBlocks.quantizeQ8_0`, `quantizeQ4_1`).
  func storeBlock(_ x: UnsafePointer<Float>, _ base: UnsafeMutableRawPointer, block: Int) {
    switch self {
    case .q8_0: GGMLBlocks.quantizeQ8_0(x, into: base + block * 34)
    case .q4_1: GGMLBlocks.quantizeQ4_1(x, into: base + block * 20)
    default:
      for i in 0..<32 { store(x[i], base, block * 32 + i) }
    }
  }
}
