// safetensors: an 8-byte little-endian header length, a JSON header {name: {dtype, shape, data_offsets}}, then data.
// Reading maps the file once and checks every size and offset against it (overflow-checked); writing produces
// files other tools read, in memory or streamed to a file one tensor at a time.

import Foundation
import LatheTensor

public enum SafetensorsError: Error, CustomStringConvertible, Equatable {
  case malformed(path: String, field: String, reason: String)
  public var description: String {
    switch self { case .malformed(let path, let field, let reason): return "\(path): \(field): \(reason)" }
  }
}

public enum Safetensors {
  /// Tensors in the order of their data, and the `__metadata__` strings. Element types:
  /// - F32, F16, BF16, F64 become f32 (F16 and BF16 exactly; F64 rounds to the nearest f32);
  /// - I64, I32, I16, I8, U8, BOOL become i32; an I64 value outside the i32 range is an error naming the tensor,
  ///   never a silent wrap (token ids and position ids, what these files hold in I64, fit).
  ///
  /// The file must follow the format: tensors cover the data buffer exactly, without overlap, gap or trailing
  /// bytes, each `end - begin` equal to its shape times its element size. Anything else throws `SafetensorsError`
  /// naming the field (`model.safetensors: x.data_offsets: ...`).
  ///
  ///     let (tensors, metadata) = try Safetensors.read(path: "models/all-MiniLM-L6-v2/model.safetensors")
  public static func read(path: String) throws -> (tensors: [(name: String, tensor: Tensor)], metadata: [String: String]) {
    // Mapped, not copied: the pages are read once, as the tensors are decoded.
    guard let data = FileBytes.contents(atPath: path, mapped: true) else {
      throw SafetensorsError.malformed(path: path, field: "file", reason: "cannot be read")
    }
    return try data.withUnsafeBytes { try read(buffer: $0, path: path) }
  }

  public static func read(bytes: [UInt8], path: String = "<safetensors>") throws -> (tensors: [(name: String, tensor: Tensor)], metadata: [String: String]) {
    try bytes.withUnsafeBytes { try read(buffer: $0, path: path) }
  }

  /// One tensor's header entry; `begin` and `end` are offsets into the data buffer.
  struct Entry { var name: String, dtype: String, shape: [Int], begin: Int, end: Int }

  static func read(buffer: UnsafeRawBufferPointer, path: String) throws -> (tensors: [(name: String, tensor: Tensor)], metadata: [String: String]) {
    let (entries, metadata, dataStart) = try header(buffer, path: path)
    var tensors: [(name: String, tensor: Tensor)] = []
    tensors.reserveCapacity(entries.count)
    for e in entries {
      let count = (e.end - e.begin) / (elementSize(e.dtype) ?? 1)
      tensors.append((e.name, try decode(buffer, from: dataStart + e.begin, count: count, dtype: e.dtype, shape: e.shape, name: e.name, path: path)))
    }
    return (tensors, metadata)
  }

