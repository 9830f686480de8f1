// ggml tensor types: ids, block sizes and bytes per block (ggml.h / ggml.c type traits), the dequantisers of the
// types GGUF files use, and ggml's reference quantiser for Q4_0 (Q8_0 and Q4_1 live in LatheTensor's GGMLBlocks).
//
// Decoders follow ggml's dequantize_row_* and keep its float operation order (e.g. Q4_K: (d·sc)·q − dmin·m), so
// results match ggml and the gguf Python package bit for bit.

import LatheTensor

/// A ggml tensor type, numbered as in ggml.h (ids 4, 5 and 31 to 33 were removed from the format).
public enum GGMLType: UInt32, CaseIterable, Sendable, CustomStringConvertible {
  case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
  case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
  case iq2_xxs = 16, iq2_xs = 17, iq3_xxs = 18, iq1_s = 19, iq4_nl = 20, iq3_s = 21, iq2_s = 22, iq4_xs = 23
  case i8 = 24, i16 = 25, i32 = 26, i64 = 27, f64 = 28, iq1_m = 29, bf16 = 30, tq1_0 = 34, tq2_0 = 35, mxfp4 = 39

  /// Elements per block: 1 for plain types, 32 for the legacy quants (and IQ4_NL, MXFP4), 256 for K and other IQ quants.
  public var blockSize: Int {
    switch self {
    case .f32, .f16, .bf16, .f64, .i8, .i16, .i32, .i64: return 1
    case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .iq4_nl, .mxfp4: return 32
    default: return 256
    }
  }

  /// Bytes per block (per element for plain types), as ggml's `type_size`.
  public var typeSize: Int {
    switch self {
    case .f32, .i32: return 4
    case .f16, .bf16, .i16: return 2
    case .i8: return 1
    case .f64, .i64: return 8
    case .q4_0: return 18          // f16 d, 16 bytes of nibbles
    case .q4_1: return 20          // f16 d, f16 m, 16 bytes of nibbles
    case .q5_0: return 22          // f16 d, u32 fifth bits, 16 bytes of nibbles
    case .q5_1: return 24          // f16 d, f16 m, u32 fifth bits, 16 bytes of nibbles
    case .q8_0: return 34          // f16 d, 32 × int8
    case .q8_1: return 36          // f16 d, f16 s (= d·Σq), 32 × int8
    case .q2_K: return 84          // 16 scale/min bytes, 64 bytes of 2-bit q, f16 d, f16 dmin
    case .q3_K: return 110         // 32 bytes high-bit mask, 64 bytes of 2-bit q, 12 bytes of 6-bit scales, f16 d
    case .q4_K: return 144         // f16 d, f16 dmin, 12 bytes of 6-bit scales and mins, 128 bytes of nibbles
    case .q5_K: return 176         // as Q4_K plus 32 bytes of fifth bits
    case .q6_K: return 210         // 128 bytes low nibbles, 64 bytes high 2 bits, 16 × int8 scales, f16 d
    case .q8_K: return 292         // f32 d, 256 × int8, 16 × int16 block sums
    case .iq2_xxs: return 66
    case .iq2_xs: return 74
    case .iq3_xxs: return 98
    case .iq1_s: return 50
    case .iq4_nl: return 18
    case .iq3_s: return 110
    case .iq2_s: return 82
    case .iq4_xs: return 136
    case .iq1_m: return 56
    case .tq1_0: return 54
    case .tq2_0: return 66
    case .mxfp4: return 17
    }
  }

  /// ggml's name: "q4_K", "f32".
  public var name: String { GGMLType.names[self] ?? "type \(rawValue)" }

  /// The name the gguf Python package and GGUF tools print: "Q4_K", "F32", "BF16".
  public var description: String { name.uppercased() }

  static let names: [GGMLType: String] = [
    .f32: "f32", .f16: "f16", .q4_0: "q4_0", .q4_1: "q4_1", .q5_0: "q5_0", .q5_1: "q5_1", .q8_0: "q8_0", .q8_1: "q8_1",
    .q2_K: "q2_K", .q3_K: "q3_K", .q4_K: "q4_K", .q5_K: "q5_K", .q6_K: "q6_K", .q8_K: "q8_K", .iq2_xxs: "iq2_xxs",
    .iq2_xs: "iq2_xs", .iq3_xxs: "iq3_xxs", .iq1_s: "iq1_s", .iq4_nl: "iq4_nl", .iq3_s: "iq3_s", .iq2_s: "iq2_s",
    .iq4_xs: "iq4_xs", .i8: "i8", .i16: "i16", .i32: "i32", .i64: "i64", .f64: "f64", .iq1_m: "iq1_m", .bf16: "bf16",
    .tq1_0: "tq1_0", .tq2_0: "tq2_0", .mxfp4: "mxfp4",
  ]

