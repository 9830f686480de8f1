// GGML's Q8_0 and Q4_1 blocks: the one decoder and quantiser of each, shared by DType (element access, `copied`)
// and the GGUF reader and writer (whole tensors). Layouts and rounding are ggml's (ggml-common.h, ggml-quants.c).

/// Q8_0 and Q4_1 blocks of 32 weights: `[f16 d][32 × int8]` (w = d·q) and `[f16 d][f16 m][16 bytes]` (w = d·q + m,
/// byte j holds element j in its low nibble and element j + 16 in its high nibble).
///
///     GGMLBlocks.dequantizeQ4_1(raw, into: out, blocks: 6)      // 6 × 20 bytes → 192 floats
public enum GGMLBlocks {
  public static let q8_0Bytes = 34, q4_1Bytes = 20, elements = 32

  /// Element `j` (0..<32) of the Q8_0 block at `block`: d·q.
  @inlinable @inline(__always)
  public static func q8_0(_ block: UnsafeRawPointer, _ j: Int) -> Float {
    Float(Float16(bitPattern: block.loadUnaligned(as: UInt16.self))) * Float(block.load(fromByteOffset: 2 + j, as: Int8.self))
  }

  /// Element `j` (0..<32) of the Q4_1 block at `block`: d·q + m.
  @inlinable @inline(__always)
  public static func q4_1(_ block: UnsafeRawPointer, _ j: Int) -> Float {
    let d = Float(Float16(bitPattern: block.loadUnaligned(as: UInt16.self)))
    let m = Float(Float16(bitPattern: block.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
    let byte = block.load(fromByteOffset: 4 + j % 16, as: UInt8.self)
    return d * Float(j < 16 ? byte & 0x0F : byte >> 4) + m
  }

  /// Decodes `blocks` consecutive Q8_0 blocks at `source` into `blocks`·32 floats.
  public static func dequantizeQ8_0(_ source: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>, blocks: Int) {
    for b in 0..<blocks {
      let block = source + b * q8_0Bytes, o = out + b * elements
      let d = Float(Float16(bitPattern: block.loadUnaligned(as: UInt16.self)))
      for j in 0..<elements { o[j] = d * Float(block.load(fromByteOffset: 2 + j, as: Int8.self)) }
    }
  }

  /// Decodes `blocks` consecutive Q4_1 blocks at `source` into `blocks`·32 floats.
  public static func dequantizeQ4_1(_ source: UnsafeRawPointer, into out: UnsafeMutablePointer<Float>, blocks: Int) {
    for b in 0..<blocks {
      let block = source + b * q4_1Bytes, o = out + b * elements
      let d = Float(Float16(bitPattern: block.loadUnaligned(as: UInt16.self)))
      let m = Float(Float16(bitPattern: block.loadUnaligned(fromByteOffset: 2, as: UInt16.self)))
      for j in 0..<16 {
        let byte = block.load(fromByteOffset: 4 + j, as: UInt8.self)
        o[j] = d * Float(byte & 0x0F) + m
        o[j + 16] = d * Float(byte >> 4) + m
      }
    }
  }

  /// One Q8_0 block from 32 floats, by ggml's reference rule: d = max|x|/127, q = round(x/d) (half away from zero),
  /// multiplying by 1/d as ggml does. Non-finite inputs count as 0.
  public static func quantizeQ8_0(_ x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer) {
    var amax: Float = 0
    for i in 0..<elements where x[i].isFinite { amax = Swift.max(amax, Swift.abs(x[i])) }
    let d = amax / 127, inverse: Float = d != 0 ? 1 / d : 0
    out.storeBytes(of: Float16(d).bitPattern, as: UInt16.self)
    for i in 0..<elements {
      let q = ((x[i].isFinite ? x[i] : 0) * inverse).rounded(.toNearestOrAwayFromZero)
      out.storeBytes(of: Int8(Swift.max(-127, Swift.min(127, q))), toByteOffset: 2 + i, as: Int8.self)
    }
  }

  /// One Q4_1 block from 32 floats, by ggml's reference rule: m = min, d = (max − min)/15,
  /// q = min(15, trunc((x − min)·(1/d) + 0.5)), with the unrounded f32 d and min. Non-finite inputs count as the minimum.
  public static func quantizeQ4_1(_ x: UnsafePointer<Float>, into out: UnsafeMutableRawPointer) {
    var lo = Float.greatestFiniteMagnitude, hi = -Float.greatestFiniteMagnitude
    for i in 0..<elements where x[i].isFinite { lo = Swift.min(lo, x[i]); hi = Swift.max(hi, x[i]) }
    if lo > hi { lo = 0; hi = 0 }
    let d = (hi - lo) / 15, inverse: Float = d != 0 ? 1 / d : 0
    out.storeBytes(of: Float16(d).bitPattern, as: UInt16.self)
    out.storeBytes(of: Float16(lo).bitPattern, toByteOffset: 2, as: UInt16.self)
    func q(_ v: Float) -> UInt8 {
      let t = ((v.isFinite ? v : lo) - lo) * inverse + 0.5     // ≥ 0 up to rounding, so truncation is floor
      return t.isFinite && t > 0 ? UInt8(Swift.min(15, t.rounded(.towardZero))) : 0
    }
    for j in 0..<16 { out.storeBytes(of: q(x[j]) | q(x[j + 16]) << 4, toByteOffset: 4 + j, as: UInt8.self) }
  }
}
