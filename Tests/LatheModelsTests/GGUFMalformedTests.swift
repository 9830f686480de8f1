// Malformed GGUF files: every one throws a ModelFormatError naming the field; none crashes or reads past the end.

import Foundation
import Testing
import LatheTensor
@testable import LatheModels

/// A GGUF image assembled field by field, as another tool (or a broken one) would write it.
struct GGUFBytes {
  var bytes: [UInt8] = []
  mutating func u8(_ x: UInt8) { bytes.append(x) }
  mutating func u32(_ x: UInt32) { withUnsafeBytes(of: x.littleEndian) { bytes += $0 } }
  mutating func u64(_ x: UInt64) { withUnsafeBytes(of: x.littleEndian) { bytes += $0 } }
  mutating func string(_ s: String, length: UInt64? = nil) { u64(length ?? UInt64(s.utf8.count)); bytes += Array(s.utf8) }
  mutating func pad(to alignment: Int = 32) { while bytes.count % alignment != 0 { bytes.append(0) } }

  /// A valid file: one u32 metadata entry and one F32 tensor of `ne` elements, each part overridable.
  static func file(version: UInt32 = 3, tensorCount: UInt64 = 1, kvCount: UInt64 = 1, key: String = "general.x",
                   valueType: UInt32 = 4, value: (inout GGUFBytes) -> Void = { $0.u32(7) }, name: String = "w",
                   dims: [UInt64] = [8], type: UInt32 = 0, offset: UInt64 = 0, dataBytes: Int = 32) -> [UInt8] {
    var b = GGUFBytes()
    b.bytes += Array("GGUF".utf8)
    b.u32(version); b.u64(tensorCount); b.u64(kvCount)
    b.string(key); b.u32(valueType); value(&b)
    b.string(name); b.u32(UInt32(dims.count)); for d in dims { b.u64(d) }; b.u32(type); b.u64(offset)
    b.pad()
    b.bytes += [UInt8](repeating: 0, count: dataBytes)
    return b.bytes
  }
}

/// Parses `bytes`, expecting a ModelFormatError whose field and reason contain the given text.
func expectMalformed(_ bytes: [UInt8], field: String, reason: String = "", sourceLocation: SourceLocation = #_sourceLocation) {
  do {
    let file = try GGUFFile(bytes: bytes, name: "bad.gguf")
    Issue.record("accepted a malformed file with \(file.tensors.count) tensors (expected an error about \(field))", sourceLocation: sourceLocation)
  } catch let e as ModelFormatError {
    #expect(e.field == field && (reason.isEmpty || e.reason.contains(reason)), "\(e)", sourceLocation: sourceLocation)
    #expect("\(e)".hasPrefix("bad.gguf: \(field): "), sourceLocation: sourceLocation)
  } catch {
    Issue.record("not a ModelFormatError: \(error)", sourceLocation: sourceLocation)
  }
}

@Test func validHandBuiltFileReads() throws {
  let file = try GGUFFile(bytes: GGUFBytes.file())
  #expect(file.metadata == ["general.x": .uint32(7)] && file.tensors.count == 1)
  #expect(try file.dequantized(file.tensors[0]) == [Float](repeating: 0, count: 8))
  let v2 = try GGUFFile(bytes: GGUFBytes.file(version: 2))
  #expect(v2.version == 2)
}

