// safetensors: an 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}, then data.
// Reading checks every offset and size against the file; writing produces files other tools read.

import Foundation
import LatheTensor

public enum SafetensorsError: Error, CustomStringConvertible, Equatable {
  case malformed(path: String, field: String, reason: String)
  public var description: String {
    switch self { case .malformed(let path, let field, let reason): return "\(path): \(field): \(reason)" }
  }
}

public enum Safetensors {
  /// Tensors in file order of their data, f32 (F32, F16, BF16) or i32 (I64, I32, I16, I8, U8, BOOL; I64 values
  /// must fit in 32 bits), and the `__metadata__` strings.
  public static func read(path: String) throws -> (tensors: [(name: String, tensor: Tensor)], metadata: [String: String]) {
    guard let data = FileManager.default.contents(atPath: path) else {
      throw SafetensorsError.malformed(path: path, field: "file", reason: "cannot be read")
    }
    return try read(bytes: [UInt8](data), path: path)
  }

  public static func read(bytes: [UInt8], path: String = "<safetensors>") throws -> (tensors: [(name: String, tensor: Tensor)], metadata: [String: String]) {
    func fail(_ field: String, _ reason: String) -> SafetensorsError { .malformed(path: path, field: field, reason: reason) }
    guard bytes.count >= 8 else { throw fail("header length", "the file has \(bytes.count) bytes, fewer than 8") }
    var headerLength: UInt64 = 0
    for i in 0..<8 { headerLength |= UInt64(bytes[i]) << (8 * UInt64(i)) }
    guard headerLength <= UInt64(bytes.count - 8), headerLength <= 100_000_000 else {
      throw fail("header length", "\(headerLength) is past the end of the \(bytes.count)-byte file")
    }
    let dataStart = 8 + Int(headerLength)
    guard let object = try? JSONSerialization.jsonObject(with: Data(bytes[8..<dataStart])), let header = object as? [String: Any] else {
      throw fail("header", "is not a JSON object")
    }
    var metadata: [String: String] = [:]
    var entries: [(name: String, dtype: String, shape: [Int], begin: Int, end: Int)] = []
    for (name, value) in header {
      if name == "__metadata__" {
        guard let m = value as? [String: Any] else { throw fail("__metadata__", "must map strings to strings") }
        for (k, v) in m { guard let s = v as? String else { throw fail("__metadata__.\(k)", "must be a string") }; metadata[k] = s }
        continue
      }
      guard let info = value as? [String: Any], let dtype = info["dtype"] as? String,
            let shape = (info["shape"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }),
            let offsets = (info["data_offsets"] as? [Any])?.compactMap({ ($0 as? NSNumber)?.intValue }), offsets.count == 2 else {
        throw fail(name, "needs dtype, shape and data_offsets [begin, end]")
      }
      guard shape.count == (info["shape"] as? [Any])?.count, shape.allSatisfy({ $0 >= 0 }), shape.count <= 32 else {
        throw fail("\(name).shape", "must be non-negative integers")
      }
      entries.append((name, dtype, shape, offsets[0], offsets[1]))
    }
    let dataLength = bytes.count - dataStart
    var tensors: [(name: String, tensor: Tensor)] = []
    for e in entries.sorted(by: { ($0.begin, $0.name) < ($1.begin, $1.name) }) {
      guard let size = elementSize(e.dtype) else { throw fail("\(e.name).dtype", "\(e.dtype) is not supported") }
      guard let count = Memory.count(e.shape), case (let expected, false) = count.multipliedReportingOverflow(by: size) else {
        throw fail("\(e.name).shape", "\(e.shape) is too large")
      }
      guard e.begin >= 0, e.end >= e.begin, e.end <= dataLength, e.end - e.begin == expected else {
        throw fail("\(e.name).data_offsets", "[\(e.begin), \(e.end)] does not hold \(e.shape) of \(e.dtype) within \(dataLength) data bytes")
      }
      tensors.append((e.name, try decode(bytes, from: dataStart + e.begin, count: count, dtype: e.dtype, shape: e.shape, name: e.name, path: path)))
    }
    return (tensors, metadata)
  }