  /// Parses and checks the header: entries sorted by offset, each within the file; the data's start in the file.
  static func header(_ buffer: UnsafeRawBufferPointer, path: String) throws -> (entries: [Entry], metadata: [String: String], dataStart: Int) {
    func fail(_ field: String, _ reason: String) -> SafetensorsError { .malformed(path: path, field: field, reason: reason) }
    guard buffer.count >= 8, let base = buffer.baseAddress else {
      throw fail("header length", "the file has \(buffer.count) bytes, fewer than 8")
    }
    var headerLength: UInt64 = 0
    for i in 0..<8 { headerLength |= UInt64(buffer[i]) << (8 * UInt64(i)) }
    guard headerLength <= UInt64(buffer.count - 8) else {
      throw fail("header length", "\(headerLength) bytes of header run past the end of the \(buffer.count)-byte file")
    }
    guard headerLength <= 100_000_000 else { throw fail("header length", "\(headerLength) bytes is more than the 100 MB a header may have") }
    let dataStart = 8 + Int(headerLength)
    let json = Data(bytes: base + 8, count: Int(headerLength))
    guard String(data: json, encoding: .utf8) != nil else { throw fail("header", "is not UTF-8 text") }
    guard let object = try? JSONSerialization.jsonObject(with: json), let header = object as? [String: Any] else {
      throw fail("header", "is not a JSON object")
    }
    var metadata: [String: String] = [:]
    var entries: [Entry] = []
    for (name, value) in header {
      if name == "__metadata__" {
        guard let m = value as? [String: Any] else { throw fail("__metadata__", "must map strings to strings") }
        for (k, v) in m { guard let s = v as? String else { throw fail("__metadata__.\(k)", "must be a string") }; metadata[k] = s }
        continue
      }
      guard let info = value as? [String: Any] else { throw fail(name, "must be an object with dtype, shape and data_offsets") }
      guard let dtype = info["dtype"] as? String else { throw fail("\(name).dtype", "is missing or not a string") }
      guard let shapeList = info["shape"] as? [Any], shapeList.count <= 32 else {
        throw fail("\(name).shape", "is missing or not a list of at most 32 dimensions")
      }
      let shape = shapeList.compactMap(exactInteger)
      guard shape.count == shapeList.count else { throw fail("\(name).shape", "\(shapeList) must be non-negative integers") }
      guard let offsetList = info["data_offsets"] as? [Any], offsetList.count == 2,
            let begin = exactInteger(offsetList[0]), let end = exactInteger(offsetList[1]) else {
        throw fail("\(name).data_offsets", "must be two non-negative integers [begin, end]")
      }
      guard let size = elementSize(dtype) else { throw fail("\(name).dtype", "\(dtype) is not supported") }
      guard let count = Memory.count(shape), case (let bytes, false) = count.multipliedReportingOverflow(by: size) else {
        throw fail("\(name).shape", "\(shape) is too large")
      }
      guard end >= begin, end - begin == bytes else {
        throw fail("\(name).data_offsets", "[\(begin), \(end)] must span \(bytes) bytes for \(shape) of \(dtype)")
      }
      guard end <= buffer.count - dataStart else {
        throw fail("\(name).data_offsets", "[\(begin), \(end)] runs past the \(buffer.count - dataStart) data bytes of the file")
      }
      entries.append(Entry(name: name, dtype: dtype, shape: shape, begin: begin, end: end))
    }
    // The tensors tile the data buffer: sorted by offset, each starts where the one before ends.
    entries.sort { ($0.begin, $0.end, $0.name) < ($1.begin, $1.end, $1.name) }
    var position = 0
    for e in entries {
      guard e.begin == position else {
        throw fail("\(e.name).data_offsets", e.begin < position
          ? "[\(e.begin), \(e.end)] overlaps the tensor before it, which ends at \(position)"
          : "[\(e.begin), \(e.end)] leaves a gap after the tensor before it, which ends at \(position)")
      }
      position = e.end
    }
    guard position == buffer.count - dataStart else {
      throw fail("data", "the tensors cover \(position) of the \(buffer.count - dataStart) data bytes")
    }
    return (entries, metadata, dataStart)
  }

  /// A JSON number that is an integer in 0..<2^53 (so its double and integer readings agree), else nil.
  static func exactInteger(_ value: Any) -> Int? {
    guard let n = value as? NSNumber, !isJSONBool(value) else { return nil }
    let d = n.doubleValue
    guard d.isFinite, d >= 0, d < 9_007_199_254_740_992, d == d.rounded(), n.int64Value == Int64(d) else { return nil }
    return Int(d)
  }

