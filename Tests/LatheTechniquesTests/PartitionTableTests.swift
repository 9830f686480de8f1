// KV-Runahead's partition table: interpolation between searched lengths (kv-runahead.md check 6), persistence and
// the printed form.

import Foundation
import Testing
@testable import LatheTechniques

/// Three processes at 1024, 2048 and 4096 tokens, inserted out of order, one without a score.
func handTable() throws -> PartitionTable {
  var table = try PartitionTable(processes: 3)
  try table.insert(length: 4096, fractions: [0.5, 0.3, 0.2], seconds: 0.040)
  try table.insert(length: 1024, fractions: [0.4, 0.35, 0.25], seconds: 0.0123)
  try table.insert(length: 2048, fractions: [0.45, 0.32, 0.23])
  return table
}

@Test func tableKeepsEntriesSortedAndReplacesALength() throws {
  var table = try handTable()
  #expect(table.entries.map(\.length) == [1024, 2048, 4096])
  try table.insert(length: 2048, fractions: [2, 1, 1])                  // scaled to sum to 1
  #expect(table.entries.count == 3 && table.entries[1].fractions == [0.5, 0.25, 0.25])
}

@Test(arguments: [1024, 1100, 1536, 2000, 2048, 3000, 4095])
func interpolatedFractionsLieBetweenTheNeighbours(length: Int) throws {
  let table = try handTable()
  let r = try table.fractions(length: length)
  let upper = try #require(table.entries.first { $0.length >= length })
  let lower = try #require(table.entries.last { $0.length <= length })
  for i in 0..<3 {
    #expect(min(lower.fractions[i], upper.fractions[i]) - 1e-12 <= r[i] && r[i] <= max(lower.fractions[i], upper.fractions[i]) + 1e-12)
  }
  #expect(abs(r.reduce(0, +) - 1) < 1e-12)
  let chunks = try table.chunks(length: length)
  #expect(chunks.reduce(0, +) == length && chunks.allSatisfy { $0 >= 1 })
}

@Test func interpolationIsLinearInTheLength() throws {
  let r = try handTable().fractions(length: 1536)                       // halfway from 1024 to 2048
  for (got, want) in zip(r, [0.425, 0.335, 0.24]) { #expect(abs(got - want) < 1e-12) }
}

@Test func lengthsOutsideTheTableTakeTheNearestEntry() throws {
  let table = try handTable()
  #expect(try table.fractions(length: 10) == [0.4, 0.35, 0.25])
  #expect(try table.fractions(length: 100_000) == [0.5, 0.3, 0.2])
  #expect(try table.chunks(length: 3) == [1, 1, 1])
}

@Test func tableRejectsWhatItCannotUse() throws {
  var table = try PartitionTable(processes: 2)
  #expect(throws: RunaheadError("table: the table is empty")) { try table.fractions(length: 100) }
  #expect(throws: RunaheadError.self) { try table.insert(length: 100, fractions: [1, 0, 0]) }
  #expect(throws: RunaheadError.self) { try table.insert(length: 1, fractions: [0.5, 0.5]) }
  #expect(throws: RunaheadError.self) { try table.insert(length: 100, fractions: [.infinity, 1]) }
  #expect(throws: RunaheadError.self) { try PartitionTable(processes: 0) }
  try table.insert(length: 100, fractions: [0.5, 0.5])
  #expect(throws: RunaheadError.self) { try table.chunks(length: 1) }
}

@Test func tableRoundTripsThroughJSONAndChecksWhatItReads() throws {
  let table = try handTable()
  let decoded = try JSONDecoder().decode(PartitionTable.self, from: JSONEncoder().encode(table))
  #expect(decoded == table)
  let unsorted = #"{"processes": 2, "entries": [{"length": 200, "fractions": [0.6, 0.4]}, {"length": 100, "fractions": [1, 1]}]}"#
  #expect(try JSONDecoder().decode(PartitionTable.self, from: Data(unsorted.utf8)).entries.map(\.length) == [100, 200])
  let wrong = #"{"processes": 2, "entries": [{"length": 200, "fractions": [0.6, 0.3, 0.1]}]}"#
  #expect(throws: RunaheadError.self) { try JSONDecoder().decode(PartitionTable.self, from: Data(wrong.utf8)) }
}

@Test func tableDescriptionIsATable() throws {
  #expect(try handTable().description == """
    partition table, 3 processes
    length  proc 0  proc 1  proc 2  ttft ms
      1024   0.400   0.350   0.250    12.30
      2048   0.450   0.320   0.230        -
      4096   0.500   0.300   0.200    40.00
    """)
  #expect(try PartitionTable(processes: 1).description == "partition table, 1 process\n(empty)")
}

@Test func searchedTableGrowsTheFirstChunkWithTheLengthAndPredictsNearTheSearch() throws {
  // Check 6 and KVR-P: on fast links the first chunk passes C/p and grows with C; an interpolated partition for an
  // unseen length scores within 1.5% of searching that length (the paper: ≈1.3%).
  let sim = try RunaheadSimulator(costs: llamaCosts(layers: 8, bandwidth: 300e9))
  let search = try PartitionSearch(processes: 3)
  let table = try PartitionTable(searching: [2048, 4096, 8192, 16384], with: search) { _, chunks in
    try sim.runaheadTTFT(chunks: chunks)
  }
  let first = table.entries.map { $0.fractions[0] }
  #expect(zip(first, first.dropFirst()).allSatisfy { $0 <= $1 } && first[3] > first[0] && first[3] > 1.0 / 3, "\(first)")
  #expect(table.entries.allSatisfy { $0.seconds != nil })
  for length in [3000, 6000, 12000] {
    let predicted = try sim.runaheadTTFT(chunks: table.chunks(length: length))
    let searched = try search.search(length: length) { try sim.runaheadTTFT(chunks: $0) }.seconds
    #expect(predicted <= searched * 1.015, "\(length): \(predicted) vs \(searched)")
  }
}
