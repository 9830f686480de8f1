// KV prediction on tiny random Llamas (the spec's checks 1-8), then on the real SmolLM2 in f32 (checks 1, 4, 5, 7;
// model-sized, so a ReleaseTests suite): an aux equal to the base with identity maps reproduces the base's cache,
// logits and text; predicted caches have the base's shapes whatever the aux's heads; the automatic layer maps follow
// the paper's rule; the aux runs once per prompt; the consistency term and a training step behave; the FLOPs counter
// follows the paper's accounting; ridge maps beat identity maps on held-out tokens.

import Foundation
import Testing
@testable import LatheTechniques
import LatheModels
import LatheNN
import LatheTensor
import LatheTestSupport

private func maxDifference(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? .infinity }

private func randomTokens(_ n: Int, seed: UInt64, vocab: Int = 40) -> [Int] {
  var state = seed
  return (0..<n).map { _ in
    state = state &* 6364136223846793005 &+ 1442695040888963407
    return Int((state >> 33) % UInt64(vocab))
  }
}

@Test(arguments: [LlamaConfig.RopeStyle.adjacentPairs, .halves])
func identityPredictionReproducesTheBase(rope: LlamaConfig.RopeStyle) throws {
  let base = try tinyLlama(seed: 3, rope: rope)
  let kvp = try KVPredict(aux: base, initial: .identity)
  #expect(try kvp.resolvedLayerMap(for: base) == [0, 1, 2, 3])
  for prompt in [randomTokens(12, seed: 1), randomTokens(40, seed: 2), [5, 6]] {
    let predicted = try kvp.predict(base, prompt, room: 16)
    let (cache, logits) = try base.prefill(prompt, extra: 16)
    #expect(predicted.cache.count == prompt.count && cache.count == prompt.count)
    // Check 4: keys rotated at positions 0..T-2 equal the keys the base cached itself, so attention is the same.
    for l in 0..<4 {
      let a = predicted.cache.rows(layer: l), b = cache.rows(layer: l)
      let scale = max(1, b.keys.map(abs).max() ?? 1, b.values.map(abs).max() ?? 1)
      #expect(maxDifference(a.keys, b.keys) <= 1e-5 * scale && maxDifference(a.values, b.values) <= 1e-5 * scale, "layer \(l), \(prompt.count) tokens")
    }
    #expect(maxDifference(predicted.logits, logits) <= 1e-5 * max(1, logits.map(abs).max() ?? 1))
    var s1 = try Sampler(), s2 = try Sampler()
    let viaKVP = try base.decode(cache: predicted.cache, logits: predicted.logits, maxTokens: 20, sampler: &s1)
    let plain = try base.decode(cache: cache, logits: logits, maxTokens: 20, sampler: &s2)
    #expect(viaKVP.tokens == plain.tokens)
  }
}

@Test func predictedCachesHaveTheBaseShapes() throws {
  let base = try tinyLlama(seed: 5, layers: 3)
  let aux = try tinyLlama(seed: 6, layers: 2, kvHeads: 2, headDim: 48)        // 2 kv heads x 48 against the base's 1 x 8
  let kvp = try KVPredict(aux: aux)
  let maps = try kvp.maps(for: base)
  #expect(maps.layerMap == [0, 0, 1])
  #expect(maps.keyWeights.allSatisfy { $0.shape == [8, 96] } && maps.valueBiases.allSatisfy { $0.shape == [8] })
  let prompt = randomTokens(9, seed: 4)
  // Before the base's step: T-1 predicted rows of the base's width per layer.
  let auxKV = try kvp.auxKeysValues(prompt[0..<8])
  for (i, j) in maps.layerMap.enumerated() {
    let k = try KVPredict.apply(maps.keyWeights[i], maps.keyBiases[i], to: auxKV[j].keys, rows: 8)
    #expect(k.count == 8 * 1 * 8)
  }
  let r = try kvp.predict(base, prompt, room: 4)
  #expect(r.cache.count == 9 && r.cache.layerWidths == [8, 8, 8] && r.auxTokens == 8 && r.baseTokens == 1)
  #expect(r.cache.rows(layer: 2).keys.count == 9 * 8)
  #expect(throws: TechniqueError.self) { try KVPredict(aux: aux, layerMap: .layers([0, 2, 1])).maps(for: base) }
  #expect(throws: TechniqueError.self) { try KVPredict(aux: aux, layerMap: .layers([0, 1])).maps(for: base) }
}

