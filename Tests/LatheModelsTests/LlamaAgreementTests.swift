// SmolLM2 against llama.cpp and a float64 numpy forward of the same dequantised weights (Reference/*.json):
// next-token logits within 2e-2 of the float64 reference on its top 5 (same ids, same order), top-1 equal to
// llama.cpp's, and 32 greedy tokens equal to the float64 reference's. Model-sized: scripts/test runs this suite in
// a release build (debug is 10-50x slower), and skips it in the debug pass.

import Foundation
import Testing
@testable import LatheModels
import LatheTensor
import LatheTestSupport

struct ReferencePrompt {
  let id: String, promptIDs: [Int]
  let referenceTop: [Int], referenceLogits: [Double], referenceLogSumExp: Double
  let llamaTop1: Int
  let greedyReference: [Int]?, greedyLlama: [Int]
}

extension SmolLM2 {
  nonisolated(unsafe) static let model: Result<LlamaModel, Error> = Result { try LlamaModel(gguf: try open()) }

  static func prompts() throws -> [ReferencePrompt] {
    let dir = TestPaths.packageRoot.appendingPathComponent("Tests/LatheModelsTests/Reference")
    func json(_ name: String) throws -> [String: Any] {
      try #require(JSONSerialization.jsonObject(with: Data(contentsOf: dir.appendingPathComponent(name))) as? [String: Any])
    }
    let logits = try #require(try json("smollm2-logits.json")["prompts"] as? [[String: Any]])
    let greedy = try #require(try json("smollm2-greedy.json")["prompts"] as? [[String: Any]])
    return try logits.map { entry in
      let id = try #require(entry["id"] as? String)
      let g = try #require(greedy.first { $0["id"] as? String == id })
      let reference = try #require(entry["numpy_f64_reference"] as? [String: Any]), llama = try #require(entry["llama_cpp"] as? [String: Any])
      return ReferencePrompt(id: id, promptIDs: try #require(g["prompt_ids"] as? [Int]),
                             referenceTop: try #require(reference["top_ids"] as? [Int]),
                             referenceLogits: try #require(reference["top_logits"] as? [Double]),
                             referenceLogSumExp: try #require(reference["logsumexp"] as? Double),
                             llamaTop1: try #require((llama["top_ids"] as? [Int])?.first),
                             greedyReference: g["numpy_f64_generated_ids"] as? [Int], greedyLlama: try #require(g["generated_ids"] as? [Int]))
    }
  }
}

func topIndices(_ v: [Float], _ k: Int) -> [Int] { Array(v.indices.sorted { v[$0] > v[$1] }.prefix(k)) }

@Suite(.serialized) struct SmolLM2ReleaseTests {
@Test func smolLM2LogitsAgreeWithTheFloat64Reference() throws {
  let model = try SmolLM2.model.get()
  for prompt in try SmolLM2.prompts() {
    let cache = try model.makeCache(capacity: prompt.promptIDs.count)
    let logits = try model.forward(prompt.promptIDs, cache: cache)
    let top = topIndices(logits, 5)
    #expect(top == prompt.referenceTop, "\(prompt.id): top-5 \(top) vs the float64 reference's \(prompt.referenceTop)")
    #expect(top[0] == prompt.llamaTop1, "\(prompt.id): top-1 \(top[0]) vs llama.cpp's \(prompt.llamaTop1)")
    for (id, expected) in zip(prompt.referenceTop, prompt.referenceLogits) {
      #expect(abs(Double(logits[id]) - expected) <= 2e-2, "\(prompt.id): logit of \(id) is \(logits[id]), reference \(expected)")
    }
    let m = Double(logits.max()!), lse = m + log(logits.reduce(0.0) { $0 + exp(Double($1) - m) })
    #expect(abs(lse - prompt.referenceLogSumExp) <= 2e-2, "\(prompt.id): logsumexp \(lse) vs \(prompt.referenceLogSumExp)")
  }
}

@Test func smolLM2GreedyContinuationsAgree() throws {
  let model = try SmolLM2.model.get()
  for prompt in try SmolLM2.prompts() {
    var sampler = try Sampler()
    let result = try model.generate(prompt.promptIDs, maxTokens: prompt.greedyLlama.count, sampler: &sampler)
    if let reference = prompt.greedyReference {
      #expect(result.tokens == Array(reference.prefix(result.tokens.count)), "\(prompt.id): \(result.tokens) vs the float64 reference's \(reference)")
    } else {
      #expect(result.tokens == prompt.greedyLlama, "\(prompt.id): \(result.tokens) vs llama.cpp's \(prompt.greedyLlama)")
    }
  }
}

@Test func decodingStepByStepMatchesOnePrefill() throws {
  // The KV cache path (one token at a time) and the batched path (sgemm over all tokens) give the same logits.
  let model = try SmolLM2.model.get()
  let ids = [504, 2365, 6354, 16438, 27003, 690, 260, 23790]
  let whole = try model.forward(ids, cache: try model.makeCache(capacity: ids.count), allLogits: true)
  let cache = try model.makeCache(capacity: 2)   // grows as it goes
  let vocab = model.config.vocabularySize
  for (i, id) in ids.enumerated() {
    let step = try model.forward([id], cache: cache)
    let row = Array(whole[(i * vocab)..<((i + 1) * vocab)])
    let worst = zip(step, row).map { abs($0 - $1) }.max()!
    #expect(worst < 2e-3, "position \(i): step logits differ from the batched ones by \(worst)")
  }
  #expect(cache.count == ids.count)
  #expect(throws: (any Error).self) { try model.forward([model.config.vocabularySize], cache: cache) }
  #expect(throws: (any Error).self) { try model.forward([], cache: cache) }
}

/// Within 2% of llama.cpp's figure, and within 0.5% of Lathe's own before the fused attention kernel (33.06 and
/// 29.00, with the dense sgemm attention): the kernel changes rounding, not results.
@Test(arguments: [("lee", "lee_background.cor", 33.11, 33.06), ("hamlet", "shakespeare/hamlet.md", 29.02, 29.00)])
func perplexityIsWithinTwoPercentOfLlamaCpp(corpus: String, file: String, reference: Double, before: Double) throws {
  // llama.cpp's figure: no BOS, the first 8 non-overlapping 512-token windows of the raw file, loss over the 511
  // predicted positions of each.
  let model = try SmolLM2.model.get()
  let path = TestPaths.packageRoot.appendingPathComponent("data/corpus/\(file)").path
  let text = try String(contentsOfFile: path, encoding: .utf8)
  let ids = try #require(model.tokenizer).encode(text, parseSpecial: false)
  let result = try model.perplexity(ids, window: 512, stride: 512, maxWindows: 8)
  #expect(result.windows == 8 && result.predictedTokens == 8 * 511)
  #expect(abs(result.perplexity / reference - 1) <= 0.02, "\(corpus): perplexity \(result.perplexity) vs llama.cpp's \(reference)")
  #expect(abs(result.perplexity / before - 1) <= 0.005, "\(corpus): perplexity \(result.perplexity) vs \(before) before")
}
}
