// The safetensors target: a Hugging Face checkpoint folder, config.json with model.safetensors. An input is two
// little-endian bytes n, then n bytes of config.json, then the safetensors file; it is read as given and as edits
// of a seed (a tiny Llama written by writeHuggingFace in bf16). The safetensors reader must end in tensors or an
// error on the file alone; a model that builds from the folder must run a forward pass on two tokens.

import Foundation
import LatheModels
import LatheTensor

enum SafetensorsFuzz {
  static func pack(config: [UInt8], weights: [UInt8]) -> [UInt8] {
    let n = min(config.count, 0xFFFF)
    return [UInt8(n & 0xFF), UInt8(n >> 8)] + config.prefix(n) + weights
  }

  static func unpack(_ input: [UInt8]) -> (config: [UInt8], weights: [UInt8]) {
    guard input.count >= 2 else { return ([], input) }
    let n = min(Int(input[0]) | Int(input[1]) << 8, input.count - 2)
    return (Array(input[2..<(2 + n)]), Array(input[(2 + n)...]))
  }

  static func seed() throws -> [UInt8] {
    let folder = Scratch.folder + "/seed-checkpoint"
    try ModelFuzz.tinyModel().writeHuggingFace(to: folder, dtype: .bf16)
    defer { try? FileManager.default.removeItem(atPath: folder) }
    let config = FileManager.default.contents(atPath: folder + "/config.json").map { [UInt8]($0) } ?? []
    let weights = FileManager.default.contents(atPath: folder + "/model.safetensors").map { [UInt8]($0) } ?? []
    return pack(config: config, weights: weights)
  }

  nonisolated(unsafe) static var seedBytes: [UInt8]?

  static func check(_ input: [UInt8]) throws {
    try load(input)
    if seedBytes == nil { seedBytes = (try? seed()) ?? [] }
    if let seedBytes, !seedBytes.isEmpty { try load(SeedEdits.apply(input, to: seedBytes)) }
  }

  static func load(_ input: [UInt8]) throws {
    let (config, weights) = unpack(input)
    do {
      let (tensors, _) = try Safetensors.read(bytes: weights)
      for (name, tensor) in tensors where tensor.count < 0 { throw FuzzFinding("tensor \(name) has \(tensor.count) elements") }
    } catch let finding as FuzzFinding { throw finding } catch {}
    _ = try? LlamaConfig(huggingFace: Data(config))
    let folder = Scratch.folder + "/checkpoint"
    try? FileManager.default.createDirectory(atPath: folder, withIntermediateDirectories: true)
    guard FileManager.default.createFile(atPath: folder + "/config.json", contents: Data(config)),
          FileManager.default.createFile(atPath: folder + "/model.safetensors", contents: Data(weights)) else { return }
    let model: LlamaModel
    do { model = try LlamaModel(huggingFaceDirectory: folder) } catch { return }
    let vocab = model.config.vocabularySize
    do {
      let logits = try model.forward([0, min(1, vocab - 1)], cache: try model.makeCache(capacity: 4))
      guard logits.count == vocab else { throw FuzzFinding("forward gave \(logits.count) logits for a vocabulary of \(vocab)") }
    } catch let finding as FuzzFinding { throw finding } catch {}
  }
}