@Test func automaticLayerMapsFollowThePaper() throws {
  let half = try DropLayers(keep: .fraction(0.5)).kept(of: 30), quarter = try DropLayers(keep: .fraction(0.25)).kept(of: 30)
  #expect(KVPredict.autoLayerMap(baseLayers: 30, auxLayers: 15, sourceLayers: half) == (0..<30).map { $0 / 2 })
  #expect(KVPredict.autoLayerMap(baseLayers: 30, auxLayers: 8, sourceLayers: quarter) == (0..<30).map { $0 / 4 })
  // The paper's LP-0.75 map for OpenELM-1.1B (28 layers): [0, 1, 2, 2, 3, 4, 5, 5, ..., 18, 19, 20, 20].
  let lp75 = try DropLayers(keep: .fraction(0.75)).kept(of: 28)
  #expect(lp75.count == 21 && !lp75.contains(3) && !lp75.contains(27))
  let paper: [Int] = (0..<7).flatMap { (g: Int) -> [Int] in let a = 3 * g; return [a, a + 1, a + 2, a + 2] }
  #expect(KVPredict.autoLayerMap(baseLayers: 28, auxLayers: 21, sourceLayers: lp75) == paper)
  // The same rule through droplayers' model: sourceLayers says what was kept.
  let base = try tinyLlama(seed: 1, layers: 8)
  let aux = try DropLayers(keep: .fraction(0.25)).transform(base, data: nil)
  #expect(aux.sourceLayers == [0, 4])
  #expect(try KVPredict(aux: aux).resolvedLayerMap(for: base) == [0, 0, 0, 0, 1, 1, 1, 1])
  for nB in [1, 5, 12, 28, 30] {
    for nA in 1...nB {
      let m = KVPredict.autoLayerMap(baseLayers: nB, auxLayers: nA, sourceLayers: nil)
      #expect(m.count == nB && m.first == 0 && zip(m, m.dropFirst()).allSatisfy { $0 <= $1 } && m.allSatisfy { $0 >= 0 && $0 < nA })
    }
  }
}

@Test func theAuxRunsOncePerPrompt() throws {
  let base = try tinyLlama(seed: 7)
  let kvp = try KVPredict(aux: try DropLayers(keep: .fraction(0.5)).transform(base, data: nil))
  let r = try kvp.predict(base, randomTokens(20, seed: 9), room: 64)
  var sampler = try Sampler()
  let g = try base.decode(cache: r.cache, logits: r.logits, maxTokens: 50, sampler: &sampler)
  #expect(g.tokens.count == 50 && kvp.auxCalls == 1 && r.auxCalls == 1)
  _ = try kvp.predict(base, [3], room: 4)                  // one token: the base alone
  #expect(kvp.auxCalls == 1)
}