  /// JSON true and false (Foundation gives NSNumbers whose type code is "c"; `is Bool` is also true of 0 and 1).
  static func isJSONBool(_ value: Any) -> Bool {
    guard let n = value as? NSNumber else { return value is Bool }
    return String(cString: n.objCType) == "c"
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

  /// Decodes `count` elements at byte `start` of the buffer (the caller checked they lie within it).
  static func decode(_ buffer: UnsafeRawBufferPointer, from start: Int, count: Int, dtype: String, shape: [Int], name: String, path: String) throws -> Tensor {
    let isInteger = ["I64", "I32", "I16", "I8", "U8", "BOOL"].contains(dtype)
    var t = try Tensor(zeros: shape, dtype: isInteger ? .i32 : .f32, op: "safetensors")
    guard count > 0, let origin = buffer.baseAddress else { return t }
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
        default: v = Int64(base.loadUnaligned(fromByteOffset: i, as: UInt8.self))   // U8, BOOL
        }
        guard let narrow = Int32(exactly: v) else {
          throw SafetensorsError.malformed(path: path, field: name, reason: "element \(i) is \(v), which does not fit in i32")
        }
        dst[i] = narrow
      }
    } else {
      let dst = try t.mutablePointer()
      switch dtype {
      case "F32": UnsafeMutableRawPointer(dst).copyMemory(from: base, byteCount: count * 4)
      case "F64": for i in 0..<count { dst[i] = Float(base.loadUnaligned(fromByteOffset: i * 8, as: Double.self)) }
      case "F16": for i in 0..<count { dst[i] = Float(Float16(bitPattern: base.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self))) }
      default: for i in 0..<count { dst[i] = Float(bitPattern: UInt32(base.loadUnaligned(fromByteOffset: i * 2, as: UInt16.self)) << 16) }   // BF16
      }
    }
    return t
  }

  static let dtypeNames: [DType: String] = [.f32: "F32", .f16: "F16", .bf16: "BF16", .i32: "I32", .i8: "I8", .u8: "U8"]

  /// Each tensor as it will be stored: contiguous, in its own dtype, quantised (GGUF block) types as f32.
  static func stored(_ tensors: [(name: String, tensor: Tensor)]) throws -> [(name: String, tensor: Tensor)] {
    var seen: Set<String> = []
    return try tensors.map { name, t in
      guard seen.insert(name).inserted, name != "__metadata__" else {
        throw SafetensorsError.malformed(path: "<write>", field: name, reason: "the name is used twice or reserved")
      }
      let target: DType = t.dtype.isQuantized ? .f32 : t.dtype   // safetensors has no GGUF block types
      guard dtypeNames[target] != nil else {
        throw SafetensorsError.malformed(path: "<write>", field: name, reason: "\(t.dtype) cannot be stored")
      }
      return (name, t.isContiguous && t.offset == 0 && t.dtype == target && t.storage.byteCount >= t.count * target.byteSize
              ? t : try t.copied(as: target))
    }
  }

  /// The 8-byte length and the JSON header (padded with spaces to a multiple of 8) for tensors in this order.
  static func headerBytes(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String]) throws -> [UInt8] {
    var header: [String: Any] = [:]
    if !metadata.isEmpty { header["__metadata__"] = metadata }
    var offset = 0
    for (name, t) in tensors {
      let bytes = t.count * t.dtype.byteSize
      header[name] = ["dtype": dtypeNames[t.dtype] ?? "F32", "shape": t.shape, "data_offsets": [offset, offset + bytes]]
      offset += bytes
    }
    var json = [UInt8](try JSONSerialization.data(withJSONObject: header, options: [.sortedKeys]))
    while json.count % 8 != 0 { json.append(0x20) }
    var out: [UInt8] = []
    for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: UInt64(json.count) >> (8 * UInt64(i)))) }
    return out + json
  }

  /// A safetensors file: tensors in the given order, each in its own dtype (F32, F16, BF16, I32, I8, U8; GGUF
  /// block types are dequantised to F32).
  public static func write(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:]) throws -> [UInt8] {
    let tensors = try stored(tensors)
    var out = try headerBytes(tensors, metadata: metadata)
    out.reserveCapacity(out.count + tensors.reduce(0) { $0 + $1.tensor.count * $1.tensor.dtype.byteSize })
    for (_, t) in tensors { out += UnsafeRawBufferPointer(start: t.storage.bytes, count: t.count * t.dtype.byteSize) }
    return out
  }

  /// Writes the same file as `write(_:metadata:)` to `path`, streamed one tensor at a time from the tensors' own
  /// memory (no copy of the file is built), through a temporary file renamed into place (AtomicFile): a failure
  /// part-way leaves an older file at `path` as it was.
  public static func write(_ tensors: [(name: String, tensor: Tensor)], metadata: [String: String] = [:], to path: String) throws {
    let tensors = try stored(tensors)
    let header = try headerBytes(tensors, metadata: metadata)
    try AtomicFile.write(to: path) { file in        // its errors (ModelFormatError) name the path and the reason
      try AtomicFile.put(header, to: file, path: path)
      for (_, t) in tensors {
        try AtomicFile.put(UnsafeRawBufferPointer(start: t.storage.bytes, count: t.count * t.dtype.byteSize), to: file, path: path)
      }
    }
  }
}
