// 2-D convolution (stride, padding, dilation, groups) by im2col + GEMM, and max/average pooling.

/// The geometry of one convolution or pooling: input [N, C, H, W], kernel kh×kw, output [N, O, oh, ow].
public struct ConvGeometry: Equatable {
  public let n, c, h, w, kh, kw, stride, padding, dilation, groups, oh, ow: Int
  /// The largest kernel size, stride, padding, dilation or group count: with sides of at most 2^40 (any tensor the
  /// budget allows), every size below stays far inside Int.
  public static let maximumParameter = 1 << 24

  public init(input: [Int], kernel: (Int, Int), stride: Int, padding: Int, dilation: Int, groups: Int, op: String) throws {
    guard input.count == 4 else { throw TensorError.invalidShape(op: op, shape: input, reason: "must be [batch, channels, height, width]") }
    guard stride >= 1, padding >= 0, dilation >= 1, groups >= 1, kernel.0 >= 1, kernel.1 >= 1 else {
      throw TensorError.invalidArgument(op: op, reason: "stride, dilation, groups and kernel sizes must be >= 1 and padding >= 0")
    }
    let largest = ConvGeometry.maximumParameter
    guard stride <= largest, padding <= largest, dilation <= largest, groups <= largest, kernel.0 <= largest, kernel.1 <= largest else {
      throw TensorError.invalidArgument(op: op, reason: "stride \(stride), padding \(padding), dilation \(dilation), groups \(groups) and kernel \(kernel.0)×\(kernel.1) must each be at most \(largest)")
    }
    guard input.allSatisfy({ $0 >= 0 && $0 <= 1 << 40 }) else {
      throw TensorError.invalidShape(op: op, shape: input, reason: "has a side outside 0...2^40")
    }
    n = input[0]; c = input[1]; h = input[2]; w = input[3]; kh = kernel.0; kw = kernel.1
    self.stride = stride; self.padding = padding; self.dilation = dilation; self.groups = groups
    oh = (h + 2 * padding - dilation * (kh - 1) - 1) / stride + 1
    ow = (w + 2 * padding - dilation * (kw - 1) - 1) / stride + 1
    guard oh >= 1, ow >= 1 else {
      throw TensorError.invalidShape(op: op, shape: input, reason: "is smaller than the \(kh)×\(kw) kernel (dilation \(dilation), padding \(padding))")
    }
  }

  /// The output columns xx whose input column xx·stride + offset lies inside 0..<w.
  @inline(__always) func validColumns(offset: Int) -> Range<Int> {
    let first = offset >= 0 ? 0 : (-offset + stride - 1) / stride
    let last = w - offset <= 0 ? 0 : (w - offset + stride - 1) / stride
    let lo = Swift.min(first, ow), hi = Swift.max(lo, Swift.min(last, ow))
    return lo..<hi
  }

  /// Unfolds one image's channel block [cs, h, w] into columns [cs·kh·kw, oh·ow] (zeros where padding). The valid
  /// span of each output row is found once, so the inner loop is a plain (strided) copy.
  func im2col(_ x: UnsafePointer<Float>, channels cs: Int, _ cols: UnsafeMutablePointer<Float>) {
    let area = oh * ow
    for ch in 0..<cs {
      for i in 0..<kh {
        for j in 0..<kw {
          let row = cols + ((ch * kh + i) * kw + j) * area
          let offset = j * dilation - padding, span = validColumns(offset: offset)
          for y in 0..<oh {
            let iy = y * stride - padding + i * dilation
            let out = row + y * ow
            if iy < 0 || iy >= h { out.update(repeating: 0, count: ow); continue }
            let src = x + (ch * h + iy) * w + offset
            if span.lowerBound > 0 { out.update(repeating: 0, count: span.lowerBound) }
            if stride == 1 {
              (out + span.lowerBound).update(from: src + span.lowerBound, count: span.count)
            } else {
              for xx in span { out[xx] = src[xx * stride] }
            }
            if span.upperBound < ow { (out + span.upperBound).update(repeating: 0, count: ow - span.upperBound) }
          }
        }
      }
    }
  }

