// Tensor core: creation, views, broadcasting, reductions, matmul against plain reference loops, errors.

import Foundation
import Testing
@testable import LatheTensor

/// Plain triple loop: the reference matmul kernels are compared against.
func referenceMatmul(_ a: [Float], _ b: [Float], m: Int, k: Int, n: Int) -> [Float] {
  var out = [Float](repeating: 0, count: m * n)
  for i in 0..<m { for j in 0..<n { var s: Float = 0; for p in 0..<k { s += a[i * k + p] * b[p * n + j] }; out[i * n + j] = s } }
  return out
}

func expectClose(_ a: [Float], _ b: [Float], tolerance: Float = 1e-4, sourceLocation: SourceLocation = #_sourceLocation) {
  #expect(a.count == b.count, sourceLocation: sourceLocation)
  let worst = zip(a, b).map { Swift.abs($0 - $1) / Swift.max(1, Swift.abs($1)) }.max() ?? 0
  #expect(worst <= tolerance, "max relative difference \(worst)", sourceLocation: sourceLocation)
}

@Test(arguments: [(1, 576, 1536), (7, 64, 64), (3, 5, 1), (33, 17, 9)])
func matmulMatchesReference(m: Int, k: Int, n: Int) throws {
  let a = try Tensor.randn([m, k], seed: 1), b = try Tensor.randn([k, n], seed: 2)
  expectClose(try a.matmul(b).scalars, referenceMatmul(a.scalars, b.scalars, m: m, k: k, n: n))
}

@Test func matmulReadsTransposedViewsWithoutCopying() throws {
  let a = try Tensor.randn([6, 4], seed: 3), b = try Tensor.randn([5, 6], seed: 4)
  let at = try a.transposed(), bt = try b.transposed()           // [4, 6] and [6, 5], strided views
  #expect(!at.isContiguous && at.storage === a.storage)
  expectClose(try at.matmul(bt).scalars, referenceMatmul(try at.contiguous().scalars, try bt.contiguous().scalars, m: 4, k: 6, n: 5))
  let batched = try Tensor.randn([3, 2, 4], seed: 5), w = try Tensor.randn([4, 3], seed: 6)
  let out = try batched.matmul(w)
  #expect(out.shape == [3, 2, 3])
  expectClose(try out.indexed([.index(2)]).scalars,
              referenceMatmul(try batched.indexed([.index(2)]).scalars, w.scalars, m: 2, k: 4, n: 3))
}

@Test func matmulRejectsMismatchedShapes() throws {
  #expect(throws: TensorError.shapeMismatch(op: "matmul", lhs: [2, 3], rhs: [4, 5])) {
    try Tensor.zeros([2, 3]).matmul(Tensor.zeros([4, 5]))
  }
  #expect("\(TensorError.shapeMismatch(op: "matmul", lhs: [2, 3], rhs: [4, 5]))" == "matmul: shapes [2, 3] and [4, 5] do not fit")
}

@Test func elementwiseKernelsMatchTheirScalarTwins() throws {
  for kernel in [BinaryKernel.add, .subtract, .multiply, .divide, .maximum, .minimum] {
    let a = try Tensor.randn([1000], seed: 7), b = try Tensor.rand([1000], seed: 8).add(Tensor.full([1], 0.5))
    expectClose(try a.binary(kernel, b, op: kernel.rawValue).scalars, Elementwise.binaryReference(kernel, a.scalars, b.scalars), tolerance: 0)
  }
}

@Test func broadcastingFollowsNumpy() throws {
  let a = try Tensor.arange(0, 6).reshaped(to: [2, 3]), row = try Tensor([10, 20, 30], shape: [3])
  #expect(try a.add(row).scalars == [10, 21, 32, 13, 24, 35])
  let col = try Tensor([100, 200], shape: [2, 1])
  #expect(try a.add(col).scalars == [100, 101, 102, 203, 204, 205])
  #expect(try col.add(row).shape == [2, 3])
  #expect(throws: TensorError.self) { try a.add(Tensor.zeros([2])) }
  #expect(try a.binary(.subtract, scalar: 1, scalarOnLeft: true).scalars == [1, 0, -1, -2, -3, -4])
}

