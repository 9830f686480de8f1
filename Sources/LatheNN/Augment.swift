// Replayable augmentation of image batches [N, C, H, W]: random crop with padding, horizontal flip,
// random-resized crop, mixup and cutmix. Every random choice is a hash of (seed, epoch, sample, purpose), so
// `parameters(sample:epoch:)` recovers exactly what was done to any sample.

import Foundation
import LatheTensor

public struct Augmentation: Equatable {
  public var cropPadding = 0
  public var flip = false
  /// Random-resized crop: area fraction range and aspect-ratio range (Szegedy et al.), output the input size.
  public var resizedCrop: (scale: ClosedRange<Double>, ratio: ClosedRange<Double>)? = nil
  public var mixupAlpha: Double = 0
  public var cutmixAlpha: Double = 0
  public var seed: UInt64 = 0

  public init() {}

  public static func == (a: Augmentation, b: Augmentation) -> Bool {
    a.cropPadding == b.cropPadding && a.flip == b.flip && a.mixupAlpha == b.mixupAlpha && a.cutmixAlpha == b.cutmixAlpha
      && a.seed == b.seed && a.resizedCrop?.scale == b.resizedCrop?.scale && a.resizedCrop?.ratio == b.resizedCrop?.ratio
  }

  public var isIdentity: Bool { cropPadding == 0 && !flip && resizedCrop == nil && mixupAlpha == 0 && cutmixAlpha == 0 }

  /// What was done to one sample: the crop offset, whether it was flipped, the resized-crop box (y, x, h, w).
  public struct SampleParameters: Equatable {
    public var dy = 0, dx = 0
    public var flipped = false
    public var box: (y: Int, x: Int, h: Int, w: Int)? = nil
    public static func == (a: SampleParameters, b: SampleParameters) -> Bool {
      a.dy == b.dy && a.dx == b.dx && a.flipped == b.flipped && a.box?.y == b.box?.y && a.box?.x == b.box?.x
        && a.box?.h == b.box?.h && a.box?.w == b.box?.w
    }
  }

  func uniform(_ sample: Int, _ epoch: Int, _ purpose: UInt64) -> Double {
    let key = seed ^ (UInt64(truncatingIfNeeded: epoch) &* 0x9E37_79B9_7F4A_7C15) ^ (purpose &* 0xC2B2_AE3D_27D4_EB4F)
    return Double(CounterRandom.bits(seed: key, index: UInt64(truncatingIfNeeded: sample)) >> 11) * 0x1p-53
  }

  /// The random choices for dataset sample `sample` in `epoch`, for images of height h and width w.
  public func parameters(sample: Int, epoch: Int, height h: Int, width w: Int) -> SampleParameters {
    var p = SampleParameters()
    if cropPadding > 0 {
      p.dy = Int(uniform(sample, epoch, 1) * Double(2 * cropPadding + 1)) - cropPadding
      p.dx = Int(uniform(sample, epoch, 2) * Double(2 * cropPadding + 1)) - cropPadding
    }
    p.flipped = flip && uniform(sample, epoch, 3) < 0.5
    if let rrc = resizedCrop {
      // Up to 10 tries for a box that fits, else the whole image (as torchvision does).
      for attempt in 0..<10 {
        let u = UInt64(attempt * 2)
        let area = Double(h * w) * (rrc.scale.lowerBound + uniform(sample, epoch, 10 + u) * (rrc.scale.upperBound - rrc.scale.lowerBound))
        let logRatio = log(rrc.ratio.lowerBound) + uniform(sample, epoch, 11 + u) * (log(rrc.ratio.upperBound) - log(rrc.ratio.lowerBound))
        let bw = Int((area * exp(logRatio)).squareRoot().rounded()), bh = Int((area / exp(logRatio)).squareRoot().rounded())
        if bw >= 1, bh >= 1, bw <= w, bh <= h {
          p.box = (Int(uniform(sample, epoch, 30 + u) * Double(h - bh + 1)), Int(uniform(sample, epoch, 31 + u) * Double(w - bw + 1)), bh, bw)
          break
        }
      }
      if p.box == nil { p.box = (0, 0, h, w) }
    }
    return p
  }

