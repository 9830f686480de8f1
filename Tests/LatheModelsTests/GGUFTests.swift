// GGUF reader on the real SmolLM2 file: header facts and dequantised tensors against the reference vectors.

import Foundation
import Testing
import LatheNotebook
import LatheTensor
import LatheTestSupport
@testable import LatheModels

/// The SmolLM2 GGUF, opened once for all tests (the mapping is read-only, so sharing it is safe).
enum SmolLM2 {
  static let path = TestPaths.packageRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
  static let file: GGUFFile? = try? GGUFFile(path: path)

  /// The file, or a recorded failure: the model is required (scripts/setup fetches it).
  static func open() throws -> GGUFFile {
    guard let file else {
      Issue.record("models/SmolLM2-135M-Instruct.Q4_1.gguf is missing or unreadable: run scripts/setup")
      throw ModelFormatError.notFound(path: path, field: "file", reason: "missing")
    }
    return file
  }
}

func hexBytes(_ hex: String) -> [UInt8] {
  let digits = Array(hex.utf8).map { c -> UInt8 in c <= 57 ? c - 48 : (c | 0x20) - 87 }
  return stride(from: 0, to: digits.count - 1, by: 2).map { digits[$0] << 4 | digits[$0 + 1] }
}

@Test func smolLM2HeaderHasTheReferenceFacts() throws {
  let file = try SmolLM2.open()
  #expect(file.version == 3)
  #expect(file.fileSize == SmolLM2Reference.fileSize)
  #expect(file.tensors.count == 272)
  let types = Dictionary(grouping: file.tensors, by: \.type).mapValues(\.count)
  #expect(types == [.q4_1: 210, .f32: 61, .q8_0: 1])
  #expect(file.dataOffset == SmolLM2Reference.dataOffset && file.alignment == 32)
  #expect(file.tensorInfo(named: "token_embd.weight")?.type == .q8_0)
  #expect(file.tensorInfo(named: "output.weight") == nil)        // tied to token_embd
  #expect(file.metadataKeys.count == 33 && Set(file.metadataKeys) == Set(file.metadata.keys))
  #expect(file.metadataKeys.first == "general.architecture" && file.metadataKeys.last == "general.quantization_version")
  let m = file.metadata
  #expect(m["general.architecture"]?.string == "llama")
  #expect(m["tokenizer.ggml.model"]?.string == "gpt2" && m["tokenizer.ggml.pre"]?.string == "smollm")
  #expect(m["tokenizer.ggml.add_bos_token"] == .bool(false))
  #expect(m["tokenizer.ggml.bos_token_id"] == .uint32(1) && m["tokenizer.ggml.eos_token_id"]?.int == 2)
  #expect(m["tokenizer.ggml.unknown_token_id"]?.int == 0)
  let tokens = try #require(m["tokenizer.ggml.tokens"]?.strings)
  #expect(tokens.count == 49_152 && tokens[0] == "<|endoftext|>" && tokens[1] == "<|im_start|>" && tokens[2] == "<|im_end|>")
  #expect(m["tokenizer.ggml.merges"]?.strings?.count == 48_900)
  #expect(m["tokenizer.ggml.token_type"]?.ints?.count == 49_152)
  #expect(m["llama.embedding_length"]?.int == 576 && m["llama.attention.head_count_kv"]?.int == 3)
  #expect(m["llama.rope.freq_base"]?.double == 100_000 && m["llama.rope.freq_base"]?.int == nil)
  #expect(m["tokenizer.chat_template"]?.string?.contains("<|im_start|>") == true)
}

@Test(arguments: SmolLM2Reference.tensors.map(\.name))
func smolLM2TensorDequantizesToTheReference(name: String) throws {
  let file = try SmolLM2.open()
  let reference = try #require(SmolLM2Reference.tensors.first { $0.name == name })
  let info = try #require(file.tensorInfo(named: name))
  #expect(info.type.description == reference.type)
  #expect(info.dimensions == reference.ne && info.shape == reference.ne.reversed())
  #expect(info.byteCount == reference.byteCount && info.offset == reference.offset)
  #expect(info.elementCount == reference.ne.reduce(1, *))

  let values = try file.dequantized(info)
  #expect(values.count == info.elementCount)
  var sum = 0.0, sumOfSquares = 0.0, firstRow = 0.0
  values.withUnsafeBufferPointer { v in
    for i in 0..<v.count { let x = Double(v[i]); sum += x; sumOfSquares += x * x }
    for i in 0..<reference.ne[0] { firstRow += Double(v[i]) }
  }
  // numpy sums pairwise, this loop in order: the same float64 sums up to rounding.
  #expect(Swift.abs(sum - reference.sum) <= 1e-9 * Swift.max(1, Swift.abs(reference.sum)), "sum \(sum)")
  #expect(Swift.abs(sumOfSquares - reference.sumOfSquares) <= 1e-9 * reference.sumOfSquares, "sum of squares \(sumOfSquares)")
  #expect(Swift.abs(firstRow - reference.firstRowSum) <= 1e-9 * Swift.max(1, Swift.abs(reference.firstRowSum)))
  #expect(Array(values.prefix(8)) == reference.first8 && Array(values.suffix(4)) == reference.last4)
  var hasher = SHA256()
  values.withUnsafeBytes { hasher.update($0) }
  #expect(SHA256.hexString(hasher.finalize()) == reference.sha256)

  if let hex = reference.firstBlockHex, let block = reference.firstBlock {
    let raw = file.rawBytes(info)
    #expect(Array(raw.prefix(info.type.typeSize)) == hexBytes(hex))
    #expect(Array(values.prefix(32)) == block)
  }

  // As a Tensor: the file's dtype and bytes, row-major shape; reading through the blocks gives the same values.
  let t = try file.tensor(name)
  #expect(t.dtype == info.type.dtype && t.shape == info.shape)
  #expect(Array(UnsafeRawBufferPointer(start: t.storage.bytes, count: 64)) == Array(file.rawBytes(info).prefix(64)))
  let firstRowValues = t.rank == 2 ? try t.gatheredRows([0]).scalars : t.scalars
  #expect(firstRowValues == Array(values.prefix(reference.ne[0])))
  let f = try file.tensor(name, dequantize: true)
  #expect(f.dtype == .f32 && f.shape == info.shape && Array(f.scalars.suffix(4)) == reference.last4)
}

@Test func missingTensorsAndForeignInfosAreErrorsNotCrashes() throws {
  let file = try SmolLM2.open()
  #expect(throws: ModelFormatError.self) { try file.tensor("output.weight") }
  // An info from another, larger file does not read outside this one.
  var w = GGUFWriter()
  try w.addTensor("x", values: [Float](repeating: 1, count: 64), dimensions: [64], as: .f32)
  let small = try GGUFFile(bytes: w.bytes())
  let foreign = try #require(file.tensorInfo(named: "output_norm.weight"))
  #expect(small.rawBytes(foreign).count == 0)
  #expect(throws: ModelFormatError.self) { try small.dequantized(foreign) }
}
