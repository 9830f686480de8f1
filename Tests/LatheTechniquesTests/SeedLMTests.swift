// SeedLM against the checks of ../shared/techniques/seedlm.md: the LFSR and its worked example, the bases, the
// quantiser, the exhaustive search against a literal seed-by-seed loop, the bit accounting and the packed form.

import Foundation
import Testing
@testable import LatheTechniques
import LatheModels
import LatheTensor
import LatheTestSupport

@Test func lfsrMatchesThePapersFigure4() throws {
  let lfsr = try LFSR(bits: 3)
  #expect(lfsr.states(after: 4, count: 8) == [2, 5, 6, 7, 3, 1, 4, 2])
  #expect(lfsr.matrix(seed: 4, rows: 4, cols: 2) == [[2, 5], [6, 7], [3, 1], [4, 2]])
  #expect(try LFSR(bits: 16).states(after: 1, count: 5) == [32768, 16384, 8192, 4096, 34816])
}

@Test func everyTabulatedTapSetHasMaximalPeriod() throws {
  for k in LFSR.tapTable.keys.sorted() {
    let lfsr = try LFSR(bits: k)
    var seen = Set<UInt32>(), s: UInt32 = 1
    repeat { #expect(s != 0); seen.insert(s); s = lfsr.step(s) } while s != 1 && seen.count <= lfsr.period
    #expect(seen.count == lfsr.period, "K = \(k): period \(seen.count), not \(lfsr.period)")
  }
  #expect(throws: SeedLMError.self) { try LFSR(bits: 7) }
}

@Test func basesAreNormalisedWindowsOfOneCycle() throws {
  let bases = try SeedBases(bits: 8, block: 4, coeffs: 2)
  let cycle = Array(bases.cycleDouble[0..<255])
  #expect(cycle.allSatisfy { (-1...1).contains($0) } && cycle.contains(1) && cycle.contains(-1))
  #expect(abs(cycle.reduce(0, +) / 255) < 1e-9)
  // The window at every offset is V(state for that offset), normalised.
  let lfsr = try LFSR(bits: 8)
  for j in 0..<255 {
    let state = UInt32(bases.stateForOffset[j])
    let v = lfsr.matrix(seed: state, rows: 4, cols: 2).flatMap { $0 }.map { (Double($0) - 128) / 127 }
    #expect(v == bases.window(j), "offset \(j)")
    #expect(Int(bases.offsetForState[Int(state)]) == j)
  }
  // U⁺·U = I for the well-conditioned windows.
  for j in 0..<255 where !bases.illConditioned[j] {
    let u = bases.window(j)
    for a in 0..<2 { for b in 0..<2 {
      var s = 0.0
      for i in 0..<4 { s += Double(bases.pinv[(j * 2 + a) * 4 + i]) * u[i * 2 + b] }
      #expect(abs(s - (a == b ? 1 : 0)) < 1e-4, "window \(j): (U⁺U)[\(a)][\(b)] = \(s)")
    } }
  }
}

@Test func bitAccountingIsExact() throws {
  let four = try SeedLM(bits: 4), three = try SeedLM(bits: 3)
  #expect((four.block, four.coeffs, four.lfsrBits, four.bitsPerBlock, four.bitsPerWeight) == (8, 3, 16, 32, 4.0))
  #expect((three.block, three.coeffs, three.lfsrBits, three.bitsPerBlock, three.bitsPerWeight) == (12, 4, 16, 36, 3.0))
  #expect(four.description == "seedlm(bits: 4, block: 8, coeffs: 3, lfsr: 16, exponent: \"range\")")
  #expect(throws: SeedLMError.self) { try SeedLM(bits: 5) }
  #expect(throws: SeedLMError.self) { try SeedLM(bits: 4, seeds: 0) }
}

@Test func quantiserRules() throws {
  for rule in [SeedLM.ExponentRule.range, .paper] {
    #expect(SeedQuantizer.quantize([0, 0, 0], rule: rule) == ([0, 0, 0], -8))
  }
  // Power-of-two boundaries: max|t| = 7.5·2^k exactly gives e = k; a hair above gives k + 1 (as in Float64).
  for k in -6...5 {
    let m = Float(7.5) * Float(sign: .plus, exponent: k, significand: 1)
    #expect(SeedQuantizer.exponent(maxMagnitude: m, rule: .range) == k)
    #expect(SeedQuantizer.exponent(maxMagnitude: m.nextUp, rule: .range) == k + 1)
    #expect(SeedQuantizer.exponent(maxMagnitude: m.nextDown, rule: .range) == Int(ceil(log2(Double(m.nextDown) / 7.5))))
  }
  #expect(SeedQuantizer.exponent(maxMagnitude: 3, rule: .paper) == 1)
  #expect(SeedQuantizer.exponent(maxMagnitude: 1e9, rule: .range) == 7)
  // The range rule uses 15 of the 16 codes on Gaussian coefficients; t̂ = q·2^e exactly.
  var codes = Set<Int8>()
  for i in 0..<4000 {
    let t = (0..<3).map { k in Float(sin(Double(i * 3 + k) * 12.9898) * 0.7) }
    let (q, e) = SeedQuantizer.quantize(t, rule: .range)
    #expect(q.allSatisfy { (-8...7).contains($0) } && (-8...7).contains(e))
    codes.formUnion(q)
  }
  #expect(codes.count >= 15)
}

/// Blocks of N(0, σ²) values from a fixed seed.
func gaussianBlocks(_ count: Int, block: Int, sigma: Float = 0.02, seed: UInt64 = 1) throws -> [Float] {
  try Tensor.randn([count * block], seed: seed).scalars.map { $0 * sigma }
}

@Test(arguments: [(8, 3), (12, 4), (6, 2)])
func fastSearchFindsTheLiteralMinimum(block: Int, coeffs: Int) throws {
  // K = 9: 511 seeds. Errors are compared, never seed identities (windows tie exactly). 8×3 and 12×4 run the
  // unrolled kernels, 6×2 the general loop; the 8×3 windows of K = 9 include ill-conditioned ones (the Float64 pass).
  let c = block, p = coeffs
  let bases = try SeedBases(bits: 9, block: c, coeffs: p)
  if c == 8 { #expect(bases.illConditioned.contains(true)) }
  let search = SeedSearch(bases: bases, rule: .range, seedCount: bases.count)
  let blocks = 40, values = try gaussianBlocks(blocks, block: c)
  let one = try search.run(values, blocks: blocks, threads: 1, progress: { _, _ in })
  let two = try search.run(values, blocks: blocks, threads: 2, progress: { _, _ in })
  #expect(one.states == two.states && one.mantissas == two.mantissas && one.exponents == two.exponents)
  for b in 0..<blocks {
    let w = Array(values[(b * c)..<((b + 1) * c)])
    let literal = search.literal(w)
    let chosen = search.explicitError(window: Int(one.offsets[b]), block: w,
                                      q: Array(one.mantissas[(b * p)..<((b + 1) * p)]), e: Int(one.exponents[b]))
    #expect(abs(chosen - literal.error) <= 1e-5 * literal.error + 1e-12, "block \(b): \(chosen) vs literal \(literal.error)")
    // The kernel's Gram-identity error agrees with the explicit one, and is at least the unquantised
    // least-squares residual of the same window.
    #expect(abs(Double(one.errors[b]) - chosen) <= 1e-4 * chosen + 1e-12)
    let j = Int(one.offsets[b]), u = bases.window(j), t = search.coefficients(window: j, block: w)
    var residual = 0.0
    for i in 0..<c {
      var r = Double(w[i])
      for k in 0..<p { r -= u[i * p + k] * Double(t[k]) }
      residual += r * r
    }
    #expect(chosen >= residual * (1 - 1e-5))
  }
}

@Test func packedFormRoundTripsBitExactly() throws {
  let technique = try SeedLM(bits: 4, lfsr: 9)
  let w = try Tensor.randn([6, 16], seed: 3).map { $0 * 0.05 }
  let m = try technique.compressMatrix(w)
  let bytes = m.packed()
  #expect(bytes.count == 12 * (9 + 4 + 12) / 8 + 1)      // 12 blocks of 25 bits, rounded up to whole bytes
  let back = try SeedMatrix.unpack(bytes, technique: technique, shape: [6, 16])
  #expect(back.seeds == m.seeds && back.exponents == m.exponents && back.mantissas == m.mantissas)
  #expect(back.packed() == bytes)
  #expect(try back.dequantized().scalars == (try m.dequantized().scalars))
  #expect(throws: SeedLMError.self) { try SeedMatrix.unpack(Array(bytes.dropLast()), technique: technique, shape: [6, 16]) }
  // A crafted shape (from a file's lathe.compressed.* keys) is an error, never an overflow trap.
  for shape in [[Int.max, 1], [1 << 31, 1 << 31], [Int.max / 2, 3], [-1, 16], [6]] {
    #expect(throws: SeedLMError.self) { try SeedMatrix.unpack(bytes, technique: technique, shape: shape) }
  }
}

@Test(arguments: [4, 3])
func matvecFromSeedsEqualsTheDecodedProduct(bits: Int) throws {
  // The SIMD path (blocks of 8 or 12 weights) and its scalar twin against the dense product of the decoded matrix.
  let technique = try SeedLM(bits: bits, lfsr: 9)
  let m = try technique.compressMatrix(try Tensor.randn([6, 48], seed: 5).map { $0 * 0.05 })
  let x = try Tensor.randn([48], seed: 4).scalars
  let dense = try m.dequantized().scalars
  var y = [Float](repeating: 0, count: 6), twin = y
  try x.withUnsafeBufferPointer { xp in
    try y.withUnsafeMutableBufferPointer { try m.matvec(xp.baseAddress!, into: $0.baseAddress!, threads: 2) }
    try twin.withUnsafeMutableBufferPointer { try m.matvecReference(xp.baseAddress!, into: $0.baseAddress!) }
  }
  for r in 0..<6 {
    let expected = (0..<48).reduce(Float(0)) { $0 + dense[r * 48 + $1] * x[$1] }
    #expect(abs(y[r] - expected) <= 1e-5 * max(1, abs(expected)), "row \(r): \(y[r]) vs \(expected)")
    #expect(abs(twin[r] - expected) <= 1e-5 * max(1, abs(expected)))
  }
}

/// Model-sized: the full 65,535-seed search (scripts/test runs it in the release pass).
@Suite struct SeedLMReleaseTests {
  @Test(arguments: [(4, 0.115, 0.135), (3, 0.21, 0.24)])
  func gaussianErrorIsInThePapersRange(bits: Int, low: Double, high: Double) throws {
    let technique = try SeedLM(bits: bits)
    let rows = 64, cols = technique.block * 16              // 1024 blocks
    let w = try Tensor.randn([rows, cols], seed: 9).map { $0 * 0.02 }
    let m = try technique.compressMatrix(w)
    #expect(Double(m.packed().count * 8) / Double(rows * cols) == Double(bits))
    let decoded = try m.dequantized().scalars, original = w.scalars
    let err = zip(decoded, original).reduce(0.0) { $0 + Double(($1.0 - $1.1) * ($1.0 - $1.1)) }
    let norm = original.reduce(0.0) { $0 + Double($1 * $1) }
    let relative = (err / norm).squareRoot()
    #expect(relative >= low && relative <= high, "\(technique): relative error \(relative)")
  }

  @Test func compressedModelRunsLikeItsDequantisedTwin() throws {
    // One real SmolLM2 matrix compressed; the model that runs the seeds agrees with the same model running the
    // decoded matrix as a dense f32 tensor.
    let path = TestPaths.packageRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
    let model = try LlamaModel(path: path)
    let (compressed, report) = try model.compressed(with: try SeedLM(bits: 4), layers: [0], matrices: ["attn_k"])
    #expect(report.entries.count == 1 && report.bitsPerWeight == 4)
    let error = report.entries[0].relativeError
    #expect(error > 0.05 && error < 0.2, "relative error \(error)")
    guard case .compressed(let packed) = compressed.layers[0].key else { Issue.record("attn_k was not replaced"); return }
    let twin = try model.copy()
    twin.layers[0].key = .tensor(try packed.dequantized())
    let prompt = [504, 2365, 6354, 16438, 27003, 690, 260, 23790]
    for tokens in [Array(prompt.prefix(1)), prompt] {               // the matvec path and the sgemm path
      let a = try compressed.forward(tokens, cache: try compressed.makeCache(capacity: 8))
      let b = try twin.forward(tokens, cache: try twin.makeCache(capacity: 8))
      let worst = zip(a, b).map { abs($0 - $1) }.max()!, scale = b.map { abs($0) }.max()!
      #expect(worst <= 1e-5 * scale, "logits differ by \(worst) (largest logit \(scale))")
    }
    // The original model is untouched.
    #expect(model.layers[0].key.kind == "q4_1" && compressed.layers[0].key.kind == "seedlm")
  }

  @Test func compressedModelSavesAndLoadsBitExactly() throws {
    // SeedLM, RTN and k-means matrices in one model, written packed, read back from the file and from memory:
    // the same packed bytes, techniques and logits; the dense form (packed: false) loads with plain tensors.
    let path = TestPaths.packageRoot.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
    var (model, _) = try LlamaModel(path: path).compressed(with: try SeedLM(bits: 4), layers: [0], matrices: ["attn_k"])
    (model, _) = try model.compressed(with: try RTN(bits: 3, group: 64), layers: [1], matrices: ["attn_v"])
    (model, _) = try model.compressed(with: try KMeans(bits: 4), layers: [2], matrices: ["ffn_down"])
    // The token embedding (the tied head too), compressed alone; it runs like its decoded twin.
    var report: CompressionReport
    (model, report) = try model.compressed(with: try RTN(bits: 4, group: 64), layers: [], embeddings: true)
    #expect(report.entries.map(\.matrix) == ["token_embd"] && report.entries[0].layer == -1 && model.tokenEmbedding.kind == "rtn")
    let twin = try model.copy()
    twin.tokenEmbedding = .tensor(try model.tokenEmbedding.denseF32())
    for tokens in [[504], [504, 2365, 6354, 16438, 27003, 690, 260, 23790]] {
      let a = try model.forward(tokens, cache: try model.makeCache(capacity: 8)), b = try twin.forward(tokens, cache: try twin.makeCache(capacity: 8))
      let worst = zip(a, b).map { abs($0 - $1) }.max()!, scale = b.map { abs($0) }.max()!
      #expect(worst <= 1e-5 * scale, "logits differ by \(worst) (largest logit \(scale))")
    }
    let folder = try TestPaths.temporaryDirectory("packed")
    defer { try? FileManager.default.removeItem(at: folder) }
    let file = folder.appendingPathComponent("packed.gguf").path
    try model.writeGGUF(to: file, packed: true)
    let fromFile = try LlamaModel(path: file, formats: Techniques.formats)
    let fromBytes = try LlamaModel(gguf: try GGUFFile(bytes: try model.ggufWriter(packed: true).bytes()), formats: Techniques.formats)
    let prompt = [504, 2365, 6354, 16438, 27003, 690, 260, 23790]
    let expected = try model.forward(prompt, cache: try model.makeCache(capacity: 8))
    for back in [fromFile, fromBytes] {
      for (l, short) in [(0, "attn_k"), (1, "attn_v"), (2, "ffn_down")] {
        let a = model.layers[l].matrices.first { $0.0 == short }!.1, b = back.layers[l].matrices.first { $0.0 == short }!.1
        guard case .compressed(let ma) = a, case .compressed(let mb) = b else { Issue.record("layer \(l) \(short) is not compressed"); continue }
        #expect(ma.technique == mb.technique && ma.shape == mb.shape && ma.packed() == mb.packed())
      }
      #expect(back.layers[0].query.kind == "q4_1" && back.byteCount == model.byteCount)
      guard case .compressed(let ea) = model.tokenEmbedding, case .compressed(let eb) = back.tokenEmbedding else { Issue.record("embedding"); continue }
      #expect(ea.packed() == eb.packed())
      #expect(try back.forward(prompt, cache: try back.makeCache(capacity: 8)) == expected)
    }
    try model.writeGGUF(to: file, packed: false)
    let dense = try LlamaModel(path: file)
    #expect(dense.layers[0].key.kind == "f32")
    // A damaged technique key is an error that names the key.
    var writer = try model.ggufWriter(packed: true)
    writer.set("lathe.compressed.blk.0.attn_k.weight.technique", .string("seedlm(bits: 4, block: 12, coeffs: 3, lfsr: 16)"))
    #expect(throws: ModelFormatError.self) { try LlamaModel(gguf: try GGUFFile(bytes: try writer.bytes()), formats: Techniques.formats) }
    // Without the techniques' decoders a packed file is refused with the tensor's key.
    #expect(throws: ModelFormatError.self) { try LlamaModel(gguf: try GGUFFile(bytes: try model.ggufWriter(packed: true).bytes())) }
  }
}
