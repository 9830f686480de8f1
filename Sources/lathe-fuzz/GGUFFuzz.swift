// GGUF reader under libFuzzer: each input is read as a GGUF file, and also applied as byte edits (and a truncation)
// to a small valid file written by GGUFWriter, so mutations land in every header field from the first run.
//
//   LATHE_FUZZ_TARGET=gguf LATHE_FUZZ_SEED_DIR=corpus .build-fuzz/release/lathe-fuzz corpus -max_total_time=120
// A file that reads must have every tensor inside it, and decoding each tensor must end in values or an error.

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
      preconditionFailure("the seed GGUF could not be written: \(error)")
    }
  }()

  static func prepare() {
    Memory.budget = 64 << 20
    if let directory = ProcessInfo.processInfo.environment["LATHE_FUZZ_SEED_DIR"] {
      try? FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
      FileManager.default.createFile(atPath: directory + "/seed.gguf", contents: Data(seed))
    }
  }

  static func run(_ input: UnsafeBufferPointer<UInt8>) {
    Memory.budget = 64 << 20
    check(Array(input))
    // The input as edits of the seed: each 3 bytes are a position (u16) and a new value; one byte left over truncates.
    var bytes = seed
    var i = 0
    while i + 3 <= input.count {
      bytes[(Int(input[i]) | Int(input[i + 1]) << 8) % bytes.count] = input[i + 2]
      i += 3
    }
    if input.count - i == 1 { bytes.removeLast(bytes.count - bytes.count * Int(input[i]) / 256) }
    check(bytes)
  }

  static func check(_ bytes: [UInt8]) {
    let file: GGUFFile
    do { file = try GGUFFile(bytes: bytes) } catch is ModelFormatError { return } catch {
      preconditionFailure("an error that is not a ModelFormatError escaped: \(error)")
    }
    for info in file.tensors {
      precondition(info.offset >= file.dataOffset && info.byteCount <= bytes.count - info.offset, "tensor '\(info.name)' lies outside the file")
      precondition(file.rawBytes(info).count == info.byteCount)
      do { _ = try file.dequantized(info); _ = try file.tensor(info.name) } catch is ModelFormatError {} catch is TensorError {} catch {
        preconditionFailure("decoding '\(info.name)' threw \(error)")
      }
    }
    for key in file.metadataKeys {
      guard let value = file.metadata[key] else { preconditionFailure("key '\(key)' has no value") }
      _ = (value.string, value.int, value.double, value.strings, value.ints, value.doubles)
    }
  }
}
