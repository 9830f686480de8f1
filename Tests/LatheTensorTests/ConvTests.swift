// conv2d and pooling against direct loops, and their gradients against finite differences.

import Testing
@testable import LatheTensor

/// Direct convolution, one output element at a time.
func referenceConv(_ x: Tensor, _ w: Tensor, _ b: Tensor?, stride: Int, padding: Int, dilation: Int, groups: Int) throws -> [Float] {
  let (n, c, h, wd) = (x.shape[0], x.shape[1], x.shape[2], x.shape[3])
  let (o, cg, kh, kw) = (w.shape[0], w.shape[1], w.shape[2], w.shape[3])
  let oh = (h + 2 * padding - dilation * (kh - 1) - 1) / stride + 1, ow = (wd + 2 * padding - dilation * (kw - 1) - 1) / stride + 1
  let xv = x.scalars, wv = w.scalars, bv = b?.scalars
  var out: [Float] = []
  for b0 in 0..<n { for oc in 0..<o { for y in 0..<oh { for xx in 0..<ow {
    var s: Float = bv?[oc] ?? 0
    let grp = oc / (o / groups)
    for ic in 0..<cg { for i in 0..<kh { for j in 0..<kw {
      let iy = y * stride - padding + i * dilation, ix = xx * stride - padding + j * dilation
      guard iy >= 0, iy < h, ix >= 0, ix < wd else { continue }
      let cIn = grp * cg + ic
      s += xv[((b0 * c + cIn) * h + iy) * wd + ix] * wv[((oc * cg + ic) * kh + i) * kw + j]
    } } }
    out.append(s)
  } } } }
  _ = c
  return out
}

@Test(arguments: [(1, 1, 0, 1, 1), (2, 1, 1, 1, 1), (1, 2, 2, 1, 1), (1, 1, 1, 2, 1), (1, 1, 1, 1, 2), (1, 1, 1, 1, 4)])
func conv2dMatchesDirectLoops(stride: Int, padding: Int, pad2: Int, dilation: Int, groups: Int) throws {
  let x = try Tensor.randn([2, 4, 7, 6], seed: 1), w = try Tensor.randn([8, 4 / groups, 3, 3], seed: 2), b = try Tensor.randn([8], seed: 3)
  let p = padding + pad2 - (pad2 > 0 ? 1 : 0)
  let got = try Tensor.conv2d(x, w, bias: b, stride: stride, padding: p, dilation: dilation, groups: groups)
  expectClose(got.scalars, try referenceConv(x, w, b, stride: stride, padding: p, dilation: dilation, groups: groups))
}

@Test func convolutionAndPoolingGradients() throws {
  let x = try Tensor.randn([2, 2, 5, 5], seed: 4)
  let w = Variable(try Tensor.randn([3, 2, 3, 3], seed: 5)), b = Variable(try Tensor.randn([3], seed: 6))
  let mix = Variable(try Tensor.randn([2, 3, 3, 3], seed: 7))
  try checkGradient("conv2d input", x) { try Variable.conv2d($0, w, bias: b, stride: 2, padding: 1).multiply(mix) }
  try checkGradient("conv2d weight", w.value) { try Variable.conv2d(Variable(x), $0, bias: b, stride: 2, padding: 1).multiply(mix) }
  try checkGradient("conv2d bias", b.value) { try Variable.conv2d(Variable(x), w, bias: $0, stride: 2, padding: 1).multiply(mix) }
  try checkGradient("depthwise conv2d", x) {
    try Variable.conv2d($0, Variable(try Tensor.randn([2, 1, 3, 3], seed: 8)), bias: nil, padding: 1, groups: 2)
      .multiply(Variable(try Tensor.randn([2, 2, 5, 5], seed: 9)))
  }
  let distinct = try Tensor.arange(0, 50).reshaped(to: [1, 2, 5, 5]).multiply(Tensor.randn([1, 2, 5, 5], seed: 10).binary(.multiply, scalar: 0.01).add(Tensor.ones([1])))
  try checkGradient("maxpool", distinct, tolerance: 5e-2) { try $0.maxPool2d(kernel: 2).multiply(Variable(try Tensor.randn([1, 2, 2, 2], seed: 11))) }
  try checkGradient("avgpool", x) { try $0.avgPool2d(kernel: 2, stride: 1).multiply(Variable(try Tensor.randn([2, 2, 4, 4], seed: 12))) }
}

@Test func convolutionChecksShapes() throws {
  #expect(throws: TensorError.self) { try Tensor.conv2d(try Tensor.zeros([1, 3, 5, 5]), try Tensor.zeros([4, 2, 3, 3]), bias: nil) }
  #expect(throws: TensorError.self) { try Tensor.conv2d(try Tensor.zeros([1, 1, 2, 2]), try Tensor.zeros([1, 1, 3, 3]), bias: nil) }
  #expect(throws: TensorError.self) { try Tensor.conv2d(try Tensor.zeros([3, 5, 5]), try Tensor.zeros([1, 3, 3, 3]), bias: nil) }
  let (pooled, _) = try Tensor.maxPool2d(try Tensor.arange(0, 16).reshaped(to: [1, 1, 4, 4]), kernel: 2)
  #expect(pooled.scalars == [5, 7, 13, 15])
}