  public var isQuantized: Bool { blockSize > 1 }

  /// The Tensor dtype holding this type's bytes unchanged, if there is one.
  public var dtype: DType? {
    switch self {
    case .f32: return .f32
    case .f16: return .f16
    case .bf16: return .bf16
    case .q8_0: return .q8_0
    case .q4_1: return .q4_1
    case .i8: return .i8
    case .i32: return .i32
    default: return nil
    }
  }

  /// Bytes for `elements` elements, or nil when that is not a whole number of blocks or overflows.
  public func byteCount(elements: Int) -> Int? {
    guard elements >= 0, elements % blockSize == 0 else { return nil }
    let (b, overflow) = (elements / blockSize).multipliedReportingOverflow(by: typeSize)
    return overflow ? nil : b
  }

  /// Whether `dequantize` decodes this type.
  public var canDequantize: Bool {
    switch self {
    case .iq2_xxs, .iq2_xs, .iq3_xxs, .iq1_s, .iq4_nl, .iq3_s, .iq2_s, .iq4_xs, .iq1_m, .tq1_0, .tq2_0, .mxfp4: return false
    default: return true
    }
  }

  /// Decodes `count` elements (whole blocks) at `source` into `out`; false (writing nothing) for types without a decoder.
  /// Precondition: `source` holds `byteCount(elements: count)` bytes and `out` room for `count` floats.
  public func dequantize(_ source: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>, count: Int) -> Bool {
    let blocks = count / blockSize
    switch self {
    case .f32: UnsafeMutableRawPointer(out).copyMemory(from: source, byteCount: count * 4)   // little-endian hosts only
    case .f16: for i in 0..<count { out[i] = Float(Float16(bitPattern: source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self))) }
    case .bf16: for i in 0..<count { out[i] = Float(bitPattern: UInt32(source.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16) }
    case .f64: for i in 0..<count { out[i] = Float(source.loadUnaligned(fromByteOffset: 8 * i, as: Double.self)) }
    case .i8: for i in 0..<count { out[i] = Float(source.load(fromByteOffset: i, as: Int8.self)) }
    case .i16: for i in 0..<count { out[i] = Float(source.loadUnaligned(fromByteOffset: 2 * i, as: Int16.self)) }
    case .i32: for i in 0..<count { out[i] = Float(source.loadUnaligned(fromByteOffset: 4 * i, as: Int32.self)) }
    case .i64: for i in 0..<count { out[i] = Float(source.loadUnaligned(fromByteOffset: 8 * i, as: Int64.self)) }
    case .q8_0: GGMLBlocks.dequantizeQ8_0(source, into: out, blocks: blocks)
    case .q4_1: GGMLBlocks.dequantizeQ4_1(source, into: out, blocks: blocks)
    case .q4_0: GGMLDecode.q4_0(source, out, blocks)
    case .q5_0: GGMLDecode.q5_0(source, out, blocks)
    case .q5_1: GGMLDecode.q5_1(source, out, blocks)
    case .q8_1: GGMLDecode.q8_1(source, out, blocks)
    case .q2_K: GGMLDecode.q2_K(source, out, blocks)
    case .q3_K: GGMLDecode.q3_K(source, out, blocks)
    case .q4_K: GGMLDecode.q4_K(source, out, blocks, fifthBits: false)
    case .q5_K: GGMLDecode.q4_K(source, out, blocks, fifthBits: true)
    case .q6_K: GGMLDecode.q6_K(source, out, blocks)
    case .q8_K: GGMLDecode.q8_K(source, out, blocks)
    default: return false
    }
    return true
  }
}

/// Block decoders over raw pointers: `blocks` blocks at `x` to `blocks`·blockSize floats at `y`.
enum GGMLDecode {
  @inline(__always) static func half(_ p: UnsafeRawPointer, _ offset: Int) -> Float {
    Float(Float16(bitPattern: p.loadUnaligned(fromByteOffset: offset, as: UInt16.self)))
  }
  @inline(__always) static func byte(_ p: UnsafeRawPointer, _ offset: Int) -> Int { Int(p.load(fromByteOffset: offset, as: UInt8.self)) }

