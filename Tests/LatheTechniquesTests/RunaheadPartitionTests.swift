// KV-Runahead partitions (even, searched, table, fractions) and the simulate-mode prefill and table search.

import Testing
@testable import LatheTechniques

@Test func evenChunksGiveTheRemainderToTheLastProcesses() throws {
  #expect(try RunaheadPartition.even.chunks(length: 10, processes: 3) { _ in 0 } == [3, 3, 4])
  #expect(try RunaheadPartition.even.chunks(length: 11, processes: 3) { _ in 0 } == [3, 4, 4])
  #expect(try RunaheadPartition.even.chunks(length: 4096, processes: 4) { _ in 0 } == [1024, 1024, 1024, 1024])
}

@Test func eachPartitionGivesItsOwnChunks() throws {
  var table = try PartitionTable(processes: 2)
  try table.insert(length: 1000, fractions: [0.6, 0.4])
  try table.insert(length: 2000, fractions: [0.7, 0.3])
  #expect(try RunaheadPartition.table(table).chunks(length: 1500, processes: 2) { _ in 0 } == [975, 525])
  #expect(try RunaheadPartition.fractions([3, 1]).chunks(length: 8, processes: 2) { _ in 0 } == [6, 2])
  // Searched: the score prefers a first chunk of 300 tokens.
  let chunks = try RunaheadPartition.searched.chunks(length: 1024, processes: 2) { abs(Double($0[0]) - 300) }
  #expect(chunks == [304, 720])
}

@Test func partitionsRejectTheWrongNumberOfProcesses() throws {
  let table = try PartitionTable(processes: 3)
  #expect(throws: RunaheadError.self) { try RunaheadPartition.table(table).chunks(length: 100, processes: 2) { _ in 0 } }
  #expect(throws: RunaheadError.self) { try RunaheadPartition.fractions([1, 1, 1]).chunks(length: 100, processes: 2) { _ in 0 } }
  #expect(throws: RunaheadError.self) {
    try RunaheadPartition.searched.chunks(length: 100, processes: 2, search: PartitionSearch(processes: 3)) { _ in 0 }
  }
  #expect(throws: RunaheadError.self) { try RunaheadPartition.even.chunks(length: 2, processes: 3) { _ in 0 } }
}

@Test func simulatedPrefillsOrderAsThePaperDoes() throws {
  // KVR-S ≤ KVR-E, and the table's prediction (KVR-P) is close to KVR-S; TSP is slowest on a long prompt.
  let sim = try RunaheadSimulator(costs: llamaCosts(layers: 8, bandwidth: 300e9))
  let searched = try sim.prefill(length: 8192, processes: 4)
  let even = try sim.prefill(length: 8192, processes: 4, partition: .even)
  let table = try sim.table(processes: 4, lengths: [4096, 16384])
  let predicted = try sim.prefill(length: 8192, processes: 4, partition: .table(table))
  let tsp = try sim.tsp(length: 8192, processes: 4)
  #expect(searched.ttft <= even.ttft && even.ttft < tsp.ttft)
  #expect(predicted.ttft <= searched.ttft * 1.02)
  #expect(searched.chunks.reduce(0, +) == 8192 && even.chunks == [2048, 2048, 2048, 2048])
  #expect(table.entries.map(\.length) == [4096, 16384])
  #expect(throws: RunaheadError.self) { try sim.table(processes: 4, lengths: []) }
}
