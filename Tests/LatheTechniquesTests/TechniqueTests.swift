// The compressor protocol's shared expectations, checked for every compressor added to `all`.

import Testing
@testable import LatheTechniques
import LatheModels
import LatheTensor

@Test func descriptionsParseBackToTheSameTechnique() throws {
  let techniques: [any MatrixCompressor] = [try SeedLM(bits: 4), try SeedLM(bits: 3, exponent: .paper), try SeedLM(bits: 4, lfsr: 9, seeds: 100),
                                            try RTN(bits: 3, group: 64), try RTN(bits: 4, group: 32, symmetric: true), try KMeans(bits: 3, groups: 4)]
  for t in techniques { #expect(try Techniques.parse(t.description).description == t.description) }
  for bad in ["seedlm", "seedlm(bits 4)", "awq(bits: 4)", "seedlm(bits: 4, exponent: \"odd\")", "rtn(bits: 9)"] {
    #expect(throws: (any Error).self, "\(bad)") { try Techniques.parse(bad) }
  }
}

@Test func descriptionsFromFilesFailCleanly() {
  // A saved form is data from a file: deep nesting, stray brackets and unknown names are errors, not crashes.
  let deep = "runahead(procs: 2, partition: " + String(repeating: "[", count: 5000) + String(repeating: "]", count: 5000) + ")"
  for bad in [deep, "rtn(bits: [1, 2", "rtn(bits: \"4)", "nosuch(bits: 4)", "rtn(4)", "", "(", "rtn(bits: 4, bits: 5, nope: 1)"] {
    #expect(throws: (any Error).self, "\(bad.prefix(40))") { try Techniques.parse(bad) }
  }
  #expect(throws: (any Error).self) { try Techniques.decode(Array("nosuch".utf8) + [0, 1, 2]) }
  #expect(throws: (any Error).self) { try Techniques.decode(Array("runahead".utf8) + [0] + Array("{\"method\": 1}".utf8)) }
}
