// e^x for 16 lanes and its scalar twin, for softmax inside attention: within 2 ulp of the true value over
// [−88, 88] (subnormal results included), exactly 1 at 0, 0 at −∞, +∞ past ln(Float.greatestFiniteMagnitude),
// NaN for NaN. The scalar twin runs the same operations in the same order, so the two agree bit for bit.

public enum FastExp {
  public typealias V = SIMD16<Float>

  // x = n·ln 2 + r with |r| ≤ ln 2 / 2 (Cody–Waite: ln 2 in two parts, so n·ln2High is exact), e^r by Cephes' expf
  // polynomial, and 2^n as two factors 2^(n/2)·2^(n − n/2), each a normal float, so that results down to the
  // subnormals (n ≥ −150) and up to the largest float (n = 128) come out right.
  @usableFromInline static let log2e: Float = 1.442_695_04
  @usableFromInline static let ln2High: Float = 0.693_359_375
  @usableFromInline static let ln2Low: Float = -2.121_944_4e-4
  @usableFromInline static let shifter: Float = 12_582_912            // 1.5·2^23: adding it rounds to an integer
  @usableFromInline static let upper: Float = 89                      // e^89 overflows: the result is +∞
  @usableFromInline static let lower: Float = -110                    // e^−110 is below half the least subnormal: 0
  @usableFromInline static let c0: Float = 1.987_569_15e-4, c1: Float = 1.398_199_95e-3, c2: Float = 8.333_451_9e-3
  @usableFromInline static let c3: Float = 4.166_579_59e-2, c4: Float = 1.666_666_55e-1, c5: Float = 5.000_000_12e-1

  /// e^x for each lane.
  @inlinable @inline(__always)
  public static func exp(_ x: V) -> V {
    var v = x.replacing(with: V(repeating: upper), where: x .> V(repeating: upper))
    v = v.replacing(with: V(repeating: lower), where: v .< V(repeating: lower))
    let t = (v * V(repeating: log2e)) + V(repeating: shifter)
    let n = t - V(repeating: shifter)
    var r = v.addingProduct(n, V(repeating: -ln2High))
    r = r.addingProduct(n, V(repeating: -ln2Low))
    var p = V(repeating: c0)
    p = V(repeating: c1).addingProduct(p, r)
    p = V(repeating: c2).addingProduct(p, r)
    p = V(repeating: c3).addingProduct(p, r)
    p = V(repeating: c4).addingProduct(p, r)
    p = V(repeating: c5).addingProduct(p, r)
    p = (r + V(repeating: 1)).addingProduct(p, r * r)
    // n sits in the low mantissa bits of t (t = 1.5·2^23 + n): take it out as an integer and split it in two.
    let ni = unsafeBitCast(t, to: SIMD16<Int32>.self) &- SIMD16<Int32>(repeating: 0x4B40_0000)
    let n1 = ni &>> SIMD16<Int32>(repeating: 1), n2 = ni &- n1
    let s1 = unsafeBitCast((n1 &+ SIMD16<Int32>(repeating: 127)) &<< SIMD16<Int32>(repeating: 23), to: V.self)
    let s2 = unsafeBitCast((n2 &+ SIMD16<Int32>(repeating: 127)) &<< SIMD16<Int32>(repeating: 23), to: V.self)
    let result = p * s1 * s2
    return result.replacing(with: x, where: x .!= x)                   // NaN in, NaN out
  }

  /// The scalar twin of `exp(_: V)`: the same operations, lane by lane.
  @inlinable
  public static func exp(_ x: Float) -> Float {
    if x != x { return x }
    let v = min(max(x, lower), upper)
    let t = (v * log2e) + shifter
    let n = t - shifter
    var r = v.addingProduct(n, -ln2High)
    r = r.addingProduct(n, -ln2Low)
    var p = c0
    p = c1.addingProduct(p, r)
    p = c2.addingProduct(p, r)
    p = c3.addingProduct(p, r)
    p = c4.addingProduct(p, r)
    p = c5.addingProduct(p, r)
    p = (r + 1).addingProduct(p, r * r)
    let ni = Int32(bitPattern: t.bitPattern) &- 0x4B40_0000
    let n1 = ni >> 1, n2 = ni &- n1
    let s1 = Float(bitPattern: UInt32(bitPattern: (n1 &+ 127) << 23))
    let s2 = Float(bitPattern: UInt32(bitPattern: (n2 &+ 127) << 23))
    return p * s1 * s2
  }
}
