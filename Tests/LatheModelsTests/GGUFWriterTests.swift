// GGUF writer: round trips of metadata and tensors, requantisation of real blocks, a full copy of SmolLM2.

import Foundation
import Testing
import LatheTensor
import LatheTestSupport
@testable import LatheModels

/// Every metadata value type, nested arrays included.
let everyValueType: [(String, GGUFValue)] = [
  ("test.u8", .uint8(200)), ("test.i8", .int8(-100)), ("test.u16", .uint16(60_000)), ("test.i16", .int16(-30_000)),
  ("test.u32", .uint32(4_000_000_000)), ("test.i32", .int32(-2_000_000_000)), ("test.u64", .uint64(.max)),
  ("test.i64", .int64(.min)), ("test.f32", .float32(-1.5)), ("test.f64", .float64(.pi)), ("test.bool", .bool(true)),
  ("test.string", .string("héllo ✓ 🚀")), ("test.empty", .string("")),
  ("test.nested", .array([.array([.int16(1), .int16(-2)]), .array([]), .array([.int16(3)])])),
  ("test.bools", .array([.bool(false), .bool(true)])), ("test.doubles", .array([.float64(0.25), .float64(-8)])),
]

@Test func writerRoundTripsMetadataAndTensors() throws {
  let original = try SmolLM2.open()
  var w = GGUFWriter(metadataOf: original)
  for (key, value) in everyValueType { w.set(key, value) }
  let x = try Tensor.randn([4, 96], seed: 3).scalars
  let types: [GGMLType] = [.f32, .f16, .q8_0, .q4_0, .q4_1]
  for type in types { try w.addTensor("t.\(type.name)", values: x, dimensions: [96, 4], as: type) }
  for name in ["token_embd.weight", "blk.0.attn_q.weight", "output_norm.weight"] {
    try w.addTensor(try #require(original.tensorInfo(named: name)), from: original)
  }
  let bytes = try w.bytes()
  let file = try GGUFFile(bytes: bytes)

  #expect(file.version == 3 && file.metadataKeys == w.metadataKeys && file.metadata == w.metadata)
  #expect(Array(file.metadataKeys.prefix(original.metadataKeys.count)) == original.metadataKeys)
  for key in original.metadataKeys { #expect(file.metadata[key] == original.metadata[key], "\(key)") }
  #expect(file.metadata["test.u64"]?.int == nil && file.metadata["test.i64"]?.int == Int.min)
  #expect(file.metadata["test.nested"]?.array?.count == 3 && file.metadata["test.doubles"]?.doubles == [0.25, -8])

  #expect(file.tensors.map(\.name) == w.tensorNames)
  for info in file.tensors { #expect(info.offset % 32 == 0 && (info.offset - file.dataOffset) % 32 == 0) }
  for name in ["token_embd.weight", "blk.0.attn_q.weight", "output_norm.weight"] {
    let a = try #require(original.tensorInfo(named: name)), b = try #require(file.tensorInfo(named: name))
    #expect(a.dimensions == b.dimensions && a.type == b.type && original.rawBytes(a).elementsEqual(file.rawBytes(b)))
  }
  // Quantised from f32: f32 exact, f16 by round-to-nearest, blocks within half a step of the block's range.
  let f32 = try file.dequantized(try #require(file.tensorInfo(named: "t.f32")))
  #expect(f32 == x)
  let f16 = try file.dequantized(try #require(file.tensorInfo(named: "t.f16")))
  #expect(f16 == x.map { Float(Float16($0)) })
  for type in [GGMLType.q8_0, .q4_0, .q4_1] {
    let back = try file.dequantized(try #require(file.tensorInfo(named: "t.\(type.name)")))
    for b in 0..<(x.count / 32) {
      let block = Array(x[(32 * b)..<(32 * b + 32)])
      let amax: Float = block.map { Swift.abs($0) }.max() ?? 0
      let range: Float = (block.max() ?? 0) - (block.min() ?? 0)
      let step: Float = type == .q8_0 ? amax / 127 : type == .q4_0 ? amax / 8 : range / 15
      var worst: Float = 0
      for i in 0..<32 { worst = Swift.max(worst, Swift.abs(back[32 * b + i] - block[i])) }
      // Q4_0 spans −8d...7d with d = max/−8: values near −max on the other side are a whole step off (ggml's choice).
      let bound: Float = (type == .q4_0 ? step : step * 0.5) + 2e-3 * amax
      #expect(worst <= bound, "\(type) block \(b): error \(worst), step \(step)")
    }
  }
  // Reading and writing again gives the same bytes.
  var again = GGUFWriter(metadataOf: file)
  for info in file.tensors { try again.addTensor(info, from: file) }
  #expect(try again.bytes() == bytes)
}

/// Re-quantising dequantised Q4_1 blocks gives the same blocks: the block's minimum is m exactly (q = 0 is always
/// used), its maximum m + 15·d, so d and m come back after f16 rounding and every q lands within rounding of itself.
@Test func requantisingSmolLM2BlocksGivesThemBack() throws {
  let file = try SmolLM2.open()
  var checked = 0
  for info in file.tensors where info.type == .q4_1 && (info.name.hasPrefix("blk.0.") || info.name.hasPrefix("blk.29.")) {
    var w = GGUFWriter()
    try w.addTensor("x", values: try file.dequantized(info), dimensions: info.dimensions, as: .q4_1)
    let copy = try GGUFFile(bytes: w.bytes())
    let a = file.rawBytes(info), b = copy.rawBytes(copy.tensors[0])
    let blocks = info.byteCount / 20
    let differing = (0..<blocks).filter { i in !a[(20 * i)..<(20 * i + 20)].elementsEqual(b[(20 * i)..<(20 * i + 20)]) }
    #expect(differing.isEmpty, "\(info.name): \(differing.count) of \(blocks) blocks differ, first \(differing.first ?? -1)")
    checked += 1
  }
  #expect(checked == 14)
  // Q8_0 likewise (max |q| = 127 in every block), on the first 1024 rows of the embedding.
  let embedding = try #require(file.tensorInfo(named: "token_embd.weight"))
  let rows = 1024, values = Array(try file.dequantized(embedding).prefix(576 * rows))
  var w = GGUFWriter()
  try w.addTensor("x", values: values, dimensions: [576, rows], as: .q8_0)
  let copy = try GGUFFile(bytes: w.bytes())
  #expect(copy.rawBytes(copy.tensors[0]).elementsEqual(file.rawBytes(embedding).prefix(34 * 18 * rows)))
}

@Test func writtenCopyOfSmolLM2ReadsBackIdentically() throws {
  let original = try SmolLM2.open()
  var w = GGUFWriter(metadataOf: original)
  for info in original.tensors { try w.addTensor(info, from: original) }
  let directory = try TestPaths.temporaryDirectory("gguf-copy")
  defer { try? FileManager.default.removeItem(at: directory) }
  let path = directory.appendingPathComponent("copy.gguf").path
  try w.write(to: path)
  let copy = try GGUFFile(path: path)
  #expect(copy.metadataKeys == original.metadataKeys && copy.metadata == original.metadata)
  #expect(copy.tensors == original.tensors)             // names, dimensions, types and offsets
  for (a, b) in zip(original.tensors, copy.tensors) { #expect(original.rawBytes(a).elementsEqual(copy.rawBytes(b)), "\(a.name)") }
  // Written as llama.cpp wrote it: the whole file is the same, byte for byte.
  let same = try Data(contentsOf: URL(fileURLWithPath: path)) == Data(contentsOf: URL(fileURLWithPath: SmolLM2.path))
  #expect(same)
}

@Test func writerHonoursTheAlignmentKey() throws {
  var w = GGUFWriter()
  w.set("general.alignment", .uint32(64))
  try w.addTensor("a", values: [Float](repeating: 1, count: 3), dimensions: [3], as: .f32)
  try w.addTensor("b", values: [Float](repeating: 2, count: 32), dimensions: [32], as: .q8_0)
  let file = try GGUFFile(bytes: w.bytes())
  #expect(file.alignment == 64 && file.dataOffset % 64 == 0)
  #expect(file.tensors.map { $0.offset - file.dataOffset } == [0, 64])
  #expect(try file.dequantized(file.tensors[1]).allSatisfy { Swift.abs($0 - 2) < 1e-3 })
}

@Test func writerRefusesWhatItCannotWrite() throws {
  var w = GGUFWriter()
  try w.addTensor("a", values: [1, 2], dimensions: [2], as: .f32)
  func expectError(_ field: String, _ body: () throws -> Void) {
    do { try body(); Issue.record("accepted (expected an error about \(field))") } catch let e as ModelFormatError {
      #expect(e.field == field, "\(e)")
    } catch { Issue.record("\(error)") }
  }
  expectError("tensor 'a'") { try w.addTensor("a", values: [1], dimensions: [1], as: .f32) }                 // twice
  expectError("tensor 'b'") { try w.addTensor("b", values: [Float](repeating: 0, count: 48), dimensions: [48], as: .q4_0) }
  expectError("tensor 'c'") { try w.addTensor("c", values: [1, 2, 3], dimensions: [2], as: .f32) }
  expectError("tensor 'd'") { try w.addTensor("d", values: [Float](repeating: 0, count: 256), dimensions: [256], as: .q4_K) }
  expectError("tensor 'e'") { try [UInt8](repeating: 0, count: 5).withUnsafeBytes { try w.addTensor("e", dimensions: [1], type: .f32, bytes: $0) } }
  expectError("tensor 'f'") { try w.addTensor("f", values: [], dimensions: [1, 1, 1, 1, 0], as: .f32) }
  var mixed = w
  mixed.set("bad.array", .array([.uint8(1), .int8(1)]))
  expectError("metadata 'bad.array'[1]") { _ = try mixed.bytes() }
  var aligned = w
  aligned.set("general.alignment", .uint32(48))
  expectError("metadata 'general.alignment'") { _ = try aligned.bytes() }
}
