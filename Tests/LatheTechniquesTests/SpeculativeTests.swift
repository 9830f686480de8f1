// Speculative decoding and droplayers on a tiny random Llama: whatever the draft, the tokens are the base model's
// greedy tokens; the self-draft accepts everything; the caches end as a plain decode leaves them; droplayers keeps
// the layers the rule names.

import Testing
@testable import LatheTechniques
import LatheModels
import LatheTensor

private func tinyModel(seed: UInt64, layers: Int = 4) throws -> LlamaModel {
  let d = 16, hd = 8, ffn = 24, vocab = 40
  let config = try LlamaConfig(vocabularySize: vocab, dimension: d, contextLength: 128, headCounts: Array(repeating: 2, count: layers),
                               kvHeadCounts: Array(repeating: 1, count: layers), ffnWidths: Array(repeating: ffn, count: layers), headDimension: hd)
  var s = seed
  func w(_ shape: [Int], _ scale: Float = 0.4) throws -> Tensor { s += 1; return try Tensor.randn(shape, seed: s).binary(.multiply, scalar: scale) }
  let ones = try Tensor.full([d], 1)
  let blocks = try (0..<layers).map { _ in
    LlamaLayer(attentionNorm: ones, query: try w([2 * hd, d]), key: try w([hd, d]), value: try w([hd, d]), output: try w([d, 2 * hd]),
               ffnNorm: ones, gate: try w([ffn, d]), up: try w([ffn, d]), down: try w([d, ffn]))
  }
  return try LlamaModel(config: config, layers: blocks, tokenEmbedding: try w([vocab, d], 1), outputNorm: ones, name: "tiny")
}

private func greedy(_ m: LlamaModel, _ prompt: [Int], _ n: Int) throws -> [Int] {
  var sampler = try Sampler()
  return try m.generate(prompt, maxTokens: n, sampler: &sampler).tokens
}

@Test(arguments: [1, 2, 3, 5])
func speculativeTokensAreTheGreedyTokens(lookahead: Int) throws {
  let base = try tinyModel(seed: 10)
  let drafts = [try DropLayers(keep: .fraction(0.5)).transform(base, data: nil), try tinyModel(seed: 99, layers: 1), base]
  for prompt in [[1, 2, 3], [7], [5, 9, 11, 13, 2, 4, 6, 8]] {
    let want = try greedy(base, prompt, 24)
    for draft in drafts {
      let s = try Speculative(draft: draft, lookahead: lookahead)
      let (cache, logits) = try base.prefill(prompt, extra: 40)
      var sampler = try Sampler()
      let r = try s.decode(base, context: prompt, cache: cache, logits: logits, maxTokens: 24, sampler: &sampler, stop: [], onToken: { _, _ in })
      #expect(r.generation.tokens == want, "lookahead \(lookahead), draft of \(draft.config.layerCount) layers")
      // As after a plain decode, the cache holds everything but the last token.
      #expect(cache.count == prompt.count + 23)
      if draft === base { #expect(s.totals.acceptance == 1) }
    }
  }
}

@Test func theCountersAddUp() throws {
  let base = try tinyModel(seed: 10)
  let s = try Speculative(draft: base, lookahead: 3)
  let (cache, logits) = try base.prefill([1, 2, 3], extra: 40)
  var sampler = try Sampler()
  _ = try s.decode(base, context: [1, 2, 3], cache: cache, logits: logits, maxTokens: 16, sampler: &sampler, stop: [], onToken: { _, _ in })
  // 16 tokens: 4 rounds of the base's own token and 3 accepted proposals; the prefill's call gave the first.
  #expect(s.totals.baseCalls == 4 && s.totals.proposed == 12 && s.totals.accepted == 12 && s.totals.tokensPerBaseCall == 3.2)
  var hot = try Sampler(temperature: 0.5)
  #expect(throws: TechniqueError.self) {
    try s.decode(base, context: [1, 2, 3], cache: cache, logits: logits, maxTokens: 4, sampler: &hot, stop: [], onToken: { _, _ in })
  }
}

@Test func dropLayersKeepsTheLayersItsRuleNames() throws {
  #expect(try DropLayers(keep: .fraction(0.5)).kept(of: 30) == Array(stride(from: 0, to: 30, by: 2)))
  #expect(try DropLayers(keep: .fraction(0.25)).kept(of: 30) == [0, 4, 8, 12, 16, 20, 24, 28])
  #expect(try DropLayers(keep: .fraction(1)).kept(of: 5) == [0, 1, 2, 3, 4])
  #expect(try DropLayers(keep: .layers([3, 0])).kept(of: 5) == [3, 0])
  #expect(throws: TechniqueError.self) { try DropLayers(keep: .layers([5])).kept(of: 5) }
  #expect(throws: TechniqueError.self) { try DropLayers(keep: .fraction(0)) }
  let m = try tinyModel(seed: 10)
  let small = try DropLayers(keep: .layers([0, 2])).transform(m, data: nil)
  #expect(small.config.layerCount == 2 && small.config.headCounts == [2, 2])
  // The kept layers are shared, not copied: the smaller model runs exactly the subset of the bigger one's layers.
  let subset = try m.forward([1, 2], cache: try m.makeCache(capacity: 4), hooks: ForwardHooks(layers: [0, 2]))
  #expect(try small.forward([1, 2], cache: try small.makeCache(capacity: 4)) == subset)
}
