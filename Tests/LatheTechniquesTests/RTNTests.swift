// RTN: the documented encoding rule, the packed layout, the fused kernel against its twin, bits and errors.

import Testing
@testable import LatheTechniques
import LatheModels
import LatheTensor

@Test func rtnEncodesAHandMadeRowByTheRule() throws {
  // bits 2, group 4. Group 1: m = −1, s = 3/3 = 1: (w − m)/s = 0, 1, 1.5, 3 → q = 0, 1, 2 (half to even), 3.
  // Group 2: m = 4, s = 1: 0, 0.5, 1.5, 3 → q = 0, 0 (half to even), 2, 3.
  let row = try Tensor([-1, 0, 0.5, 2, 4, 4.5, 5.5, 7], shape: [1, 8])
  let m = try RTNMatrix(encoding: row, bits: 2, group: 4)
  // Per group: f16 s, f16 m (little-endian), codes LSB first: 0|1<<2|2<<4|3<<6 = 0xE4, 0|0<<2|2<<4|3<<6 = 0xE0.
  #expect(m.packed() == [0x00, 0x3C, 0x00, 0xBC, 0xE4, 0x00, 0x3C, 0x00, 0x44, 0xE0])
  #expect(try m.dequantized().scalars == [-1, 0, 1, 2, 4, 4, 6, 7])
  #expect(m.byteCount == 10 && m.bitsPerWeight == 10.0 && m.technique == "rtn(bits: 2, group: 4)")
}

@Test func rtnSymmetricEncodesAHandMadeRowByTheRule() throws {
  // bits 3 (H = 4), group 4. Group 1: a = −2, d = −2/−4 = 0.5: w/d = 1, −4, 2.5, 3 → q = 5, 0, 6 (half to even), 7.
  // Group 2: a = 8 (the first of ±8), d = −2: w/d = −4, 4 → q = 0, 7 (8 clamped); 0.5, −0.5 → q = 4, 4.
  let row = try Tensor([0.5, -2, 1.25, 1.5, 8, -8, -1, 1], shape: [1, 8])
  let m = try RTNMatrix(encoding: row, bits: 3, group: 4, symmetric: true)
  // Per group: f16 d, then codes LSB first in 12 bits: 5|0<<3|6<<6|7<<9 = 0xF85, 0|7<<3|4<<6|4<<9 = 0x938.
  #expect(m.packed() == [0x00, 0x38, 0x85, 0x0F, 0x00, 0xC0, 0x38, 0x09])
  #expect(try m.dequantized().scalars == [0.5, -2, 1, 1.5, 8, -6, 0, 0])
  #expect(m.technique == "rtn(bits: 3, group: 4, symmetric: true)")
}

@Test(arguments: [2, 3, 4, 5, 6, 7, 8], [false, true])
func rtnDecodesExactlyWhatTheRuleGives(bits: Int, symmetric: Bool) throws {
  let rows = 5, cols = 48, group = 16
  let w = try gaussian(rows, cols, seed: UInt64(bits)), values = w.scalars
  let m = try RTNMatrix(encoding: w, bits: bits, group: group, symmetric: symmetric)
  var expected: [Float] = []
  let top = Float((1 << bits) - 1), half = Float(1 << (bits - 1))
  for g in 0..<(rows * cols / group) {
    let chunk = values[(g * group)..<((g + 1) * group)]
    if symmetric {
      let a = chunk.max { Swift.abs($0) < Swift.abs($1) }!, d = Float(Float16(a / -half))
      for v in chunk { expected.append((Swift.min(Swift.max((v / d).rounded(.toNearestOrEven) + half, 0), top) - half) * d) }
    } else {
      let m16 = Float(Float16(chunk.min()!)), s16 = Float(Float16((chunk.max()! - m16) / top))
      for v in chunk {
        let q = s16 > 0 ? Swift.min(Swift.max(((v - m16) / s16).rounded(.toNearestOrEven), 0), top) : 0
        expected.append(q * s16 + m16)
      }
    }
  }
  #expect(try m.dequantized().scalars == expected)
}

