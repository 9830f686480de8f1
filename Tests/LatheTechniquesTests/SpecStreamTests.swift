// Speculative Streaming on tiny random Llamas (the spec's checks 1-6 that need no training): the text equals greedy
// decoding whatever the streams draft; streams leave the main rows' logits alone; the masks let each row see what
// the paper says; trees have 1 + Σ k^g nodes; the cache after a verified tree equals decoding its accepted tokens
// one by one; calls and the call reduction add up, and are 1 per token exactly when every draft is wrong.

import Foundation
import Testing
@testable import LatheTechniques
import LatheModels
import LatheNN
import LatheTensor

private func randomTokens(_ n: Int, seed: UInt64, vocab: Int = 40) -> [Int] {
  var state = seed
  return (0..<n).map { _ in
    state = state &* 6364136223846793005 &+ 1442695040888963407
    return Int((state >> 33) % UInt64(vocab))
  }
}

private func maxDifference(_ a: [Float], _ b: [Float]) -> Float { zip(a, b).map { abs($0 - $1) }.max() ?? .infinity }

/// Greedy text of `model` after `prompt`, the plain way.
private func greedy(_ model: LlamaModel, _ prompt: [Int], tokens: Int) throws -> [Int] {
  let (cache, logits) = try model.prefill(prompt, extra: tokens)
  var sampler = try Sampler()
  return try model.decode(cache: cache, logits: logits, maxTokens: tokens, sampler: &sampler).tokens
}

/// `ownPrefill`: through the strategy's serial prefill (streams at the prompt's last position draft the first tree).
private func specstream(_ model: LlamaModel, _ ss: SpecStream, _ prompt: [Int], tokens: Int, ownPrefill: Bool = false) throws
  -> (tokens: [Int], counters: SpecStream.Counters) {
  let before = ss.totals
  let (cache, logits) = ownPrefill ? try ss.serialPrefill(model, prompt, extra: tokens) : try model.prefill(prompt, extra: tokens)
  var sampler = try Sampler()
  let r = try ss.decode(model, context: prompt, cache: cache, logits: logits, maxTokens: tokens, sampler: &sampler, stop: []) { _, _ in }
  var c = ss.totals
  c.calls -= before.calls; c.tokens -= before.tokens; c.accepted -= before.accepted; c.treeSizes.removeFirst(before.treeSizes.count)
  c.fullTreeSizes.removeFirst(before.fullTreeSizes.count); c.streamPasses -= before.streamPasses
  return (r.generation.tokens, c)
}

/// Random stream embeddings, so that the streams draft something other than the main row's choice.
private func withRandomStreams(_ ss: SpecStream, dimension d: Int, seed: UInt64) throws -> SpecStream {
  ss.embeddings = try Tensor.randn([ss.streams * d], seed: seed).scalars.map { $0 * 0.5 }
  return ss
}

