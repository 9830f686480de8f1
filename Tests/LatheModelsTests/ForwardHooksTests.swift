// The hooks of the decoder's forward pass on a tiny random Llama: with none set nothing changes; an explicit causal
// mask and the default positions reproduce the plain pass; a tree mask with shared positions gives each branch the
// logits it would have alone; the observer sees every point and a ReLU layer's exact zeros; pre-RoPE keys agree
// with the cache where RoPE is the identity; a layer subset is the smaller model; k rows through sgemm agree with k
// matrix-vector products; a changed activation survives GGUF.

import Foundation
import Testing
@testable import LatheModels
import LatheTensor

private func tinyModel(seed: UInt64 = 3, activation: FFNActivation = .silu, layers: Int = 2) throws -> LlamaModel {
  let d = 16, hd = 8, ffn = 24, vocab = 40
  let config = try LlamaConfig(vocabularySize: vocab, dimension: d, contextLength: 64, headCounts: Array(repeating: 2, count: layers),
                               kvHeadCounts: Array(repeating: 1, count: layers), ffnWidths: Array(repeating: ffn, count: layers), headDimension: hd)
  var s = seed
  func w(_ shape: [Int], _ scale: Float = 0.3) throws -> Tensor { s += 1; return try Tensor.randn(shape, seed: s).binary(.multiply, scalar: scale) }
  func ones(_ n: Int) throws -> Tensor { try Tensor.full([n], 1) }
  let blocks = try (0..<layers).map { _ -> LlamaLayer in
    var layer = LlamaLayer(attentionNorm: try ones(d), query: try w([2 * hd, d]), key: try w([hd, d]), value: try w([hd, d]),
                           output: try w([d, 2 * hd]), ffnNorm: try ones(d), gate: try w([ffn, d]), up: try w([ffn, d]), down: try w([d, ffn]))
    layer.activation = activation
    return layer
  }
  return try LlamaModel(config: config, layers: blocks, tokenEmbedding: try w([vocab, d], 1), outputNorm: try ones(d), name: "tiny")
}

private func maxDifference(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? .infinity }

@Test func noHooksAndExplicitDefaultsGiveThePlainPass() throws {
  let m = try tinyModel(), ids = [3, 7, 1, 9]
  let plain = try m.forward(ids, cache: try m.makeCache(capacity: 8), allLogits: true)
  #expect(try m.forward(ids, cache: try m.makeCache(capacity: 8), allLogits: true, hooks: ForwardHooks()) == plain)
  var causal = [Float](repeating: -.infinity, count: 16)
  for t in 0..<4 { for j in 0...t { causal[t * 4 + j] = 0 } }
  let explicit = try m.forward(ids, cache: try m.makeCache(capacity: 8), allLogits: true,
                               hooks: ForwardHooks(positions: [0, 1, 2, 3], mask: causal))
  #expect(maxDifference(explicit, plain) < 1e-5)
  // RoPE is relative: shifting every position leaves the logits; spreading them changes them.
  let shifted = try m.forward(ids, cache: try m.makeCache(capacity: 8), allLogits: true, hooks: ForwardHooks(positions: [5, 6, 7, 8]))
  #expect(maxDifference(shifted, plain) < 1e-4)
  #expect(maxDifference(try m.forward(ids, cache: try m.makeCache(capacity: 8), allLogits: true, hooks: ForwardHooks(positions: [0, 2, 4, 6])), plain) > 1e-3)
}

@Test func aTreeMaskGivesEachBranchItsOwnLogits() throws {
  // Two candidate next tokens at the same position, each seeing the prompt and itself only.
  let m = try tinyModel(), prompt = [3, 7, 1]
  let cache = try m.makeCache(capacity: 16)
  _ = try m.forward(prompt, cache: cache)
  var mask = [Float](repeating: 0, count: 2 * 5)
  mask[0 * 5 + 4] = -.infinity          // branch 0 (row 3) does not see branch 1 (row 4)
  mask[1 * 5 + 3] = -.infinity          // branch 1 does not see branch 0
  let both = try m.forward([9, 12], cache: cache, allLogits: true, hooks: ForwardHooks(positions: [3, 3], mask: mask))
  for (i, token) in [9, 12].enumerated() {
    let alone = try m.makeCache(capacity: 16)
    _ = try m.forward(prompt, cache: alone)
    let single = try m.forward([token], cache: alone)
    #expect(maxDifference(Array(both[(i * 40)..<((i + 1) * 40)]), single) < 1e-4, "branch \(i)")
  }
  // The cache can roll the rejected branch back.
  cache.truncate(to: 4)
  #expect(cache.count == 4)
}

