// KV-Runahead's cost model: the phase formulas, costs from model dimensions, and calibration by least squares.

import Foundation
import Testing
@testable import LatheTechniques
import LatheModels

@Test func costsFollowTheirFormulas() {
  var costs = RunaheadCosts(layers: 2, kvBytesPerToken: 1000, preConstant: 1, prePerToken: 2, attentionConstant: 3,
                            attentionPerEntry: 4, postConstant: 5, postPerToken: 6, latency: 7, bandwidth: 500)
  #expect(costs.pre(10) == 21 && costs.post(10) == 65)
  #expect(costs.attention(queries: 4, keys: 10) == 3 + 4 * 40)
  #expect(costs.message(tokens: 3) == 7 + 3 * 1000 / 500)
  costs.skipsMaskedTiles = true
  #expect(costs.scoreEntries(queries: 4, keys: 10) == 4 * (10 - 2))   // 4×6 block below the diagonal, 4×4 triangle
  costs.bandwidth = nil
  #expect(costs.message(tokens: 1e9) == 7)                             // shared memory: latency only
}

@Test func dimensionCostsCountSmolLM2Flops() throws {
  // SmolLM2-135M: d 576, 9 query and 3 KV heads of 64, FFN 1536, vocab 49152, 30 layers; F32.
  let costs = RunaheadCosts(layers: 30, dimension: 576, queryHeads: 9, kvHeads: 3, headDimension: 64, ffnWidth: 1536,
                            vocabularySize: 49152, bytesPerElement: 4, flopsPerSecond: 1)
  #expect(costs.kvBytesPerToken == 1536)                               // 2·3·64·4, as in the spec
  #expect(costs.prePerToken == 2 * 576 * (576 + 2 * 192))
  #expect(costs.postPerToken == 2 * (576 * 576 + 3 * 576 * 1536))
  #expect(costs.attentionPerEntry == 4 * 576 && costs.head == 2 * 576 * 49152)
  let config = try LlamaConfig(vocabularySize: 49152, dimension: 576, contextLength: 8192, headCounts: Array(repeating: 9, count: 30),
                               kvHeadCounts: Array(repeating: 3, count: 30), ffnWidths: Array(repeating: 1536, count: 30),
                               headDimension: 64)
  #expect(RunaheadCosts(config, flopsPerSecond: 1) == costs)
}

@Test func linearFitRecoversExactLines() throws {
  let (a, b) = try RunaheadCosts.linearFit([(1, 3), (2, 5), (3, 7), (10, 21)], phase: "pre")
  #expect(abs(a - 1) < 1e-12 && abs(b - 2) < 1e-12)
  let (c, d) = try RunaheadCosts.linearFit([(4, 8)], phase: "pre")   // one point: through the origin
  #expect(c == 0 && d == 2)
}

@Test func linearFitKeepsCostsNonNegative() throws {
  // A line with a negative intercept refits through the origin; a falling one keeps the mean.
  let (a, b) = try RunaheadCosts.linearFit([(1, 0), (2, 2), (3, 4)], phase: "post")
  #expect(a == 0 && abs(b - (0 * 1 + 2 * 2 + 4 * 3) / 14.0) < 1e-12)
  let (c, d) = try RunaheadCosts.linearFit([(1, 4), (2, 2)], phase: "post")
  #expect(c == 3 && d == 0)
  #expect(throws: RunaheadError.self) { try RunaheadCosts.linearFit([], phase: "post") }
  #expect(throws: RunaheadError.self) { try RunaheadCosts.linearFit([(1, .nan)], phase: "post") }
  #expect(throws: RunaheadError.self) { try RunaheadCosts.linearFit([(-1, 1)], phase: "post") }
}

@Test(arguments: [false, true])
func calibrationRecoversTheCostsThatMadeTheSamples(skipsMaskedTiles: Bool) throws {
  let truth = RunaheadCosts(layers: 30, kvBytesPerToken: 1536, preConstant: 2e-5, prePerToken: 3e-6, attentionConstant: 1e-5,
                            attentionPerEntry: 4e-9, postConstant: 3e-5, postPerToken: 9e-6, head: 1e-3,
                            skipsMaskedTiles: skipsMaskedTiles, bandwidth: 10e9)
  let sizes = [64, 128, 256, 512, 1024]
  let pre = sizes.map { ($0, truth.pre(Double($0))) }, post = sizes.map { ($0, truth.post(Double($0))) }
  let attention = sizes.flatMap { c in [c, 2 * c, 4 * c].map { (c, $0, truth.attention(queries: Double(c), keys: Double($0))) } }
  var base = truth
  (base.preConstant, base.prePerToken, base.attentionPerEntry, base.postPerToken) = (0, 0, 0, 0)
  let fitted = try base.calibrated(pre: pre, attention: attention, post: post, head: 1e-3)
  for (got, want) in [(fitted.preConstant, truth.preConstant), (fitted.prePerToken, truth.prePerToken),
                      (fitted.attentionConstant, truth.attentionConstant), (fitted.attentionPerEntry, truth.attentionPerEntry),
                      (fitted.postConstant, truth.postConstant), (fitted.postPerToken, truth.postPerToken)] {
    #expect(abs(got - want) <= 1e-9 * max(abs(want), 1e-12))
  }
  #expect(fitted.bandwidth == 10e9 && fitted.layers == 30 && fitted.head == 1e-3)
  #expect(throws: RunaheadError.self) { try base.calibrated(pre: pre, attention: [(8, 4, 1e-3)], post: post) }
}

@Test func costsRoundTripThroughJSON() throws {
  let costs = RunaheadCosts(layers: 30, kvBytesPerToken: 1536, prePerToken: 1e-6, attentionPerEntry: 2e-9, latency: 5e-6)
  let decoded = try JSONDecoder().decode(RunaheadCosts.self, from: JSONEncoder().encode(costs))
  #expect(decoded == costs && decoded.bandwidth == nil)
}

@Test func wholeLayerSamplesFitTheThreeCosts() throws {
  // seconds = 0.002 + 1e-4·c + 2e-8·c·S exactly: the fit recovers them and splits a and b by the pre share.
  var samples: [RunaheadCosts.LayerSample] = []
  for c in [64, 256, 512] {
    for extra in [0, 1536, 3584] {
      let tokens = Double(c), keys = Double(c + extra)
      let seconds: Double = 0.002 + 1e-4 * tokens + 2e-8 * tokens * keys
      samples.append((c, c + extra, seconds))
    }
  }
  let costs = try RunaheadCosts(layers: 30, kvBytesPerToken: 1536).fittingLayers(samples, preShare: 0.25)
  #expect(abs(costs.preConstant - 0.0005) < 1e-9 && abs(costs.postConstant - 0.0015) < 1e-9)
  #expect(abs(costs.prePerToken - 2.5e-5) < 1e-11 && abs(costs.postPerToken - 7.5e-5) < 1e-11)
  #expect(abs(costs.attentionPerEntry - 2e-8) < 1e-14 && costs.attentionConstant == 0)
  // Samples that would fit a negative constant fit without it.
  let noConstant = try RunaheadCosts(layers: 1, kvBytesPerToken: 1).fittingLayers([(10, 10, 0.5), (20, 20, 1.2), (40, 40, 2.6)])
  #expect(noConstant.preConstant == 0 && noConstant.postConstant == 0)
  #expect(throws: RunaheadError.self) { try RunaheadCosts(layers: 1, kvBytesPerToken: 1).fittingLayers([]) }
  #expect(throws: RunaheadError.self) { try RunaheadCosts(layers: 1, kvBytesPerToken: 1).fittingLayers([(10, 5, 1)]) }
}