@Test(arguments: [(1, 1, 1), (2, 2, 2), (3, 2, 1), (4, 1, 3), (4, 3, 2)])
func specstreamTextIsGreedyWhateverTheStreamsDraft(streams: Int, topK: Int, msaLayers: Int) throws {
  let model = try tinyLlama(seed: 11)
  for (p, prompt) in [randomTokens(9, seed: 1), randomTokens(30, seed: 2), [7]].enumerated() {
    let reference = try greedy(model, prompt, tokens: 24)
    // Streams as they come (random embeddings): mostly wrong drafts.
    let ss = try withRandomStreams(try SpecStream(streams: streams, msaLayers: msaLayers, topK: topK), dimension: 16, seed: UInt64(p + 5))
    let plain = try specstream(model, ss, prompt, tokens: 24)
    #expect(plain.tokens == reference, "gamma \(streams), k \(topK), N_s \(msaLayers), prompt \(p)")
    let after = try specstream(model, try ss.variant(streamsOn: "accepted"), prompt, tokens: 24)
    #expect(after.tokens == reference, "streams on the accepted node, gamma \(streams), k \(topK), N_s \(msaLayers), prompt \(p)")
    #expect(after.counters.streamPasses <= after.counters.calls - 1 && after.counters.streamPasses >= after.counters.treeSizes.count - 1)
    // The strategy's own prefill runs the streams at the last prompt position: the first tree is drafted, not the
    // root alone, and the text is still greedy's.
    for on in ["tree", "accepted"] {
      let own = try specstream(model, try ss.variant(streamsOn: on), prompt, tokens: 24, ownPrefill: true)
      #expect(own.tokens == reference, "own prefill, streams on \(on), gamma \(streams), k \(topK), N_s \(msaLayers), prompt \(p)")
      #expect((own.counters.fullTreeSizes.first ?? 0) > 1, "levels trimmed only where the context ends")
      #expect(plain.counters.fullTreeSizes.first == 1)
    }
    // An oracle puts the true continuation at level g's last place: most drafts accepted, deep paths compacted.
    let oracle = try SpecStream(streams: streams, msaLayers: msaLayers, topK: topK)
    let full = prompt + reference
    oracle.draftOverride = { sofar, levels in
      levels.enumerated().map { g, level in
        let at = sofar.count + g
        guard at < full.count else { return level }
        return Array(level.filter { $0 != full[at] }.prefix(topK - 1)) + [full[at]]
      }
    }
    let fast = try specstream(model, oracle, prompt, tokens: 24)
    #expect(fast.tokens == reference, "oracle drafts, gamma \(streams), k \(topK), prompt \(p)")
    #expect(fast.counters.calls < fast.counters.tokens && fast.counters.callReduction > 1.5)
    #expect(fast.counters.accepted > 0)
  }
}

@Test func insertingStreamsLeavesTheMainRowsAlone() throws {
  let model = try tinyLlama(seed: 12)
  let prompt = randomTokens(20, seed: 3)
  let plainCache = try model.makeCache(capacity: 64)
  let plain = try model.forward(prompt, cache: plainCache, allLogits: true)
  let ss = try withRandomStreams(try SpecStream(streams: 3, msaLayers: 2), dimension: 16, seed: 4)
  // Streams on every row of a causal prompt.
  let n = prompt.count, rows = Array(0..<n)
  var hooks = ForwardHooks()
  hooks.streams = ForwardHooks.Streams(layer: 2, count: 3, embeddings: ss.embeddings ?? [], rows: rows,
                                       positions: rows.flatMap { [$0, $0, $0] },
                                       mask: SpecStream.streamMask(mainRows: n, start: 0, streams: 3, rows: rows, sees: { $1 <= $0 }))
  let cache = try model.makeCache(capacity: 64)
  let all = try model.forward(prompt, cache: cache, allLogits: true, hooks: hooks)
  #expect(all.count == n * 4 * 40)
  #expect(maxDifference(Array(all.prefix(n * 40)), plain) < 1e-5)
  #expect(cache.count == n)
  for l in 0..<4 {
    #expect(maxDifference(cache.rows(layer: l).keys, plainCache.rows(layer: l).keys) < 1e-5)
    #expect(maxDifference(cache.rows(layer: l).values, plainCache.rows(layer: l).values) < 1e-5)
  }
  // Stream rows do move: their logits are not the main rows'.
  #expect(maxDifference(Array(all[(n * 40)..<(n * 40 + 40)]), Array(plain.prefix(40))) > 1e-3)
}

@Test func streamMaskSeesTheMainPrefixAndEarlierStreamsOfItsPosition() {
  let n = 5, γ = 3, start = 2
  let mask = SpecStream.streamMask(mainRows: n, start: start, streams: γ, rows: Array(0..<n), sees: { $1 <= $0 })
  let total = n + n * γ, width = start + total
  #expect(mask.count == total * width)
  for t in 0..<n {
    for j in 0..<γ {
      let row = n + t * γ + j
      let open = Set((0..<width).filter { mask[row * width + $0] == 0 })
      let expected = Set(0..<start).union((0...t).map { start + $0 }).union((0...j).map { start + n + t * γ + $0 })
      #expect(open == expected, "stream \(j + 1) at \(t)")
    }
    // A main row never sees a stream.
    let open = Set((0..<width).filter { mask[t * width + $0] == 0 })
    #expect(open == Set(0..<start).union((0...t).map { start + $0 }))
  }
}

