// Prefill strategy values (runahead, tsp) print every parameter and come back from their description, as a notebook
// stores them.

import Testing
@testable import LatheBuiltins
@testable import LatheLang
import LatheParallel
import LatheTechniques

@Test(arguments: [
  "runahead(procs: 2, partition: \"even\")", "runahead(procs: 3, partition: [0.5, 0.3, 0.2])",
  "runahead(procs: 2, partition: [70, 30])", "tsp(procs: 4)",
])
func prefillStrategiesRoundTripThroughTheirDescription(_ text: String) throws {
  let value = try PrefillStrategyValue.decode(text)
  #expect(value.description == text)
  #expect(try value.serialized()?.kind == "prefillStrategy")
}

@Test func prefillStrategiesMapToChunkSizes() throws {
  #expect(try PrefillStrategyValue(method: .runahead, procs: 2, partition: .fractions([0.7, 0.3])).chunks(tokens: 100) == [70, 30])
  #expect(try PrefillStrategyValue(method: .tsp, procs: 3, partition: .even).chunks(tokens: 10) == [4, 3, 3])
  #expect(throws: (any Error).self) { try PrefillStrategyValue(method: .runahead, procs: 2, partition: .sizes([5, 5])).chunks(tokens: 9) }
  #expect(throws: (any Error).self) { try PrefillStrategyValue.decode("runahead(procs: x)") }
  #expect(throws: (any Error).self) { try PrefillStrategyValue(method: .runahead, procs: 2, partition: .sizes([2, 0])) }
}

@Test func strategiesAndTablesRoundTripThroughTheNotebookCodec() throws {
  let registry = Builtins.standard()
  var table = try PartitionTable(processes: 2)
  try table.insert(length: 1024, fractions: [0.56, 0.44], seconds: 1.2)
  try table.insert(length: 4096, fractions: [0.6, 0.4])
  let values: [Value] = [
    .host(PartitionTableValue(table, mode: .simulate)),
    .host(try PrefillStrategyValue(method: .runahead, procs: 2, partition: .table(table))),
    .host(try PrefillStrategyValue(method: .runahead, procs: 8, partition: .searched, mode: .simulate, bandwidth: 1e9, latency: 5e-6)),
    .host(try PrefillStrategyValue(method: .tsp, procs: 4, partition: .even, mode: .simulate)),
  ]
  for v in values {
    let back = try ValueCodec.decode(try ValueCodec.encode(v), registry: registry)
    guard case .host(let a) = back, case .host(let b) = v else { Issue.record("not a host value: \(back)"); continue }
    #expect(a.isEqual(to: b), "\(v)")
    #expect(back.description == v.description)
  }
  // A strategy saved by the earlier version as its description still loads.
  #expect(try PrefillStrategyValue.decode(bytes: Array("runahead(procs: 2, partition: [0.7, 0.3])".utf8)).chunks(tokens: 10) == [7, 3])
  #expect(throws: (any Error).self) { try PrefillStrategyValue.decode(bytes: Array("{\"method\": 1}".utf8)) }
}