@Test func reductionsAlongAxes() throws {
  let a = try Tensor([1, 5, 3, 4, 2, 6], shape: [2, 3])
  #expect(try a.reduce(.sum).scalars == [21])
  #expect(try a.reduce(.sum, axis: 0).scalars == [5, 7, 9])
  #expect(try a.reduce(.max, axis: 1, keepdims: true).shape == [2, 1])
  #expect(try a.reduce(.argmax, axis: 1).scalars == [1, 2])
  #expect(try a.reduce(.argmax, axis: 1).dtype == .i32)
  #expect(try a.reduce(.mean, axis: -1).scalars == [3, 4])
  expectClose(try a.reduce(.variance).scalars, [35.0 / 12.0])
  expectClose(try a.reduce(.variance, ddof: 1).scalars, [3.5])
  #expect(throws: TensorError.invalidAxis(op: "sum", axis: 2, rank: 2)) { try a.reduce(.sum, axis: 2) }
}

@Test func softmaxIsStableAndSumsToOne() throws {
  let x = try Tensor([1000, 1001, 1002, -5, 0, 5], shape: [2, 3])
  let s = try x.softmax()
  expectClose(try s.reduce(.sum, axis: 1).scalars, [1, 1])
  expectClose(Array(s.scalars.prefix(3)), [0.09003057, 0.24472847, 0.66524096])
  expectClose(try x.softmax(log: true).unary(.exp).scalars, s.scalars)
}

@Test func viewsShareStorageAndWritesCopyFirst() throws {
  let a = try Tensor.arange(0, 12).reshaped(to: [3, 4])
  let row = try a.indexed([.index(1)]), col = try a.indexed([.slice(nil, nil, nil), .index(2)])
  #expect(row.scalars == [4, 5, 6, 7] && col.scalars == [2, 6, 10])
  #expect(row.storage === a.storage)
  let stepped = try a.indexed([.slice(nil, nil, 2), .slice(1, nil, 2)])
  #expect(stepped.shape == [2, 2] && stepped.scalars == [1, 3, 9, 11])
  #expect(try a.indexed([.ellipsis, .newAxis]).shape == [3, 4, 1])
  var b = a
  try b.mutablePointer()[0] = 99                       // b shares a's storage: the write copies it first
  #expect(a.scalars[0] == 0 && b.scalars[0] == 99)
  #expect(throws: TensorError.indexOutOfRange(op: "index", index: 3, size: 3, axis: 0)) { try a.indexed([.index(3)]) }
  #expect(try a.permuted([1, 0]).shape == [4, 3])
  #expect(try a.reshaped(to: [2, -1]).shape == [2, 6])
  #expect(throws: TensorError.self) { try a.reshaped(to: [5, -1]) }
}

@Test func randomStreamsDependOnlyOnTheSeed() throws {
  #expect(try Tensor.rand([100], seed: 9).scalars == Tensor.rand([100], seed: 9).scalars)
  #expect(try Tensor.rand([100], seed: 9).scalars != Tensor.rand([100], seed: 10).scalars)
  // Element i is the same whatever the shape or size around it.
  #expect(try Array(Tensor.randn([1000], seed: 3).scalars.prefix(10)) == Tensor.randn([10], seed: 3).scalars)
  let n = try Tensor.randn([100_000], seed: 11)
  #expect(Swift.abs(try n.reduce(.mean).scalars[0]) < 0.02)
  #expect(Swift.abs(try n.reduce(.variance).scalars[0] - 1) < 0.03)
}

