// The op count of "ReLU Strikes Back" (Table 1's FLOPS column) from shapes and the table's input sparsities, and
// SmolLM2-135M's non-embedding count.

import Testing
@testable import LatheModels

private func giga(_ x: Double) -> Double { x / 1e9 }

@Test func theOpRuleGivesFalconSevenBsColumn() {
  // d 4544, FFN 18176, 32 layers, 71 query heads and one key/value head of 64, tied head, plain GELU FFN.
  let falcon = DecoderShape(layers: 32, dimension: 4544, queryWidth: 4544, keyValueWidth: 64, ffn: 18176, gated: false, untiedHeadVocabulary: 0)
  #expect(abs(giga(OpCount.perToken(falcon)) - 6.63) < 0.05)
  #expect(abs(giga(OpCount.perToken(falcon, sparsity: InputSparsity(down: 0.94))) - 4.14) < 0.05)
  #expect(abs(giga(OpCount.perToken(falcon, sparsity: InputSparsity(qkv: 0.56, up: 0.56, down: 0.95))) - 2.25) < 0.05)
}

@Test func theOpRuleGivesLlamaSevenBsColumn() {
  // d 4096, FFN 11008, 32 layers, 32 heads of 128, untied head over 32,000 tokens, SwiGLU.
  let llama = DecoderShape(layers: 32, dimension: 4096, queryWidth: 4096, keyValueWidth: 4096, ffn: 11008, gated: true, untiedHeadVocabulary: 32000)
  #expect(abs(giga(OpCount.perToken(llama)) - 6.61) < 0.05)
  // Stage 1: 62% of gate outputs zero, so up and down skip those neurons.
  #expect(abs(giga(OpCount.perToken(llama, sparsity: InputSparsity(down: 0.62))) - 4.82) < 0.05)
  #expect(abs(giga(OpCount.perToken(llama, sparsity: InputSparsity(qkv: 0.51, up: 0.67, down: 0.65))) - 2.91) < 0.05)
}

@Test func smolLM2CostsAbout106MOpsAToken() throws {
  let config = try LlamaConfig(vocabularySize: 49152, dimension: 576, contextLength: 8192, headCounts: Array(repeating: 9, count: 30),
                               kvHeadCounts: Array(repeating: 3, count: 30), ffnWidths: Array(repeating: 1536, count: 30), headDimension: 64)
  let shape = DecoderShape(config)
  #expect(shape.untiedHeadVocabulary == 0, "SmolLM2's head is its tied embedding")
  #expect(OpCount.perToken(shape) == 30 * 3_538_944)
  // Sparsity never adds ops, and all-zero inputs leave only the attention output.
  let half = OpCount.perToken(shape, sparsity: InputSparsity(qkv: 0.5, up: 0.5, down: 0.5))
  #expect(half < OpCount.perToken(shape))
  #expect(OpCount.perToken(shape, sparsity: InputSparsity(qkv: 1, up: 1, down: 1)) == 30 * 576 * 576)
}
