// SHA256: FIPS 180-4 SHA-256 in plain Swift (Foundation on Linux has no CryptoKit), one-shot and incremental.
import Foundation

/// SHA-256 of a byte sequence, as in FIPS 180-4 section 6.2.
///
///     SHA256.hex(Array("abc".utf8))   // "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"
///     var hasher = SHA256(); hasher.update(part1); hasher.update(part2); let digest = hasher.finalize()
public struct SHA256 {
  /// Round constants K0...K63: the first 32 bits of the fractional parts of the cube roots of the first 64 primes.
  private static let k: [UInt32] = [
    0x428a2f98, 0x71374491, 0xb5c0fbcf, 0xe9b5dba5, 0x3956c25b, 0x59f111f1, 0x923f82a4, 0xab1c5ed5,
    0xd807aa98, 0x12835b01, 0x243185be, 0x550c7dc3, 0x72be5d74, 0x80deb1fe, 0x9bdc06a7, 0xc19bf174,
    0xe49b69c1, 0xefbe4786, 0x0fc19dc6, 0x240ca1cc, 0x2de92c6f, 0x4a7484aa, 0x5cb0a9dc, 0x76f988da,
    0x983e5152, 0xa831c66d, 0xb00327c8, 0xbf597fc7, 0xc6e00bf3, 0xd5a79147, 0x06ca6351, 0x14292967,
    0x27b70a85, 0x2e1b2138, 0x4d2c6dfc, 0x53380d13, 0x650a7354, 0x766a0abb, 0x81c2c92e, 0x92722c85,
    0xa2bfe8a1, 0xa81a664b, 0xc24b8b70, 0xc76c51a3, 0xd192e819, 0xd6990624, 0xf40e3585, 0x106aa070,
    0x19a4c116, 0x1e376c08, 0x2748774c, 0x34b0bcb5, 0x391c0cb3, 0x4ed8aa4a, 0x5b9cca4f, 0x682e6ff3,
    0x748f82ee, 0x78a5636f, 0x84c87814, 0x8cc70208, 0x90befffa, 0xa4506ceb, 0xbef9a3f7, 0xc67178f2,
  ]

  /// H0: the first 32 bits of the fractional parts of the square roots of the first 8 primes.
  private var state: [UInt32] = [
    0x6a09e667, 0xbb67ae85, 0x3c6ef372, 0xa54ff53a, 0x510e527f, 0x9b05688c, 0x1f83d9ab, 0x5be0cd19,
  ]
  /// Bytes not yet forming a whole 64-byte block (fewer than 64).
  private var pending: [UInt8] = []
  /// Total message length in bytes.
  private var length: UInt64 = 0

  public init() { pending.reserveCapacity(64) }

  /// The digest of `bytes` as 64 lowercase hex digits.
  public static func hex(_ bytes: [UInt8]) -> String {
    var hasher = SHA256()
    hasher.update(bytes)
    return hexString(hasher.finalize())
  }

  /// The digest of a string's UTF-8 bytes as 64 lowercase hex digits.
  public static func hex(_ string: String) -> String { hex(Array(string.utf8)) }

  /// Lowercase hex of any bytes.
  public static func hexString(_ bytes: [UInt8]) -> String {
    let digits: [UInt8] = Array("0123456789abcdef".utf8)
    var out = [UInt8]()
    out.reserveCapacity(bytes.count * 2)
    for byte in bytes {
      out.append(digits[Int(byte >> 4)])
      out.append(digits[Int(byte & 15)])
    }
    return String(decoding: out, as: UTF8.self)
  }

  public mutating func update(_ bytes: [UInt8]) {
    bytes.withUnsafeBytes { update($0) }
  }

  /// Feeds more message bytes.
  public mutating func update(_ bytes: UnsafeRawBufferPointer) {
    length &+= UInt64(bytes.count)
    var offset = 0
    if !pending.isEmpty {
      let take = min(64 - pending.count, bytes.count)
      pending.append(contentsOf: bytes[0..<take])
      offset = take
      guard pending.count == 64 else { return }
      let block = pending
      block.withUnsafeBytes { compress(blocks: $0) }
      pending.removeAll(keepingCapacity: true)
    }
    let whole = (bytes.count - offset) / 64 * 64
    if whole > 0 {
      compress(blocks: UnsafeRawBufferPointer(rebasing: bytes[offset..<(offset + whole)]))
      offset += whole
    }
    if offset < bytes.count { pending.append(contentsOf: bytes[offset...]) }
  }