@Test func theObserverSeesEveryPointAndReLUZeros() throws {
  for activation in [FFNActivation.silu, .relu] {
    let m = try tinyModel(activation: activation)
    var seen: [String] = [], zeros = 0, hidden = 0
    _ = try m.forward([3, 7, 1, 9, 2], cache: try m.makeCache(capacity: 8), hooks: ForwardHooks(observe: { a in
      seen.append("\(a.layer) \(a.point.rawValue) \(a.rows)x\(a.width)")
      if a.point == .ffnHidden { for i in 0..<(a.rows * a.width) where a.values[i] == 0 { zeros += 1 }; hidden += a.rows * a.width }
    }))
    #expect(seen == ["0 attentionInput 5x16", "0 ffnInput 5x16", "0 ffnHidden 5x24", "0 layerOutput 5x16",
                     "1 attentionInput 5x16", "1 ffnInput 5x16", "1 ffnHidden 5x24", "1 layerOutput 5x16"])
    if activation == .relu { #expect(zeros > hidden / 4, "\(zeros) of \(hidden)") } else { #expect(zeros == 0) }
  }
}

@Test func preRopeKeysMatchTheCacheWhereRopeIsTheIdentity() throws {
  let m = try tinyModel(), cache = try m.makeCache(capacity: 8)
  var written: [Int: [Float]] = [:]
  var hooks = ForwardHooks()
  hooks.preRopeKeysValues = { layer, keys, values, rows, width in written[layer] = Array(UnsafeBufferPointer(start: keys, count: rows * width)) }
  _ = try m.forward([3, 7, 1], cache: cache, hooks: hooks)
  for l in 0..<2 {
    let cached = cache.rows(layer: l).keys, pre = try #require(written[l])
    #expect(Array(pre[0..<8]) == Array(cached[0..<8]), "position 0, layer \(l)")        // RoPE at position 0 rotates by 0
    #expect(maxDifference(Array(pre[8..<16]), Array(cached[8..<16])) > 1e-4)            // position 1 is rotated
  }
}

@Test func aLayerSubsetIsTheSmallerModel() throws {
  let m = try tinyModel(layers: 3), ids = [3, 7, 1]
  var config = m.config
  config.headCounts = [2, 2]; config.kvHeadCounts = [1, 1]; config.ffnWidths = [24, 24]
  let small = try LlamaModel(config: config, layers: [m.layers[0], m.layers[2]], tokenEmbedding: m.tokenEmbedding, outputNorm: m.outputNorm)
  let subset = try m.forward(ids, cache: try m.makeCache(capacity: 8), hooks: ForwardHooks(layers: [0, 2]))
  #expect(subset == (try small.forward(ids, cache: try small.makeCache(capacity: 8))))
  #expect(throws: TensorError.self) { try m.forward(ids, cache: try m.makeCache(capacity: 8), hooks: ForwardHooks(layers: [0, 0])) }
  #expect(throws: TensorError.self) { try m.forward(ids, cache: try m.makeCache(capacity: 8), hooks: ForwardHooks(layers: [3])) }
  #expect(throws: TensorError.self) { try m.forward(ids, cache: try m.makeCache(capacity: 8), hooks: ForwardHooks(positions: [1])) }
  #expect(throws: TensorError.self) { try m.forward(ids, cache: try m.makeCache(capacity: 8), hooks: ForwardHooks(mask: [0])) }
}

@Test func kRowsThroughSgemmAgreeWithKMatrixVectorProducts() throws {
  let m = try tinyModel(), ids = [3, 7, 1, 9]
  let rows = try m.forward(ids, cache: try m.makeCache(capacity: 8), allLogits: true)
  let batched = try m.forward(ids, cache: try m.makeCache(capacity: 8), allLogits: true, hooks: ForwardHooks(batchedRows: true))
  #expect(maxDifference(rows, batched) < 1e-4)
}

@Test func aChangedActivationSurvivesGGUF() throws {
  let m = try tinyModel(activation: .relu)
  let back = try LlamaModel(gguf: try GGUFFile(bytes: try m.ggufWriter().bytes()))
  #expect(back.layers.map(\.activation) == [.relu, .relu])
  #expect(try back.forward([3, 7], cache: try back.makeCache(capacity: 4)) == (try m.forward([3, 7], cache: try m.makeCache(capacity: 4))))
  let plain = try LlamaModel(gguf: try GGUFFile(bytes: try tinyModel().ggufWriter().bytes()))
  #expect(plain.layers.map(\.activation) == [.silu, .silu])
}
