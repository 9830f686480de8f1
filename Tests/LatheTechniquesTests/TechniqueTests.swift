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
