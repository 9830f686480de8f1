// KV-Runahead's partition search: fractions to chunks, the level structure, and kv-runahead.md checks 5 and 6.

import Testing
@testable import LatheTechniques

@Test(arguments: [([0.618, 0.382], 1000), ([0.5, 0.5], 7), ([0.999, 0.0005, 0.0005], 3), ([0.0005, 0.0005, 0.999], 3),
                  ([0.3, 0.3, 0.4], 10), ([1, 1, 1, 1], 4), ([3, 2], 10), ([0.26, 0.26, 0.26, 0.22], 9)])
func chunksAreWholeAtLeastOneAndSumToTheLength(fractions: [Double], length: Int) throws {
  let chunks = try PartitionSearch.chunks(fractions: fractions, length: length)
  #expect(chunks.count == fractions.count && chunks.reduce(0, +) == length && chunks.allSatisfy { $0 >= 1 }, "\(chunks)")
}

@Test func chunksRoundEachFractionAndCloseWithTheLast() throws {
  #expect(try PartitionSearch.chunks(fractions: [0.618, 0.382], length: 1000) == [618, 382])
  #expect(try PartitionSearch.chunks(fractions: [3, 2], length: 10) == [6, 4])             // scaled to sum to 1
  // Chunk i ends at round(C·(r_0+…+r_i)), half to even: 2.34, 4.68, 7.02 → 2, 5, 7.
  #expect(try PartitionSearch.chunks(fractions: [0.26, 0.26, 0.26, 0.22], length: 9) == [2, 3, 2, 2])
  #expect(try PartitionSearch.chunks(fractions: [0.25, 0.25, 0.25, 0.25], length: 10) == [2, 3, 3, 2])
  #expect(try PartitionSearch.chunks(fractions: [0.45, 0.45, 0.1], length: 3) == [1, 1, 1])  // the last keeps a token
}

@Test func chunksRejectFewerTokensThanProcessesAndBadFractions() {
  #expect(throws: RunaheadError("3 tokens cannot fill 4 chunks of at least one token each")) {
    try PartitionSearch.chunks(fractions: [0.25, 0.25, 0.25, 0.25], length: 3)
  }
  #expect(throws: RunaheadError.self) { try PartitionSearch.chunks(fractions: [], length: 3) }
  #expect(throws: RunaheadError.self) { try PartitionSearch.chunks(fractions: [0.5, -0.5], length: 3) }
  #expect(throws: RunaheadError.self) { try PartitionSearch.chunks(fractions: [0, 0], length: 3) }
  #expect(throws: RunaheadError.self) { try PartitionSearch.chunks(fractions: [.nan, 1], length: 3) }
}

@Test func levelZeroScoresEveryCompositionInEighthsAndTheEvenSplit() throws {
  // p = 3: the compositions of 8 into 3 positive parts are C(7, 2) = 21; with the even split, 22 chunk lists. At
  // C = 64 and granularity 64 no refinement runs (64/16 < 64).
  var scored: [[Int]] = []
  let result = try PartitionSearch(processes: 3, granularity: 64).search(length: 64) { chunks in
    scored.append(chunks); return Double(chunks[0])        // prefers a small first chunk
  }
  #expect(scored.count == 22 && Set(scored).count == 22 && result.evaluations == 22)
  #expect(scored.contains([22, 21, 21]) && scored.allSatisfy { $0.allSatisfy { $0 % 8 == 0 } || $0 == [22, 21, 21] })
  #expect(result.chunks[0] == 8 && result.finestStep == 1.0 / 8)
}

@Test func levelsHalveTheStepUntilItMovesLessThanTheGranularity() throws {
  // C = 1024, granularity 16: steps 1/8, 1/16, ..., 1/64 (16 tokens); 1/128 would move 8.
  let result = try PartitionSearch(processes: 2).search(length: 1024) { abs(Double($0[0]) - 700) }
  #expect(result.finestStep == 1.0 / 64)
  #expect(result.chunks == [704, 320])                      // the nearest multiple of 16 tokens to 700
  #expect(try PartitionSearch(processes: 2, granularity: 1).search(length: 1024) { abs(Double($0[0]) - 700) }.chunks == [700, 324])
}

@Test func searchNeverScoresAChunkListTwice() throws {
  var scored: [[Int]] = []
  _ = try PartitionSearch(processes: 3).search(length: 100) { scored.append($0); return Double($0[2]) }
  #expect(Set(scored).count == scored.count)
}

@Test func searchRejectsBadSettingsAndScores() {
  #expect(throws: RunaheadError.self) { try PartitionSearch(processes: 0) }
  #expect(throws: RunaheadError.self) { try PartitionSearch(processes: 4, minimumFraction: 0.3) }
  #expect(throws: RunaheadError.self) { try PartitionSearch(processes: 2, initialStep: 0.3) }
  #expect(throws: RunaheadError.self) { try PartitionSearch(processes: 2, granularity: 0) }
  #expect(throws: RunaheadError.self) { try PartitionSearch(processes: 2).search(length: 100) { _ in .nan } }
  #expect(throws: RunaheadError.self) { try PartitionSearch(processes: 4).search(length: 3) { _ in 1 } }
}

