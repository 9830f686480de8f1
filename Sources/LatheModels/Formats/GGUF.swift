// GGUF (versions 2 and 3): a memory-mapped reader. Header, metadata and tensor table are checked against the file
// as they are read, with overflow-checked arithmetic, so no input reads past the mapping or traps.
//
// Layout (little-endian): "GGUF", u32 version, u64 tensor count, u64 metadata count; metadata as (string key, u32 type,
// value); tensor infos as (string name, u32 n_dims, u64 ne[n_dims], u32 ggml type, u64 offset); then, at the next
// multiple of `general.alignment` (default 32), the data section, with each tensor's offset relative to its start.
// Strings are a u64 byte length and UTF-8 bytes; arrays a u32 element type, a u64 count and the elements.

import Foundation
import LatheTensor

/// One tensor of a GGUF file: where its bytes are and how to read them.
public struct GGUFTensorInfo: Equatable, Sendable {
  public let name: String
  /// ggml order: `dimensions[0]` (ne[0]) is the contiguous axis, so a matrix is [columns, rows].
  public let dimensions: [Int]
  public let type: GGMLType
  /// Absolute byte offset of the data in the file.
  public let offset: Int
  public let byteCount: Int
  public let elementCount: Int

  /// Row-major shape (dimensions reversed): [rows, columns] for a matrix.
  public var shape: [Int] { dimensions.reversed() }
}

/// A GGUF file mapped read-only into memory; tensors are read from the mapping, which lives as long as this object.
///
///     let file = try GGUFFile(path: "models/SmolLM2-135M-Instruct.Q4_1.gguf")
///     let embedding = try file.tensor("token_embd.weight")        // q8_0, shape [49152, 576]
public final class GGUFFile: @unchecked Sendable {     // immutable after init; the mapping is never written
  public let path: String
  public let version: Int
  /// Metadata by key, and the keys in file order.
  public let metadata: [String: GGUFValue]
  public let metadataKeys: [String]
  /// Tensors in file order.
  public let tensors: [GGUFTensorInfo]
  public let alignment: Int
  /// Absolute offset of the data section.
  public let dataOffset: Int
  public let fileSize: Int

  private let base: UnsafeRawPointer
  private let mapped: Bool
  private let index: [String: Int]

  /// Limits on what a header may ask for, beyond fitting in the file (which bounds everything else).
  public static let maxArrayCount = 1 << 26, maxNesting = 16, maxDimensions = 4

  /// Maps the file at `path` and reads its header; throws `ModelFormatError` naming the field that is wrong.
  public convenience init(path: String) throws {
    let fd = open(path, O_RDONLY)
    guard fd >= 0 else {
      throw ModelFormatError.notFound(path: path, field: "file", reason: "cannot be opened (\(String(cString: strerror(errno))))")
    }
    defer { close(fd) }
    var info = stat()
    guard fstat(fd, &info) == 0 else {
      throw ModelFormatError.notFound(path: path, field: "file", reason: "cannot be read (\(String(cString: strerror(errno))))")
    }
    let size = Int(info.st_size)
    guard size > 0 else { throw ModelFormatError.malformed(path: path, field: "header.magic", reason: "the file is empty") }
    guard let address = mmap(nil, size, PROT_READ, MAP_PRIVATE, fd, 0), address != UnsafeMutableRawPointer(bitPattern: -1) else {
      throw ModelFormatError.notFound(path: path, field: "file", reason: "cannot be mapped (\(String(cString: strerror(errno))))")
    }
    do { try self.init(base: UnsafeRawPointer(address), size: size, mapped: true, path: path) } catch {
      munmap(address, size)
      throw error
    }
  }

  /// Reads a GGUF image held in memory (a copy is kept): for tests, fuzzing and files built in memory.
  public convenience init(bytes: [UInt8], name: String = "<gguf>") throws {
    let copy = UnsafeMutableRawPointer.allocate(byteCount: max(bytes.count, 1), alignment: 64)
    bytes.withUnsafeBytes { if let b = $0.baseAddress { copy.copyMemory(from: b, byteCount: bytes.count) } }
    do { try self.init(base: UnsafeRawPointer(copy), size: bytes.count, mapped: false, path: name) } catch {
      copy.deallocate()
      throw error
    }
  }