  /// Pads the message (a 1 bit, zeros, the 64-bit big-endian bit length) and returns the 32-byte digest.
  public mutating func finalize() -> [UInt8] {
    let bitLength = length &* 8
    var tail = pending
    tail.append(0x80)
    while tail.count % 64 != 56 { tail.append(0) }
    for shift in stride(from: 56, through: 0, by: -8) { tail.append(UInt8(truncatingIfNeeded: bitLength >> UInt64(shift))) }
    tail.withUnsafeBytes { compress(blocks: $0) }
    pending.removeAll()
    var digest = [UInt8]()
    digest.reserveCapacity(32)
    for word in state {
      digest.append(UInt8(word >> 24)); digest.append(UInt8(truncatingIfNeeded: word >> 16))
      digest.append(UInt8(truncatingIfNeeded: word >> 8)); digest.append(UInt8(truncatingIfNeeded: word))
    }
    return digest
  }

  /// The round constants in memory that lives as long as the process, so `compress` needs no closure.
  private static let roundConstants: UnsafePointer<UInt32> = {
    let pointer = UnsafeMutablePointer<UInt32>.allocate(capacity: 64)
    pointer.initialize(from: k, count: 64)
    return UnsafePointer(pointer)
  }()

  /// Runs the compression function (FIPS 180-4 6.2.2) over whole 64-byte blocks. Written to stay fast in debug
  /// builds, where tests hash blobs of 17 MiB: raw pointers rather than arrays, no closures, masking shifts (`&>>`,
  /// which the compiler inlines even unoptimized, unlike `>>`). `@_optimize(speed)` helps where honoured.
  @_optimize(speed)
  private mutating func compress(blocks: UnsafeRawBufferPointer) {
    precondition(blocks.count % 64 == 0, "SHA256.compress takes whole blocks")
    guard let base = blocks.baseAddress else { return }
    let k = SHA256.roundConstants
    let w = UnsafeMutablePointer<UInt32>.allocate(capacity: 64)
    defer { w.deallocate() }
    var h0 = state[0], h1 = state[1], h2 = state[2], h3 = state[3]
    var h4 = state[4], h5 = state[5], h6 = state[6], h7 = state[7]
    var offset = 0
    while offset < blocks.count {
      for t in 0..<16 { w[t] = UInt32(bigEndian: base.loadUnaligned(fromByteOffset: offset + 4 * t, as: UInt32.self)) }
      for t in 16..<64 {
        let x = w[t - 15], y = w[t - 2]
        let s0 = (x &>> 7 | x &<< 25) ^ (x &>> 18 | x &<< 14) ^ (x &>> 3)
        let s1 = (y &>> 17 | y &<< 15) ^ (y &>> 19 | y &<< 13) ^ (y &>> 10)
        w[t] = w[t - 16] &+ s0 &+ w[t - 7] &+ s1
      }
      var a = h0, b = h1, c = h2, d = h3, e = h4, f = h5, g = h6, h = h7
      for t in 0..<64 {
        let sum1 = (e &>> 6 | e &<< 26) ^ (e &>> 11 | e &<< 21) ^ (e &>> 25 | e &<< 7)
        let choose = (e & f) ^ (~e & g)
        let t1 = h &+ sum1 &+ choose &+ k[t] &+ w[t]
        let sum0 = (a &>> 2 | a &<< 30) ^ (a &>> 13 | a &<< 19) ^ (a &>> 22 | a &<< 10)
        let majority = (a & b) ^ (a & c) ^ (b & c)
        h = g; g = f; f = e; e = d &+ t1
        d = c; c = b; b = a; a = t1 &+ sum0 &+ majority
      }
      h0 &+= a; h1 &+= b; h2 &+= c; h3 &+= d; h4 &+= e; h5 &+= f; h6 &+= g; h7 &+= h
      offset += 64
    }
    state = [h0, h1, h2, h3, h4, h5, h6, h7]
  }
}