@Test func malformedHeadersNameTheField() {
  let huge = UInt64.max
  expectMalformed([], field: "header.magic")
  expectMalformed(Array("GGUG".utf8) + [UInt8](repeating: 0, count: 40), field: "header.magic", reason: "47 47 55 47")
  expectMalformed(GGUFBytes.file(version: 1), field: "header.version", reason: "version 1")
  expectMalformed(GGUFBytes.file(version: 0x0300_0000), field: "header.version", reason: "big-endian")
  expectMalformed(GGUFBytes.file(version: 4), field: "header.version")
  expectMalformed(GGUFBytes.file(tensorCount: huge), field: "header.tensor_count", reason: "do not fit")
  // A second tensor info read from the padding (zeros: an unnamed 1-element F32) pushes the data section past the end.
  expectMalformed(GGUFBytes.file(tensorCount: 2), field: "tensor 'w'", reason: "runs past the end")
  expectMalformed(GGUFBytes.file(tensorCount: 3, dataBytes: 0), field: "tensor ''.type", reason: "needs 4 bytes at offset 94, but the file ends at 96 bytes")
  expectMalformed(GGUFBytes.file(kvCount: 1 << 40), field: "header.metadata_kv_count")
  expectMalformed(GGUFBytes.file(valueType: 13), field: "metadata 'general.x'", reason: "unknown metadata value type 13")
  expectMalformed(GGUFBytes.file(valueType: 7, value: { $0.u8(2) }), field: "metadata 'general.x'", reason: "bool byte 2")
  expectMalformed(GGUFBytes.file(valueType: 8, value: { $0.u64(1 << 62) }), field: "metadata 'general.x'", reason: "string length")
  expectMalformed(GGUFBytes.file(valueType: 9, value: { $0.u32(8); $0.u64(huge) }), field: "metadata 'general.x'", reason: "do not fit")
  expectMalformed(GGUFBytes.file(valueType: 9, value: { $0.u32(13); $0.u64(1) }), field: "metadata 'general.x'", reason: "element type 13")
  expectMalformed(GGUFBytes.file(valueType: 9, value: { $0.u32(8); $0.u64(2); $0.string("a"); $0.u64(99) }),
                  field: "metadata 'general.x'[1]", reason: "string length 99")
  expectMalformed(GGUFBytes.file(valueType: 9, value: { for _ in 0..<40 { $0.u32(9); $0.u64(1) }; $0.u32(0); $0.u64(0) }),
                  field: "metadata 'general.x'[0][0][0][0][0][0][0][0][0][0][0][0][0][0][0][0]", reason: "nest deeper")
  expectMalformed(GGUFBytes.file(key: "general.alignment", value: { $0.u32(24) }), field: "metadata 'general.alignment'",
                  reason: "24 is not a power of two")
  expectMalformed(GGUFBytes.file(key: "general.alignment", value: { $0.u32(0) }), field: "metadata 'general.alignment'")
  var twice = GGUFBytes.file(kvCount: 2, valueType: 4)
  // A second entry with the same key, spliced in after the first.
  let firstEnd = 24 + 8 + 9 + 4 + 4
  var entry = GGUFBytes(); entry.string("general.x"); entry.u32(4); entry.u32(8)
  twice.insert(contentsOf: entry.bytes, at: firstEnd)
  expectMalformed(twice, field: "metadata 'general.x'", reason: "twice")
}

@Test func malformedTensorInfosNameTheTensor() {
  expectMalformed(GGUFBytes.file(dims: [8, 8, 8, 8, 8]), field: "tensor 'w'.n_dimensions", reason: "more than 4")
  expectMalformed(GGUFBytes.file(dims: [1 << 63]), field: "tensor 'w'.ne[0]", reason: "larger than")
  expectMalformed(GGUFBytes.file(dims: [1 << 32, 1 << 32]), field: "tensor 'w'.dimensions", reason: "more than")
  // Found by the fuzzer: no elements, but row-major strides of the other sizes would overflow.
  expectMalformed(GGUFBytes.file(dims: [0, 1 << 62, 1 << 62]), field: "tensor 'w'.dimensions", reason: "more than")
  expectMalformed(GGUFBytes.file(dims: [1 << 62]), field: "tensor 'w'", reason: "64 bits")
  expectMalformed(GGUFBytes.file(type: 99), field: "tensor 'w'.type", reason: "unknown ggml type id 99")
  expectMalformed(GGUFBytes.file(type: 4), field: "tensor 'w'.type", reason: "id 4")
  expectMalformed(GGUFBytes.file(type: 2), field: "tensor 'w'", reason: "ne[0] = 8 is not a multiple of the Q4_0 block size 32")
  expectMalformed(GGUFBytes.file(offset: 4), field: "tensor 'w'", reason: "offset 4 is not a multiple of the alignment 32")
  expectMalformed(GGUFBytes.file(offset: 32), field: "tensor 'w'", reason: "offset 32 + 32 bytes runs past the end of the file")
  expectMalformed(GGUFBytes.file(offset: UInt64.max - 31), field: "tensor 'w'", reason: "runs past the end")
  expectMalformed(GGUFBytes.file(dims: [9]), field: "tensor 'w'", reason: "36 bytes runs past the end")
  var two = GGUFBytes.file(tensorCount: 2, dataBytes: 0)
  two.removeLast(two.count - (24 + 8 + 9 + 4 + 4 + 8 + 1 + 4 + 8 + 4 + 8))    // drop the padding, repeat the info
  var info = GGUFBytes(); info.string("w"); info.u32(1); info.u64(8); info.u32(0); info.u64(32)
  two += info.bytes
  while two.count % 32 != 0 { two.append(0) }
  two += [UInt8](repeating: 0, count: 64)
  expectMalformed(two, field: "tensor 'w'", reason: "appears twice")
}

