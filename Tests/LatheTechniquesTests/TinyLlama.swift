// A tiny random Llama for the technique tests: d 16, FFN 24, two query heads per KV head, context 256.

import LatheModels
import LatheTensor

func tinyLlama(seed: UInt64, layers: Int = 4, kvHeads: Int = 1, headDim: Int = 8, rope: LlamaConfig.RopeStyle = .adjacentPairs,
               vocab: Int = 40) throws -> LlamaModel {
  let d = 16, ffn = 24, heads = 2 * kvHeads
  var config = try LlamaConfig(vocabularySize: vocab, dimension: d, contextLength: 256, headCounts: Array(repeating: heads, count: layers),
                               kvHeadCounts: Array(repeating: kvHeads, count: layers), ffnWidths: Array(repeating: ffn, count: layers),
                               headDimension: headDim)
  config.ropeStyle = rope
  var s = seed
  func w(_ shape: [Int], _ scale: Float = 0.4) throws -> Tensor { s += 1; return try Tensor.randn(shape, seed: s).binary(.multiply, scalar: scale) }
  let ones = try Tensor.full([d], 1)
  let blocks = try (0..<layers).map { _ in
    LlamaLayer(attentionNorm: ones, query: try w([heads * headDim, d]), key: try w([kvHeads * headDim, d]), value: try w([kvHeads * headDim, d]),
               output: try w([d, heads * headDim]), ffnNorm: ones, gate: try w([ffn, d]), up: try w([ffn, d]), down: try w([d, ffn]))
  }
  return try LlamaModel(config: config, layers: blocks, tokenEmbedding: try w([vocab, d], 1), outputNorm: ones, name: "tiny")
}