@Test(arguments: [(2, 32), (3, 128), (4, 32), (4, 128), (5, 16), (6, 24), (7, 64), (8, 8)])
func rtnPackedRoundTripsBitExactly(bits: Int, group: Int) throws {
  let w = try gaussian(6, 384, seed: 3)
  for symmetric in [false, true] {
    let m = try RTNMatrix(encoding: w, bits: bits, group: group, symmetric: symmetric)
    let bytes = m.packed()
    #expect(bytes.count == 6 * (384 / group) * ((symmetric ? 2 : 4) + (group * bits + 7) / 8))
    let back = try RTNMatrix(packed: bytes, shape: [6, 384], bits: bits, group: group, symmetric: symmetric)
    #expect(back.packed() == bytes)
    #expect(try back.dequantized().scalars == m.dequantized().scalars)
    #expect(thrownMessage { _ = try RTNMatrix(packed: Array(bytes.dropLast()), shape: [6, 384], bits: bits, group: group,
                                              symmetric: symmetric) }
              .contains("takes \(bytes.count) bytes, got \(bytes.count - 1)"))
  }
}

@Test(arguments: [(2, 32, 7, 64), (3, 128, 66, 256), (4, 32, 33, 96), (4, 64, 256, 576), (5, 16, 9, 48),
                  (6, 24, 10, 72), (7, 128, 4, 128), (8, 8, 5, 40), (3, 5, 3, 15)])
func rtnMatvecMatchesItsTwinAndTheDenseProduct(bits: Int, group: Int, rows: Int, cols: Int) throws {
  for symmetric in [false, true] {
  let m = try RTNMatrix(encoding: try gaussian(rows, cols, seed: 11), bits: bits, group: group, symmetric: symmetric)
  for threads in [1, 4] {
    let (fast, twin, dense) = try products(m, threads: threads) { try m.matvecReference($0, into: $1) }
    #expect(maxRelativeDifference(fast, twin) <= 1e-4, "threads \(threads)")
    #expect(maxRelativeDifference(dense, twin) <= 1e-4)
  }
  }
}

@Test func rtnBitsPerWeightAreExact() throws {
  let w = try gaussian(4, 256, seed: 1)
  // Symmetric: one f16 per group (the seedlm.md baselines); asymmetric: two.
  for (bits, group, symmetric, expected) in [(4, 128, true, 4.125), (4, 32, true, 4.5), (3, 128, true, 3.125),
                                             (4, 128, false, 4.25), (4, 32, false, 5.0), (3, 128, false, 3.25),
                                             (2, 64, false, 2.5), (8, 256, true, 8.0625)] {
    let rtn = try RTN(bits: bits, group: group, symmetric: symmetric)
    let m = try rtn.compress(w) { _, _ in }
    #expect(rtn.bitsPerWeight == expected && m.bitsPerWeight == expected, "\(rtn)")
    #expect(m.byteCount == m.packed().count && m.technique == rtn.description)
  }
  #expect(try RTN(bits: 4, group: 32).description == "rtn(bits: 4, group: 32)")
  #expect(try RTN(bits: 4, group: 32, symmetric: true).description == "rtn(bits: 4, group: 32, symmetric: true)")
  let padded: Double = 8 * (4 + 8)                                              // 60 bits of codes take 8 bytes
  #expect(try RTN(bits: 3, group: 20).bitsPerWeight == padded / 20)
}

