// SmolLM2 as a trainable decoder: the autograd forward of the dequantised weights gives the inference model's logits
// at every position within 1e-4 relative on the five reference prompts, and `runnable()` of it generates the same
// greedy text. Model-sized: scripts/test runs this suite in a release build.

import Foundation
import Testing
@testable import LatheModels
import LatheNN
import LatheTensor
import LatheTestSupport

@Suite(.serialized) struct TrainableDecoderReleaseTests {
  @Test func trainableSmolLM2GivesTheInferenceLogits() throws {
    let model = try SmolLM2.model.get()
    let decoder = try TrainableDecoder(model: model)
    for prompt in try SmolLM2.prompts() {
      let ids = prompt.promptIDs, vocab = model.config.vocabularySize
      let cache = try model.makeCache(capacity: ids.count)
      let reference = try model.forward(ids, cache: cache, allLogits: true)
      let trained = try Autograd.noGrad { try decoder.logits(try Tensor(ids.map(Float.init), shape: [ids.count])) }.value.scalars
      #expect(trained.count == reference.count)
      for t in 0..<ids.count {
        let a = trained[(t * vocab)..<((t + 1) * vocab)], b = reference[(t * vocab)..<((t + 1) * vocab)]
        let scale = b.map(abs).max() ?? 1
        let worst = zip(a, b).map { abs($0 - $1) }.max() ?? 0
        #expect(worst <= 1e-4 * scale, "\(prompt.id) position \(t): max |difference| \(worst) against max |logit| \(scale)")
      }
    }
  }

  @Test func runnableOfTrainableGeneratesTheSameGreedyText() throws {
    let model = try SmolLM2.model.get()
    let back = try TrainableDecoder(model: model).runnable()
    for prompt in try SmolLM2.prompts().prefix(3) {
      var a = try Sampler(), b = try Sampler()
      let original = try model.generate(prompt.promptIDs, maxTokens: 24, sampler: &a)
      let roundTrip = try back.generate(prompt.promptIDs, maxTokens: 24, sampler: &b)
      #expect(roundTrip.tokens == original.tokens, "\(prompt.id): \(roundTrip.text) against \(original.text)")
    }
  }
}