  /// Augments a batch whose rows are dataset samples `samples`; returns images and soft targets [N, classes].
  public func apply(images: Tensor, labels: Tensor, samples: [Int], epoch: Int, classes: Int) throws -> (Tensor, Tensor) {
    guard images.rank == 4 else { throw TensorError.invalidShape(op: "augment", shape: images.shape, reason: "must be [N, C, H, W]") }
    let (n, c, h, w) = (images.shape[0], images.shape[1], images.shape[2], images.shape[3])
    let src = try images.contiguous(), sp = src.readPointer()
    var out = try Tensor(zeros: images.shape, op: "augment")
    let op = try out.mutablePointer()
    for b in 0..<n {
      let p = parameters(sample: samples[b], epoch: epoch, height: h, width: w)
      for ch in 0..<c {
        let plane = (b * c + ch) * h * w
        for y in 0..<h {
          for x in 0..<w {
            let xx = p.flipped ? w - 1 - x : x
            var value: Float = 0
            if let box = p.box {
              // Bilinear sample of the box, stretched over the whole output.
              let fy = Double(box.y) + (Double(y) + 0.5) * Double(box.h) / Double(h) - 0.5
              let fx = Double(box.x) + (Double(xx) + 0.5) * Double(box.w) / Double(w) - 0.5
              let y0 = Int(fy.rounded(.down)), x0 = Int(fx.rounded(.down))
              let ty = Float(fy - Double(y0)), tx = Float(fx - Double(x0))
              func at(_ yy: Int, _ xq: Int) -> Float { sp[plane + min(h - 1, max(0, yy)) * w + min(w - 1, max(0, xq))] }
              value = (1 - ty) * ((1 - tx) * at(y0, x0) + tx * at(y0, x0 + 1)) + ty * ((1 - tx) * at(y0 + 1, x0) + tx * at(y0 + 1, x0 + 1))
            } else {
              let sy = y + p.dy, sx = xx + p.dx
              if sy >= 0 && sy < h && sx >= 0 && sx < w { value = sp[plane + sy * w + sx] }
            }
            op[plane + y * w + x] = value
          }
        }
      }
    }
    var targets = try Tensor(zeros: [n, classes], op: "augment")
    let tp = try targets.mutablePointer()
    let ls = labels.scalars
    for b in 0..<n {
      let k = Int(ls[b])
      guard k >= 0 && k < classes else { throw TensorError.invalidArgument(op: "augment", reason: "label \(k) is not a class of 0..<\(classes)") }
      tp[b * classes + k] = 1
    }
    // Mixup / cutmix pair each sample with the batch reversed, with λ ~ Beta(α, α) drawn once per batch.
    let alpha = mixupAlpha > 0 ? mixupAlpha : cutmixAlpha
    guard alpha > 0, n > 1 else { return (out, targets) }
    let lambda = beta(alpha, samples.first.map { uniform($0, epoch, 50) } ?? 0.5, samples.first.map { uniform($0, epoch, 51) } ?? 0.5)
    let mixed = try out.copied(), mp = mixed.readPointer()
    var mixedTargets = try targets.copied()
    let mt = try mixedTargets.mutablePointer()
    var effective = lambda
    if mixupAlpha > 0 {
      for b in 0..<n { let o = n - 1 - b; for i in 0..<(c * h * w) { op[b * c * h * w + i] = Float(lambda) * mp[b * c * h * w + i] + Float(1 - lambda) * mp[o * c * h * w + i] } }
    } else {
      let cutH = Int(Double(h) * (1 - lambda).squareRoot()), cutW = Int(Double(w) * (1 - lambda).squareRoot())
      let cy = Int(uniform(samples[0], epoch, 52) * Double(h)), cx = Int(uniform(samples[0], epoch, 53) * Double(w))
      let y0 = max(0, cy - cutH / 2), y1 = min(h, cy + cutH / 2), x0 = max(0, cx - cutW / 2), x1 = min(w, cx + cutW / 2)
      for b in 0..<n {
        let o = n - 1 - b
        for ch in 0..<c { for y in y0..<max(y0, y1) { for x in x0..<max(x0, x1) {
          op[((b * c + ch) * h + y) * w + x] = mp[((o * c + ch) * h + y) * w + x]
        } } }
      }
      effective = 1 - Double(max(0, y1 - y0) * max(0, x1 - x0)) / Double(h * w)
    }
    let tv = targets.readPointer()
    for b in 0..<n { for k in 0..<classes { mt[b * classes + k] = Float(effective) * tv[b * classes + k] + Float(1 - effective) * tv[(n - 1 - b) * classes + k] } }
    return (out, mixedTargets)
  }

  /// A Beta(α, α) draw from two uniforms, through the ratio of two Gamma(α) draws (Marsaglia–Tsang for α ≥ 1,
  /// boosted below 1); deterministic given the uniforms.
  func beta(_ alpha: Double, _ u1: Double, _ u2: Double) -> Double {
    func gamma(_ a: Double, _ u: Double, _ salt: UInt64) -> Double {
      let boost = a < 1 ? pow(max(u, 1e-12), 1 / a) : 1
      let d = (a < 1 ? a + 1 : a) - 1.0 / 3, c = 1 / (9 * d).squareRoot()
      var i: UInt64 = 0
      while i < 64 {
        let z = Double(CounterRandom.normal(seed: salt, index: i))
        let v = pow(1 + c * z, 3)
        let uu = Double(CounterRandom.uniform(seed: salt ^ 0xABCD, index: i))
        if v > 0 && log(max(uu, 1e-12)) < 0.5 * z * z + d - d * v + d * log(v) { return d * v * boost }
        i += 1
      }
      return d * boost
    }
    let x = gamma(alpha, u1, UInt64(u1 * 1e15)), y = gamma(alpha, u2, UInt64(u2 * 1e15) ^ 0x5555)
    return x + y > 0 ? x / (x + y) : 0.5
  }
}
