// K-means palettisation: the LUT and indices, errors by bits, determinism, the fused kernel, layout and errors.

import Testing
@testable import LatheTechniques
import LatheModels
import LatheTensor

@Test func kmeansOnSeparatedValuesFindsTheirClusters() throws {
  // Four well separated pairs: the quantile start already splits them, and each centroid is its pair's mean.
  let w = try Tensor([-3, -2.5, 0, 0.5, 2, 2.5, 10, 11], shape: [2, 4])
  let m = try KMeansMatrix(fitting: w, bits: 2, groups: 1)
  #expect(m.table(group: 0) == [-2.75, 0.25, 2.25, 10.5])
  #expect((0..<8).map { m.index(row: $0 / 4, column: $0 % 4) } == [0, 0, 1, 1, 2, 2, 3, 3])
  // LUT f16 -2.75 0.25 2.25 10.5, then codes 0|0<<2|1<<4|1<<6 = 0x50 and 2|2<<2|3<<4|3<<6 = 0xFA.
  #expect(m.packed() == [0x80, 0xC1, 0x00, 0x34, 0x80, 0x40, 0x40, 0x49, 0x50, 0xFA])
  #expect(m.bitsPerWeight == 10.0 && m.technique == "kmeans(bits: 2, groups: 1)")
}

@Test(arguments: [1, 2, 3, 4, 8])
func kmeansLUTIsSortedAndEveryWeightTakesItsNearestEntry(bits: Int) throws {
  let w = try gaussian(24, 80, seed: UInt64(bits)), values = w.scalars
  let m = try KMeansMatrix(fitting: w, bits: bits, groups: 1)
  let lut = m.table(group: 0)
  #expect(lut.count == 1 << bits && lut == lut.sorted())
  #expect(lut.allSatisfy { Float(Float16($0)) == $0 })
  let restored = try m.dequantized().scalars
  for i in 0..<values.count {
    let index = m.index(row: i / 80, column: i % 80)
    #expect(index < lut.count && restored[i] == lut[index])
    let best = lut.map { Swift.abs($0 - values[i]) }.min()!
    #expect(Swift.abs(restored[i] - values[i]) == best)
  }
}

