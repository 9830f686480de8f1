// RunaheadCosts+Calibration: the linear cost coefficients fitted by least squares to measured phase timings.

extension RunaheadCosts {
  /// A copy whose pre, attention and post coefficients are fitted to measured seconds of one layer's phases
  /// (each sample: chunk tokens, and for attention the keys the chunk attends to); layers, B_kv, the tile rule and
  /// the link stay as they are. `head`, when given, replaces t_head. Each phase is fitted by `linearFit`; attention
  /// is fitted against E(c, S) under this value's `skipsMaskedTiles`.
  ///
  ///     let costs = try base.calibrated(pre: [(64, 1.1e-3), (256, 4.2e-3)], attention: [(64, 64, 2e-5), (256, 512, 6e-4)],
  ///                                     post: [(64, 3.0e-3), (256, 11.9e-3)])
  public func calibrated(pre: [(tokens: Int, seconds: Double)], attention: [(queries: Int, keys: Int, seconds: Double)],
                         post: [(tokens: Int, seconds: Double)], head: Double? = nil) throws -> RunaheadCosts {
    for (q, k, _) in attention where q < 1 || k < q {
      throw RunaheadError("calibration: an attention sample needs 1 ≤ queries ≤ keys, got \(q) queries and \(k) keys")
    }
    var out = self
    (out.preConstant, out.prePerToken) = try RunaheadCosts.linearFit(pre.map { (Double($0.tokens), $0.seconds) }, phase: "pre")
    (out.attentionConstant, out.attentionPerEntry) = try RunaheadCosts.linearFit(
      attention.map { (scoreEntries(queries: Double($0.queries), keys: Double($0.keys)), $0.seconds) }, phase: "attention")
    (out.postConstant, out.postPerToken) = try RunaheadCosts.linearFit(post.map { (Double($0.tokens), $0.seconds) }, phase: "post")
    if let head { out.head = head }
    try out.validate()
    return out
  }

  /// Least squares y ≈ constant + slope·x with both coefficients ≥ 0, since a cost can be neither negative nor
  /// shrink with work: a negative constant refits through the origin (slope = Σxy / Σx²); a negative slope keeps
  /// only the mean; fewer than two distinct x fit through the origin. Throws on no samples, x < 0 or seconds that
  /// are negative or not finite.
  ///
  ///     try RunaheadCosts.linearFit([(1, 3), (2, 5), (3, 7)], phase: "pre") == (1, 2)
  public static func linearFit(_ points: [(x: Double, y: Double)], phase: String) throws -> (constant: Double, slope: Double) {
    guard !points.isEmpty else { throw RunaheadError("calibration: no \(phase) samples") }
    for (x, y) in points where !(x.isFinite && x >= 0 && y.isFinite && y >= 0) {
      throw RunaheadError("calibration: a \(phase) sample of \(x) tokens in \(y) s is not a finite, non-negative measurement")
    }
    let n = Double(points.count)
    let meanX = points.map(\.x).reduce(0, +) / n, meanY = points.map(\.y).reduce(0, +) / n
    var sxx = 0.0, sxy = 0.0
    for (x, y) in points { sxx += (x - meanX) * (x - meanX); sxy += (x - meanX) * (y - meanY) }
    func throughOrigin() -> (Double, Double) {
      let xx = points.reduce(0) { $0 + $1.x * $1.x }, xy = points.reduce(0) { $0 + $1.x * $1.y }
      return xx > 0 ? (0, xy / xx) : (meanY, 0)
    }
    guard sxx > 0 else { return throughOrigin() }
    let slope = sxy / sxx, constant = meanY - slope * meanX
    if slope < 0 { return (meanY, 0) }
    if constant < 0 { return throughOrigin() }
    return (constant, slope)
  }
}
