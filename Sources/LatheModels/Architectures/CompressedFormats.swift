// Compressed matrices in a GGUF file, bit for bit: the packed bytes as an i8 tensor under the matrix's own name,
// and two metadata keys beside it, `lathe.compressed.<tensor>.technique` (the technique's full description, e.g.
// `seedlm(bits: 4, block: 8, coeffs: 3, lfsr: 16, exponent: "range")`) and `lathe.compressed.<tensor>.shape`
// ([rows, cols]). Such a file is Lathe's own: llama.cpp has no SeedLM type (`savegguf` writes the dense form it
// can run). The decoders live with the techniques: a loader is handed them as a `CompressedFormats` value.

import Foundation
import LatheTensor

public struct CompressedFormats: @unchecked Sendable {
  /// Rebuilds a matrix from its technique's description, its shape and its packed bytes; throws if they disagree.
  public typealias Decoder = (_ technique: String, _ shape: [Int], _ bytes: [UInt8]) throws -> any CompressedMatrix

  /// The decoder of every technique's matrices (LatheTechniques passes `Techniques.formats`); nil reads none.
  public let decode: Decoder?

  public init(_ decode: Decoder?) { self.decode = decode }

  /// Reads no compressed matrix: a file holding one is refused with the tensor's name.
  public static let none = CompressedFormats(nil)

  static let prefix = "lathe.compressed."
  static func techniqueKey(_ tensor: String) -> String { prefix + tensor + ".technique" }
  static func shapeKey(_ tensor: String) -> String { prefix + tensor + ".shape" }

  /// The matrix stored as tensor `name` of `file`, when the file says it is compressed.
  func matrix(_ name: String, in file: GGUFFile) throws -> (any CompressedMatrix)? {
    guard let value = file.metadata[Self.techniqueKey(name)] else { return nil }
    func fail(_ field: String, _ reason: String) -> Error { ModelFormatError.malformed(path: file.path, field: field, reason: reason) }
    guard let technique = value.string else { throw fail(Self.techniqueKey(name), "is not a string") }
    guard let shape = file.metadata[Self.shapeKey(name)]?.ints, shape.count == 2, shape.allSatisfy({ $0 > 0 }) else {
      throw fail(Self.shapeKey(name), "needs two positive integers")
    }
    guard let info = file.tensorInfo(named: name) else { throw fail("tensor '\(name)'", "is missing") }
    guard info.type == .i8, info.dimensions.count == 1 else {
      throw fail("tensor '\(name)'", "a compressed matrix is stored as a one-dimensional i8 tensor, found \(info.type) \(info.dimensions)")
    }
    let kind = String(technique.prefix { $0 != "(" })
    guard let decoder = decode else {
      throw ModelFormatError.unsupported(path: file.path, field: Self.techniqueKey(name), reason: "'\(kind)' matrices need the techniques' decoders (load through LatheTechniques' Techniques.formats)")
    }
    let matrix: any CompressedMatrix
    do { matrix = try decoder(technique, shape, [UInt8](file.rawBytes(info))) } catch let e as ModelFormatError { throw e } catch {
      throw fail("tensor '\(name)'", "\(error)")
    }
    guard matrix.shape == shape else { throw fail("tensor '\(name)'", "decoded as \(matrix.shape), the file says \(shape)") }
    return matrix
  }

  /// Adds `matrix` to `writer` as tensor `name` with its two keys.
  static func add(_ matrix: any CompressedMatrix, named name: String, to writer: inout GGUFWriter) throws {
    let bytes = matrix.packed()
    writer.set(Self.techniqueKey(name), .string(matrix.technique))
    writer.set(Self.shapeKey(name), .array(matrix.shape.map { .int64(Int64($0)) }))
    try bytes.withUnsafeBytes { try writer.addTensor(name, dimensions: [bytes.count], type: .i8, bytes: $0) }
  }
}
