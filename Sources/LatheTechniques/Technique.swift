// Compression techniques as values: each compressor turns one dense weight matrix into a CompressedMatrix that the
// model runs in its packed form. `compress(model, technique)` (LatheBuiltins) applies one to the chosen layers.

import Foundation
import LatheModels
import LatheTensor

public protocol MatrixCompressor: CustomStringConvertible, Sendable {
  /// The constructor call with every parameter spelled out, as the language prints it:
  /// `rtn(bits: 4, group: 32)`, `seedlm(bits: 4, block: 8, coeffs: 3, lfsr: 16, exponent: "range")`.
  var description: String { get }
  /// Bits per weight the packed form takes (exact: everything stored, scales and seeds included).
  var bitsPerWeight: Double { get }
  /// Compresses a dense matrix [rows, cols] (any dtype; read as f32). `progress(done, total)` is called as work
  /// completes and may throw to stop (Ctrl-C).
  func compress(_ matrix: Tensor, progress: (Int, Int) throws -> Void) throws -> any CompressedMatrix
  /// The matrix of shape [rows, cols] whose packed bytes are `bytes` (what `packed()` returned); throws when the
  /// byte count does not fit the shape.
  func unpack(_ bytes: [UInt8], shape: [Int]) throws -> any CompressedMatrix
}

public enum Techniques {
  /// The technique a description names, as `description` prints it (`rtn(bits: 4, group: 64, symmetric: false)`);
  /// missing arguments take their defaults.
  public static func parse(_ text: String) throws -> any MatrixCompressor {
    func fail() -> Error { TensorError.invalidArgument(op: "technique", reason: "'\(text)' is not a technique description") }
    guard let open = text.firstIndex(of: "("), text.hasSuffix(")") else { throw fail() }
    let name = String(text[..<open])
    var args: [String: String] = [:]
    for part in text[text.index(after: open)..<text.index(before: text.endIndex)].split(separator: ",") {
      let kv = part.split(separator: ":", maxSplits: 1).map { $0.trimmingCharacters(in: .whitespaces) }
      guard kv.count == 2 else { throw fail() }
      args[kv[0]] = kv[1].trimmingCharacters(in: CharacterSet(charactersIn: "\""))
    }
    func int(_ key: String) -> Int? { args[key].flatMap { Int($0) } }
    switch name {
    case "rtn":
      return try RTN(bits: int("bits") ?? 4, group: int("group") ?? 128, symmetric: args["symmetric"] == "true")
    case "kmeans":
      return try KMeans(bits: int("bits") ?? 4, groups: int("groups") ?? 1)
    case "seedlm":
      guard let rule = SeedLM.ExponentRule(rawValue: args["exponent"] ?? "range") else { throw fail() }
      return try SeedLM(bits: nil, block: int("block"), coeffs: int("coeffs"), lfsr: int("lfsr") ?? 16, exponent: rule, seeds: int("seeds"))
    default:
      throw TensorError.invalidArgument(op: "technique", reason: "unknown technique '\(name)' (rtn, kmeans, seedlm)")
    }
  }

  /// Lets GGUF files written with `packed: true` load: registers every technique's decoder (idempotent).
  public static func registerFormats() {
    for name in ["rtn", "kmeans", "seedlm"] {
      CompressedFormats.register(name) { description, shape, bytes in try parse(description).unpack(bytes, shape: shape) }
    }
  }
}
