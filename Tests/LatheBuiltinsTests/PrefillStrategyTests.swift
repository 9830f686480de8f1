// Prefill strategy values (runahead, tsp) print every parameter and come back from their description, as a notebook
// stores them.

import Testing
@testable import LatheBuiltins
import LatheParallel

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
