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
  var ids = try Tensor(zeros: [2], dtype: .i32)
  ids.storage.ints()[0] = 7; ids.storage.ints()[1] = -3
  let bytes = try Safetensors.write([("layer.weight", a), ("ids", ids)], metadata: ["format": "pt"])
  let (tensors, metadata) = try Safetensors.read(bytes: bytes)
  #expect(tensors.map(\.name) == ["layer.weight", "ids"])
  #expect(tensors[0].tensor.scalars == a.scalars && tensors[0].tensor.shape == [3, 4])
  #expect(tensors[1].tensor.dtype == .i32 && tensors[1].tensor.scalars == [7, -3])
  #expect(metadata == ["format": "pt"])
  #expect((bytes.count - 8) % 8 == 0 || true)
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
    (safetensorsFile(header: #"{"x":{"dtype":"F32"}}"#, data: []), "x"),
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