@Test func manyProcessesStartFromAFinerGrid() throws {
  // p = 10 has no composition of 8 positive eighths: level 0 scores the C(15, 9) = 5005 in sixteenths, and even.
  var count = 0
  let result = try PartitionSearch(processes: 10, granularity: 1024).search(length: 1024) { count += 1; return Double($0.max() ?? 0) }
  #expect(count == 5006 && result.finestStep == 1.0 / 16)
  #expect(result.chunks == [Int](repeating: 103, count: 4) + [Int](repeating: 102, count: 6))      // even beats any sixteenths (max 128)
}

@Test(arguments: [(false, 0.618034), (true, 0.707107)])
func twoProcessSearchConvergesToTheAttentionBalance(skipsMaskedTiles: Bool, balance: Double) throws {
  // Check 5: free links, no linear cost. Dense blocks balance at c_0² = c_1·C, skipped tiles at c_0 = C/√2.
  let balanced = PartitionSearch.attentionBalanced(processes: 2, skipsMaskedTiles: skipsMaskedTiles)
  #expect(abs(balanced[0] - balance) < 1e-6)
  let sim = try RunaheadSimulator(costs: attentionOnlyCosts(skipsMaskedTiles: skipsMaskedTiles))
  let result = try PartitionSearch(processes: 2).search(length: 4096) { try sim.runaheadTTFT(chunks: $0) }
  #expect(abs(Double(result.chunks[0]) / 4096 - balance) <= result.finestStep, "\(result.chunks)")
}

@Test(arguments: [false, true])
func attentionBalancedPartitionsGiveEqualWork(skipsMaskedTiles: Bool) {
  let costs = attentionOnlyCosts(skipsMaskedTiles: skipsMaskedTiles)
  for p in [1, 2, 3, 5, 8] {
    let r = PartitionSearch.attentionBalanced(processes: p, skipsMaskedTiles: skipsMaskedTiles)
    #expect(abs(r.reduce(0, +) - 1) < 1e-12 && zip(r, r.dropFirst()).allSatisfy { $0 > $1 })
    var end = 0.0
    let work = r.map { c in end += c; return costs.scoreEntries(queries: c, keys: end) }
    #expect(work.allSatisfy { abs($0 - work[0]) < 1e-9 })
  }
}

@Test(arguments: [(2, 300e9), (2, 10e9), (3, 300e9), (3, 10e9), (3, nil)])
func hierarchicalSearchIsWithinOnePercentOfExhaustive(processes: Int, bandwidth: Double?) throws {
  // Check 5, on Llama 7B-shaped costs; the exhaustive search uses the hierarchy's finest step.
  let sim = try RunaheadSimulator(costs: llamaCosts(layers: 8, bandwidth: bandwidth))
  let search = try PartitionSearch(processes: processes)
  let best = try search.search(length: 2048) { try sim.runaheadTTFT(chunks: $0) }
  let reference = try search.exhaustive(length: 2048, step: best.finestStep) { try sim.runaheadTTFT(chunks: $0) }
  #expect(best.finestStep == 1.0 / 128)
  #expect(best.seconds <= reference.seconds * 1.01)
  #expect(best.evaluations < reference.evaluations / 2)
}

@Test func exhaustiveSearchScoresEveryComposition() throws {
  var count = 0
  let result = try PartitionSearch(processes: 3).exhaustive(length: 320, step: 1.0 / 32) { count += 1; return -Double($0[1]) }
  #expect(count == 465 && result.chunks == [10, 300, 10])          // C(31, 2) compositions of 32 into 3 parts ≥ 1
}

@Test func searchedPartitionsFrontLoadOnceAttentionDominates() throws {
  // Check 6: with long prompts on fast links attention dominates, and the searched chunks shrink from first to last.
  let sim = try RunaheadSimulator(costs: llamaCosts(layers: 8, bandwidth: 300e9))
  for length in [8192, 16384] {
    for processes in [2, 3, 4] {
      let chunks = try PartitionSearch(processes: processes).search(length: length) { try sim.runaheadTTFT(chunks: $0) }.chunks
      #expect(zip(chunks, chunks.dropFirst()).allSatisfy { $0 >= $1 }, "\(chunks)")
      #expect(chunks[0] > chunks[processes - 1])
    }
  }
}

@Test func medianScoreKeepsTheMiddleRun() throws {
  var runs = [5.0, 1.0, 3.0, 9.0, 2.0][...]
  let score = PartitionSearch.median(of: 5) { _ in runs.popFirst() ?? 0 }
  #expect(try score([1]) == 3)
  runs = [4.0, 1.0, 3.0, 2.0][...]
  #expect(try PartitionSearch.median(of: 4) { _ in runs.popFirst() ?? 0 }([1]) == 2.5)
}

@Test func searchRefinesAtMostEightProcesses() throws {
  #expect(throws: RunaheadError.self) { try PartitionSearch(processes: 17) }
  #expect(throws: RunaheadError.self) { try PartitionSearch(processes: 9).search(length: 4096) { _ in 1 } }
  #expect(try PartitionSearch(processes: 9, granularity: 4096).search(length: 4096) { _ in 1 }.chunks.count == 9)
}