  static func elementSize(_ dtype: String) -> Int? {
    switch dtype {
    case "F32", "I32": return 4
    case "F16", "BF16", "I16": return 2
    case "I64", "F64": return 8
    case "I8", "U8", "BOOL": return 1
    default: return nil
    }
  }

  static func decode(_ bytes: [UInt8], from start: Int, count: Int, dtype: String, shape: [Int], name: String, path: String) throws -> Tensor {
    let isInteger = ["I64", "I32", "I16", "I8", "U8", "BOOL"].contains(dtype)
    var t = try Tensor(zeros: shape, dtype: isInteger ? .i32 : .f32, op: "safetensors")
    try bytes.withUnsafeBytes { raw in
      guard let origin = raw.baseAddress else { return }
      let base = origin + start
      if isInteger {
        let dst = t.storage.ints()
        for i in 0..<count {
          let v: Int64
          switch dtype {
          case "I64": v = base.loadUnaligned(fromByteOffset: i * 8, as: Int64.self)
          case "I32": v = Int64(base.loadUnaligned(fromByteOffset: i * 4, as: Int32.self))
          case "I16": v = Int64(base.loadUnaligned(fromByteOffset: i * 2, as: Int16.self))
          case "I8": v = Int64(base.loadUnaligned(fromByteOffset: i, as: Int8.self))
          default: v = Int64(base.loadUnaligned(fromByteOffset: i, as: UInt8.self))
          }
          guard let narrow = Int32(exactly: v) else {
            throw SafetensorsError.malformed(path: path, field: name, reason: "value \(v) does not fit in i32")
          }
          dst[i] = narrow
        }
      } else {
        let dst = try t.mutablePointer()
        for i in 0..<count {
          switch dtype {
          case "F32": dst[i] = base.loadUnaligned(fromByteOffset: i * 4, as: Float.self)
          case "F64": dst[i] = Float(base.loadUnaligned(fromByteOffset: i * 8, as: Double.self))
          case "F16": dst[i] = Float(Float16(bitPattern: base.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)))
          default: dst[i] = Float(bitPattern: UInt32(base.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) << 16)   // BF16
          }
        }
      }
    }
    return t
  }

  /// A safetensors file: tensors in the given order, each in its own dtype (F32, F16, BF16, I32, I8, U8).
  public static func write(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:]) throws -> [UInt8] {
    var header: [String: Any] = [:]
    if !metadata.isEmpty { header["__metadata__"] = metadata }
    var offset = 0
    var payloads: [[UInt8]] = []
    for (name, t) in tensors {
      guard header[name] == nil, name != "__metadata__" else {
        throw SafetensorsError.malformed(path: "<write>", field: name, reason: "the name is used twice or reserved")
      }
      let c = try t.copied(as: t.dtype.isQuantized ? .f32 : t.dtype)   // safetensors has no GGUF block types
      let bytes = [UInt8](UnsafeRawBufferPointer(start: c.storage.bytes, count: c.count * c.dtype.byteSize))
      let names: [DType: String] = [.f32: "F32", .f16: "F16", .bf16: "BF16", .i32: "I32", .i8: "I8", .u8: "U8"]
      header[name] = ["dtype": names[c.dtype] ?? "F32", "shape": t.shape, "data_offsets": [offset, offset + bytes.count]]
      offset += bytes.count
      payloads.append(bytes)
    }
    var json = [UInt8](try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
    while (json.count + 8) % 8 != 0 { json.append(0x20) }
    var out: [UInt8] = []
    out.reserveCapacity(8 + json.count + offset)
    for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: UInt64(json.count) >> (8 * UInt64(i)))) }
    out += json
    for p in payloads { out += p }
    return out
  }
}
