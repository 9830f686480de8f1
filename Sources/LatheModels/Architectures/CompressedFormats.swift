// Compressed matrices in a GGUF file, bit for bit: the packed bytes as an i8 tensor under the matrix's own name,
// and two metadata keys beside it, `lathe.compressed.<tensor>.technique` (the technique's full description, e.g.
// `seedlm(bits: 4, block: 8, coeffs: 3, lfsr: 16, exponent: "range")`) and `lathe.compressed.<tensor>.shape`
// ([rows, cols]). Such a file is Lathe's own: llama.cpp has no SeedLM type (`savegguf` writes the dense form it
// can run). The decoders live with the techniques, which register them here by name.

import Foundation

public enum CompressedFormats {
  /// Rebuilds a matrix from its technique's description, its shape and its packed bytes; throws if they disagree.
  public typealias Decoder = @Sendable (_ technique: String, _ shape: [Int], _ bytes: [UInt8]) throws -> any CompressedMatrix

  nonisolated(unsafe) private static var decoders: [String: Decoder] = [:]
  private static let lock = NSLock()

  /// Registers the decoder of technique `name` (the description's function name, e.g. "seedlm").
  public static func register(_ name: String, _ decoder: @escaping Decoder) {
    lock.lock(); defer { lock.unlock() }
    decoders[name] = decoder
  }

  static let prefix = "lathe.compressed."
  static func techniqueKey(_ tensor: String) -> String { prefix + tensor + ".technique" }
  static func shapeKey(_ tensor: String) -> String { prefix + tensor + ".shape" }

  /// The matrix stored as tensor `name` of `file`, when the file says it is compressed.
  static func matrix(_ name: String, in file: GGUFFile) throws -> (any CompressedMatrix)? {
    guard let value = file.metadata[techniqueKey(name)] else { return nil }
    func fail(_ field: String, _ reason: String) -> Error { ModelFormatError.malformed(path: file.path, field: field, reason: reason) }
    guard let technique = value.string else { throw fail(techniqueKey(name), "is not a string") }
    guard let shape = file.metadata[shapeKey(name)]?.ints, shape.count == 2, shape.allSatisfy({ $0 > 0 }) else {
      throw fail(shapeKey(name), "needs two positive integers")
    }
    guard let info = file.tensorInfo(named: name) else { throw fail("tensor '\(name)'", "is missing") }
    guard info.type == .i8, info.dimensions.count == 1 else {
      throw fail("tensor '\(name)'", "a compressed matrix is stored as a one-dimensional i8 tensor, found \(info.type) \(info.dimensions)")
    }
    let kind = String(technique.prefix { $0 != "(" })
    lock.lock()
    let decoder = decoders[kind]
    lock.unlock()
    guard let decoder else {
      throw ModelFormatError.unsupported(path: file.path, field: techniqueKey(name), reason: "no decoder for '\(kind)' matrices is registered")
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
    writer.set(techniqueKey(name), .string(matrix.technique))
    writer.set(shapeKey(name), .array(matrix.shape.map { .int64(Int64($0)) }))
    try bytes.withUnsafeBytes { try writer.addTensor(name, dimensions: [bytes.count], type: .i8, bytes: $0) }
  }
}