  /// The adjoint of im2col: adds columns back into an image's channel block.
  func col2im(_ cols: UnsafePointer<Float>, channels cs: Int, _ x: UnsafeMutablePointer<Float>) {
    let area = oh * ow
    for ch in 0..<cs {
      for i in 0..<kh {
        for j in 0..<kw {
          let row = cols + ((ch * kh + i) * kw + j) * area
          let offset = j * dilation - padding, span = validColumns(offset: offset)
          for y in 0..<oh {
            let iy = y * stride - padding + i * dilation
            if iy < 0 || iy >= h { continue }
            let dst = x + (ch * h + iy) * w + offset, src = row + y * ow
            if stride == 1 {
              for xx in span { dst[xx] += src[xx] }
            } else {
              for xx in span { dst[xx * stride] += src[xx] }
            }
          }
        }
      }
    }
  }
}

extension Tensor {
  /// Convolution of x [N, C, H, W] with weight [O, C/groups, kh, kw] (+ bias [O]) → [N, O, oh, ow].
  public static func conv2d(_ x: Tensor, _ weight: Tensor, bias: Tensor?, stride: Int = 1, padding: Int = 0,
                            dilation: Int = 1, groups: Int = 1) throws -> Tensor {
    guard weight.rank == 4 else { throw TensorError.invalidShape(op: "conv2d", shape: weight.shape, reason: "weight must be [out, in/groups, kh, kw]") }
    let g = try ConvGeometry(input: x.shape, kernel: (weight.shape[2], weight.shape[3]), stride: stride, padding: padding,
                             dilation: dilation, groups: groups, op: "conv2d")
    let o = weight.shape[0]
    guard g.c % groups == 0, o % groups == 0, weight.shape[1] == g.c / groups else {
      throw TensorError.shapeMismatch(op: "conv2d", lhs: x.shape, rhs: weight.shape)
    }
    if let bias, bias.shape != [o] { throw TensorError.shapeMismatch(op: "conv2d", lhs: weight.shape, rhs: bias.shape) }
    let cs = g.c / groups, os = o / groups, k = cs * g.kh * g.kw, area = g.oh * g.ow
    let xs = try x.contiguous(), ws = try weight.contiguous()
    var out = try Tensor(uninitialized: [g.n, o, g.oh, g.ow], op: "conv2d")
    let outP = try out.mutablePointer(), xP = xs.readPointer(), wP = ws.readPointer()
    // Each task's column buffer [k, area], within the budget (its size is checked for overflow first).
    guard let columns = Memory.count([k, area, 4, Swift.max(1, Swift.min(g.n, ThreadPool.shared.threadCount))]) else {
      throw TensorError.outOfMemory(op: "conv2d", bytes: Int.max, budget: Memory.budget)
    }
    try Memory.check(columns, op: "conv2d")
    // One image per task: each writes its own output planes, so the result does not depend on the thread count.
    ThreadPool.shared.parallelFor(g.n) { b in
      if Cancellation.requested { return }               // Ctrl-C: the remaining images are skipped
      let colsP = UnsafeMutablePointer<Float>.allocate(capacity: k * area)
      defer { colsP.deallocate() }
      for grp in 0..<groups {
        g.im2col(xP + (b * g.c + grp * cs) * g.h * g.w, channels: cs, colsP)
        Gemm.multiply(transposeA: false, transposeB: false, m: os, n: area, k: k, wP + grp * os * k, lda: k, colsP, ldb: area,
                      outP + (b * o + grp * os) * area, ldc: area)
      }
    }
    try Cancellation.check("conv2d")
    if let bias {
      let bP = try bias.contiguous().readPointer()
      for b in 0..<g.n { for ch in 0..<o { let row = outP + (b * o + ch) * area; for i in 0..<area { row[i] += bP[ch] } } }
    }
    return out
  }

