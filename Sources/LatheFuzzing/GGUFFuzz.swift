// The GGUF target: each input is read as a GGUF file, and also applied as byte edits (and a truncation) to a small
// valid file written by GGUFWriter (SeedEdits), so mutations land in every header field from the first run. A file
// that reads must have every tensor inside it, and decoding each tensor must end in values or an error.

import Foundation
import LatheModels
import LatheTensor

enum GGUFFuzz {
  /// Metadata of every value type (nested arrays, tokenizer-like string arrays) and one tensor of each written type,
  /// plus K-quant and Q5 tensors of arbitrary bytes.
  static let seed: [UInt8] = {
    var w = GGUFWriter()
    w.set("general.architecture", .string("llama"))
    w.set("general.alignment", .uint32(32))
    w.set("llama.block_count", .uint32(1))
    w.set("llama.rope.freq_base", .float32(10_000))
    w.set("test.values", .array([.int64(-1), .int64(2)]))
    w.set("test.nested", .array([.array([.uint16(1), .uint16(2)]), .array([.float64(0.5)])]))
    w.set("test.flag", .bool(true))
    w.set("tokenizer.ggml.tokens", .array(["<|endoftext|>", "a", "Ġb"].map(GGUFValue.string)))
    w.set("tokenizer.ggml.token_type", .array([.int32(3), .int32(1), .int32(1)]))
    let values = (0..<64).map { Float($0 % 37) / 8 - 2 }
    do {
      for type in GGUFWriter.writableTypes { try w.addTensor("w.\(type.name)", values: values, dimensions: [32, 2], as: type) }
      for type in [GGMLType.q4_K, .q6_K, .q2_K, .q3_K, .q5_K, .q5_0, .q5_1, .bf16, .i16] {
        let count = type.blockSize == 256 ? 256 : 32
        let bytes = (0..<(type.byteCount(elements: count) ?? 0)).map { UInt8(truncatingIfNeeded: $0 &* 37 &+ 11) }
        try bytes.withUnsafeBytes { try w.addTensor("r.\(type.name)", dimensions: [count], type: type, bytes: $0) }
      }
      return try w.bytes()
    } catch {
      return []      // the writer refused its own input: the target then reads inputs as whole files only
    }
  }()

  static func check(_ input: [UInt8]) throws {
    try read(input)
    try read(SeedEdits.apply(input, to: seed))
  }

  static func read(_ bytes: [UInt8]) throws {
    let file: GGUFFile
    do { file = try GGUFFile(bytes: bytes) } catch is ModelFormatError { return } catch {
      throw FuzzFinding("an error that is not a ModelFormatError escaped: \(error)")
    }
    for info in file.tensors {
      guard info.offset >= file.dataOffset, info.byteCount <= bytes.count - info.offset else {
        throw FuzzFinding("tensor '\(info.name)' lies outside the file")
      }
      guard file.rawBytes(info).count == info.byteCount else { throw FuzzFinding("tensor '\(info.name)': raw bytes disagree with its size") }
      do { _ = try file.dequantized(info); _ = try file.tensor(info.name) } catch is ModelFormatError {} catch is TensorError {} catch {
        throw FuzzFinding("decoding '\(info.name)' threw \(error)")
      }
    }
    for key in file.metadataKeys {
      guard let value = file.metadata[key] else { throw FuzzFinding("key '\(key)' has no value") }
      _ = (value.string, value.int, value.double, value.strings, value.ints, value.doubles)
    }
  }
}