@Test func everyTruncationOfAWrittenFileThrows() throws {
  var w = GGUFWriter()
  for (key, value) in everyValueType { w.set(key, value) }
  try w.addTensor("a", values: (0..<64).map(Float.init), dimensions: [32, 2], as: .q4_1)
  try w.addTensor("b", values: [1, 2, 3], dimensions: [3], as: .f32)
  let bytes = try w.bytes()
  _ = try GGUFFile(bytes: bytes)
  // The last tensor ends 12 bytes before the padded end: shorter files lose data the header says is there.
  let end = bytes.count - 20
  for length in 0..<end {
    #expect(throws: ModelFormatError.self, "prefix of \(length) bytes") { try GGUFFile(bytes: Array(bytes.prefix(length))) }
  }
  #expect(try GGUFFile(bytes: Array(bytes.prefix(end))).tensors.count == 2)
}

@Test func truncatedSmolLM2HeadersThrow() throws {
  let handle = try #require(FileHandle(forReadingAtPath: SmolLM2.path), "models/SmolLM2-135M-Instruct.Q4_1.gguf is missing")
  defer { try? handle.close() }
  let header = [UInt8](try #require(try handle.read(upToCount: SmolLM2Reference.dataOffset + 4096)))
  // Every length up to 4 KiB, then random points through the tokenizer arrays and the tensor table.
  var lengths = Array(0...4096)
  var rng = SplitMix(seed: 11)
  for _ in 0..<24 { lengths.append(Int(rng.next() % UInt64(header.count))) }
  for length in lengths {
    do {
      _ = try GGUFFile(bytes: Array(header.prefix(length)))
      Issue.record("a \(length)-byte prefix was accepted")
    } catch is ModelFormatError {}
  }
}

@Test func randomCorruptionThrowsOrReadsWithinTheFile() throws {
  var w = GGUFWriter()
  w.set("general.architecture", .string("llama"))
  w.set("tokenizer.ggml.tokens", .array(["a", "b", "<|im_start|>"].map(GGUFValue.string)))
  w.set("nested", .array([.array([.uint8(1)]), .array([.uint8(2)])]))
  let values = (0..<256).map { Float($0) / 64 - 2 }
  for (i, type) in [GGMLType.f32, .f16, .q8_0, .q4_0, .q4_1].enumerated() {
    try w.addTensor("t\(i)", values: values, dimensions: [32, 8], as: type)
  }
  let valid = try w.bytes()
  var rng = SplitMix(seed: 5)
  var accepted = 0
  for round in 0..<3000 {
    var bytes = valid
    for _ in 0..<(1 + round % 4) {
      let at = Int(rng.next() % UInt64(bytes.count))
      switch rng.next() % 4 {
      case 0: bytes[at] ^= UInt8(truncatingIfNeeded: 1 << (rng.next() % 8))
      case 1: bytes[at] = UInt8(truncatingIfNeeded: rng.next())
      case 2: bytes[at] = 0xFF
      default: bytes.removeLast(Swift.min(bytes.count, Int(rng.next() % 64)))
      }
      if bytes.isEmpty { break }
    }
    do {
      let file = try GGUFFile(bytes: bytes)
      accepted += 1
      for info in file.tensors {
        #expect(info.offset + info.byteCount <= bytes.count)
        _ = try? file.dequantized(info)
      }
    } catch is ModelFormatError {
    } catch {
      Issue.record("round \(round): \(error)")
    }
  }
  #expect(accepted > 0 && accepted < 3000)
}

/// A small seeded generator (SplitMix64), so failures reproduce.
struct SplitMix {
  var state: UInt64
  init(seed: UInt64) { state = seed }
  mutating func next() -> UInt64 {
    state &+= 0x9E37_79B9_7F4A_7C15
    var z = state
    z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
    z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
    return z ^ (z >> 31)
  }
}
