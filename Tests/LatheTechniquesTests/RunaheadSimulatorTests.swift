// KV-Runahead's simulator and analytic counts: the recurrences on hand examples, and kv-runahead.md checks 2, 3, 5
// and the paper's bound.

import Testing
@testable import LatheTechniques

/// Only attention costs: one nanosecond a score entry per layer, free links.
func attentionOnlyCosts(layers: Int = 4, skipsMaskedTiles: Bool = false) -> RunaheadCosts {
  RunaheadCosts(layers: layers, kvBytesPerToken: 1536, attentionPerEntry: 1e-9, skipsMaskedTiles: skipsMaskedTiles)
}

/// Llama-7B-shaped costs in FP16 at a sustained 150 TFLOP/s, as on the paper's A100s, linked at `bandwidth`.
func llamaCosts(layers: Int = 32, bandwidth: Double?, latency: Double = 0) -> RunaheadCosts {
  var costs = RunaheadCosts(layers: layers, dimension: 4096, queryHeads: 32, kvHeads: 32, headDimension: 128,
                            ffnWidth: 11008, vocabularySize: 32000, bytesPerElement: 2, flopsPerSecond: 150e12)
  costs.bandwidth = bandwidth; costs.latency = latency
  return costs
}

@Test(arguments: 1...8)
func runaheadMovesHalfTheBytesOfTSPWithEvenChunks(processes: Int) {
  let chunks = [Int](repeating: 96, count: processes), length = 96 * processes
  let kvr = RunaheadCounts.runaheadBytes(chunks: chunks, layers: 30, kvBytesPerToken: 1536)
  let tsp = RunaheadCounts.tspBytes(length: length, processes: processes, layers: 30, kvBytesPerToken: 1536)
  // Σ_{i<p−1} S_i = 96 · (1 + ... + (p−1)) = 96 · p(p−1)/2 tokens a layer.
  #expect(kvr == 30 * 1536 * 96 * processes * (processes - 1) / 2)
  #expect(tsp == 30 * 1536 * (processes - 1) * length)
  #expect(2 * kvr == tsp)
}

@Test func frontLoadedChunksSendMoreThanEvenOnes() {
  let even = RunaheadCounts.runaheadBytes(chunks: [500, 500], layers: 1, kvBytesPerToken: 1)
  let front = RunaheadCounts.runaheadBytes(chunks: [618, 382], layers: 1, kvBytesPerToken: 1)
  #expect(even == 500 && front == 618)
}

@Test(arguments: [[1000], [500, 500], [618, 382], [400, 300, 200, 100], [1, 1, 998]])
func runaheadAttentionMACsEqualTSPOnlyForOneProcess(chunks: [Int]) {
  let length = chunks.reduce(0, +)
  let kvr = RunaheadCounts.runaheadAttentionMACs(chunks: chunks, layers: 30, queryHeads: 9, headDimension: 64)
  let tsp = RunaheadCounts.tspAttentionMACs(length: length, layers: 30, queryHeads: 9, headDimension: 64)
  #expect(tsp == 2 * 9 * 64 * 30 * length * length)
  if chunks.count == 1 { #expect(kvr == tsp) } else { #expect(kvr < tsp) }
}

@Test func workedExampleScoresFourByFourThreeBySevenTwoByNine() throws {
  // The paper's figure: 9 tokens on 3 devices split 4/3/2.
  #expect(RunaheadCounts.prefixEnds([4, 3, 2]) == [4, 7, 9])
  let costs = RunaheadCosts(layers: 1, kvBytesPerToken: 1)
  #expect(costs.scoreEntries(queries: 4, keys: 4) == 16)
  #expect(costs.scoreEntries(queries: 3, keys: 7) == 21)
  #expect(costs.scoreEntries(queries: 2, keys: 9) == 18)
  #expect(RunaheadCounts.runaheadAttentionMACs(chunks: [4, 3, 2], layers: 1, queryHeads: 1, headDimension: 1) == 2 * (16 + 21 + 18))
  // With one second a score entry, each process's attention is its block's area.
  let sim = try RunaheadSimulator(costs: RunaheadCosts(layers: 1, kvBytesPerToken: 1, attentionPerEntry: 1))
  let run = try sim.runahead(chunks: [4, 3, 2])
  #expect((0..<3).map { run.timeline.seconds(.compute, process: $0) } == [16, 21, 18])
  // One layer with nothing before attention: every prefix is ready at once, and the first token waits only for
  // the last process (18), not for process 1 (21).
  #expect(run.ttft == 18)
}

@Test func simulatorFollowsTheRecurrenceOnAHandExample() throws {
  // Chunks [2, 1]: t_pre(c) = c, t_att = c·S (2·2 = 4 and 1·3 = 3), comm = λ = 0.5, head 0.25, two layers.
  // Layer 0: q_0 = 2, f_0 = 6; q_1 = 1, arr_1 = max(h_0 = 2, 0) + 0.5 = 2.5, f_1 = 5.5.
  // Layer 1: q_0 = 8, f_0 = 12; q_1 = 6.5, arr_1 = max(8, 2.5) + 0.5 = 8.5, f_1 = 11.5; TTFT = 11.75.
  let costs = RunaheadCosts(layers: 2, kvBytesPerToken: 4, prePerToken: 1, attentionPerEntry: 1, head: 0.25, latency: 0.5)
  let run = try RunaheadSimulator(costs: costs).runahead(chunks: [2, 1])
  #expect(run.ttft == 11.75 && run.timeline.end == 12)     // process 0 ends its last layer after the first token
  typealias S = PrefillTimeline.Segment
  #expect(run.timeline.processes[0] == [
    S(.compute, layer: 0, start: 0, end: 2), S(.compute, layer: 0, start: 2, end: 6), S(.send, layer: 0, start: 2, end: 2.5),
    S(.compute, layer: 1, start: 6, end: 8), S(.compute, layer: 1, start: 8, end: 12), S(.send, layer: 1, start: 8, end: 8.5)])
  #expect(run.timeline.processes[1] == [
    S(.compute, layer: 0, start: 0, end: 1), S(.wait, layer: 0, start: 1, end: 2.5), S(.compute, layer: 0, start: 2.5, end: 5.5),
    S(.compute, layer: 1, start: 5.5, end: 6.5), S(.wait, layer: 1, start: 6.5, end: 8.5), S(.compute, layer: 1, start: 8.5, end: 11.5),
    S(.compute, layer: nil, start: 11.5, end: 11.75)])
  #expect(run.bytesSent == 2 * 4 * 2)
  #expect(try RunaheadSimulator(costs: costs).runaheadTTFT(chunks: [2, 1]) == 11.75)
}