  /// Gradients of conv2d: (dx, dweight, dbias) for the output gradient `grad`.
  public static func conv2dBackward(_ x: Tensor, _ weight: Tensor, grad: Tensor, stride: Int, padding: Int, dilation: Int,
                                    groups: Int) throws -> (Tensor, Tensor, Tensor) {
    let g = try ConvGeometry(input: x.shape, kernel: (weight.shape[2], weight.shape[3]), stride: stride, padding: padding,
                             dilation: dilation, groups: groups, op: "conv2d")
    let o = weight.shape[0], cs = g.c / groups, os = o / groups, k = cs * g.kh * g.kw, area = g.oh * g.ow
    let xs = try x.contiguous(), ws = try weight.contiguous(), gs = try grad.contiguous()
    var dx = try Tensor(zeros: x.shape, op: "conv2d"), dw = try Tensor(zeros: weight.shape, op: "conv2d"), db = try Tensor(zeros: [o], op: "conv2d")
    let dxP = try dx.mutablePointer(), dwP = try dw.mutablePointer(), dbP = try db.mutablePointer()
    let xP = xs.readPointer(), wP = ws.readPointer(), gP = gs.readPointer()
    // One image per task; each image's weight and bias gradients go to its own slot and are summed in image order
    // afterwards, so the result is the same for any thread count.
    let wCount = weight.count
    // The per-image partial gradients and each task's two column buffers, within the budget.
    let tasks = Swift.max(1, Swift.min(g.n, ThreadPool.shared.threadCount))
    guard let partials = Memory.count([g.n, wCount + o, 4]), let columns = Memory.count([k, area, 8, tasks]),
          partials <= Int.max - columns else {
      throw TensorError.outOfMemory(op: "conv2d", bytes: Int.max, budget: Memory.budget)
    }
    try Memory.check(partials + columns, op: "conv2d")
    let partialW = UnsafeMutablePointer<Float>.allocate(capacity: g.n * wCount), partialB = UnsafeMutablePointer<Float>.allocate(capacity: g.n * o)
    defer { partialW.deallocate(); partialB.deallocate() }
    ThreadPool.shared.parallelFor(g.n) { b in
      if Cancellation.requested { return }
      let colsP = UnsafeMutablePointer<Float>.allocate(capacity: k * area), dcolsP = UnsafeMutablePointer<Float>.allocate(capacity: k * area)
      defer { colsP.deallocate(); dcolsP.deallocate() }
      let myW = partialW + b * wCount
      for grp in 0..<groups {
        let gOut = gP + (b * o + grp * os) * area
        g.im2col(xP + (b * g.c + grp * cs) * g.h * g.w, channels: cs, colsP)
        // dW_g = dY_g [os, area] · colsᵀ [area, k]   (this image's share)
        Gemm.multiply(transposeA: false, transposeB: true, m: os, n: k, k: area, gOut, lda: area, colsP, ldb: area,
                      myW + grp * os * k, ldc: k)
        // dcols = W_gᵀ [k, os] · dY_g [os, area], then folded back into dx
        Gemm.multiply(transposeA: true, transposeB: false, m: k, n: area, k: os, wP + grp * os * k, lda: k, gOut, ldb: area,
                      dcolsP, ldc: area)
        g.col2im(dcolsP, channels: cs, dxP + (b * g.c + grp * cs) * g.h * g.w)
      }
      for ch in 0..<o { let row = gP + (b * o + ch) * area; var s: Float = 0; for i in 0..<area { s += row[i] }; partialB[b * o + ch] = s }
    }
    try Cancellation.check("conv2d")
    for b in 0..<g.n {
      for i in 0..<wCount { dwP[i] += partialW[b * wCount + i] }
      for ch in 0..<o { dbP[ch] += partialB[b * o + ch] }
    }
    return (dx, dw, db)
  }

