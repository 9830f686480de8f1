// RunaheadCosts+Measured: the simulator's costs for one model on this machine, from timed chunk forwards of the
// model itself on one compute thread (as each worker process runs), and a memcpy for shared-memory links.

import Foundation
import LatheModels

extension RunaheadCosts {
  /// One timed layer: a chunk of `tokens` queries attending densely over `keys` keys took `seconds`.
  public typealias LayerSample = (tokens: Int, keys: Int, seconds: Double)

  /// Costs measured on `model` with one compute thread. For each chunk size c in `tokens` and each key count
  /// S = c + extra for extra in `extraKeys`, one chunk forward runs at positions S − c ..< S (as the last process of
  /// a runahead chain) and is stopped after `layers` layers; the time between two layers' key exchanges is one
  /// whole layer, t_pre(c) + t_att(c, S) + t_post(c), and the median over the layers is one sample. The samples
  /// are fitted by `fittingLayers`; t_head is the LM head's 2·d·vocab FLOPs at the fitted linear rate, and
  /// `memcpyBandwidth` is the best of a few 32 MB copies (what a shared-memory "send" costs). Takes a few seconds.
  ///
  ///     let (costs, samples, memcpy) = try RunaheadCosts.measured(on: model)
  public static func measured(on model: LlamaModel, tokens: [Int] = [64, 256, 512], extraKeys: [Int] = [0, 1536, 3584],
                              layers: Int = 4) throws
    -> (costs: RunaheadCosts, samples: [LayerSample], memcpyBandwidth: Double) {
    let config = model.config
    guard layers >= 2, layers <= config.layerCount else {
      throw RunaheadError("calibration: needs 2 to \(config.layerCount) layers, got \(layers)")
    }
    let width = (config.kvHeadCounts.max() ?? 1) * config.headDimension
    let longest = (tokens.max() ?? 1) + (extraKeys.max() ?? 0)
    guard tokens.allSatisfy({ $0 >= 1 }), extraKeys.allSatisfy({ $0 >= 0 }), longest <= config.contextLength else {
      throw RunaheadError("calibration: chunk sizes and key counts must fit the model's context of \(config.contextLength)")
    }
    let keys = UnsafeMutablePointer<Float>.allocate(capacity: longest * width)
    let values = UnsafeMutablePointer<Float>.allocate(capacity: longest * width)
    defer { keys.deallocate(); values.deallocate() }
    for i in 0..<(longest * width) { keys[i] = Float(i % 7) * 0.01; values[i] = Float(i % 5) * 0.01 }

    let threads = model.threads
    model.threads = 1
    defer { model.threads = threads }
    func timeLayers(_ c: Int, _ s: Int) throws -> [Double] {
      try RunaheadCosts.timeLayers(model, tokens: c, keys: s, layers: layers, keyBuffer: keys, valueBuffer: values, width: width)
    }
    _ = try timeLayers(tokens.min() ?? 1, tokens.min() ?? 1)        // warm the weights and buffers
    var samples: [LayerSample] = []
    for c in tokens {
      for extra in extraKeys {
        let times = try timeLayers(c, c + extra).sorted()
        samples.append((c, c + extra, times[times.count / 2]))
      }
    }
    var costs = RunaheadCosts(config, flopsPerSecond: 1e10)
    costs = try costs.fittingLayers(samples)
    // The head as the same FLOP rate as the layers' linear work.
    let d = Double(config.dimension), q = Double(config.headCounts.max() ?? 1) * Double(config.headDimension)
    let kv = Double(config.kvHeadCounts.max() ?? 1) * Double(config.headDimension)
    let linearFlopsPerToken = 2 * d * (q + 2 * kv) + 2 * (q * d + 3 * d * Double(config.ffnWidths.max() ?? 1))
    let perToken = costs.prePerToken + costs.postPerToken
    costs.head = perToken > 0 ? 2 * d * Double(config.vocabularySize) / (linearFlopsPerToken / perToken) : 0
    return (costs, samples, RunaheadCosts.memcpyBandwidth())
  }

  /// Stops a chunk forward after the layers being timed.
  private struct Stop: Error {}

  /// Seconds of each whole layer of a chunk forward of `tokens` tokens over `keys` keys, for layers 1..<`layers`:
  /// from the end of layer l's exchange to layer l+1's (attention and post of l, pre of l+1; the copy excluded).
  private static func timeLayers(_ model: LlamaModel, tokens c: Int, keys s: Int, layers: Int,
                                 keyBuffer: UnsafeMutablePointer<Float>, valueBuffer: UnsafeMutablePointer<Float>,
                                 width: Int) throws -> [Double] {
    var marks: [UInt64] = [], returned: [UInt64] = []
    let ids = (0..<c).map { ($0 * 7919 + 13) % model.config.vocabularySize }
    let exchange: (Int, UnsafePointer<Float>, UnsafePointer<Float>) throws -> ChunkAttentionInput = { l, k, v in
      marks.append(DispatchTime.now().uptimeNanoseconds)
      if l == layers { throw Stop() }
      (keyBuffer + (s - c) * width).update(from: k, count: c * width)
      (valueBuffer + (s - c) * width).update(from: v, count: c * width)
      returned.append(DispatchTime.now().uptimeNanoseconds)
      return ChunkAttentionInput(keys: keyBuffer, values: valueBuffer, length: s)
    }
    do {
      _ = try model.forwardChunk(ids, offset: s - c, logits: false, exchange: exchange)
    } catch is Stop {
    }
    return (1..<marks.count).map { Double(marks[$0] - returned[$0 - 1]) / 1e9 }
  }

