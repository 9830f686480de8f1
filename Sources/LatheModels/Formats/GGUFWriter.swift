// GGUF writer (version 3): metadata in the order given, tensors raw or quantised from f32 with ggml's reference
// rules, data aligned to `general.alignment` (default 32) with zero padding after the tensor table and each tensor,
// as llama.cpp and the gguf Python package write it.

import Foundation
import LatheTensor

/// Builds a GGUF file.
///
///     var w = GGUFWriter()
///     w.set("general.architecture", .string("llama"))
///     try w.addTensor("blk.0.attn_q.weight", tensor, as: .q4_0)     // row-major [576, 576]; ne = [576, 576]
///     try w.write(to: "out.gguf")
public struct GGUFWriter {
  public private(set) var metadataKeys: [String] = []
  public private(set) var metadata: [String: GGUFValue] = [:]
  private var entries: [(name: String, dimensions: [Int], type: GGMLType, data: [UInt8])] = []
  private var names: Set<String> = []

  /// Tensor types `addTensor(_:_:as:)` quantises to.
  public static let writableTypes: [GGMLType] = [.f32, .f16, .q8_0, .q4_0, .q4_1]

  public init() {}

  /// A writer holding all of `file`'s metadata, in its order and with its value types (tensors are added separately).
  public init(metadataOf file: GGUFFile) {
    for key in file.metadataKeys { if let v = file.metadata[key] { set(key, v) } }
  }

  public var tensorNames: [String] { entries.map(\.name) }

  /// Sets a metadata value: a new key goes last, an existing one keeps its place.
  public mutating func set(_ key: String, _ value: GGUFValue) {
    if metadata.updateValue(value, forKey: key) == nil { metadataKeys.append(key) }
  }

  public mutating func removeValue(forKey key: String) {
    if metadata.removeValue(forKey: key) != nil { metadataKeys.removeAll { $0 == key } }
  }

  /// The data alignment: `general.alignment` when set (a power of two), else 32.
  public func alignment() throws -> Int {
    guard let value = metadata["general.alignment"] else { return 32 }
    guard let a = value.int, a > 0, a <= 1 << 30, a & (a - 1) == 0 else {
      throw ModelFormatError.malformed(path: "<write>", field: "metadata 'general.alignment'", reason: "\(value.int.map(String.init) ?? "\(value)") is not a power of two up to 2^30")
    }
    return a
  }

  /// Adds `tensor` (any dtype, read as f32 in row-major order) stored as `type`, one of `writableTypes`. GGUF
  /// dimensions are the shape reversed, so the last axis must be a multiple of the type's block size.
  public mutating func addTensor(_ name: String, _ tensor: Tensor, as type: GGMLType) throws {
    try addTensor(name, values: tensor.scalars, dimensions: tensor.shape.reversed(), as: type)
  }

  /// Adds `values` (ne[0] fastest) with GGUF `dimensions`, quantised to `type`, one of `writableTypes`.
  public mutating func addTensor(_ name: String, values: [Float], dimensions: [Int], as type: GGMLType) throws {
    let field = "tensor '\(name)'"
    guard GGUFWriter.writableTypes.contains(type) else {
      throw ModelFormatError.unsupported(path: "<write>", field: field, reason: "quantising to \(type) is not supported (only \(GGUFWriter.writableTypes))")
    }
    let count = try checkDimensions(name, dimensions, type)
    guard values.count == count else {
      throw ModelFormatError.malformed(path: "<write>", field: field, reason: "dimensions \(dimensions) need \(count) values, got \(values.count)")
    }
    guard let byteCount = type.byteCount(elements: count) else {
      throw ModelFormatError.malformed(path: "<write>", field: field, reason: "\(count) elements are not whole \(type) blocks")
    }
    var data = [UInt8](repeating: 0, count: byteCount)
    values.withUnsafeBufferPointer { src in
      data.withUnsafeMutableBytes { dst in
        guard let x = src.baseAddress, let out = dst.baseAddress else { return }
        switch type {
        case .f32: out.copyMemory(from: x, byteCount: count * 4)
        case .f16: for i in 0..<count { out.storeBytes(of: Float16(x[i]).bitPattern.littleEndian, toByteOffset: 2 * i, as: UInt16.self) }
        case .q8_0: for b in 0..<count / 32 { GGMLBlocks.quantizeQ8_0(x + 32 * b, into: out + 34 * b) }
        case .q4_1: for b in 0..<count / 32 { GGMLBlocks.quantizeQ4_1(x + 32 * b, into: out + 20 * b) }
        case .q4_0: for b in 0..<count / 32 { GGMLEncode.q4_0(x + 32 * b, into: out + 18 * b) }
        default: break
        }
      }
    }
    entries.append((name, dimensions, type, data))
    names.insert(name)
  }

  /// Adds a tensor from bytes already in `type`'s layout (a raw copy), checked against `dimensions`.
  public mutating func addTensor(_ name: String, dimensions: [Int], type: GGMLType, bytes: UnsafeRawBufferPointer) throws {
    let count = try checkDimensions(name, dimensions, type)
    guard let expected = type.byteCount(elements: count), expected == bytes.count else {
      throw ModelFormatError.malformed(path: "<write>", field: "tensor '\(name)'",
                                       reason: "\(bytes.count) bytes do not hold \(dimensions) of \(type)")
    }
    entries.append((name, dimensions, type, [UInt8](bytes)))
    names.insert(name)
  }