@Test func tooMuchMemoryIsAnErrorBeforeAllocating() throws {
  #expect(throws: TensorError.self) { try Tensor.zeros([1_000_000, 1_000_000]) }
  #expect(throws: TensorError.self) { try Tensor.zeros([Int.max, 2]) }
  #expect(throws: TensorError.self) { try Tensor.zeros([-1]) }
  let message = "\(TensorError.outOfMemory(op: "zeros", bytes: 4_000_000_000_000, budget: 1 << 30))"
  #expect(message == "zeros: 3.6 TiB exceeds the memory budget of 1.0 GiB")
}

@Test func printsLikeNumpy() throws {
  let a = try Tensor.arange(0, 6).reshaped(to: [2, 3])
  #expect(a.description == "tensor([[0., 1., 2.],\n        [3., 4., 5.]], shape: [2, 3], dtype: f32)".replacingOccurrences(of: "        [", with: " [") ||
          a.body(threshold: 1000, edge: 3) == "[[0., 1., 2.],\n [3., 4., 5.]]")
  #expect(try Tensor.zeros([2000]).body(threshold: 1000, edge: 3) == "[0., 0., 0., ..., 0., 0., 0.]")
}

@Test func gatherKeepsTheDtype() throws {
  var labels = try Tensor(zeros: [4], dtype: .i32)
  for i in 0..<4 { labels.storage.ints()[i] = Int32(10 + i) }
  let picked = try labels.gatheredRows([3, 0])
  #expect(picked.dtype == .i32 && picked.scalars == [13, 10])
  #expect(try Tensor.arange(0, 6).reshaped(to: [3, 2]).gatheredRows([2, 2, 0]).scalars == [4, 5, 4, 5, 0, 1])
  #expect(throws: TensorError.self) { try labels.gatheredRows([4]) }
}

@Test func unaryKernelsMatchTheirScalarTwins() throws {
  let x = try Tensor.randn([1003], seed: 30).binary(.multiply, scalar: 4)
  for kernel in [UnaryKernel.relu, .negate, .abs] {
    #expect(try x.unary(kernel).scalars == Elementwise.unaryReference(kernel, x.scalars), "\(kernel.rawValue)")
  }
  // The SIMD exp polynomial and what is built on it: |error| ≤ 1e-6 + 2e-6·|value| against Foundation's functions
  // (tanh and gelu come from e^x, so near their zeros the error is absolute, not relative).
  for kernel in [UnaryKernel.exp, .tanh, .sigmoid, .silu, .gelu] {
    let got = try x.unary(kernel).scalars, want = Elementwise.unaryReference(kernel, x.scalars)
    let worst = zip(got, want).map { Swift.abs($0 - $1) / (1e-6 + 2e-6 * Swift.abs($1)) }.max() ?? 0
    #expect(worst <= 1, "\(kernel.rawValue): error \(worst) times the tolerance")
  }
  // Range ends and special values.
  let special = try Tensor([-100, -87, 0, 1, 88, 100, .nan, .infinity, -.infinity] + Array(repeating: 0, count: 7), shape: [16])
  let e = try special.unary(.exp).scalars
  #expect(e[2] == 1 && Swift.abs(e[3] - 2.7182817) < 1e-6 && e[0] < 1e-37 && e[6].isNaN)
  #expect(try special.unary(.sigmoid).scalars.prefix(6).allSatisfy { $0 >= 0 && $0 <= 1 })
  #expect(try special.unary(.tanh).scalars[5] == 1 && special.unary(.tanh).scalars[0] == -1)
}

