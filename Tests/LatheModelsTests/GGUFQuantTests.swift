// ggml block types: the type table, decoders and quantisers against fixtures from the gguf Python package.

import Foundation
import Testing
import LatheTensor
@testable import LatheModels

func floatsFromHex(_ hex: String) -> [Float] {
  let bytes = hexBytes(hex)
  return stride(from: 0, to: bytes.count, by: 4).map { i in
    Float(bitPattern: UInt32(bytes[i]) | UInt32(bytes[i + 1]) << 8 | UInt32(bytes[i + 2]) << 16 | UInt32(bytes[i + 3]) << 24)
  }
}

@Test func ggmlTypeTableIsGGMLs() throws {
  // ggml.h ids, and (block size, bytes per block) from ggml.c's type traits.
  let table: [(GGMLType, UInt32, Int, Int)] = [
    (.f32, 0, 1, 4), (.f16, 1, 1, 2), (.q4_0, 2, 32, 18), (.q4_1, 3, 32, 20), (.q5_0, 6, 32, 22), (.q5_1, 7, 32, 24),
    (.q8_0, 8, 32, 34), (.q8_1, 9, 32, 36), (.q2_K, 10, 256, 84), (.q3_K, 11, 256, 110), (.q4_K, 12, 256, 144),
    (.q5_K, 13, 256, 176), (.q6_K, 14, 256, 210), (.q8_K, 15, 256, 292), (.i8, 24, 1, 1), (.i16, 25, 1, 2),
    (.i32, 26, 1, 4), (.i64, 27, 1, 8), (.f64, 28, 1, 8), (.bf16, 30, 1, 2), (.iq4_nl, 20, 32, 18), (.mxfp4, 39, 32, 17),
  ]
  for (type, id, block, size) in table {
    #expect(type.rawValue == id && type.blockSize == block && type.typeSize == size, "\(type)")
  }
  #expect(GGMLType(rawValue: 4) == nil && GGMLType(rawValue: 31) == nil && GGMLType(rawValue: 40) == nil)
  #expect(GGMLType.q4_K.name == "q4_K" && GGMLType.q4_K.description == "Q4_K" && GGMLType.bf16.description == "BF16")
  // Tensor's block dtypes have the same layouts as the GGUF types they hold.
  for type in GGMLType.allCases {
    guard let dtype = type.dtype else { continue }
    #expect(dtype.blockSize == type.blockSize && dtype.byteSize == type.typeSize, "\(type)")
  }
  #expect(GGMLType.q4_1.byteCount(elements: 64) == 40 && GGMLType.q4_1.byteCount(elements: 48) == nil)
  #expect(GGMLType.q8_0.byteCount(elements: Int.max / 32 * 32) == nil)     // overflow is nil, not a trap
}

@Test(arguments: GGUFQuantFixtures.cases.map(\.type))
func decoderMatchesTheGGUFPackage(typeName: String) throws {
  let fixture = try #require(GGUFQuantFixtures.cases.first { $0.type == typeName })
  let type = try #require(GGMLType.allCases.first { $0.description == typeName })
  let bytes = hexBytes(fixture.bytes), expected = floatsFromHex(fixture.values)
  #expect(type.byteCount(elements: expected.count) == bytes.count)
  var out = [Float](repeating: .nan, count: expected.count)
  let decoded = bytes.withUnsafeBytes { raw in
    out.withUnsafeMutableBufferPointer { o in
      guard let source = raw.baseAddress, let target = o.baseAddress else { return false }
      return type.dequantize(source, into: target, count: expected.count)
    }
  }
  #expect(decoded)
  // Bit for bit: the same float operations in the same order as ggml and gguf-py.
  let mismatches = (0..<expected.count).filter { out[$0].bitPattern != expected[$0].bitPattern }
  #expect(mismatches.isEmpty, "\(typeName): \(mismatches.count) values differ, first at \(mismatches.first ?? -1)")
}

@Test(arguments: [GGMLType.q4_0, .q4_1, .q8_0])
func quantiserMatchesGGMLsReference(type: GGMLType) throws {
  let fixture = try #require(GGUFQuantFixtures.cases.first { $0.type == type.description })
  let input = floatsFromHex(fixture.input)
  var w = GGUFWriter()
  try w.addTensor("x", values: input, dimensions: [32, input.count / 32], as: type)
  let file = try GGUFFile(bytes: w.bytes())
  let info = try #require(file.tensorInfo(named: "x"))
  #expect(Array(file.rawBytes(info)) == hexBytes(fixture.bytes))
  #expect(try file.dequantized(info) == floatsFromHex(fixture.values))
}

@Test func tensorQuantisationSharesTheGGMLQuantiser() throws {
  // Tensor.copied(as:) and GGUFWriter write the same blocks for the same values.
  let x = try Tensor.randn([4, 64], seed: 7)
  for type in [GGMLType.q8_0, .q4_1] {
    let dtype = try #require(type.dtype)
    let q = try x.copied(as: dtype)
    var w = GGUFWriter()
    try w.addTensor("x", x, as: type)
    let file = try GGUFFile(bytes: w.bytes())
    let info = try #require(file.tensorInfo(named: "x"))
    #expect(Array(UnsafeRawBufferPointer(start: q.storage.bytes, count: q.storage.byteCount)) == Array(file.rawBytes(info)))
    #expect(try file.dequantized(info) == q.scalars)
  }
}

@Test func typesWithoutADecoderSayWhich() throws {
  var w = GGUFWriter()
  try [UInt8](repeating: 0, count: 66).withUnsafeBytes { try w.addTensor("iq", dimensions: [256], type: .iq2_xxs, bytes: $0) }
  let bytes = try w.bytes()
  let file = try GGUFFile(bytes: bytes)
  #expect(file.tensors.first?.type == .iq2_xxs && file.rawBytes(file.tensors[0]).count == 66)
  do {
    _ = try file.tensor("iq")
    Issue.record("decoded a type without a decoder")
  } catch let e as ModelFormatError {
    #expect(e.field == "tensor 'iq'" && e.reason.contains("IQ2_XXS"))
  }
}

@Test func plainTypesDecodeAndKeepTheirTensorDtype() throws {
  // bf16 1.5 = 0x3FC0, i8 −3, i16 −300, i32 70000, i64 −5, f64 0.25: one tensor of each, raw.
  let cases: [(GGMLType, [UInt8], Float, DType?)] = [
    (.bf16, [0xC0, 0x3F], 1.5, .bf16), (.i8, [0xFD], -3, .i8), (.i16, [0xD4, 0xFE], -300, nil),
    (.i32, [0x70, 0x11, 0x01, 0x00], 70_000, .i32), (.i64, [0xFB] + [UInt8](repeating: 0xFF, count: 7), -5, nil),
    (.f64, [0, 0, 0, 0, 0, 0, 0xD0, 0x3F], 0.25, nil), (.f16, [0x00, 0xBC], -1, .f16),
  ]
  var w = GGUFWriter()
  for (type, bytes, _, _) in cases { try bytes.withUnsafeBytes { try w.addTensor(type.name, dimensions: [1], type: type, bytes: $0) } }
  let file = try GGUFFile(bytes: w.bytes())
  for (type, _, value, dtype) in cases {
    let info = try #require(file.tensorInfo(named: type.name))
    #expect(try file.dequantized(info) == [value], "\(type)")
    let t = try file.tensor(type.name)
    #expect(t.dtype == dtype ?? .f32 && t.scalars == [value], "\(type)")
  }
}
