// safetensors: round trips, files other tools wrote (hand-built bytes), and malformed headers refused by field.

import Foundation
import Testing
import LatheTensor
import LatheTestSupport
@testable import LatheModels

/// A file assembled byte by byte, as another tool would write it.
func safetensorsFile(header: String, data: [UInt8]) -> [UInt8] {
  let json = Array(header.utf8)
  var out: [UInt8] = []
  for i in 0..<8 { out.append(UInt8(truncatingIfNeeded: UInt64(json.count) >> (8 * UInt64(i)))) }
  return out + json + data
}

@Test func roundTripKeepsNamesShapesAndValues() throws {
  let a = try Tensor.randn([3, 4], seed: 1)
  let ids = try Tensor(zeros: [2], dtype: .i32)
  ids.storage.ints()[0] = 7; ids.storage.ints()[1] = -3
  let bytes = try Safetensors.write([("layer.weight", a), ("ids", ids)], metadata: ["format": "pt"])
  let (tensors, metadata) = try Safetensors.read(bytes: bytes)
  #expect(tensors.map(\.name) == ["layer.weight", "ids"])
  #expect(tensors[0].tensor.scalars == a.scalars && tensors[0].tensor.shape == [3, 4])
  #expect(tensors[1].tensor.dtype == .i32 && tensors[1].tensor.scalars == [7, -3])
  #expect(metadata == ["format": "pt"])
  #expect(bytes.count % 8 == 0, "the header is padded so the data starts 8-byte aligned")
}

@Test func readsOtherDtypes() throws {
  // F16 1.0, -2.0; BF16 0.5; I64 5; U8 255
  let data: [UInt8] = [0x00, 0x3C, 0x00, 0xC0] + [0x00, 0x3F] + [5, 0, 0, 0, 0, 0, 0, 0] + [255]
  let header = #"{"h":{"dtype":"F16","shape":[2],"data_offsets":[0,4]},"b":{"dtype":"BF16","shape":[1],"data_offsets":[4,6]},"# +
    #""l":{"dtype":"I64","shape":[1],"data_offsets":[6,14]},"u":{"dtype":"U8","shape":[],"data_offsets":[14,15]}}"#
  let t = Dictionary(try Safetensors.read(bytes: safetensorsFile(header: header, data: data)).tensors.map { ($0.name, $0.tensor) },
                     uniquingKeysWith: { a, _ in a })
  #expect(t["h"]?.scalars == [1, -2] && t["b"]?.scalars == [0.5] && t["l"]?.scalars == [5] && t["u"]?.scalars == [255])
}

