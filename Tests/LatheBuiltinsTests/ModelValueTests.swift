// A compressed model saved as a notebook value (save(name, q) stores LanguageModelValue.serialized()) comes back
// bit for bit, with its compression report.

import Foundation
import Testing
import LatheLang
@testable import LatheBuiltins
import LatheModels
import LatheTechniques
import LatheTestSupport

@Suite struct ModelValueReleaseTests {
  @Test func compressedModelRoundTripsThroughItsSavedValue() throws {
    let registry = Builtins.standard()
    let path = TestPaths.packageRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
    let (q, report) = try LlamaModel(path: path).compressed(with: try RTN(bits: 3, group: 64), layers: [0, 1])
    let value = LanguageModelValue(q, path: path, loadSeconds: 0, compression: report)
    let saved = try #require(try value.serialized())
    #expect(saved.kind == "model")
    let decode = try #require(registry.hostDecoders[saved.kind])
    guard case .host(let h) = try decode(saved.bytes), let back = h as? LanguageModelValue else { Issue.record("not a model"); return }
    #expect(back.compression?.technique == report.technique && back.compression?.entries.count == 14)
    #expect(back.compression?.entries.map(\.relativeError) == report.entries.map(\.relativeError))
    for l in 0..<2 {
      for ((name, a), (_, b)) in zip(q.layers[l].matrices, back.model.layers[l].matrices) {
        guard case .compressed(let ma) = a, case .compressed(let mb) = b else { Issue.record("layer \(l) \(name) not compressed"); continue }
        #expect(ma.packed() == mb.packed() && ma.technique == mb.technique)
      }
    }
    let prompt = [504, 2365, 6354, 16438]
    #expect(try back.model.forward(prompt, cache: try back.model.makeCache(capacity: 4))
            == (try q.forward(prompt, cache: try q.makeCache(capacity: 4))))
    // Saved again, the image is the same bytes.
    #expect(try back.serialized()?.bytes == saved.bytes)
  }
}