@Test func treesHaveOnePlusSumOfPowersNodesAndMasksSelectAncestors() throws {
  for (k, γ) in [(1, 4), (2, 3), (3, 4), (4, 2)] {
    let levels = (0..<γ).map { g in (0..<k).map { 10 + g * 5 + $0 } }
    let tree = SpecStream.DraftTree(root: 3, levels: levels)
    #expect(tree.count == 1 + (1...γ).reduce(0) { $0 + Int(pow(Double(k), Double($1))) })
    #expect(tree.count == SpecStream.treeSize(topK: k, levels: γ))
    let start = 7
    let mask = SpecStream.treeMask(tree, start: start)
    for i in 0..<tree.count {
      let open = Set((0..<(start + tree.count)).filter { mask[i * (start + tree.count) + $0] == 0 })
      var ancestors = Set([i]), node = i
      while tree.parents[node] >= 0 { node = tree.parents[node]; ancestors.insert(node) }
      #expect(open == Set(0..<start).union(ancestors.map { start + $0 }))
      #expect(tree.path(to: i).count == tree.depths[i] + 1)
    }
    // The stream layers run (1 + γ)·|tree| rows.
    let streamMask = SpecStream.streamMask(mainRows: tree.count, start: start, streams: γ, rows: Array(0..<tree.count), sees: tree.sees)
    #expect(streamMask.count == (1 + γ) * tree.count * (start + (1 + γ) * tree.count))
  }
}

@Test func theCacheAfterATreeEqualsDecodingTheAcceptedTokensOneByOne() throws {
  let model = try tinyLlama(seed: 13)
  let prompt = randomTokens(15, seed: 6)
  let reference = try greedy(model, prompt, tokens: 6)
  let ss = try withRandomStreams(try SpecStream(streams: 3, msaLayers: 2, topK: 2), dimension: 16, seed: 7)
  let (cache, _) = try model.prefill(prompt, extra: 64)
  // A tree whose level g holds a wrong token and the true one: the accepted path is root + 3 tokens.
  let tree = SpecStream.DraftTree(root: reference[0], levels: (1...3).map { [(reference[$0] + 1) % 40, reference[$0]] })
  let start = cache.count
  let call = try ss.call(model, tree: tree, cache: cache, levels: 3)
  var node = 0, path = [0]
  while let child = tree.children(of: node).first(where: { tree.tokens[$0] == Sampler.argmax(Array(call.main[(node * 40)..<((node + 1) * 40)])) }) {
    node = child; path.append(child)
  }
  #expect(path.count == 4)
  try cache.compact(from: start, keeping: path)
  let oneByOne = try model.makeCache(capacity: 64)
  _ = try model.forward(prompt, cache: oneByOne)
  for t in reference.prefix(4) { _ = try model.forward([t], cache: oneByOne) }
  #expect(cache.count == oneByOne.count)
  for l in 0..<4 {
    #expect(maxDifference(cache.rows(layer: l).keys, oneByOne.rows(layer: l).keys) < 1e-5)
    #expect(maxDifference(cache.rows(layer: l).values, oneByOne.rows(layer: l).values) < 1e-5)
  }
}

