// A compact binary encoding of values for `save`/`load`: exact floats, ordered records, host objects by kind.
//
// Layout: one tag byte, then the payload; integers little-endian; lengths as UInt64. Decoding checks every length
// against the bytes left, so a damaged artifact is an error, never a read past the end.

package enum ValueCodec {
  package static func artifactKind(_ v: Value) -> String {
    if case .host(let h) = v { return h.typeName == "tensor" ? "tensor" : (h.typeName == "model" ? "model" : "file") }
    return "table"
  }

  package static func encode(_ v: Value) throws -> [UInt8] {
    var out: [UInt8] = [0x4C, 0x56, 1]   // "LV", version 1
    try encode(v, into: &out, depth: 0)
    return out
  }

  private static func put(_ x: UInt64, _ out: inout [UInt8]) { for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: x >> (8 * UInt64(i)))) } }
  private static func put(_ s: String, _ out: inout [UInt8]) { let b = Array(s.utf8); put(UInt64(b.count), &out); out += b }

  private static func encode(_ v: Value, into out: inout [UInt8], depth: Int) throws {
    guard depth < 200 else { throw LatheError("save: value is nested too deeply") }
    switch v {
    case .none: out.append(0)
    case .bool(let b): out.append(b ? 2 : 1)
    case .int(let i): out.append(3); put(UInt64(bitPattern: Int64(i)), &out)
    case .float(let d): out.append(4); put(d.bitPattern, &out)
    case .string(let s): out.append(5); put(s, &out)
    case .list(let xs):
      out.append(6); put(UInt64(xs.count), &out)
      for x in xs { try encode(x, into: &out, depth: depth + 1) }
    case .record(let r):
      out.append(7); put(UInt64(r.fields.count), &out)
      for f in r.fields { put(f.name, &out); try encode(f.value, into: &out, depth: depth + 1) }
    case .range(let r):
      out.append(8)
      for x in [r.start, r.end, r.step] { put(UInt64(bitPattern: Int64(x)), &out) }
    case .function(let f):
      throw LatheError("save: functions cannot be saved (\(f.signature)); save the values they compute")
    case .host(let h):
      guard let (kind, bytes) = try h.serialized() else { throw LatheError("save: a \(h.typeName) cannot be saved") }
      out.append(9); put(kind, &out); put(UInt64(bytes.count), &out); out += bytes
    }
  }

  package static func decode(_ bytes: [UInt8], registry: BuiltinRegistry) throws -> Value {
    guard bytes.count >= 3, bytes[0] == 0x4C, bytes[1] == 0x56 else { throw LatheError("load: not a saved Lathe value") }
    guard bytes[2] == 1 else { throw LatheError("load: saved with a newer format (version \(bytes[2]))") }
    var reader = Reader(bytes: bytes, position: 3, registry: registry)
    let v = try reader.value(depth: 0)
    guard reader.position == bytes.count else { throw LatheError("load: \(bytes.count - reader.position) stray bytes after the value") }
    return v
  }

  private struct Reader {
    let bytes: [UInt8]
    var position: Int
    let registry: BuiltinRegistry

    mutating func byte() throws -> UInt8 {
      guard position < bytes.count else { throw LatheError("load: saved value is truncated") }
      position += 1
      return bytes[position - 1]
    }
    mutating func u64() throws -> UInt64 {
      guard bytes.count - position >= 8 else { throw LatheError("load: saved value is truncated") }
      var x: UInt64 = 0
      for i in 0..<8 { x |= UInt64(bytes[position + i]) << (8 * UInt64(i)) }
      position += 8
      return x
    }
    mutating func count() throws -> Int {
      let n = try u64()
      guard n <= UInt64(bytes.count - position) else { throw LatheError("load: saved value has a length past its end") }
      return Int(n)
    }
    mutating func raw() throws -> [UInt8] {
      let n = try count()
      defer { position += n }
      return Array(bytes[position..<(position + n)])
    }
    mutating func string() throws -> String { String(decoding: try raw(), as: UTF8.self) }
    mutating func int() throws -> Int { Int(Int64(bitPattern: try u64())) }

    mutating func value(depth: Int) throws -> Value {
      guard depth < 200 else { throw LatheError("load: saved value is nested too deeply") }
      switch try byte() {
      case 0: return .none
      case 1: return .bool(false)
      case 2: return .bool(true)
      case 3: return .int(try int())
      case 4: return .float(Double(bitPattern: try u64()))
      case 5: return .string(try string())
      case 6:
        let n = try count()
        var xs: [Value] = []
        xs.reserveCapacity(n)
        for _ in 0..<n { xs.append(try value(depth: depth + 1)) }
        return .list(xs)
      case 7:
        let n = try count()
        var r = Record()
        for _ in 0..<n { let name = try string(); r.fields.append((name, try value(depth: depth + 1))) }
        return .record(r)
      case 8:
        let start = try int(), end = try int(), step = try int()
        guard step != 0 else { throw LatheError("load: saved range has step 0") }
        return .range(RangeValue(start: start, end: end, step: step))
      case 9:
        let kind = try string()
        let payload = try raw()
        guard let decode = registry.hostDecoders[kind] else { throw LatheError("load: no reader for saved \(kind) values here") }
        return try decode(payload)
      case let tag:
        throw LatheError("load: unknown value tag \(tag) in saved value")
      }
    }
  }
}
