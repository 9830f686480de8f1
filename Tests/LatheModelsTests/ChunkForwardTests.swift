// A chunk forward at an offset, with the prefix's keys and values handed in from outside, reproduces the serial
// prefill: RoPE runs at absolute positions (kv-runahead.md check 4: the second chunk of a 5-token prompt split 3 + 2
// starts at position S_0 = 3). Model-sized: debug builds take minutes over these few tokens, so scripts/test runs
// them in its release pass.

import Foundation
import Testing
@testable import LatheModels
import LatheTensor

@Suite struct ChunkForwardReleaseTests {
@Test func aChunkAtAnOffsetMatchesTheSerialPrefill() throws {
  let model = try SmolLM2.model.get()
  let ids = [504, 2365, 6354, 16438, 27003]
  let (serial, serialLogits) = try model.prefill(ids, extra: 0)
  let layers = model.config.layerCount
  func runSecondChunk(offset: Int) throws -> (keys: [[Float]], logits: [Float]) {
    var buffers: [(keys: [Float], values: [Float])] = []
    var chunkKeys: [[Float]] = []
    let logits = try model.forwardChunk(ids[3...], offset: offset) { l, k, v in
      let w = serial.layerWidths[l]
      var rows = serial.rows(layer: l)
      rows.keys = Array(rows.keys.prefix(3 * w)) + Array(UnsafeBufferPointer(start: k, count: 2 * w))
      rows.values = Array(rows.values.prefix(3 * w)) + Array(UnsafeBufferPointer(start: v, count: 2 * w))
      buffers.append(rows)
      chunkKeys.append(Array(UnsafeBufferPointer(start: k, count: 2 * w)))
      return buffers[l].keys.withUnsafeBufferPointer { keys in
        buffers[l].values.withUnsafeBufferPointer { values in
          ChunkAttentionInput(keys: keys.baseAddress!, values: values.baseAddress!, length: 5)
        }
      }
    }
    return (chunkKeys, logits)
  }
  let (keys, logits) = try runSecondChunk(offset: 3)
  var worst: Float = 0
  for l in 0..<layers {
    let w = serial.layerWidths[l], expected = serial.rows(layer: l).keys[(3 * w)...]
    for (a, b) in zip(keys[l], expected) { worst = max(worst, abs(a - b)) }
  }
  #expect(worst <= 1e-4, "keys of positions 3 and 4 differ from the serial prefill's by \(worst)")
  #expect(zip(logits, serialLogits).allSatisfy { abs($0 - $1) <= 1e-3 })
  #expect(Sampler.argmax(logits) == Sampler.argmax(serialLogits))
  // At offset 0 the rotation is that of positions 0 and 1: layer 0's keys (before any attention) then differ.
  let misplaced = try runSecondChunk(offset: 0)
  let w = serial.layerWidths[0], expected = Array(serial.rows(layer: 0).keys[(3 * w)...])
  #expect(zip(misplaced.keys[0], expected).contains { abs($0 - $1) > 1e-2 })
}

@Test func aChunkWhoseExchangeIsTooShortIsAnError() throws {
  let model = try SmolLM2.model.get()
  var store: [Float] = []
  #expect(throws: TensorError.self) {
    _ = try model.forwardChunk([504, 2365], offset: 4, logits: false) { _, k, v in
      store = Array(UnsafeBufferPointer(start: k, count: 1))
      return ChunkAttentionInput(keys: k, values: v, length: 2)
    }
  }
  _ = store
}
}