@Test func theConsistencyTermIsZeroOnTargetsAndBlindToPadding() throws {
  let t = try Tensor.randn([2, 5, 1, 8], seed: 1), u = try Tensor.randn([2, 5, 1, 8], seed: 2)
  let exact = try KVPredict.consistencyLoss([(Variable(t), Variable(u))], [(t, u)], valid: nil)
  #expect(exact.value.scalars == [0])
  // Padded positions (valid 0) may hold anything.
  let valid = try Tensor([1, 1, 1, 0, 0, 1, 1, 1, 1, 0], shape: [2, 5])
  var noisy = t.scalars
  for b in 0..<2 { for p in 0..<5 where valid.scalars[b * 5 + p] == 0 { for e in 0..<8 { noisy[(b * 5 + p) * 8 + e] += 7 } } }
  let padded = try KVPredict.consistencyLoss([(Variable(try Tensor(noisy, shape: t.shape)), Variable(u))], [(t, u)], valid: valid)
  #expect(padded.value.scalars == [0])
  let off = try KVPredict.consistencyLoss([(Variable(u), Variable(u))], [(t, u)], valid: valid).value.scalars[0]
  #expect(off > 0)
}

@Test func aTrainingStepMovesTheAuxAndMapsAndNeverTheBase() throws {
  let base = try tinyLlama(seed: 11)
  let aux = try DropLayers(keep: .fraction(0.5)).transform(base, data: nil)
  let kvp = try KVPredict(aux: aux)
  let before = base.namedWeights.map { ($0.name, $0.weight.tensor?.scalars ?? []) }
  _ = try kvp.maps(for: base)
  let mapsBefore = kvp.maps?.keyWeights.map(\.scalars) ?? []
  let auxBefore = aux.layers[0].query.tensor?.scalars ?? []
  var recipe = Recipe()
  recipe.steps = 1; recipe.sequence = 16; recipe.batch = 2; recipe.lr = 1e-2
  _ = try kvp.train(base, tokens: randomTokens(200, seed: 3), recipe: recipe)
  for (name, values) in before { #expect(base.namedWeights.first { $0.name == name }?.weight.tensor?.scalars == values, "\(name) changed") }
  #expect(kvp.maps?.keyWeights.map(\.scalars) != mapsBefore)
  #expect(aux.layers[0].query.tensor?.scalars != auxBefore)
  #expect(kvp.state == "trained")
}

@Test func overfittingOneBatchLowersTheConsistencyTerm() throws {
  let base = try tinyLlama(seed: 13)
  let kvp = try KVPredict(aux: try DropLayers(keep: .fraction(0.5)).transform(base, data: nil), lambdaC: 1)
  var recipe = Recipe()
  recipe.steps = 40; recipe.sequence = 24; recipe.batch = 1; recipe.lr = 3e-2
  var consistency: [Float] = []
  _ = try kvp.train(base, tokens: randomTokens(25, seed: 5), recipe: recipe) { _, terms in consistency.append(terms.consistency) }
  #expect(consistency.count == 40)
  #expect((consistency.last ?? .infinity) < 0.7 * (consistency.first ?? 0), "\(consistency)")
}

@Test func ridgeMapsBeatIdentityMapsOnHeldOutTokens() throws {
  let base = try tinyLlama(seed: 17)
  let aux = try DropLayers(keep: .fraction(0.5)).transform(base, data: nil)
  let identity = try KVPredict(aux: aux, initial: .identity)
  let fitted = try identity.fitted(base, tokens: randomTokens(700, seed: 21))
  let heldOut = randomTokens(300, seed: 99)
  let a = try identity.consistencyError(base, tokens: heldOut), b = try fitted.consistencyError(base, tokens: heldOut)
  #expect(b < a, "ridge \(b) against identity \(a)")
  #expect(fitted.state == "fitted" && identity.state == "untrained")
  // A ridge fit on the aux's own caches of an aux equal to the base recovers the identity.
  let selfFit = try KVPredict(aux: base).fitted(base, tokens: randomTokens(700, seed: 22))
  #expect(try selfFit.consistencyError(base, tokens: heldOut) < 0.05 * a)
}

@Test func theFLOPsCounterFollowsThePapersAccounting() throws {
  let base = try tinyLlama(seed: 19, layers: 8)
  let kvp = try KVPredict(aux: try DropLayers(keep: .fraction(0.5)).transform(base, data: nil))
  let maps = try kvp.maps(for: base)
  let tB = KVPredict.layerFlopsPerToken(base), tA = KVPredict.layerFlopsPerToken(kvp.aux), tP = 2 * maps.macsPerToken
  #expect(tA * 2 == tB)
  let head = 2 * base.config.tokenMACs(length: 1).head
  #expect(kvp.flops(base, promptTokens: 100, maps: maps) == 99 * (tA + tP) + tB + head)
  #expect(KVPredict.prefillFlops(base, promptTokens: 100) == 100 * tB + head)
}

@Suite(.serialized) struct KVPredictReleaseTests {
  /// SmolLM2 in f32 (the trainable decoder's runnable copy of the Q4_1 file), once.
  static let base: Result<LlamaModel, Error> = Result {
    let path = TestPaths.packageRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
    return try TrainableDecoder(model: try LlamaModel(path: path)).runnable(name: "smollm2-f32")
  }

  static func prompt(_ base: LlamaModel, _ n: Int) throws -> [Int] {
    let text = String(repeating: "The river flows past the old mill, where the miller grinds wheat for the village bakers. ", count: 40)
    let ids = base.tokenizer?.encode(text, parseSpecial: false, addBOS: false) ?? []
    return Array(ids.prefix(n))
  }

  @Test func identityKVPOnSmolLM2ReproducesTheBase() throws {
    let base = try Self.base.get()
    let kvp = try KVPredict(aux: base, initial: .identity)
    let ids = try Self.prompt(base, 200)
    let r = try kvp.predict(base, ids, room: 32)
    let (cache, logits) = try base.prefill(ids, extra: 32)
    for l in [0, 7, 15, 29] {
      let a = r.cache.rows(layer: l), b = cache.rows(layer: l)
      let scale = b.keys.map(abs).max() ?? 1
      // Check 4: predicted keys rotated at 0..T-2 are the keys the base caches, so they attend alike.
      #expect(maxDifference(a.keys, b.keys) <= 1e-5 * max(1, scale) && maxDifference(a.values, b.values) <= 1e-5 * max(1, scale), "layer \(l)")
    }
    let scale = logits.map(abs).max() ?? 1
    #expect(maxDifference(r.logits, logits) <= 1e-5 * max(1, scale))
    var s1 = try Sampler(), s2 = try Sampler()
    let viaKVP = try base.decode(cache: r.cache, logits: r.logits, maxTokens: 24, sampler: &s1)
    let plain = try base.decode(cache: cache, logits: logits, maxTokens: 24, sampler: &s2)
    #expect(viaKVP.tokens == plain.tokens)
  }

  @Test func smolLM2AuxRunsOnceAndFLOPsFollowThePaper() throws {
    let base = try Self.base.get()
    let aux = try DropLayers(keep: .fraction(0.5)).transform(base, data: nil)
    let kvp = try KVPredict(aux: aux)
    let maps = try kvp.maps(for: base)
    #expect(maps.parameterCount == 30 * 2 * (192 * 192 + 192))
    let tB = Double(KVPredict.layerFlopsPerToken(base)), tA = Double(KVPredict.layerFlopsPerToken(aux)), tP = Double(2 * maps.macsPerToken)
    let paper = (tA + tP) / tB
    #expect(abs(paper - 0.521) < 0.001, "\(paper)")
    for n in [128, 512, 2048] {
      let ratio = Double(kvp.flops(base, promptTokens: n, maps: maps)) / Double(KVPredict.prefillFlops(base, promptTokens: n))
      #expect(abs(ratio / paper - 1) <= 0.02, "\(n) tokens: \(ratio) against \(paper)")
    }
    let r = try kvp.predict(base, try Self.prompt(base, 128), room: 200)
    var sampler = try Sampler()
    _ = try base.decode(cache: r.cache, logits: r.logits, maxTokens: 150, sampler: &sampler)
    #expect(kvp.auxCalls == 1)
  }
}
