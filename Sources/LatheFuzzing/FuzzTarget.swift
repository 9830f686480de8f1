// Every fuzz target of scripts/fuzz: what each reads, the limits it runs under, its seed inputs and its check. The
// same checks run under libFuzzer (lathe-fuzz) and in `lathe fuzz-replay`, which replays the inputs kept in
// Tests/FuzzRegressions/<target>/ in a process of their own, so the fuzzer's global budgets touch no other test.
//
// A check returns normally when the input ended as a value or as an error of the kind its reader promises, and
// throws a `FuzzFinding` when a property failed; a trap is a finding by itself.

import Foundation
import LatheTensor

/// A checked property that failed on an input.
public struct FuzzFinding: Error, CustomStringConvertible {
  public let description: String
  public init(_ description: String) { self.description = description }
}

public enum FuzzTarget: String, CaseIterable, Sendable {
  /// The language: parse, compile and run the bytes as a program with every builtin a session has.
  case lang
  /// The GGUF reader: header, metadata, tensor table, dequantisation of every type.
  case gguf
  /// A model and its tokenizer built from GGUF bytes, with Lathe's compressed matrices, then run on two tokens.
  case model
  /// SmolLM2's tokenizer on arbitrary text (encode, decode, streaming decode) and chat templates.
  case tokenizer
  /// A Hugging Face checkpoint: safetensors bytes with a config.json.
  case safetensors
  /// A notebook file: opened read-only (no byte may change) and for writing, read, checked and exported.
  case notebook
  /// The encoding of saved values (`save`/`load` artifacts, tensors, model states, techniques).
  case codec
  /// The worker protocol: frames on a control socket.
  case frames
  /// The data readers: IDX images and labels, CSV, PPM and gzip.
  case readers

  /// The longest input libFuzzer makes for this target.
  public var maxLength: Int {
    switch self {
    case .lang: return 4096
    case .gguf, .model, .safetensors, .frames: return 16384
    case .notebook: return 8192
    case .tokenizer, .codec, .readers: return 8192
    }
  }

  /// Sets the budgets this target runs under (once per process).
  public func prepare() {
    Memory.budget = 64 << 20
    switch self {
    case .lang: LanguageFuzz.prepare()
    case .tokenizer: TokenizerFuzz.prepare()
    case .notebook: NotebookFuzz.prepare()
    default: break
    }
  }

  /// Inputs to start from, written into `directory` (the seed corpus): small valid files of the target's format.
  public func writeSeeds(into directory: String) throws {
    try FileManager.default.createDirectory(atPath: directory, withIntermediateDirectories: true)
    for (name, bytes) in try seeds() {
      guard FileManager.default.createFile(atPath: directory + "/" + name, contents: Data(bytes)) else {
        throw FuzzFinding("cannot write the seed \(directory)/\(name)")
      }
    }
  }

  func seeds() throws -> [(String, [UInt8])] {
    switch self {
    case .lang: return []
    case .gguf: return [("seed.gguf", GGUFFuzz.seed)]
    case .model: return ModelFuzz.seeds.enumerated().map { ("seed-\($0.offset).gguf", $0.element) }
    case .tokenizer: return TokenizerFuzz.seeds
    case .safetensors: return [("seed.bin", try SafetensorsFuzz.seed())]
    case .notebook: return [("seed.lnb", try NotebookFuzz.seed())]
    case .codec: return try CodecFuzz.seeds()
    case .frames: return FramesFuzz.seeds
    case .readers: return try ReadersFuzz.seeds()
    }
  }

  /// Runs one input.
  public func check(_ input: [UInt8]) throws {
    switch self {
    case .lang: try LanguageFuzz.check(input)
    case .gguf: try GGUFFuzz.check(input)
    case .model: try ModelFuzz.check(input)
    case .tokenizer: try TokenizerFuzz.check(input)
    case .safetensors: try SafetensorsFuzz.check(input)
    case .notebook: try NotebookFuzz.check(input)
    case .codec: try CodecFuzz.check(input)
    case .frames: try FramesFuzz.check(input)
    case .readers: try ReadersFuzz.check(input)
    }
  }
}

/// Inputs read as edits of a valid seed file, so that mutations land in every field from the first run: each
/// `positionBytes + 1` bytes are a position (little-endian, modulo the length) and a new value; a lone byte left
/// over truncates the file to that fraction of its length.
enum SeedEdits {
  static func apply(_ input: [UInt8], to seed: [UInt8], positionBytes: Int = 2) -> [UInt8] {
    guard !seed.isEmpty else { return seed }
    var bytes = seed
    let step = positionBytes + 1
    var i = 0
    while i + step <= input.count {
      var position = 0
      for k in 0..<positionBytes { position |= Int(input[i + k]) << (8 * k) }
      bytes[position % bytes.count] = input[i + positionBytes]
      i += step
    }
    if input.count - i == 1 { bytes.removeLast(bytes.count - bytes.count * Int(input[i]) / 256) }
    return bytes
  }
}

/// A folder of this process's own for targets that must read their input from a file.
enum Scratch {
  static let folder: String = {
    let base = FileManager.default.fileExists(atPath: "/dev/shm") ? "/dev/shm" : NSTemporaryDirectory()
    let path = base + "/lathe-fuzz-\(getpid())"
    try? FileManager.default.createDirectory(atPath: path, withIntermediateDirectories: true)
    atexit { try? FileManager.default.removeItem(atPath: Scratch.folder) }
    return path
  }()
}