@Test(arguments: [2, 4])
func theAcceptedNodesStreamsRunAfterVerificationDraftWhatTheTreeCallsDraft(msaLayers: Int) throws {
  // N_s 4 of 4 layers: the streams start from the token embeddings.
  let model = try tinyLlama(seed: 16)
  let prompt = randomTokens(11, seed: 10)
  let reference = try greedy(model, prompt, tokens: 6)
  let ss = try withRandomStreams(try SpecStream(streams: 3, msaLayers: msaLayers, topK: 2), dimension: 16, seed: 12)
  let tree = SpecStream.DraftTree(root: reference[0], levels: (1...3).map { [(reference[$0] + 1) % 40, reference[$0]] })
  let (cache, _) = try model.prefill(prompt, extra: 64)
  let (other, _) = try model.prefill(prompt, extra: 64)
  let start = cache.count
  let call = try ss.call(model, tree: tree, cache: cache, levels: 3)
  let verified = try ss.verify(model, tree: tree, cache: other)
  #expect(maxDifference(call.main, verified.main) < 1e-4, "streams leave the main rows alone")
  for accepted in 1...3 {
    // The path root..level `accepted`'s true token, its last node's drafts both ways.
    var path = [0]
    for _ in 1...accepted { path.append(tree.children(of: path[path.count - 1]).last ?? 0) }
    let node = path[path.count - 1], vocab = 40, d = 16
    #expect(tree.tokens[node] == reference[accepted])
    let inCall = try model.headLogits(hidden: Array(call.streamHidden[(node * 3 * d)..<((node + 1) * 3 * d)]), rows: 3)
    let copy = try model.prefill(prompt, extra: 64).cache
    _ = try ss.verify(model, tree: tree, cache: copy)
    try copy.compact(from: start, keeping: path)
    let later = try ss.acceptedStreams(model, hidden: Array(verified.hidden[(node * d)..<((node + 1) * d)]), cache: copy, levels: 3)
    #expect(copy.count == start + path.count, "the stream rows leave the cache as it was")
    #expect(later.count == 3)
    #expect(maxDifference(inCall, later.flatMap { $0 }) < 1e-4, "accepted \(accepted), N_s \(msaLayers)")
    #expect(later.allSatisfy { $0.count == vocab })
  }
}

@Test func aLongPromptsStreamsRunAfterTheRestOfItAndDraftTheSame() throws {
  let model = try tinyLlama(seed: 17)
  let prompt = randomTokens(40, seed: 13)
  let reference = try greedy(model, prompt, tokens: 12)
  let whole = try withRandomStreams(try SpecStream(streams: 3, msaLayers: 2, topK: 2), dimension: 16, seed: 14)
  let split = try whole.variant()
  split.wholePromptRows = 8
  let a = try specstream(model, whole, prompt, tokens: 12, ownPrefill: true)
  let b = try specstream(model, split, prompt, tokens: 12, ownPrefill: true)
  #expect(a.tokens == reference && b.tokens == reference)
  #expect(a.counters == b.counters, "the same drafts, so the same trees and calls")
  #expect((b.counters.fullTreeSizes.first ?? 0) > 1)
}

@Test func callsAreOnePerTokenExactlyWhenEveryDraftIsWrong() throws {
  let model = try tinyLlama(seed: 14)
  let prompt = randomTokens(12, seed: 8)
  let reference = try greedy(model, prompt, tokens: 20)
  let full = prompt + reference
  let ss = try SpecStream(streams: 4, msaLayers: 2, topK: 2)
  ss.draftOverride = { sofar, levels in
    levels.enumerated().map { g, level in
      let at = sofar.count + g
      guard at < full.count else { return level }
      return [(full[at] + 1) % 40, (full[at] + 2) % 40]
    }
  }
  let wrong = try specstream(model, ss, prompt, tokens: 20)
  #expect(wrong.tokens == reference)
  #expect(wrong.counters.calls == wrong.counters.tokens && wrong.counters.callReduction == 1)
  #expect(wrong.counters.accepted == 0)
  let free = try specstream(model, try withRandomStreams(try SpecStream(streams: 4, msaLayers: 2, topK: 3), dimension: 16, seed: 9), prompt, tokens: 20)
  #expect(free.counters.calls <= free.counters.tokens && free.counters.callReduction >= 1)
}