@Test func rtnErrorsOnGaussianWeightsAreInTheExpectedBands() throws {
  // N(0, 0.02²), 256 × 1024: a uniform step gives ≈ step/√12 per weight (measured 0.1005, 0.0783, 0.2152, 0.0059;
  // symmetric 0.1039, 0.0863, 0.2086; seedlm.md expects ≈ 0.10 and 0.20 for 4 and 3 bits at group 128).
  let w = try gaussian(256, 1024, seed: 5)
  let e4g128 = try relativeError(try RTN(bits: 4, group: 128).compress(w) { _, _ in }, w)
  let e4g32 = try relativeError(try RTN(bits: 4, group: 32).compress(w) { _, _ in }, w)
  let e3g128 = try relativeError(try RTN(bits: 3, group: 128).compress(w) { _, _ in }, w)
  let e8g128 = try relativeError(try RTN(bits: 8, group: 128).compress(w) { _, _ in }, w)
  let s4g128 = try relativeError(try RTN(bits: 4, group: 128, symmetric: true).compress(w) { _, _ in }, w)
  let s4g32 = try relativeError(try RTN(bits: 4, group: 32, symmetric: true).compress(w) { _, _ in }, w)
  let s3g128 = try relativeError(try RTN(bits: 3, group: 128, symmetric: true).compress(w) { _, _ in }, w)
  print("rtn on N(0, 0.02²) 256×1024: 4/128 \(e4g128), 4/32 \(e4g32), 3/128 \(e3g128), 8/128 \(e8g128); "
        + "symmetric 4/128 \(s4g128), 4/32 \(s4g32), 3/128 \(s3g128)")
  #expect((0.09...0.11).contains(e4g128))
  #expect((0.07...0.085).contains(e4g32))
  #expect((0.19...0.23).contains(e3g128))
  #expect(e8g128 < 0.007)
  #expect((0.095...0.115).contains(s4g128))
  #expect((0.08...0.095).contains(s4g32))
  #expect((0.19...0.23).contains(s3g128))
}

@Test func rtnRejectsBadArgumentsNamingThem() throws {
  #expect(thrownMessage { _ = try RTN(bits: 0, group: 32) } == "rtn: bits must be 2 to 8, got 0")
  #expect(thrownMessage { _ = try RTN(bits: 9, group: 32) } == "rtn: bits must be 2 to 8, got 9")
  #expect(thrownMessage { _ = try RTN(bits: 4, group: 0) }.contains("group must be"))
  let w = try gaussian(3, 100, seed: 1)
  #expect(thrownMessage { _ = try RTN(bits: 4, group: 32).compress(w) { _, _ in } }
            == "rtn: shape [3, 100] has rows of 100 weights, which group 32 does not divide; groups that do: 10, 20, 25, 50, 100")
  #expect(thrownMessage { _ = try RTN(bits: 4, group: 4).compress(try Tensor.zeros([4])) { _, _ in } }.contains("[4]"))
  #expect(thrownMessage { _ = try RTN(bits: 4, group: 4).compress(try Tensor([1, .nan, 0, 0], shape: [1, 4])) { _, _ in } }
            .contains("weight 1"))
  #expect(thrownMessage { _ = try RTN(bits: 4, group: 4).compress(try Tensor([1, 1e6, 0, 0], shape: [1, 4])) { _, _ in } }
            .contains("f16"))
  #expect(thrownMessage { _ = try RTNMatrix(packed: [], shape: [2, 64], bits: 4, group: 48) }.contains("group 48"))
  let m = try RTNMatrix(encoding: w, bits: 4, group: 20)
  let out = UnsafeMutablePointer<Float>.allocate(capacity: 400)
  defer { out.deallocate() }
  #expect(thrownMessage { try m.dequantizeRows(2..<4, into: out) }.contains("rows 2..<4"))
}

@Test func rtnConstantGroupsDecodeExactly() throws {
  let w = try Tensor([Float](repeating: 0.25, count: 32) + [Float](repeating: 0, count: 32), shape: [2, 32])
  let m = try RTNMatrix(encoding: w, bits: 3, group: 16)
  #expect(try m.dequantized().scalars == w.scalars)
}
