// The fuzz targets' seeds are what they claim: valid files of their format that reach the deep parts of each check
// (a model that runs, a notebook that reads, a prefill request that validates). A target whose seeds were refused
// at the first field would fuzz only its header checks and still report no finding. These tests change no global
// budget (FuzzTarget.prepare is for the fuzzer's own process).

import Foundation
import Testing
@testable import LatheFuzzing
@testable import LatheParallel
import LatheModels
import LatheNotebook
import LatheTechniques
import LatheData

@Test func modelSeedsBuildModelsWithTokenizersAndCompressedMatrices() throws {
  #expect(ModelFuzz.seeds.count == 2)
  for (i, seed) in ModelFuzz.seeds.enumerated() {
    let file = try GGUFFile(bytes: seed)
    let model = try LlamaModel(gguf: file, name: "seed", formats: Techniques.formats)
    #expect(model.tokenizer != nil)
    let logits = try model.forward([3, 5], cache: try model.makeCache(capacity: 4))
    #expect(logits.count == 262 && logits.allSatisfy(\.isFinite))
    // The second seed holds SeedLM and RTN matrices, read back through their decoders.
    #expect(file.metadataKeys.contains { $0.hasPrefix("lathe.compressed.") } == (i == 1))
  }
  // Whole files and edits of them pass the check.
  try ModelFuzz.check([])
  try ModelFuzz.check([10, 0, 7, 200, 1, 99, 128])
}

@Test func safetensorsSeedBuildsAModel() throws {
  let (config, weights) = SafetensorsFuzz.unpack(try SafetensorsFuzz.seed())
  #expect(try LlamaConfig(huggingFace: Data(config)).layerCount == 1)
  #expect(try Safetensors.read(bytes: weights).tensors.count == 11)
}

@Test func notebookSeedReadsBack() throws {
  let bytes = try NotebookFuzz.seed()
  let dir = FileManager.default.temporaryDirectory.appendingPathComponent("fuzz-seed-\(getpid())-\(UInt64.random(in: 0..<UInt64.max))")
  try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
  defer { try? FileManager.default.removeItem(at: dir) }
  let path = dir.appendingPathComponent("seed.lnb").path
  #expect(FileManager.default.createFile(atPath: path, contents: Data(bytes)))
  let notebook = try Notebook.open(path: path, readOnly: true)
  defer { notebook.close() }
  #expect(try notebook.check() == [])
  #expect(try notebook.sessions().count == 1)
  #expect(try notebook.artifacts().count == 1)
  #expect(try NotebookRenderer(notebook).render(.html).contains("data:image/svg+xml"))
}

@Test func frameSeedsHoldARequestThatValidates() throws {
  var found = false
  for seed in FrameFuzzing.seeds {
    var at = 0
    while at + 5 <= seed.count {
      let length = Int(seed[at]) | Int(seed[at + 1]) << 8 | Int(seed[at + 2]) << 16 | Int(seed[at + 3]) << 24
      if seed[at + 4] == MessageKind.prefill.rawValue {
        var r = FrameReader(Array(seed[(at + 5)..<(at + 4 + length)]))
        let request = try PrefillRequest(&r)
        try request.validate(widths: FrameFuzzing.widths)
        try FrameFuzzing.checkLayout(request)
        found = true
      }
      at += 4 + length
    }
    try FrameFuzzing.check(seed)
  }
  #expect(found)
}

@Test func readerSeedsRead() throws {
  let seeds = Dictionary(uniqueKeysWithValues: try ReadersFuzz.seeds())
  #expect(try seeds["images.idx"].map { try LatheData.IDX.images(bytes: Array($0.dropFirst()), path: "seed").shape } == [2, 1, 3, 4])
  #expect(try seeds["table.csv.gz"].map { try LatheData.Gzip.decompress(Array($0.dropFirst())) } == ReadersFuzz.csv)
  for (_, bytes) in seeds { try ReadersFuzz.check(bytes) }
}

@Test func codecSeedsAreFixedPoints() throws {
  let seeds = try CodecFuzz.seeds()
  #expect(seeds.count == 4)
  for (_, bytes) in seeds { try CodecFuzz.check(bytes) }
}

/// A packed GGUF whose `lathe.compressed.<tensor>.shape` is crafted (a product past Int's range, a shape too large
/// for the stored bytes, an empty one) is refused with an error by the matrix's decoder, for SeedLM and RTN.
@Test(arguments: [[1 << 40, 1 << 40], [Int.max, 2], [3_037_000_500, 3_037_000_500], [0, 5], [64, 1 << 50], [-64, -32]])
func craftedCompressedShapesAreErrors(shape: [Int]) throws {
  let model = try ModelFuzz.tinyModel()
  let seedlm = try #require(try Techniques.parse("seedlm(bits: 4)") as? any MatrixCompressor)
  let rtn = try #require(try Techniques.parse("rtn(bits: 4, group: 32)") as? any MatrixCompressor)
  let (a, _) = try model.compressed(with: seedlm, matrices: ["attn_q"])
  let (b, _) = try a.compressed(with: rtn, matrices: ["ffn_up"])
  for tensor in ["blk.0.attn_q.weight", "blk.0.ffn_up.weight"] {
    var writer = try b.ggufWriter(packed: true)
    writer.set("lathe.compressed.\(tensor).shape", .array(shape.map { GGUFValue.int64(Int64($0)) }))
    let bytes = try writer.bytes()
    #expect(throws: (any Error).self, "\(tensor) with shape \(shape)") {
      try LlamaModel(gguf: try GGUFFile(bytes: bytes), formats: Techniques.formats)
    }
  }
}
