// KV-Runahead partitions (even, searched, table, fractions) and the simulate-mode prefill and table search.

import Testing
@testable import LatheTechniques
import LatheParallel

@Test func evenChunksGiveTheRemainderToTheFirstProcesses() throws {
  #expect(try RunaheadPartition.even.chunks(length: 10, processes: 3) { _ in 0 } == [4, 3, 3])
  #expect(try RunaheadPartition.even.chunks(length: 11, processes: 3) { _ in 0 } == [4, 4, 3])
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

/// One partition for real, simulated and MPI runs: over 1 to 8 processes and 1 to 5,000 tokens, for even splits and
/// random fractions, the chunks a real prefill runs, the simulator plays and the MPI ranks take are the same.
@Test func realSimulatedAndMPIRunsSplitAPromptTheSameWay() throws {
  let sim = try RunaheadSimulator(costs: RunaheadCosts(layers: 2, kvBytesPerToken: 8, attentionPerEntry: 1e-9))
  var rng = SystemRandomNumberGenerator()
  var cases = 0
  for procs in 1...8 {
    var lengths = [procs, procs + 1, 5000, 4999, 10, 4096]
    for _ in 0..<40 { lengths.append(Int.random(in: procs...5000, using: &rng)) }
    for length in lengths where length >= procs {
      var raw = (0..<procs).map { _ in Double.random(in: 0.05...1, using: &rng) }
      let sum = raw.reduce(0, +)
      raw = raw.map { $0 / sum }
      raw[procs - 1] = 1 - raw.dropLast().reduce(0, +)
      for partition in [RunaheadPartition.even, .fractions(raw)] {
        let real = try KVRunahead(method: .runahead, procs: procs, partition: partition)
        let simulated = try KVRunahead(method: .runahead, procs: procs, partition: partition, mode: .simulate)
        let mpi = try MPIPrefill(strategy: real, hosts: nil, tcp: true)
        let chunks = try real.chunks(tokens: length)
        #expect(chunks.reduce(0, +) == length && chunks.allSatisfy { $0 >= 1 })
        #expect(try sim.prefill(length: length, processes: procs, partition: simulated.partition).chunks == chunks, "\(procs) \(length) \(partition)")
        #expect(try mpi.chunks(tokens: length) == chunks)
        if case .even = partition {
          #expect(chunks == (try PrefillPartition.even(tokens: length, procs: procs)))
          #expect(try sim.tsp(length: length, processes: procs).chunks == chunks)
        } else {
          #expect(chunks == (try PrefillPartition.sizes(fractions: raw, tokens: length)))
        }
        cases += 1
      }
    }
  }
  #expect(cases > 600)
}