@Test func badSpecstreamArgumentsAreErrorsNamingTheField() throws {
  #expect(throws: TechniqueError.self) { try SpecStream(streams: 0) }
  #expect(throws: TechniqueError.self) { try SpecStream(topK: 0) }
  #expect(throws: TechniqueError.self) { try SpecStream(streamPosition: "later") }
  #expect(throws: TechniqueError.self) { try SpecStream(streamsOn: "all") }
  let model = try tinyLlama(seed: 15)
  let (cache, logits) = try model.prefill([1, 2, 3], extra: 8)
  var sampler = try Sampler()
  #expect(throws: TechniqueError.self) {
    try SpecStream(msaLayers: 9).decode(model, context: [1, 2, 3], cache: cache, logits: logits, maxTokens: 4, sampler: &sampler, stop: []) { _, _ in }
  }
}

// MARK: training (check 6's parameter counts, check 7)

/// Prompt-and-answer examples of random tokens: a prompt of `prompt` tokens, an answer of `answer`.
private func answerExamples(_ count: Int, prompt: Int, answer: Int, seed: UInt64) -> [AnswerExample] {
  (0..<count).map { i in AnswerExample(tokens: randomTokens(prompt + answer, seed: seed &+ UInt64(i)), answerStart: prompt) }
}

@Test func theTrainingForwardWithStreamsIsTheInferenceForwardWithStreams() throws {
  for position in ["same", "offset"] {
    let model = try tinyLlama(seed: 31)
    let ss = try withRandomStreams(try SpecStream(streams: 3, msaLayers: 2, streamPosition: position), dimension: 16, seed: 5)
    let example = AnswerExample(tokens: randomTokens(12, seed: 8), answerStart: 6)
    let session = try SpecStream.Session(ss, model: model, examples: [example])
    let rows = [2, 5, 9]
    let trained = try session.decoder.head(try session.hidden(example: 0, streamsAt: rows)).value.scalars
    // The inference forward: the same rows get streams at layer N − N_s.
    let t = example.tokens.count, γ = 3, vocab = 40
    var hooks = ForwardHooks(batchedRows: true)
    hooks.streams = ForwardHooks.Streams(layer: 2, count: γ, embeddings: ss.embeddings ?? [], rows: rows,
                                         positions: rows.flatMap { r in (1...γ).map { r + (position == "offset" ? $0 : 0) } },
                                         mask: SpecStream.streamMask(mainRows: t, start: 0, streams: γ, rows: rows, sees: { $1 <= $0 }))
    let inference = try model.forward(example.tokens, cache: try model.makeCache(capacity: t + rows.count * γ), allLogits: true, hooks: hooks)
    #expect(trained.count == inference.count)
    #expect(maxDifference(trained, inference) < 1e-3, "streamPosition \(position)")
    #expect(trained.count == (t + rows.count * γ) * vocab)
  }
}

@Test func withNoStreamLossTheStreamEmbeddingsGetNoGradient() throws {
  let model = try tinyLlama(seed: 32)
  let ss = try SpecStream(streams: 2, msaLayers: 2, alpha: [1.0, 0.0], pruneRank: 0)
  let session = try SpecStream.Session(ss, model: model, examples: answerExamples(2, prompt: 5, answer: 8, seed: 40))
  let (loss, terms) = try session.loss(example: 0, streamRows: true)
  try loss.backward()
  #expect(terms.streams.allSatisfy { $0.isFinite }, "the stream rows ran")
  let g = try session.embeddings.grad.map { try $0.contiguous().scalars } ?? []
  #expect(g.allSatisfy { $0 == 0 }, "stream embeddings got a gradient with alpha_j = 0")
  let adapterGradient = session.decoder.adapterParameters.compactMap(\.grad).map { t in t.scalars.map(abs).max() ?? 0 }.max() ?? 0
  #expect(adapterGradient > 0, "the adapters train on the next-token loss")
  // With alpha_j > 0 the embeddings do get one.
  let ss2 = try SpecStream(streams: 2, msaLayers: 2, alpha: [1.0, 0.1], pruneRank: 0)
  let session2 = try SpecStream.Session(ss2, model: model, examples: answerExamples(2, prompt: 5, answer: 8, seed: 40))
  try session2.loss(example: 0).0.backward()
  #expect((session2.embeddings.grad?.scalars.map(abs).max() ?? 0) > 0)
}

