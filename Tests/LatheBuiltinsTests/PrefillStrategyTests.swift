// Prefill strategy values (runahead, tsp) print every parameter and come back from their description and their saved
// form, as a notebook stores them, including the forms notebooks kept before the technique table.

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
  let value = try Techniques.parse(text)
  #expect(value.description == text)
  #expect(value is KVRunahead)
  #expect(try TechniqueValue(value).serialized()?.kind == "technique")
}

@Test func prefillStrategiesMapToChunkSizes() throws {
  #expect(try KVRunahead(method: .runahead, procs: 2, partition: .fractions([0.7, 0.3])).chunks(tokens: 100) == [70, 30])
  #expect(try KVRunahead(method: .tsp, procs: 3, partition: .even).chunks(tokens: 10) == [4, 3, 3])
  #expect(throws: (any Error).self) { try KVRunahead(method: .runahead, procs: 2, partition: .sizes([5, 5])).chunks(tokens: 9) }
  #expect(throws: (any Error).self) { try Techniques.parse("runahead(procs: x)") }
  #expect(throws: (any Error).self) { try KVRunahead(method: .runahead, procs: 2, partition: .sizes([2, 0])) }
}

@Test func strategiesAndTablesRoundTripThroughTheNotebookCodec() throws {
  let registry = Builtins.standard()
  var table = try PartitionTable(processes: 2)
  try table.insert(length: 1024, fractions: [0.56, 0.44], seconds: 1.2)
  try table.insert(length: 4096, fractions: [0.6, 0.4])
  let values: [Value] = [
    .host(PartitionTableValue(table, mode: .simulate)),
    .host(TechniqueValue(try KVRunahead(method: .runahead, procs: 2, partition: .table(table)))),
    .host(TechniqueValue(try KVRunahead(method: .runahead, procs: 8, partition: .searched, mode: .simulate, bandwidth: 1e9, latency: 5e-6))),
    .host(TechniqueValue(try KVRunahead(method: .tsp, procs: 4, partition: .even, mode: .simulate))),
  ]
  for v in values {
    let back = try ValueCodec.decode(try ValueCodec.encode(v), registry: registry)
    guard case .host(let a) = back, case .host(let b) = v else { Issue.record("not a host value: \(back)"); continue }
    #expect(a.isEqual(to: b), "\(v)")
    #expect(back.description == v.description)
  }
  // Saved forms of the earlier versions still load: a strategy under its own kind, as JSON or as its description,
  // and a compressor as its bare description.
  let old = try #require(registry.hostDecoders["prefillStrategy"])
  let json = #"{"method":"runahead","procs":2,"mode":"real","latency":0,"partition":"fractions","fractions":[0.7,0.3]}"#
  for bytes in [Array(json.utf8), Array("runahead(procs: 2, partition: [0.7, 0.3])".utf8)] {
    guard case .host(let h as TechniqueValue) = try old(bytes), let r = h.technique as? KVRunahead else {
      Issue.record("not a runahead value"); continue
    }
    #expect(try r.chunks(tokens: 10) == [7, 3])
  }
  #expect(throws: (any Error).self) { try old(Array("{\"method\": 1}".utf8)) }
  let technique = try #require(registry.hostDecoders["technique"])
  guard case .host(let h as TechniqueValue) = try technique(Array("rtn(bits: 3, group: 64)".utf8)) else { Issue.record("no technique"); return }
  #expect(h.description == "rtn(bits: 3, group: 64)")
}