  /// Copies tensor `info` of `file` unchanged (name, dimensions, type, bytes).
  public mutating func addTensor(_ info: GGUFTensorInfo, from file: GGUFFile) throws {
    try addTensor(info.name, dimensions: info.dimensions, type: info.type, bytes: file.rawBytes(info))
  }

  private func checkDimensions(_ name: String, _ dimensions: [Int], _ type: GGMLType) throws -> Int {
    let field = "tensor '\(name)'"
    guard !names.contains(name) else { throw ModelFormatError.malformed(path: "<write>", field: field, reason: "the name is used twice") }
    guard dimensions.count <= GGUFFile.maxDimensions, dimensions.allSatisfy({ $0 >= 0 }), let count = Memory.count(dimensions) else {
      throw ModelFormatError.malformed(path: "<write>", field: field, reason: "dimensions \(dimensions) must be at most 4 non-negative sizes")
    }
    if let ne0 = dimensions.first, ne0 % type.blockSize != 0 {
      throw ModelFormatError.malformed(path: "<write>", field: field, reason: "ne[0] = \(ne0) is not a multiple of the \(type) block size \(type.blockSize)")
    }
    return count
  }

  /// The whole file as bytes.
  public func bytes() throws -> [UInt8] {
    var out = try header()
    for e in entries { out += e.data; pad(&out, try alignment()) }
    return out
  }

  /// Writes the file at `path`, streaming the tensor data, through a temporary file renamed over it
  /// (AtomicFile): a failed write leaves the old file, and a process that has the old file mapped (a loaded model)
  /// keeps reading the old bytes instead of finding them truncated under it.
  public func write(to path: String) throws {
    let head = try header(), align = try alignment()
    try AtomicFile.write(to: path) { f in
      try AtomicFile.put(head, to: f, path: path)
      for e in entries {
        try AtomicFile.put(e.data, to: f, path: path)
        let padding = (align - e.data.count % align) % align
        if padding > 0 { try AtomicFile.put([UInt8](repeating: 0, count: padding), to: f, path: path) }
      }
    }
  }

  /// Magic, version 3, counts, metadata, tensor infos and the padding up to the data section.
  private func header() throws -> [UInt8] {
    let align = try alignment()
    var out: [UInt8] = []
    out += Array("GGUF".utf8)
    put(UInt32(3), &out)
    put(UInt64(entries.count), &out)
    put(UInt64(metadataKeys.count), &out)
    for key in metadataKeys {
      guard let value = metadata[key] else { continue }
      putString(key, &out)
      put(value.typeID, &out)
      try putValue(value, &out, field: "metadata '\(key)'")
    }
    var offset = 0
    for e in entries {
      putString(e.name, &out)
      put(UInt32(e.dimensions.count), &out)
      for d in e.dimensions { put(UInt64(d), &out) }
      put(e.type.rawValue, &out)
      put(UInt64(offset), &out)
      offset += (e.data.count + align - 1) / align * align
    }
    pad(&out, align)
    return out
  }

  private func pad(_ out: inout [UInt8], _ align: Int) {
    let padding = (align - out.count % align) % align
    out += [UInt8](repeating: 0, count: padding)
  }

  private func put<T: FixedWidthInteger>(_ x: T, _ out: inout [UInt8]) {
    withUnsafeBytes(of: x.littleEndian) { out += $0 }
  }

  private func putString(_ s: String, _ out: inout [UInt8]) {
    let utf8 = Array(s.utf8)
    put(UInt64(utf8.count), &out)
    out += utf8
  }

  /// A value's bytes (its type id is written by the caller). Array elements must share one type; an empty array is
  /// written as an array of uint8 (GGUFValue does not keep the element type of an empty array).
  private func putValue(_ value: GGUFValue, _ out: inout [UInt8], field: @autoclosure () -> String) throws {
    switch value {
    case .uint8(let v): put(v, &out)
    case .int8(let v): put(v, &out)
    case .uint16(let v): put(v, &out)
    case .int16(let v): put(v, &out)
    case .uint32(let v): put(v, &out)
    case .int32(let v): put(v, &out)
    case .uint64(let v): put(v, &out)
    case .int64(let v): put(v, &out)
    case .float32(let v): put(v.bitPattern, &out)
    case .float64(let v): put(v.bitPattern, &out)
    case .bool(let v): out.append(v ? 1 : 0)
    case .string(let v): putString(v, &out)
    case .array(let values):
      let type = values.first?.typeID ?? 0
      put(type, &out)
      put(UInt64(values.count), &out)
      for (i, v) in values.enumerated() {
        guard v.typeID == type else {
          throw ModelFormatError.malformed(path: "<write>", field: "\(field())[\(i)]",
                                           reason: "is \(GGUFValue.typeName(v.typeID)) in an array of \(GGUFValue.typeName(type))")
        }
        try putValue(v, &out, field: "\(field())[\(i)]")
      }
    }
  }
}
