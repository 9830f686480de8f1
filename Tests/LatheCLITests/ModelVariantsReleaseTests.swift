// Saving variants of SmolLM2 into one notebook: once the base model is saved, five variants that each differ in
// one compressed layer add less than 20 MB (their blobs share every part that did not change). Release pass only.

import Foundation
import LatheNotebook
import LatheTestSupport
import Testing
@testable import LatheCLI

@Suite(.serialized) struct ModelVariantsReleaseTests {
  static let model = TestPaths.packageRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path

  static func fileSize(_ path: String) throws -> Int {
    (try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
  }

  func run(_ source: String, into notebook: String, in dir: URL, name: String) throws {
    let script = dir.appendingPathComponent(name).path
    try source.write(toFile: script, atomically: true, encoding: .utf8)
    let display = CollectingDisplay()
    let status = Commands.run(script: script, notebook: notebook, display: display)
    #expect(status == 0, "\(name): \(display.text)")
  }

  @Test(.enabled(if: FileManager.default.fileExists(atPath: model), "models/ has no SmolLM2 file: run scripts/setup"))
  func fiveVariantsOfSmolLM2AddLessThan20MB() throws {
    let dir = try TestPaths.temporaryDirectory("lathe-variants")
    defer { try? FileManager.default.removeItem(at: dir) }
    let notebook = dir.appendingPathComponent("variants.lnb").path
    try run("""
      # %%
      let m = load("\(Self.model)")
      save("base", m)
      """, into: notebook, in: dir, name: "base.lathe")
    let base = try Self.fileSize(notebook)
    // One decoder layer each, with a different compressor or setting: the layer's matrices change size and
    // encoding, the tensors after them move, and the compression report in the metadata differs.
    try run("""
      # %%
      let m = load("base")
      save("v0", compress(m, rtn(bits: 4, group: 64), layers: [0]))
      save("v1", compress(m, rtn(bits: 3, group: 64), layers: [7]))
      save("v2", compress(m, rtn(bits: 8, group: 32), layers: [14]))
      save("v3", compress(m, rtn(bits: 2, group: 64), layers: [21]))
      save("v4", compress(m, rtn(bits: 4, group: 64), layers: [29], matrices: ["ffn_down", "ffn_up"]))
      # %%
      let back = load("v2")
      print(back.layers)
      """, into: notebook, in: dir, name: "variants.lathe")
    let grown = try Self.fileSize(notebook) - base
    #expect(base > 80_000_000, "the base model is stored whole: \(base) bytes")
    #expect(grown < 20_000_000, "five variants grew the notebook by \(grown) bytes")
    let reader = try Notebook.open(path: notebook, readOnly: true)
    #expect(try reader.check() == [])
    #expect(Set(try reader.artifactNames()) == ["base", "v0", "v1", "v2", "v3", "v4"])
  }
}