@Test func dtypesConvertRoundAndSaturate() throws {
  let x = try Tensor([1.5, -2.25, 1000.7, -300, 0.1, 65504, 70000], shape: [7])
  #expect(try x.copied(as: .f16).scalars == [1.5, -2.25, 1000.5, -300, Float(Float16(0.1)), 65504, .infinity])
  #expect(try x.copied(as: .i8).scalars == [1, -2, 127, -128, 0, 127, 127])
  #expect(try x.copied(as: .u8).scalars == [1, 0, 255, 0, 0, 255, 255])
  #expect(try x.copied(as: .i32).scalars == [1, -2, 1000, -300, 0, 65504, 70000])
  let b = try Tensor([1.00390625, 3.1415926], shape: [2]).copied(as: .bf16).scalars
  #expect(b == [1.0, 3.140625])                                   // round to nearest even on 8 mantissa bits
  #expect(try x.copied(as: .f16).copied(as: .bf16).dtype == .bf16)
  let u = try x.copied(as: .u8)
  #expect(try u.gatheredRows([6, 0]).scalars == [255, 1])
  #expect(try u.add(Tensor.ones([1])).dtype == .f32)               // arithmetic runs in f32
  #expect(try u.reshaped(to: [7, 1]).indexed([.index(2)]).scalars == [255])
  #expect(u.body(threshold: 100, edge: 3) == "[  1,   0, 255,   0,   0, 255, 255]")
}

@Test func ggufBlockLayoutsAreThoseOfTheGGUFTypeTable() {
  // ggml: Q8_0 is 32 weights in 34 bytes, Q4_1 32 weights in 20 bytes.
  #expect(DType.q8_0.blockSize == 32 && DType.q8_0.byteSize == 34)
  #expect(DType.q4_1.blockSize == 32 && DType.q4_1.byteSize == 20)
  #expect(DType.q4_1.bytes(forElements: 64) == 40 && DType.q4_1.bytes(forElements: 33) == nil)
}

@Test func quantisedBlocksDecodeExactlyAndRoundTripClosely() throws {
  // A hand-built Q4_1 block: d = 0.5, m = -1, element j has q = j % 16 → w = 0.5·q − 1.
  var raw = [UInt8](repeating: 0, count: 20)
  withUnsafeBytes(of: Float16(0.5).bitPattern) { raw[0] = $0[0]; raw[1] = $0[1] }
  withUnsafeBytes(of: Float16(-1).bitPattern) { raw[2] = $0[0]; raw[3] = $0[1] }
  for j in 0..<16 { raw[4 + j] = UInt8(j) | UInt8(15 - j) << 4 }
  var t = try Tensor(zeros: [32], dtype: .q4_1)
  t.storage.bytes.copyMemory(from: raw, byteCount: 20)
  let low: [Float] = (0..<16).map { (j: Int) -> Float in 0.5 * Float(j) - 1 }
  let high: [Float] = (0..<16).map { (j: Int) -> Float in 0.5 * Float(15 - j) - 1 }
  let expected = low + high
  #expect(t.scalars == expected)
  #expect(try t.indexed([.slice(16, 18, 1)]).scalars == [6.5, 6])
  // Quantise real values: errors within half a step of each block.
  let x = try Tensor.randn([4, 64], seed: 90)
  for type in [DType.q8_0, .q4_1] {
    let q = try x.copied(as: type)
    #expect(q.storage.byteCount == 8 * type.byteSize)
    let back = q.scalars, original = x.scalars
    for b in 0..<8 {
      let block = Array(original[(b * 32)..<(b * 32 + 32)])
      let amax: Float = block.map { Swift.abs($0) }.max() ?? 0
      let range: Float = (block.max() ?? 0) - (block.min() ?? 0)
      let step: Float = type == .q8_0 ? amax / 127 : range / 15
      var worst: Float = 0
      for i in 0..<32 { worst = Swift.max(worst, Swift.abs(back[b * 32 + i] - block[i])) }
      let bound: Float = step * 0.51 + 1e-3
      #expect(worst <= bound, "\(type) block \(b): error \(worst), step \(step)")
    }
    #expect(try q.gatheredRows([3, 1]).scalars == Array(back[192..<256]) + Array(back[64..<128]))
    #expect(try q.add(Tensor.zeros([1])).scalars == back)        // arithmetic reads through the blocks
  }
  #expect(throws: TensorError.self) { try Tensor.randn([33], seed: 1).copied(as: .q8_0) }
}