  /// Bytes per second of a 32 MB memcpy, the best of 5.
  public static func memcpyBandwidth(bytes: Int = 32 << 20) -> Double {
    let from = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
    let to = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
    defer { from.deallocate(); to.deallocate() }
    memset(from, 1, bytes); memset(to, 0, bytes)
    var best = Double.infinity
    for _ in 0..<5 {
      let t0 = DispatchTime.now().uptimeNanoseconds
      memcpy(to, from, bytes)
      best = min(best, Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9)
    }
    return Double(bytes) / max(best, 1e-9)
  }

  /// A copy whose per-layer costs fit whole-layer samples by least squares, seconds ≈ a + b·c + w·E(c, S) with
  /// a, b, w ≥ 0 (every subset of the three terms is fitted and the best fit with no negative coefficient kept).
  /// Whole-layer timings cannot tell t_pre from t_post, so a and b are split between them in proportion to their
  /// FLOPs, 2·d·(n_q + 2·n_kv)·d_head against 2·(n_q·d_head·d + 3·d·ffn) (SmolLM2: 16% pre, 84% post); the
  /// attention constant is 0.
  ///
  ///     let costs = try base.fittingLayers([(64, 64, 0.002), (64, 2048, 0.005), (512, 512, 0.012), (512, 4096, 0.05)])
  public func fittingLayers(_ samples: [LayerSample], preShare: Double? = nil) throws -> RunaheadCosts {
    guard !samples.isEmpty else { throw RunaheadError("calibration: no layer samples") }
    for s in samples where !(s.tokens >= 1 && s.keys >= s.tokens && s.seconds.isFinite && s.seconds >= 0) {
      throw RunaheadError("calibration: a layer sample of \(s.tokens) tokens over \(s.keys) keys in \(s.seconds) s is not a measurement")
    }
    let rows = samples.map { [1, Double($0.tokens), scoreEntries(queries: Double($0.tokens), keys: Double($0.keys))] }
    let ys = samples.map(\.seconds)
    var best: (coefficients: [Double], residual: Double)? = nil
    for mask in 1..<8 {
      let used = (0..<3).filter { mask & (1 << $0) != 0 }
      guard let solved = RunaheadCosts.leastSquares(rows.map { r in used.map { r[$0] } }, ys),
            solved.allSatisfy({ $0 >= 0 }) else { continue }
      var coefficients = [0.0, 0, 0]
      for (j, i) in used.enumerated() { coefficients[i] = solved[j] }
      let residual = zip(rows, ys).reduce(0.0) { sum, p in
        let e = p.1 - zip(p.0, coefficients).reduce(0) { $0 + $1.0 * $1.1 }
        return sum + e * e
      }
      if residual < best?.residual ?? .infinity { best = (coefficients, residual) }
    }
    guard let best else { throw RunaheadError("calibration: the layer samples fit no non-negative costs") }
    let share = preShare ?? RunaheadCosts.defaultPreShare
    var out = self
    out.preConstant = best.coefficients[0] * share; out.postConstant = best.coefficients[0] * (1 - share)
    out.prePerToken = best.coefficients[1] * share; out.postPerToken = best.coefficients[1] * (1 - share)
    out.attentionConstant = 0; out.attentionPerEntry = best.coefficients[2]
    try out.validate()
    return out
  }

  /// SmolLM2-135M's pre share of linear FLOPs: 2·576·960 / (2·576·960 + 2·(576·576 + 3·576·1536)).
  static let defaultPreShare = 1_105_920.0 / (1_105_920.0 + 5_971_968.0)

  /// Solves the normal equations of min ‖X·β − y‖ by Gaussian elimination with partial pivoting, each column scaled
  /// to a largest magnitude of 1 first (tokens and score entries differ by 10⁴); nil when singular.
  static func leastSquares(_ unscaled: [[Double]], _ y: [Double]) -> [Double]? {
    let n = unscaled.first?.count ?? 0
    guard n > 0, unscaled.count >= n else { return nil }
    let scales = (0..<n).map { j in Swift.max(unscaled.map { abs($0[j]) }.max() ?? 1, 1e-300) }
    let x = unscaled.map { row in (0..<n).map { row[$0] / scales[$0] } }
    guard let beta = solveNormal(x, y, n) else { return nil }
    return (0..<n).map { beta[$0] / scales[$0] }
  }

  private static func solveNormal(_ x: [[Double]], _ y: [Double], _ n: Int) -> [Double]? {
    var a = [[Double]](repeating: [Double](repeating: 0, count: n + 1), count: n)
    for (row, target) in zip(x, y) {
      for i in 0..<n {
        for j in 0..<n { a[i][j] += row[i] * row[j] }
        a[i][n] += row[i] * target
      }
    }
    for col in 0..<n {
      guard let pivot = (col..<n).max(by: { abs(a[$0][col]) < abs(a[$1][col]) }), abs(a[pivot][col]) > 1e-12 else { return nil }
      a.swapAt(col, pivot)
      for r in 0..<n where r != col {
        let f = a[r][col] / a[col][col]
        for c in col...n { a[r][c] -= f * a[col][c] }
      }
    }
    return (0..<n).map { a[$0][n] / a[$0][$0] }
  }
}