  private init(base: UnsafeRawPointer, size: Int, mapped: Bool, path: String) throws {
    var r = GGUFCursor(base: base, size: size, path: path)
    let magic = try r.bytes(4, "header.magic")
    guard magic.load(as: UInt32.self) == 0x4655_4747 else {          // "GGUF"
      let found = (0..<4).map { String(format: "%02x", magic.load(fromByteOffset: $0, as: UInt8.self)) }.joined(separator: " ")
      throw r.malformed("header.magic", "expected 'GGUF' (47 47 55 46), found \(found)")
    }
    let version = try r.u32("header.version")
    guard version == 2 || version == 3 else {
      let reason = version == 1 ? "version 1 (32-bit counts) is not supported, only 2 and 3"
        : version.byteSwapped == 2 || version.byteSwapped == 3 ? "a big-endian file (version \(version.byteSwapped)) is not supported"
        : "version \(version) is not supported, only 2 and 3"
      throw ModelFormatError.unsupported(path: path, field: "header.version", reason: reason)
    }
    // Every tensor info takes at least 24 bytes and every metadata entry 13, which bounds both counts by the file.
    let tensorCount = try r.count("header.tensor_count", minimumBytesEach: 24)
    let kvCount = try r.count("header.metadata_kv_count", minimumBytesEach: 13)

    var metadata: [String: GGUFValue] = [:], keys: [String] = []
    metadata.reserveCapacity(kvCount); keys.reserveCapacity(kvCount)
    for i in 0..<kvCount {
      let key = try r.string("metadata[\(i)].key")
      guard metadata[key] == nil else { throw r.malformed("metadata '\(key)'", "the key appears twice") }
      let type = try r.u32("metadata '\(key)'.type")
      metadata[key] = try r.value(type: type, field: "metadata '\(key)'", depth: 0)
      keys.append(key)
    }

    var alignment = 32
    if let value = metadata["general.alignment"] {
      guard let a = value.int, a > 0, a <= 1 << 30, a & (a - 1) == 0 else {
        throw r.malformed("metadata 'general.alignment'", "\(value.int.map(String.init) ?? "\(value)") is not a power of two up to 2^30")
      }
      alignment = a
    }

    var raw: [(name: String, dimensions: [Int], type: GGMLType, offset: UInt64, elements: Int, bytes: Int)] = []
    var index: [String: Int] = [:]
    raw.reserveCapacity(tensorCount); index.reserveCapacity(tensorCount)
    for i in 0..<tensorCount {
      let name = try r.string("tensor[\(i)].name")
      let field = "tensor '\(name)'"
      guard index[name] == nil else { throw r.malformed(field, "the name appears twice") }
      let rank = try r.u32("\(field).n_dimensions")
      guard rank <= GGUFFile.maxDimensions else { throw r.malformed("\(field).n_dimensions", "\(rank) is more than \(GGUFFile.maxDimensions)") }
      // The product of the dimensions, with empty ones counted as 1 (as strides count them), must fit in Int.
      var dimensions: [Int] = [], elements = 1, extent = 1
      for d in 0..<Int(rank) {
        let ne = try r.u64("\(field).ne[\(d)]")
        guard let n = Int(exactly: ne) else { throw r.malformed("\(field).ne[\(d)]", "\(ne) is larger than 2^63 - 1") }
        dimensions.append(n)
        let (product, overflow) = extent.multipliedReportingOverflow(by: Swift.max(n, 1))
        guard !overflow else { throw r.malformed("\(field).dimensions", "\(dimensions)... hold more than 2^63 - 1 elements") }
        extent = product
        elements *= n                // at most `extent`
      }
      let id = try r.u32("\(field).type")
      guard let type = GGMLType(rawValue: id) else { throw r.malformed("\(field).type", "unknown ggml type id \(id)") }
      let offset = try r.u64("\(field).offset")
      if let ne0 = dimensions.first, ne0 % type.blockSize != 0 {
        throw r.malformed(field, "ne[0] = \(ne0) is not a multiple of the \(type) block size \(type.blockSize)")
      }
      guard elements % type.blockSize == 0, case (let bytes, false) = (elements / type.blockSize).multipliedReportingOverflow(by: type.typeSize) else {
        throw r.malformed(field, "\(elements) elements of \(type) do not make a byte count that fits in 64 bits")
      }
      index[name] = i
      raw.append((name, dimensions, type, offset, elements, bytes))
    }

    // The data section starts at the next multiple of the alignment after the tensor infos.
    let (padded, overflow) = r.position.addingReportingOverflow(alignment - 1)
    guard !overflow else { throw r.malformed("data section", "its offset overflows") }
    let dataOffset = padded / alignment * alignment
    var tensors: [GGUFTensorInfo] = []
    tensors.reserveCapacity(raw.count)
    for t in raw {
      let field = "tensor '\(t.name)'"
      guard t.offset % UInt64(alignment) == 0 else {
        throw r.malformed(field, "offset \(t.offset) is not a multiple of the alignment \(alignment)")
      }
      guard let relative = Int(exactly: t.offset), case (let absolute, false) = dataOffset.addingReportingOverflow(relative),
            absolute <= size, t.bytes <= size - absolute else {
        throw r.malformed(field, "offset \(t.offset) + \(t.bytes) bytes runs past the end of the file (\(size) bytes; data section at \(dataOffset))")
      }
      tensors.append(GGUFTensorInfo(name: t.name, dimensions: t.dimensions, type: t.type, offset: absolute, byteCount: t.bytes,
                                    elementCount: t.elements))
    }

    self.base = base; self.mapped = mapped; self.path = path; self.fileSize = size
    self.version = Int(version); self.metadata = metadata; self.metadataKeys = keys
    self.tensors = tensors; self.index = index; self.alignment = alignment; self.dataOffset = dataOffset
  }