@Test func aBusyLinkCarriesOneMessageAtATime() throws {
  // Sends take far longer than compute: each link's messages queue, and a receiver's waits end when its message
  // arrives.
  var costs = llamaCosts(layers: 6, bandwidth: 1e9)
  costs.latency = 1e-3
  let run = try RunaheadSimulator(costs: costs).runahead(chunks: [900, 700, 500, 400])
  for (i, row) in run.timeline.processes.enumerated() {
    let sends = row.filter { $0.kind == .send }
    #expect(sends.count == (i < 3 ? 6 : 0))
    for (a, b) in zip(sends, sends.dropFirst()) { #expect(a.end <= b.start) }
    guard i > 0 else { continue }
    let arrivals = Set(run.timeline.processes[i - 1].filter { $0.kind == .send }.map(\.end))
    for wait in row where wait.kind == .wait { #expect(arrivals.contains(wait.end)) }
  }
}

@Test func tspFollowsItsRecurrence() throws {
  // C = 8 on p = 2: c = 4; per layer t_pre = 4, all-gather (p−1)·(λ + 4·B/BW) = 1 + 4·2/4 = 3, t_att = 4·8 = 32
  // dense even with tile skipping, t_post = 2·4 = 8: 47 a layer, two layers and a head of 1: 95.
  let costs = RunaheadCosts(layers: 2, kvBytesPerToken: 2, prePerToken: 1, attentionPerEntry: 1, postPerToken: 2, head: 1,
                            skipsMaskedTiles: true, latency: 1, bandwidth: 4)
  let run = try RunaheadSimulator(costs: costs).tsp(length: 8, processes: 2)
  #expect(run.ttft == 95 && run.chunks == [4, 4] && run.bytesSent == 2 * 2 * 1 * 8)
  #expect(run.timeline.processes[0].map(\.kind) == [.compute, .send, .compute, .compute, .send, .compute])
  #expect(run.timeline.processes[1].last == .init(.compute, layer: nil, start: 94, end: 95))
  #expect(run.timeline.seconds(.send, process: 0) == 6)
}

@Test func oneProcessIsTheSerialPrefillForBothMethods() throws {
  let sim = try RunaheadSimulator(costs: llamaCosts(bandwidth: 10e9))
  let kvr = try sim.runahead(chunks: [2048]), tsp = try sim.tsp(length: 2048, processes: 1)
  #expect(abs(kvr.ttft - tsp.ttft) <= 1e-12 * tsp.ttft)
  #expect(kvr.bytesSent == 0 && tsp.bytesSent == 0)
  #expect(kvr.timeline.processes[0].allSatisfy { $0.kind == .compute })
}

@Test func simulatorRejectsBadPartitionsAndCosts() throws {
  let sim = try RunaheadSimulator(costs: attentionOnlyCosts())
  #expect(throws: RunaheadError.self) { try sim.runahead(chunks: []) }
  #expect(throws: RunaheadError.self) { try sim.runahead(chunks: [3, 0, 2]) }
  #expect(throws: RunaheadError.self) { try sim.tsp(length: 3, processes: 4) }
  var bad = attentionOnlyCosts()
  bad.bandwidth = 0
  #expect(throws: RunaheadError.self) { try RunaheadSimulator(costs: bad) }
  bad = attentionOnlyCosts(); bad.postPerToken = -.infinity
  #expect(throws: RunaheadError.self) { try RunaheadSimulator(costs: bad) }
}

@Test(arguments: [[4096], [2048, 2048], [2600, 1496], [1400, 1100, 900, 696], [512, 512, 512, 512, 512, 512, 512, 512]])
func simulatedTTFTIsNonIncreasingInBandwidth(chunks: [Int]) throws {
  // Check 5: more bandwidth never hurts, for KVR and for TSP; nil (shared memory) is the limit.
  let length = chunks.reduce(0, +)
  var previousKVR = Double.infinity, previousTSP = Double.infinity
  for bandwidth in [1e8, 1e9, 3e9, 1e10, 3e10, 1e11, 3e11, nil] {
    let sim = try RunaheadSimulator(costs: llamaCosts(layers: 8, bandwidth: bandwidth))
    let kvr = try sim.runaheadTTFT(chunks: chunks), tsp = try sim.tsp(length: length, processes: chunks.count).ttft
    #expect(kvr <= previousKVR && tsp <= previousTSP)
    previousKVR = kvr; previousTSP = tsp
  }
}

@Test(arguments: [1, 2, 3, 4, 8])
func balancedAttentionOnlyTTFTMatchesThePapersBound(processes: Int) throws {
  // TTFT*(p) = α·(C²/2)·(1/p + 1/p²), α·C² = one process scoring the full C×C block in every layer. The bound takes
  // every process's work as the mean of even chunks; the balanced partition's blocks are a little larger (Σ c_i²
  // grows), by 1.9% at p = 2 and 2.7% at p = 4 and 8, so the simulator lies in [bound, 1.03·bound].
  let costs = attentionOnlyCosts(layers: 4), length = 1 << 16
  let chunks = try PartitionSearch.chunks(fractions: PartitionSearch.attentionBalanced(processes: processes, skipsMaskedTiles: false),
                                          length: length)
  let ttft = try RunaheadSimulator(costs: costs).runaheadTTFT(chunks: chunks)
  let alpha = Double(costs.layers) * costs.attentionPerEntry, c = Double(length), p = Double(processes)
  let bound = alpha * c * c / 2 * (1 / p + 1 / (p * p))
  #expect(ttft >= bound * (1 - 1e-9))
  #expect(ttft <= bound * (processes == 1 ? 1 + 1e-9 : 1.03))
  // Speed-up over one process approaches 2p²/(p+1).
  let serial = alpha * c * c
  #expect(abs(serial / ttft - 2 * p * p / (p + 1)) <= 0.03 * 2 * p * p / (p + 1))
}

/// TSP's TTFT over searched KVR's, both simulated with 32 Llama 7B-shaped layers.
func speedUpOverTSP(length: Int, processes: Int, bandwidth: Double?) throws -> Double {
  let sim = try RunaheadSimulator(costs: llamaCosts(bandwidth: bandwidth))
  let best = try PartitionSearch(processes: processes, granularity: 64).search(length: length) { try sim.runaheadTTFT(chunks: $0) }
  return try sim.tsp(length: length, processes: processes).ttft / best.seconds
}

@Test func speedUpOverTSPGrowsWithLengthAndProcessesAndAtLowBandwidth() throws {
  // The paper's shapes: more gain with longer prompts, more processes, slower links. At 300 GB/s and p = 4 the
  // simulator gives 1.05, 1.09, 1.14, 1.20 for 2k to 16k; at 10 GB/s 1.75 to 1.86 (the paper: ≈1.42 and ≈1.8).
  // Below 2k the gain is flat (linear work and bytes both grow as C), so the lengths start there. p = 8 would
  // search 5⁷ offsets a level: too slow for a debug test, so p stops at 6.
  let byLength = try [2048, 4096, 8192, 16384].map { try speedUpOverTSP(length: $0, processes: 4, bandwidth: 300e9) }
  #expect(zip(byLength, byLength.dropFirst()).allSatisfy { $0 < $1 }, "\(byLength)")
  let byProcesses = try [2, 4, 6].map { try speedUpOverTSP(length: 8192, processes: $0, bandwidth: 300e9) }
  #expect(zip(byProcesses, byProcesses.dropFirst()).allSatisfy { $0 < $1 }, "\(byProcesses)")
  for processes in [2, 4] {
    let slow = try speedUpOverTSP(length: 8192, processes: processes, bandwidth: 10e9)
    let fast = try speedUpOverTSP(length: 8192, processes: processes, bandwidth: 300e9)
    #expect(slow > fast)
  }
  #expect(byLength.allSatisfy { $0 > 1 })
}

@Test func simulatorRejectsCountsThatWouldOverflow() throws {
  let sim = try RunaheadSimulator(costs: RunaheadCosts(layers: 1 << 20, kvBytesPerToken: 1 << 30))
  #expect(throws: RunaheadError.self) { try sim.runahead(chunks: [1 << 20, 1 << 20]) }
  #expect(throws: RunaheadError.self) { try sim.tsp(length: 1 << 20, processes: 2) }
  #expect(throws: RunaheadError.self) { try sim.runaheadTTFT(chunks: [1 << 40]) }
  #expect(throws: RunaheadError.self) { try PartitionSearch.chunks(fractions: [1], length: 1 << 40) }
}
