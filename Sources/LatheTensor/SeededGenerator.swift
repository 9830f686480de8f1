// SplitMix64 for the engine's seeded draws (data generators, splits, random maps): the stream depends only on the
// seed, on every machine. (The interpreter's `SplitMix64` in LatheLang is the same generator for a module that does
// not depend on this one.)

public struct SeededGenerator: RandomNumberGenerator, Sendable {
  public var state: UInt64
  public init(seed: UInt64) { state = seed }

  public mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }

  /// Uniform in [0, 1), 53 bits.
  public mutating func unit() -> Double { Double(next() >> 11) / Double(UInt64(1) << 53) }

  /// Uniform in 0..<n (n > 0; modulo draw: the bias is below n / 2^64).
  public mutating func below(_ n: Int) -> Int { Int(next() % UInt64(Swift.max(1, n))) }

  /// One element of a non-empty array.
  public mutating func pick<T>(_ items: [T]) -> T { items[below(items.count)] }
}