  deinit {
    if mapped { munmap(UnsafeMutableRawPointer(mutating: base), fileSize) } else { UnsafeMutableRawPointer(mutating: base).deallocate() }
  }

  public func tensorInfo(named name: String) -> GGUFTensorInfo? { index[name].map { tensors[$0] } }

  /// The tensor's bytes inside the mapping, valid while this object lives. An info from another file that does not
  /// fit this one gives an empty buffer.
  public func rawBytes(_ info: GGUFTensorInfo) -> UnsafeRawBufferPointer {
    guard info.offset >= 0, info.byteCount >= 0, info.offset <= fileSize, info.byteCount <= fileSize - info.offset else {
      return UnsafeRawBufferPointer(start: nil, count: 0)
    }
    return UnsafeRawBufferPointer(start: base + info.offset, count: info.byteCount)
  }

  /// Decodes the tensor to `info.elementCount` floats at `out`, in ggml order (ne[0] fastest, which is row-major for
  /// the reversed shape). Throws for types without a decoder and for an info that does not belong to this file.
  public func dequantize(_ info: GGUFTensorInfo, into out: UnsafeMutablePointer<Float>) throws {
    let bytes = try checkedBytes(info)
    guard let source = bytes.baseAddress, info.elementCount > 0 else { return }
    guard info.type.dequantize(source, into: out, count: info.elementCount) else {
      throw ModelFormatError.unsupported(path: path, field: "tensor '\(info.name)'", reason: "dequantizing \(info.type) is not supported")
    }
  }

  /// The tensor decoded to floats, in ggml order (ne[0] fastest).
  public func dequantized(_ info: GGUFTensorInfo) throws -> [Float] {
    _ = try checkedBytes(info)
    guard info.elementCount <= Memory.budget / 4 else {
      throw TensorError.outOfMemory(op: "gguf", bytes: info.elementCount &* 4, budget: Memory.budget)
    }
    return try [Float](unsafeUninitializedCapacity: info.elementCount) { buffer, count in
      if let out = buffer.baseAddress { try dequantize(info, into: out) }
      count = info.elementCount
    }
  }

  /// The tensor `name` as a Tensor of the row-major shape (dimensions reversed). Types Tensor holds (f32, f16, bf16,
  /// q8_0, q4_1, i8, i32) keep their bytes unless `dequantize` is true; others are decoded to f32.
  public func tensor(_ name: String, dequantize: Bool = false) throws -> Tensor {
    guard let info = tensorInfo(named: name) else {
      throw ModelFormatError.notFound(path: path, field: "tensor '\(name)'", reason: "there is no tensor of that name")
    }
    let bytes = try checkedBytes(info)
    if !dequantize, let dtype = info.type.dtype {
      let t = try Tensor(zeros: info.shape, dtype: dtype, op: "gguf")
      guard t.storage.byteCount == info.byteCount else {      // the layouts agree; a mismatch is a bug, reported not trapped
        throw ModelFormatError.unsupported(path: path, field: "tensor '\(name)'", reason: "\(info.byteCount) bytes do not fill a \(dtype) tensor of shape \(info.shape)")
      }
      if let source = bytes.baseAddress { t.storage.bytes.copyMemory(from: source, byteCount: info.byteCount) }
      return t
    }
    var t = try Tensor(zeros: info.shape, op: "gguf")
    try self.dequantize(info, into: try t.mutablePointer())
    return t
  }

  private func checkedBytes(_ info: GGUFTensorInfo) throws -> UnsafeRawBufferPointer {
    let bytes = rawBytes(info)
    guard bytes.count == info.byteCount, let expected = info.type.byteCount(elements: info.elementCount), expected == info.byteCount else {
      throw ModelFormatError.malformed(path: path, field: "tensor '\(info.name)'", reason: "does not describe bytes of this file")
    }
    return bytes
  }
}

/// Reads little-endian fields from a bounded buffer, checking each against the end before it reads.
struct GGUFCursor {
  let base: UnsafeRawPointer, size: Int, path: String
  var position = 0
  /// Array elements decoded so far, all arrays together: each is a GGUFValue in memory (tens of bytes for one
  /// byte of file), so their total is held to the memory budget, not only each array's count.
  var arrayElements = 0