@Test func eachStreamsLossFallsOnAnOverfitBatch() throws {
  let model = try tinyLlama(seed: 33)
  let ss = try SpecStream(streams: 3, msaLayers: 2, alpha: [1.0, 1.0], pruneRank: 4, loraRank: 8)
  let session = try SpecStream.Session(ss, model: model, examples: answerExamples(2, prompt: 4, answer: 10, seed: 50))
  let before = try session.evaluate([0, 1])
  var recipe = Recipe()
  recipe.steps = 60; recipe.batch = 2; recipe.lr = 2e-2
  let record = try ss.train(session, recipe: recipe)
  let after = try session.evaluate([0, 1])
  for g in 0...3 { #expect(after.losses[g] < before.losses[g] * 0.8, "group \(g): \(before.losses[g]) -> \(after.losses[g])") }
  #expect(record.losses.last ?? .infinity < record.losses[0])
  #expect(ss.state == "trained" && ss.embeddings?.count == 3 * 16 && ss.pruner != nil)
  // The trained value still decodes exactly greedy on the model.
  let prompt = Array(session.examples[0].tokens.prefix(4))
  let streamed = try specstream(model, ss, prompt, tokens: 10).tokens, plain = try greedy(model, prompt, tokens: 10)
  #expect(streamed == plain)
}

@Test func extraParametersAreStreamsTimesDPlusTwoThetaD() throws {
  #expect(try SpecStream().extraParameters(dimension: 576) == 11_520)
  #expect(try SpecStream(streams: 4, pruneRank: 0).extraParameters(dimension: 576) == 2_304)
}

@Test func answerExamplesNeedAPromptAndAnAnswer() throws {
  let model = try tinyLlama(seed: 34)
  #expect(throws: TechniqueError.self) { try SpecStream.Session(try SpecStream(msaLayers: 4), model: model, examples: answerExamples(1, prompt: 3, answer: 3, seed: 1)) }
  #expect(throws: (any Error).self) {
    try SpecStream.Session(try SpecStream(msaLayers: 2), model: model, examples: [AnswerExample(tokens: [1, 2, 3], answerStart: 3)])
  }
  #expect(throws: (any Error).self) {
    try SpecStream.Session(try SpecStream(msaLayers: 2), model: model, examples: [AnswerExample(tokens: [1, 2, 99], answerStart: 1)])
  }
}

// MARK: pruning (check 8) and Medusa (checks 1 and 6)