  /// Q4_0: [f16 d][16 bytes]; element j (< 16) is the low nibble of byte j, element j + 16 its high nibble; w = d·(q − 8).
  static func q4_0(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ blocks: Int) {
    for b in 0..<blocks {
      let p = x + b * 18, o = y + b * 32, d = half(p, 0)
      for j in 0..<16 {
        let q = byte(p, 2 + j)
        o[j] = Float(q & 0x0F - 8) * d
        o[j + 16] = Float(q >> 4 - 8) * d
      }
    }
  }

  /// Q5_0: [f16 d][u32 qh][16 bytes]; bit j of qh is the fifth bit of element j; w = d·(q − 16).
  static func q5_0(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ blocks: Int) {
    for b in 0..<blocks {
      let p = x + b * 22, o = y + b * 32, d = half(p, 0)
      let qh = Int(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt32.self)))
      for j in 0..<16 {
        let q = byte(p, 6 + j)
        o[j] = Float((q & 0x0F | (qh >> j & 1) << 4) - 16) * d
        o[j + 16] = Float((q >> 4 | (qh >> (j + 16) & 1) << 4) - 16) * d
      }
    }
  }

  /// Q5_1: [f16 d][f16 m][u32 qh][16 bytes]; w = d·q + m.
  static func q5_1(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ blocks: Int) {
    for b in 0..<blocks {
      let p = x + b * 24, o = y + b * 32, d = half(p, 0), m = half(p, 2)
      let qh = Int(UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self)))
      for j in 0..<16 {
        let q = byte(p, 8 + j)
        o[j] = Float(q & 0x0F | (qh >> j & 1) << 4) * d + m
        o[j + 16] = Float(q >> 4 | (qh >> (j + 16) & 1) << 4) * d + m
      }
    }
  }

  /// Q8_1: [f16 d][f16 s][32 × int8]; w = d·q.
  static func q8_1(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ blocks: Int) {
    for b in 0..<blocks {
      let p = x + b * 36, o = y + b * 32, d = half(p, 0)
      for j in 0..<32 { o[j] = Float(p.load(fromByteOffset: 4 + j, as: Int8.self)) * d }
    }
  }

  /// Q8_K: [f32 d][256 × int8][16 × int16 sums]; w = d·q.
  static func q8_K(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ blocks: Int) {
    for b in 0..<blocks {
      let p = x + b * 292, o = y + b * 256, d = p.loadUnaligned(as: Float.self)
      for j in 0..<256 { o[j] = d * Float(p.load(fromByteOffset: 4 + j, as: Int8.self)) }
    }
  }

  /// Q2_K: [16 bytes: scale (low nibble) and min (high nibble) of each 16 elements][64 bytes][f16 d][f16 dmin].
  /// Element 128h + 32k + l is bits 2k..2k+1 of byte 32h + l; w = (d·scale)·q − dmin·min.
  static func q2_K(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ blocks: Int) {
    for b in 0..<blocks {
      let p = x + b * 84, o = y + b * 256, d = half(p, 80), dmin = half(p, 82)
      for h in 0..<2 {
        for k in 0..<4 {
          for l in 0..<32 {
            let e = 128 * h + 32 * k + l, s = byte(p, e / 16)
            let q = byte(p, 16 + 32 * h + l) >> (2 * k) & 3
            o[e] = d * Float(s & 0x0F) * Float(q) - dmin * Float(s >> 4)
          }
        }
      }
    }
  }

  /// Q3_K: [32 bytes hmask][64 bytes low 2 bits][12 bytes: 16 six-bit scales][f16 d]. Element e = 128h + 32k + l has
  /// low bits 2k..2k+1 of byte 32 + 32h + l and high bit e/32 of hmask byte l (a clear bit subtracts 4); scale s = e/16
  /// is the low (s < 8) or high nibble of byte s % 8 plus bits 2(s/4) of byte 8 + s % 4, minus 32. w = (d·scale)·q.
  static func q3_K(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ blocks: Int) {
    for b in 0..<blocks {
      let p = x + b * 110, o = y + b * 256, d = half(p, 108)
      for s in 0..<16 {
        let low = s < 8 ? byte(p, 96 + s) & 0x0F : byte(p, 96 + s - 8) >> 4
        let high = byte(p, 96 + 8 + s % 4) >> (2 * (s / 4)) & 3
        let scale = d * Float(low | high << 4 - 32)
        for e in (16 * s)..<(16 * s + 16) {
          let h = e / 128, k = e % 128 / 32, l = e % 32
          let q = byte(p, 32 + 32 * h + l) >> (2 * k) & 3
          let bit = byte(p, l) >> (4 * h + k) & 1
          o[e] = scale * Float(q - (bit == 1 ? 0 : 4))
        }
      }
    }
  }

  /// Q4_K (and Q5_K with `fifthBits`): [f16 d][f16 dmin][12 bytes: eight 6-bit scales and mins]([32 bytes qh])[128
  /// bytes]. Sub-block j (32 elements) reads the low (even j) or high (odd j) nibbles of bytes 32(j/2)..+32, and for
  /// Q5_K bit j of qh byte l; w = (d·scale_j)·q − dmin·min_j.
  static func q4_K(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ blocks: Int, fifthBits: Bool) {
    let size = fifthBits ? 176 : 144, qs = fifthBits ? 48 : 16
    for b in 0..<blocks {
      let p = x + b * size, o = y + b * 256, d = half(p, 0), dmin = half(p, 2)
      for j in 0..<8 {
        let (scale, minimum) = scaleMin(p + 4, j)
        let d1 = d * Float(scale), m1 = dmin * Float(minimum), shift = 4 * (j % 2)
        for l in 0..<32 {
          var q = byte(p, qs + 32 * (j / 2) + l) >> shift & 0x0F
          if fifthBits { q |= (byte(p, 16 + l) >> j & 1) << 4 }
          o[32 * j + l] = d1 * Float(q) - m1
        }
      }
    }
  }

  /// Scale and min of sub-block j from K-quants' 12 packed bytes: j < 4 takes the low 6 bits of bytes j and j + 4;
  /// otherwise the nibbles of byte j + 4 with the top 2 bits of bytes j − 4 and j as the high bits.
  @inline(__always) static func scaleMin(_ q: UnsafeRawPointer, _ j: Int) -> (Int, Int) {
    if j < 4 { return (byte(q, j) & 63, byte(q, j + 4) & 63) }
    return (byte(q, j + 4) & 0x0F | (byte(q, j - 4) >> 6) << 4, byte(q, j + 4) >> 4 | (byte(q, j) >> 6) << 4)
  }

  /// Q6_K: [128 bytes low nibbles][64 bytes high 2 bits][16 × int8 scales][f16 d]. Element e = 128h + 32k + l takes the
  /// nibble k/2 of byte 64h + 32(k % 2) + l and bits 2k..2k+1 of byte 128 + 32h + l; w = (d·scale[e/16])·(q − 32).
  static func q6_K(_ x: UnsafeRawPointer, _ y: UnsafeMutablePointer<Float>, _ blocks: Int) {
    for b in 0..<blocks {
      let p = x + b * 210, o = y + b * 256, d = half(p, 208)
      for h in 0..<2 {
        for k in 0..<4 {
          for l in 0..<32 {
            let e = 128 * h + 32 * k + l
            let low = byte(p, 64 * h + 32 * (k % 2) + l) >> (4 * (k / 2)) & 0x0F
            let high = byte(p, 128 + 32 * h + l) >> (2 * k) & 3
            let scale = Float(p.load(fromByteOffset: 192 + e / 16, as: Int8.self))
            o[e] = d * scale * Float(low | high << 4 - 32)
          }
        }
      }
    }
  }
}

/// ggml's reference quantisers for the block types GGUFWriter writes that Tensor does not hold.
enum GGMLEncode {
  /// One Q4_0 block from 32 floats (ggml's quantize_row_q4_0_ref): the element of largest magnitude (first one on
  /// ties) is `max`, d = max / −8, q = min(15, trunc(x·(1/d) + 8.5)). Non-finite inputs count as 0.
  static func q4_0(_ x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer) {
    var amax: Float = 0, maximum: Float = 0
    for j in 0..<32 where x[j].isFinite && amax < Swift.abs(x[j]) { amax = Swift.abs(x[j]); maximum = x[j] }
    let d = maximum / -8, inverse: Float = d != 0 ? 1 / d : 0
    out.storeBytes(of: Float16(d).bitPattern, as: UInt16.self)
    func q(_ v: Float) -> UInt8 {
      let t = (v.isFinite ? v : 0) * inverse + 8.5
      return t.isFinite && t > 0 ? UInt8(Swift.min(15, t.rounded(.towardZero))) : 0
    }
    for j in 0..<16 { out.storeBytes(of: q(x[j]) | q(x[j + 16]) << 4, toByteOffset: 2 + j, as: UInt8.self) }
  }
}