  /// Max pooling over kh×kw windows; also returns, for each output, the flat input index of its maximum.
  public static func maxPool2d(_ x: Tensor, kernel: Int, stride: Int? = nil, padding: Int = 0) throws -> (Tensor, [Int32]) {
    let g = try ConvGeometry(input: x.shape, kernel: (kernel, kernel), stride: stride ?? kernel, padding: padding, dilation: 1,
                             groups: 1, op: "maxpool2d")
    let xs = try x.contiguous(), xP = xs.readPointer()
    var out = try Tensor(uninitialized: [g.n, g.c, g.oh, g.ow], op: "maxpool2d")
    let outP = try out.mutablePointer()
    var argmax = [Int32](repeating: -1, count: out.count)
    let planes = g.n * g.c, planeSize = g.h * g.w
    guard let lastIndex = Memory.count([planes, planeSize]), lastIndex <= Int(Int32.max) else {
      throw TensorError.invalidShape(op: "maxpool2d", shape: x.shape, reason: "has more than 2^31 elements")
    }
    argmax.withUnsafeMutableBufferPointer { am in
      guard let amP = am.baseAddress else { return }
      // Planes in chunks over the pool; each output is written by one task.
      let chunk = Swift.max(1, 4096 / Swift.max(1, g.oh * g.ow))
      ThreadPool.shared.parallelFor((planes + chunk - 1) / chunk) { c in
        for plane in (c * chunk)..<Swift.min(planes, (c + 1) * chunk) {
          let src = xP + plane * planeSize
          if kernel == 2 && g.stride == 2 && padding == 0 {
            // The common 2×2 window: four loads, the first largest kept (as the general loop does).
            for y in 0..<g.oh {
              let r0 = 2 * y * g.w, r1 = r0 + g.w
              for xx in 0..<g.ow {
                var best = src[r0 + 2 * xx], at = r0 + 2 * xx
                let b = src[r0 + 2 * xx + 1], c = src[r1 + 2 * xx], d = src[r1 + 2 * xx + 1]
                if b > best { best = b; at = r0 + 2 * xx + 1 }
                if c > best { best = c; at = r1 + 2 * xx }
                if d > best { best = d; at = r1 + 2 * xx + 1 }
                let o = (plane * g.oh + y) * g.ow + xx
                outP[o] = best
                amP[o] = Int32(plane * planeSize + at)
              }
            }
            continue
          }
          for y in 0..<g.oh {
            for xx in 0..<g.ow {
              var best = -Float.infinity, at = -1
              if padding == 0 {
                // Every window lies inside the plane.
                let top = y * g.stride, left = xx * g.stride
                for i in 0..<kernel {
                  let r = (top + i) * g.w + left
                  for j in 0..<kernel {
                    let v = src[r + j]
                    if v > best || at < 0 { best = v; at = r + j }
                  }
                }
              } else {
                for i in 0..<kernel {
                  let iy = y * g.stride - padding + i
                  if iy < 0 || iy >= g.h { continue }
                  for j in 0..<kernel {
                    let ix = xx * g.stride - padding + j
                    if ix < 0 || ix >= g.w { continue }
                    let v = src[iy * g.w + ix]
                    if v > best || at < 0 { best = v; at = iy * g.w + ix }
                  }
                }
              }
              let o = (plane * g.oh + y) * g.ow + xx
              outP[o] = best
              amP[o] = Int32(plane * planeSize + at)
            }
          }
        }
      }
    }
    return (out, argmax)
  }

  /// Average pooling over kh×kw windows (padding counts as zeros, as PyTorch's default count_include_pad).
  public static func avgPool2d(_ x: Tensor, kernel: Int, stride: Int? = nil, padding: Int = 0) throws -> Tensor {
    let g = try ConvGeometry(input: x.shape, kernel: (kernel, kernel), stride: stride ?? kernel, padding: padding, dilation: 1,
                             groups: 1, op: "avgpool2d")
    let xs = try x.contiguous(), xP = xs.readPointer()
    var out = try Tensor(zeros: [g.n, g.c, g.oh, g.ow], op: "avgpool2d")
    let outP = try out.mutablePointer()
    let scale = 1 / Float(kernel * kernel)
    for plane in 0..<(g.n * g.c) {
      let src = xP + plane * g.h * g.w
      for y in 0..<g.oh {
        for xx in 0..<g.ow {
          var s: Float = 0
          for i in 0..<kernel {
            let iy = y * g.stride - padding + i
            if iy < 0 || iy >= g.h { continue }
            for j in 0..<kernel {
              let ix = xx * g.stride - padding + j
              if ix >= 0 && ix < g.w { s += src[iy * g.w + ix] }
            }
          }
          outP[(plane * g.oh + y) * g.ow + xx] = s * scale
        }
      }
    }
    return out
  }
}