@Test func kmeansErrorFallsWithBitsAndMatchesLloydMax() throws {
  // Gaussian Lloyd–Max quantisers: relative RMS error 0.605 (1 bit), 0.343 (2), 0.186 (3), 0.0975 (4).
  let w = try gaussian(192, 512, seed: 9)
  let errors = try (1...4).map { try relativeError(try KMeans(bits: $0).compress(w) { _, _ in }, w) }
  print("kmeans on N(0, 0.02²) 192×512, bits 1...4: \(errors)")
  #expect(errors == errors.sorted(by: >))
  for (e, expected) in zip(errors, [0.605, 0.343, 0.186, 0.0975]) { #expect(Swift.abs(e - expected) < 0.01 * expected + 0.002) }
}

@Test func kmeansIsDeterministicAcrossRunsAndThreadCounts() throws {
  let w = try gaussian(130, 96, seed: 2)
  let a = try KMeansMatrix(fitting: w, bits: 3, groups: 1), b = try KMeansMatrix(fitting: w, bits: 3, groups: 1)
  #expect(a.packed() == b.packed())
  let one = try products(a, threads: 1) { try a.matvecReference($0, into: $1) }
  let many = try products(a, threads: 8) { try a.matvecReference($0, into: $1) }
  #expect(one.fast == many.fast)
}

@Test(arguments: [(1, 7, 64), (2, 33, 96), (3, 66, 256), (4, 256, 576), (5, 9, 48), (6, 10, 72), (7, 4, 128), (8, 5, 40), (3, 3, 21)])
func kmeansMatvecMatchesItsTwinAndTheDenseProduct(bits: Int, rows: Int, cols: Int) throws {
  let m = try KMeansMatrix(fitting: try gaussian(rows, cols, seed: 13), bits: bits, groups: 1)
  for threads in [1, 4] {
    let (fast, twin, dense) = try products(m, threads: threads) { try m.matvecReference($0, into: $1) }
    #expect(maxRelativeDifference(fast, twin) <= 1e-4, "threads \(threads)")
    #expect(maxRelativeDifference(dense, twin) <= 1e-4)
  }
}

@Test func kmeansRowGroupsEachGetALUT() throws {
  // Rows 0..<32 at scale 0.02, rows 32..<64 at 0.2: a LUT per half fits both scales.
  var w = try gaussian(64, 64, seed: 4)
  let p = try w.mutablePointer()
  for i in (32 * 64)..<(64 * 64) { p[i] *= 10 }
  let one = try KMeansMatrix(fitting: w, bits: 3, groups: 1), two = try KMeansMatrix(fitting: w, bits: 3, groups: 2)
  #expect(two.table(group: 1).last! > 5 * two.table(group: 0).last!)
  // The small-scale half: its own LUT fits it far better than the shared one.
  let original = w.scalars, perHalf = try two.dequantized().scalars, shared = try one.dequantized().scalars
  var errorPerHalf = 0.0, errorShared = 0.0
  for i in 0..<(32 * 64) {
    errorPerHalf += Double(perHalf[i] - original[i]) * Double(perHalf[i] - original[i])
    errorShared += Double(shared[i] - original[i]) * Double(shared[i] - original[i])
  }
  let half: Double = errorShared / 2
  #expect(errorPerHalf < half)
  let lutBits: Double = 16 * 8 * 2
  #expect(two.bitsPerWeight == 3 + lutBits / 4096)
  let (fast, twin, _) = try products(two, threads: 4) { try two.matvecReference($0, into: $1) }
  #expect(maxRelativeDifference(fast, twin) <= 1e-4)
  let back = try KMeansMatrix(packed: two.packed(), shape: [64, 64], bits: 3, groups: 2)
  #expect(back.packed() == two.packed() && back.table(group: 1) == two.table(group: 1))
  #expect(try back.dequantized().scalars == two.dequantized().scalars)
}

@Test func kmeansPackedRoundTripsAndChecksItsInput() throws {
  let w = try gaussian(10, 30, seed: 6)
  let m = try KMeansMatrix(fitting: w, bits: 3, groups: 1)
  let bytes = m.packed()
  #expect(bytes.count == 8 * 2 + 10 * 12)                       // 30 indices of 3 bits: 90 bits → 12 bytes a row
  let back = try KMeansMatrix(packed: bytes, shape: [10, 30], bits: 3, groups: 1)
  #expect(back.packed() == bytes)
  #expect(try back.dequantized().scalars == m.dequantized().scalars)
  #expect(thrownMessage { _ = try KMeansMatrix(packed: bytes + [0], shape: [10, 30], bits: 3, groups: 1) }
            .contains("takes 136 bytes, got 137"))
  var unsorted = bytes
  unsorted.swapAt(0, 14); unsorted.swapAt(1, 15)                // the first and last LUT entries
  #expect(thrownMessage { _ = try KMeansMatrix(packed: unsorted, shape: [10, 30], bits: 3, groups: 1) }.contains("ascending"))
}

@Test func kmeansRejectsBadArgumentsNamingThem() throws {
  #expect(thrownMessage { _ = try KMeans(bits: 0) } == "kmeans: bits must be 1 to 8, got 0")
  #expect(thrownMessage { _ = try KMeans(bits: 9) } == "kmeans: bits must be 1 to 8, got 9")
  #expect(thrownMessage { _ = try KMeans(bits: 4, groups: 0) } == "kmeans: groups must be at least 1, got 0")
  #expect(thrownMessage { _ = try KMeans(bits: 4, groups: 3).compress(try gaussian(4, 8, seed: 1)) { _, _ in } }
            == "kmeans: shape [4, 8] has 4 rows, not a multiple of groups 3")
  #expect(thrownMessage { _ = try KMeans(bits: 2).compress(try Tensor([.infinity, 0], shape: [1, 2])) { _, _ in } }
            .contains("weight 0"))
  #expect(try KMeans(bits: 4, groups: 1).description == "kmeans(bits: 4, groups: 1)")
}

@Test func kmeansOnFewerWeightsThanEntriesStillDecodesExactly() throws {
  let w = try Tensor([0.5, -0.25, 0.125], shape: [1, 3])
  let m = try KMeansMatrix(fitting: w, bits: 4, groups: 1)
  #expect(try m.dequantized().scalars == w.scalars)
  #expect(m.table(group: 0) == m.table(group: 0).sorted())
}