@Test func malformedFilesNameTheField() throws {
  let cases: [([UInt8], String)] = [
    ([1, 2, 3], "header length"),
    (safetensorsFile(header: "{", data: []), "header"),
    ([255, 255, 255, 255, 0, 0, 0, 0], "header length"),
    (safetensorsFile(header: #"{"x":{"dtype":"F32","shape":[4],"data_offsets":[0,8]}}"#, data: [0, 0, 0, 0, 0, 0, 0, 0]), "x.data_offsets"),
    (safetensorsFile(header: #"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,80]}}"#, data: [0, 0, 0, 0, 0, 0, 0, 0]), "x.data_offsets"),
    (safetensorsFile(header: #"{"x":{"dtype":"Q9","shape":[1],"data_offsets":[0,1]}}"#, data: [0]), "x.dtype"),
    (safetensorsFile(header: #"{"x":{"dtype":"F32","shape":[-1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), "x.shape"),
    (safetensorsFile(header: #"{"x":{"dtype":"F32"}}"#, data: []), "x.shape"),
    (safetensorsFile(header: #"{"x":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, data: [0, 0, 0, 0, 0, 0, 0, 1]), "x"),
  ]
  for (bytes, field) in cases {
    do {
      _ = try Safetensors.read(bytes: bytes, path: "bad.safetensors")
      Issue.record("accepted a malformed file (expected an error about \(field))")
    } catch let e as SafetensorsError {
      #expect("\(e)".hasPrefix("bad.safetensors: \(field):"), "\(e)")
    }
  }
}

/// The real checkpoint scripts/setup fetches: 104 tensors, 22,713,728 parameters, F32 and one I64.
@Test func readsTheRealMiniLMCheckpoint() throws {
  let path = TestPaths.packageRoot.appendingPathComponent("models/all-MiniLM-L6-v2/model.safetensors").path
  guard FileManager.default.fileExists(atPath: path) else {
    Issue.record("models/all-MiniLM-L6-v2/model.safetensors is missing: run scripts/setup")
    return
  }
  let (tensors, _) = try Safetensors.read(path: path)
  #expect(tensors.count == 104)
  #expect(tensors.reduce(0) { $0 + $1.tensor.count } == 22_713_728)
  let integer = tensors.filter { $0.tensor.dtype == .i32 }
  #expect(integer.count == 1, "the one I64 tensor: \(integer.map(\.name))")
  let embeddings = try #require(tensors.first { $0.name.hasSuffix("word_embeddings.weight") })
  #expect(embeddings.tensor.shape == [30522, 384])
  #expect(embeddings.tensor.scalars.prefix(1000).allSatisfy { $0.isFinite && Swift.abs($0) < 10 })
}

/// Reads `bytes` expecting a `SafetensorsError` whose field is `field` (never a crash, never acceptance).
func expectRefused(_ bytes: [UInt8], field: String, sourceLocation: SourceLocation = #_sourceLocation) {
  do {
    _ = try Safetensors.read(bytes: bytes, path: "bad.safetensors")
    Issue.record("accepted a malformed file (expected an error about \(field))", sourceLocation: sourceLocation)
  } catch let e as SafetensorsError {
    #expect("\(e)".hasPrefix("bad.safetensors: \(field): "), "\(e)", sourceLocation: sourceLocation)
  } catch {
    Issue.record("threw \(error), not a SafetensorsError", sourceLocation: sourceLocation)
  }
}

@Test func readsEveryDtype() throws {
  // F64 1.5, I32 -5, I16 -300, I8 -1, BOOL true, U8 7, F32 2, F16 -0.5, BF16 -2, I64 2^31-1 and -2^31.
  var data: [UInt8] = withUnsafeBytes(of: (1.5 as Double).bitPattern.littleEndian, Array.init)
  data += withUnsafeBytes(of: Int32(-5).littleEndian, Array.init) + withUnsafeBytes(of: Int16(-300).littleEndian, Array.init)
  data += [0xFF, 1, 7] + withUnsafeBytes(of: Float(2).bitPattern.littleEndian, Array.init) + [0x00, 0xB8] + [0x00, 0xC0]
  data += withUnsafeBytes(of: Int64(Int32.max).littleEndian, Array.init) + withUnsafeBytes(of: Int64(Int32.min).littleEndian, Array.init)
  let header = #"{"d":{"dtype":"F64","shape":[1],"data_offsets":[0,8]},"i":{"dtype":"I32","shape":[1],"data_offsets":[8,12]},"# +
    #""s":{"dtype":"I16","shape":[1],"data_offsets":[12,14]},"b":{"dtype":"I8","shape":[1],"data_offsets":[14,15]},"# +
    #""t":{"dtype":"BOOL","shape":[1],"data_offsets":[15,16]},"u":{"dtype":"U8","shape":[1,1],"data_offsets":[16,17]},"# +
    #""f":{"dtype":"F32","shape":[1],"data_offsets":[17,21]},"h":{"dtype":"F16","shape":[1],"data_offsets":[21,23]},"# +
    #""g":{"dtype":"BF16","shape":[1],"data_offsets":[23,25]},"l":{"dtype":"I64","shape":[2],"data_offsets":[25,41]},"# +
    #""e":{"dtype":"F32","shape":[0,3],"data_offsets":[41,41]}}"#
  let tensors = try Safetensors.read(bytes: safetensorsFile(header: header, data: data)).tensors
  #expect(tensors.map(\.name) == ["d", "i", "s", "b", "t", "u", "f", "h", "g", "l", "e"], "in the order of their data")
  let t = Dictionary(uniqueKeysWithValues: tensors.map { ($0.name, $0.tensor) })
  #expect(t["d"]?.scalars == [1.5] && t["d"]?.dtype == .f32)
  #expect(t["i"]?.scalars == [-5] && t["s"]?.scalars == [-300] && t["b"]?.scalars == [-1] && t["t"]?.scalars == [1])
  #expect(t["u"]?.scalars == [7] && t["u"]?.shape == [1, 1] && t["u"]?.dtype == .i32)
  #expect(t["f"]?.scalars == [2] && t["h"]?.scalars == [-0.5] && t["g"]?.scalars == [-2])
  #expect(t["l"]?.dtype == .i32 && t["l"]?.storage.ints()[0] == Int32.max && t["l"]?.storage.ints()[1] == Int32.min)
  #expect(t["e"]?.shape == [0, 3])
}

@Test func everyTruncationOfAFileIsRefused() throws {
  let bytes = try Safetensors.write([("a", try Tensor([1, 2, 3], shape: [3])), ("b", try Tensor([4], shape: [1]).copied(as: .bf16))],
                                    metadata: ["format": "pt"])
  _ = try Safetensors.read(bytes: bytes)
  for n in 0..<bytes.count {
    #expect(throws: SafetensorsError.self, "the first \(n) of \(bytes.count) bytes") { try Safetensors.read(bytes: Array(bytes.prefix(n))) }
  }
}

@Test func absurdSizesAndOffsetsAreRefusedByField() throws {
  let four: [UInt8] = [0, 0, 0, 0]
  // Header length: past the end, or the largest u64.
  expectRefused([100, 0, 0, 0, 0, 0, 0, 0] + Array("{}".utf8), field: "header length")
  expectRefused([UInt8](repeating: 0xFF, count: 8) + Array("{}".utf8), field: "header length")
  // Offsets far past the end, past Int, and reversed.
  expectRefused(safetensorsFile(header: #"{"x":{"dtype":"F32","shape":[1],"data_offsets":[4611686018427387904,4611686018427387908]}}"#, data: four), field: "x.data_offsets")
  expectRefused(safetensorsFile(header: #"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,18446744073709551615]}}"#, data: four), field: "x.data_offsets")
  expectRefused(safetensorsFile(header: #"{"x":{"dtype":"F32","shape":[1],"data_offsets":[4,0]}}"#, data: four), field: "x.data_offsets")
  expectRefused(safetensorsFile(header: #"{"x":{"dtype":"F32","shape":[1],"data_offsets":[-4,0]}}"#, data: four), field: "x.data_offsets")
  expectRefused(safetensorsFile(header: #"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0]}}"#, data: four), field: "x.data_offsets")
  expectRefused(safetensorsFile(header: #"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0.5,4]}}"#, data: four), field: "x.data_offsets")
  // Shapes whose byte count overflows, fractional or boolean dimensions, too many dimensions.
  expectRefused(safetensorsFile(header: #"{"x":{"dtype":"F32","shape":[4294967296,4294967296],"data_offsets":[0,4]}}"#, data: four), field: "x.shape")
  expectRefused(safetensorsFile(header: #"{"x":{"dtype":"F32","shape":[2305843009213693952],"data_offsets":[0,4]}}"#, data: four), field: "x.shape")
  expectRefused(safetensorsFile(header: #"{"x":{"dtype":"F32","shape":[1.5],"data_offsets":[0,4]}}"#, data: four), field: "x.shape")
  expectRefused(safetensorsFile(header: #"{"x":{"dtype":"F32","shape":[true],"data_offsets":[0,4]}}"#, data: four), field: "x.shape")
  expectRefused(safetensorsFile(header: #"{"x":{"dtype":"F32","shape":"1","data_offsets":[0,4]}}"#, data: four), field: "x.shape")
  let deep = "[" + Array(repeating: "1", count: 33).joined(separator: ",") + "]"
  expectRefused(safetensorsFile(header: #"{"x":{"dtype":"F32","shape":"# + deep + #","data_offsets":[0,4]}}"#, data: four), field: "x.shape")
  // The byte span must match the shape.
  expectRefused(safetensorsFile(header: #"{"x":{"dtype":"F32","shape":[2],"data_offsets":[0,4]}}"#, data: four), field: "x.data_offsets")
}

@Test func overlappingGappedAndTrailingDataIsRefused() throws {
  let eight = [UInt8](repeating: 0, count: 8), twelve = [UInt8](repeating: 0, count: 12)
  expectRefused(safetensorsFile(header: #"{"a":{"dtype":"F32","shape":[2],"data_offsets":[0,8]},"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: eight),
                field: "b.data_offsets")
  expectRefused(safetensorsFile(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: eight),
                field: "b.data_offsets")
  expectRefused(safetensorsFile(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]},"b":{"dtype":"F32","shape":[1],"data_offsets":[8,12]}}"#, data: twelve),
                field: "b.data_offsets")
  expectRefused(safetensorsFile(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[4,8]}}"#, data: eight), field: "a.data_offsets")
  expectRefused(safetensorsFile(header: #"{"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: eight), field: "data")
  // Tensors listed out of order in the JSON are fine when their data tiles the buffer.
  let ok = try Safetensors.read(bytes: safetensorsFile(
    header: #"{"b":{"dtype":"F32","shape":[1],"data_offsets":[4,8]},"a":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: eight))
  #expect(ok.tensors.map(\.name) == ["a", "b"])
}

@Test func unknownDtypesAndGarbageHeadersAreRefused() throws {
  for dtype in ["Q9", "F8_E4M3", "U64", "f32", ""] {
    expectRefused(safetensorsFile(header: #"{"x":{"dtype":""# + dtype + #"","shape":[1],"data_offsets":[0,1]}}"#, data: [0]), field: "x.dtype")
  }
  expectRefused(safetensorsFile(header: #"{"x":{"dtype":4,"shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0]), field: "x.dtype")
  var notUTF8 = safetensorsFile(header: #"{"x":{"dtype":"F32","shape":[1],"data_offsets":[0,4]}}"#, data: [0, 0, 0, 0])
  notUTF8[10] = 0xFF
  expectRefused(notUTF8, field: "header")
  expectRefused(safetensorsFile(header: "[1, 2]", data: []), field: "header")
  expectRefused(safetensorsFile(header: "\u{0}\u{1}garbage", data: []), field: "header")
  expectRefused(safetensorsFile(header: "", data: []), field: "header")
  expectRefused(safetensorsFile(header: #"{"x":[1]}"#, data: []), field: "x")
  expectRefused(safetensorsFile(header: #"{"__metadata__":{"k":1}}"#, data: []), field: "__metadata__.k")
  expectRefused(safetensorsFile(header: #"{"__metadata__":[]}"#, data: []), field: "__metadata__")
  expectRefused(safetensorsFile(header: #"{"x":{"dtype":"I64","shape":[1],"data_offsets":[0,8]}}"#, data: [0, 0, 0, 0, 0, 0, 0, 0x80]), field: "x")
}

@Test func writingToAFileGivesTheSameBytes() throws {
  let tensors: [(name: String, tensor: Tensor)] = [
    ("w", try Tensor.randn([4, 32], seed: 3)), ("h", try Tensor.randn([3], seed: 4).copied(as: .f16)),
    ("b", try Tensor.randn([2, 2], seed: 5).copied(as: .bf16)), ("q", try Tensor.randn([2, 32], seed: 6).copied(as: .q8_0)),
  ]
  let dir = try TestPaths.temporaryDirectory("safetensors")
  defer { try? FileManager.default.removeItem(at: dir) }
  let path = dir.appendingPathComponent("x.safetensors").path
  try Safetensors.write(tensors, metadata: ["format": "pt"], to: path)
  let bytes = try Safetensors.write(tensors, metadata: ["format": "pt"])
  #expect([UInt8](try Data(contentsOf: URL(fileURLWithPath: path))) == bytes)
  let back = Dictionary(uniqueKeysWithValues: try Safetensors.read(path: path).tensors.map { ($0.name, $0.tensor) })
  #expect(back["w"]?.scalars == tensors[0].tensor.scalars)
  #expect(back["h"]?.scalars == tensors[1].tensor.scalars && back["b"]?.scalars == tensors[2].tensor.scalars)
  #expect(back["q"]?.dtype == .f32 && back["q"]?.scalars == tensors[3].tensor.scalars, "quantised blocks are stored dequantised")
  #expect(throws: SafetensorsError.self) { try Safetensors.write([("a", tensors[0].tensor), ("a", tensors[0].tensor)]) }
}