  func malformed(_ field: String, _ reason: String) -> ModelFormatError { .malformed(path: path, field: field, reason: reason) }

  /// A pointer to the next `n` bytes, which are consumed.
  mutating func bytes(_ n: Int, _ field: @autoclosure () -> String) throws -> UnsafeRawPointer {
    guard n >= 0, n <= size - position else {
      throw malformed(field(), "needs \(n) bytes at offset \(position), but the file ends at \(size) bytes")
    }
    defer { position += n }
    return base + position
  }

  mutating func load<T: FixedWidthInteger>(_: T.Type, _ field: @autoclosure () -> String) throws -> T {
    T(littleEndian: try bytes(MemoryLayout<T>.size, field()).loadUnaligned(as: T.self))
  }
  mutating func u32(_ field: @autoclosure () -> String) throws -> UInt32 { try load(UInt32.self, field()) }
  mutating func u64(_ field: @autoclosure () -> String) throws -> UInt64 { try load(UInt64.self, field()) }

  /// A u64 count of items of at least `minimumBytesEach` bytes, checked against what is left of the file.
  mutating func count(_ field: @autoclosure () -> String, minimumBytesEach: Int) throws -> Int {
    let n = try u64(field())
    let room = (size - position) / minimumBytesEach
    guard n <= UInt64(room) else {
      throw malformed(field(), "\(n) items of at least \(minimumBytesEach) bytes each do not fit in the \(size - position) bytes left")
    }
    return Int(n)
  }

  mutating func string(_ field: @autoclosure () -> String) throws -> String {
    let length = try u64(field())
    guard length <= UInt64(size - position) else {
      throw malformed(field(), "string length \(length) at offset \(position - 8) runs past the end of the file (\(size) bytes)")
    }
    let start = try bytes(Int(length), field())
    // Invalid UTF-8 is repaired (U+FFFD), as Swift strings must be valid.
    return String(decoding: UnsafeRawBufferPointer(start: start, count: Int(length)), as: UTF8.self)
  }

  mutating func value(type: UInt32, field: @autoclosure () -> String, depth: Int) throws -> GGUFValue {
    switch type {
    case 0: return .uint8(try load(UInt8.self, field()))
    case 1: return .int8(try load(Int8.self, field()))
    case 2: return .uint16(try load(UInt16.self, field()))
    case 3: return .int16(try load(Int16.self, field()))
    case 4: return .uint32(try load(UInt32.self, field()))
    case 5: return .int32(try load(Int32.self, field()))
    case 6: return .float32(Float(bitPattern: try load(UInt32.self, field())))
    case 7:
      let b = try load(UInt8.self, field())
      guard b <= 1 else { throw malformed(field(), "bool byte \(b) is neither 0 nor 1") }
      return .bool(b == 1)
    case 8: return .string(try string(field()))
    case 9:
      guard depth < GGUFFile.maxNesting else { throw malformed(field(), "arrays nest deeper than \(GGUFFile.maxNesting) levels") }
      let elementType = try u32(field())
      guard let size = GGUFCursor.minimumSize(elementType) else {
        throw malformed(field(), "unknown array element type \(elementType)")
      }
      let n = try count(field(), minimumBytesEach: size)
      guard n <= GGUFFile.maxArrayCount else { throw malformed(field(), "\(n) elements are more than the limit of \(GGUFFile.maxArrayCount)") }
      arrayElements += n
      let bytesHeld = arrayElements.multipliedReportingOverflow(by: MemoryLayout<GGUFValue>.stride)
      guard !bytesHeld.overflow, bytesHeld.partialValue <= Memory.budget / 2 else {
        throw TensorError.outOfMemory(op: "gguf metadata (\(arrayElements) array elements so far)", bytes: bytesHeld.partialValue,
                                      budget: Memory.budget / 2)
      }
      var values: [GGUFValue] = []
      values.reserveCapacity(n)
      for i in 0..<n { values.append(try value(type: elementType, field: "\(field())[\(i)]", depth: depth + 1)) }
      return .array(values)
    case 10: return .uint64(try load(UInt64.self, field()))
    case 11: return .int64(try load(Int64.self, field()))
    case 12: return .float64(Double(bitPattern: try load(UInt64.self, field())))
    default: throw malformed(field(), "unknown metadata value type \(type)")
    }
  }

  /// Bytes the smallest value of a type takes (a string its length, an array its type and count), nil if unknown.
  static func minimumSize(_ type: UInt32) -> Int? {
    switch type {
    case 0, 1, 7: return 1
    case 2, 3: return 2
    case 4, 5, 6: return 4
    case 8, 10, 11, 12: return 8
    case 9: return 12
    default: return nil
    }
  }
}