@Test func pruningKeepsTheRootNeverGrowsTheTreeAndAtThresholdZeroKeepsAll() throws {
  let tree = SpecStream.DraftTree(root: 7, levels: [[1, 2, 3], [4, 5], [6, 8]])
  var state: UInt64 = 3
  let probability = (0..<tree.count).map { _ -> Double in
    state = state &* 6364136223846793005 &+ 1442695040888963407
    return Double(state >> 11) / Double(UInt64(1) << 53)
  }
  #expect(SpecStream.prune(tree, threshold: 0) { _, c in probability[c] } == Array(0..<tree.count))
  for threshold in [0.05, 0.3, 0.6, 0.99, 1.0] {
    let kept = SpecStream.prune(tree, threshold: threshold) { _, c in probability[c] }
    #expect(kept.first == 0 && kept.count <= tree.count)
    for i in kept where i > 0 {
      #expect(kept.contains(tree.parents[i]), "a kept node's parent is kept")
      #expect(probability[i] >= threshold)
    }
    // Every dropped child of a kept node is below the threshold.
    for i in 1..<tree.count where kept.contains(tree.parents[i]) && !kept.contains(i) { #expect(probability[i] < threshold) }
  }
}

@Test func withPruningTheTextIsStillGreedyAndTreesShrink() throws {
  let model = try tinyLlama(seed: 35)
  let ss = try SpecStream(streams: 3, msaLayers: 2, topK: 3, alpha: [1.0, 1.0], pruneRank: 4, pruneThreshold: 0.2, loraRank: 4)
  let session = try SpecStream.Session(ss, model: model, examples: answerExamples(2, prompt: 4, answer: 8, seed: 60))
  var recipe = Recipe()
  recipe.steps = 5; recipe.batch = 2; recipe.lr = 1e-2
  _ = try ss.train(session, recipe: recipe)
  for seed in [1, 2, 3] as [UInt64] {
    let prompt = randomTokens(6, seed: 70 + seed)
    let (tokens, counters) = try specstream(model, ss, prompt, tokens: 16)
    #expect(try tokens == greedy(model, prompt, tokens: 16))
    #expect(zip(counters.treeSizes, counters.fullTreeSizes).allSatisfy { $0 >= 1 && $0 <= $1 })
    #expect(counters.treeSizes.reduce(0, +) < counters.fullTreeSizes.reduce(0, +), "a threshold of 0.2 over 3 children prunes something")
  }
  let unpruned = try SpecStream(streams: 3, msaLayers: 2, topK: 3, pruneRank: 4, pruneThreshold: 0)
  unpruned.embeddings = ss.embeddings; unpruned.pruner = ss.pruner
  let (_, c) = try specstream(model, unpruned, randomTokens(6, seed: 71), tokens: 12)
  #expect(c.treeSizes == c.fullTreeSizes)
}

@Test func medusaTextIsGreedyAndItsParametersAreHeadsTimesDSquaredPlusDV() throws {
  #expect(try Medusa(heads: 4).extraParameters(dimension: 576, vocabulary: 49_152) == 114_573_312)
  let model = try tinyLlama(seed: 36)
  let medusa = try Medusa(heads: 3, topK: 2)
  var recipe = Recipe()
  recipe.steps = 20; recipe.batch = 2; recipe.lr = 1e-2
  let record = try medusa.train(model, examples: answerExamples(3, prompt: 4, answer: 10, seed: 80), recipe: recipe)
  #expect(record.losses.last ?? .infinity < record.losses[0])
  for seed in [1, 2, 3] as [UInt64] {
    let prompt = randomTokens(5, seed: 90 + seed)
    for own in [false, true] {
      let (cache, logits) = own ? try medusa.serialPrefill(model, prompt, extra: 16) : try model.prefill(prompt, extra: 16)
      #expect(own ? logits == (try model.prefill(prompt, extra: 16)).logits : true, "the heads' prefill is the model's")
      let trees = medusa.totals.fullTreeSizes.count
      var sampler = try Sampler()
      let r = try medusa.decode(model, context: prompt, cache: cache, logits: logits, maxTokens: 16, sampler: &sampler, stop: []) { _, _ in }
      #expect(try r.generation.tokens == greedy(model, prompt, tokens: 16))
      #expect(medusa.totals.fullTreeSizes[trees] == (own ? SpecStream.treeSize(topK: 2, levels: 3) : 1), "the first tree drafted from the prefill")
    }
  }
  #expect(medusa.totals.calls <= medusa.totals.tokens + medusa.totals.decodes && medusa.totals.callReduction >= 1)
  #expect(throws: TechniqueError.self) {
    let (cache, logits) = try model.prefill([1, 2], extra: 4)
    var sampler = try Sampler()
    _ = try Medusa().decode(model, context: [1, 2], cache: cache, logits: logits, maxTokens: 4, sampler: &sampler, stop: []) { _, _ in }
  }
}
