// compress(model, technique): a copy of the model whose chosen linear layers are replaced by the technique's
// packed matrices, which the model then runs as they are, and a report of what it did.

import Foundation
import LatheModels
import LatheNN
import LatheTensor

public struct CompressionReport: Sendable, Codable {
  public struct Entry: Sendable, Codable {
    public var layer: Int, matrix: String, shape: [Int]
    /// ||W − Ŵ||_F / ||W||_F against the matrix as it was before compression.
    public var relativeError: Double
    public var bitsPerWeight: Double, bytes: Int, seconds: Double
  }
  public var technique: String
  public var entries: [Entry] = []
  public var seconds = 0.0

  /// The report as JSON with sorted keys (the same report always gives the same bytes), as files store it.
  public func json() -> String {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return (try? encoder.encode(self)).map { String(decoding: $0, as: UTF8.self) } ?? "{}"
  }

  /// The metadata key a GGUF file keeps the report under.
  public static let metadataKey = "lathe.compression.report"

  /// Bits per weight over the compressed matrices.
  public var bitsPerWeight: Double {
    let weights = entries.reduce(0) { $0 + $1.shape.reduce(1, *) }
    return weights == 0 ? 0 : Double(entries.reduce(0) { $0 + $1.bytes } * 8) / Double(weights)
  }
}

extension CompressionReport {
  /// The report a file stored, or nil when the text is not one.
  public init?(json: String) {
    guard let r = try? JSONDecoder().decode(CompressionReport.self, from: Data(json.utf8)) else { return nil }
    self = r
  }
}

extension MatrixCompressor {
  /// Compresses `dense` (contiguous f32) and measures the packed form against it: the matrix and its report entry
  /// (relative Frobenius error, bits per weight, bytes, seconds).
  func compressMeasured(_ dense: Tensor, layer: Int, matrix: String,
                        progress: (Int, Int) throws -> Void) throws -> (any CompressedMatrix, CompressionReport.Entry) {
    let t0 = DispatchTime.now().uptimeNanoseconds
    let packed = try compress(dense, progress: progress)
    let decoded = try packed.dequantized().scalars, original = dense.scalars
    var err = 0.0, norm = 0.0
    for i in original.indices { let d = Double(decoded[i] - original[i]); err += d * d; norm += Double(original[i]) * Double(original[i]) }
    return (packed, .init(layer: layer, matrix: matrix, shape: dense.shape, relativeError: norm > 0 ? (err / norm).squareRoot() : 0,
                          bitsPerWeight: packed.bitsPerWeight, bytes: packed.byteCount,
                          seconds: Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9))
  }
}

extension LlamaModel {
  /// The model with the matrices `matrices` (llama.cpp names) of the decoder layers `layers` (nil: all) compressed
  /// by `technique`, and the token embedding too when `embeddings` (it is then also the tied output head; its
  /// report entry has layer −1 and matrix "token_embd"). `progress(done, total)` counts weights.
  public func compressed(with technique: any MatrixCompressor, layers chosen: [Int]? = nil,
                         matrices: [String] = LlamaLayer.matrixNames, embeddings: Bool = false,
                         progress: (Int, Int) throws -> Void = { _, _ in }) throws -> (LlamaModel, CompressionReport) {
    let layerList = chosen ?? Array(0..<config.layerCount)
    for l in layerList where l < 0 || l >= config.layerCount {
      throw TensorError.invalidArgument(op: "compress", reason: "layer \(l) is not one of 0..<\(config.layerCount)")
    }
    for name in matrices where !LlamaLayer.matrixNames.contains(name) {
      throw TensorError.invalidArgument(op: "compress", reason: "no matrix '\(name)' (the matrices are \(LlamaLayer.matrixNames.joined(separator: ", ")))")
    }
    let model = try copy(name: name + " · " + technique.description)
    var report = CompressionReport(technique: technique.description)
    var work: [(layer: Int, name: String, weight: LinearWeight)] = []
    if embeddings { work.append((-1, "token_embd", tokenEmbedding)) }
    for l in layerList { for (name, weight) in layers[l].matrices where matrices.contains(name) { work.append((l, name, weight)) } }
    let total = work.reduce(0) { $0 + $1.weight.count }
    var done = 0
    let started = DispatchTime.now().uptimeNanoseconds
    for (l, name, weight) in work {
      let base = done
      let (packed, entry) = try technique.compressMeasured(try weight.denseF32(), layer: l, matrix: name) { part, of in
        try progress(base + Int(Double(weight.count) * Double(part) / Double(Swift.max(1, of))), total)
      }
      report.entries.append(entry)
      if l < 0 { model.tokenEmbedding = .compressed(packed) } else { model.layers[l].setMatrix(name, .compressed(packed)) }
      done += weight.count
      try progress(done, total)
    }
    report.seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
    return (model, report)
  }
}

extension Sequential {
  /// A copy whose Linear layers (all, or those at the top-level positions `layers`; nested Sequentials are opened)
  /// are replaced by PackedLinear layers holding `technique`'s packed form, which the copy then runs as they are.
  /// Other layers are shared with this model. The report names each matrix by its path ("0", "2.1").
  ///
  ///     let (q, report) = try Sequential.mlp([64, 32, 10], seed: 0).compressed(with: try RTN(bits: 4, group: 32))
  public func compressed(with technique: any MatrixCompressor, layers chosen: [Int]? = nil,
                         progress: (Int, Int) throws -> Void = { _, _ in }) throws -> (Sequential, CompressionReport) {
    for l in chosen ?? [] where l < 0 || l >= layers.count {
      throw TensorError.invalidArgument(op: "compress", reason: "layer \(l) is not one of 0..<\(layers.count)")
    }
    var report = CompressionReport(technique: technique.description)
    let started = DispatchTime.now().uptimeNanoseconds
    let total = layers.count
    func rebuild(_ s: Sequential, prefix: String, top: Bool) throws -> Sequential {
      var out: [Module] = []
      for (i, layer) in s.layers.enumerated() {
        let path = prefix.isEmpty ? "\(i)" : "\(prefix).\(i)"
        if top, let chosen, !chosen.contains(i) { out.append(layer); continue }
        switch layer {
        case let nested as Sequential:
          out.append(try rebuild(nested, prefix: path, top: false))
        case let linear as Linear:
          let (packed, entry) = try technique.compressMeasured(try linear.weight.value.copied(as: .f32),
                                                               layer: Int(path.prefix { $0 != "." }) ?? i, matrix: path) { _, _ in }
          report.entries.append(entry)
          out.append(try PackedLinear(weight: packed, bias: linear.bias?.value))
        default:
          out.append(layer)
        }
        if top { try progress(i + 1, total) }
      }
      return Sequential(out)
    }
    let model = try rebuild(self, prefix: "", top: true)
    guard !report.entries.isEmpty else {
      throw TensorError.invalidArgument(op: "compress", reason: "the model has no Linear layer to compress" + (chosen.map { " among layers \($0)" } ?? ""))
    }
    report.seconds = Double(DispatchTime.now().uptimeNanoseconds - started) / 1e9
    return (model, report)
  }
}
