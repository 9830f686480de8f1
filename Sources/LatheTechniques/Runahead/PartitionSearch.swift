import LatheParallel
// PartitionSearch: the paper's offline hierarchical grid search for KV-Runahead's chunk sizes (kv-runahead.md,
// "Partition search"), scored by any closure: the simulator, or the median of measured runs.

/// Searches partitions of a prompt into one contiguous chunk per process. A partition is a list of fractions r on
/// the simplex (Σ r_i = 1) with every r_i ≥ `minimumFraction`:
///
/// 1. Level 0 scores every composition with step δ_0 = `initialStep` (1/8: for p = 2, r_0 = 1/8 ... 7/8), and the
///    even partition, so the result is never worse than even chunks under the score.
/// 2. Level k halves the step, δ_k = δ_{k−1}/2, and scores r* + δ_k·z for z ∈ {−2, ..., 2}^{p−1} (the last fraction
///    closes the sum) around the best r* so far, keeping the best; it stops before the first level with
///    δ_k · C < `granularity` tokens.
///
/// Fractions become chunks by `chunks(fractions:length:)`; fractions that round to chunks already scored are not
/// scored again, so a measured search never repeats a run.
///
///     let sim = try RunaheadSimulator(costs: costs)
///     let best = try PartitionSearch(processes: 2).search(length: 4096) { try sim.runaheadTTFT(chunks: $0) }
public struct PartitionSearch: Sendable {
  /// 1 to 16; refinement (any level after the first) needs at most 8.
  public let processes: Int
  /// r_min: the smallest fraction a process may get.
  public let minimumFraction: Double
  /// δ_0; 1/δ_0 must be a whole number.
  public let initialStep: Double
  /// Tokens: refinement stops when a step would move less than this.
  public let granularity: Int

  /// The best partition found and what finding it took.
  public struct Result: Sendable, Equatable {
    public var fractions: [Double]
    public var chunks: [Int]
    /// The score of `chunks` (seconds).
    public var seconds: Double
    /// Distinct chunk lists scored.
    public var evaluations: Int
    /// The step of the last level searched.
    public var finestStep: Double
  }

  public init(processes: Int, minimumFraction: Double = 1.0 / 64, initialStep: Double = 1.0 / 8,
              granularity: Int = 16) throws {
    guard (1...16).contains(processes) else { throw RunaheadError("search: procs must be 1 to 16, got \(processes)") }
    guard minimumFraction > 0, Double(processes) * minimumFraction <= 1 else {
      throw RunaheadError("search: the minimum fraction must be positive and at most 1/\(processes), got \(minimumFraction)")
    }
    _ = try PartitionSearch.divisions(initialStep)
    guard granularity >= 1 else { throw RunaheadError("search: granularity must be at least 1 token, got \(granularity)") }
    self.processes = processes; self.minimumFraction = minimumFraction
    self.initialStep = initialStep; self.granularity = granularity
  }

  /// The hierarchical search for a prompt of `length` tokens; `score` gives the seconds a chunk list takes.
  public func search(length: Int, score: ([Int]) throws -> Double) throws -> Result {
    var scorer = Scorer(length: length)
    var step = initialStep, n = try PartitionSearch.divisions(step)
    while processes * leastPart(divisions: n) > n, n < 1 << 20 { n *= 2; step /= 2 }   // too coarse for p parts
    var best = try scorer.best(of: compositions(divisions: n) + [PartitionSearch.even(processes: processes)], score)
    while Double(length) * step / 2 >= Double(granularity), processes > 1 {
      guard processes <= 8 else {
        throw RunaheadError("search: refining \(processes) processes would score 5^\(processes - 1) partitions a level; "
          + "the hierarchical search refines at most 8 (a granularity of \(Int(Double(length) * step)) tokens or more skips it)")
      }
      step /= 2
      let centre = best.fractions
      var candidates: [[Double]] = []
      for z in offsets() {
        var r = (0..<processes - 1).map { centre[$0] + step * Double(z[$0]) }
        r.append(1 - r.reduce(0, +))
        if r.allSatisfy({ $0 >= minimumFraction - 1e-12 }) { candidates.append(r) }
      }
      let found = try scorer.best(of: candidates, score)
      if found.seconds < best.seconds { best = found }
    }
    return Result(fractions: best.fractions, chunks: best.chunks, seconds: best.seconds, evaluations: scorer.seen.count,
                  finestStep: step)
  }

  /// Every composition with step `step` (1/step whole) and fractions ≥ the minimum, scored: the reference the
  /// hierarchical search is tested against. There are C(1/step − 1, p − 1) of them with the default minimum.
  public func exhaustive(length: Int, step: Double, score: ([Int]) throws -> Double) throws -> Result {
    var scorer = Scorer(length: length)
    let candidates = compositions(divisions: try PartitionSearch.divisions(step))
    guard !candidates.isEmpty else {
      throw RunaheadError("search: no partition of \(processes) fractions ≥ \(minimumFraction) has step \(step)")
    }
    let best = try scorer.best(of: candidates, score)
    return Result(fractions: best.fractions, chunks: best.chunks, seconds: best.seconds, evaluations: scorer.seen.count,
                  finestStep: step)
  }

  /// Integer chunks for a prompt of `length` tokens by the one rule of `PrefillPartition.sizes`: fractions scaled to
  /// sum to 1, chunk i ends at round(C·(r_0+…+r_i)) (half to even), each at least 1 token. Throws when C < p or a
  /// fraction is negative or not finite.
  ///
  ///     try PartitionSearch.chunks(fractions: [0.618, 0.382], length: 1000) == [618, 382]
  public static func chunks(fractions: [Double], length: Int) throws -> [Int] {
    let p = fractions.count
    guard p >= 1 else { throw RunaheadError("a partition needs at least one fraction") }
    guard length >= p else { throw RunaheadError("\(length) tokens cannot fill \(p) chunks of at least one token each") }
    guard length <= maximumLength else { throw RunaheadError("a prompt of \(length) tokens is longer than \(maximumLength)") }
    do { return try PrefillPartition.sizes(fractions: fractions, tokens: length) }
    catch let e as ParallelError { throw RunaheadError(e.description.replacingOccurrences(of: "parallel prefill: ", with: "")) }
  }

  /// The longest prompt a partition splits (2³²), so that token and byte counts stay far from overflow.
  public static let maximumLength = 1 << 32

  /// 1/p each: KVR-E.
  public static func even(processes: Int) -> [Double] { [Double](repeating: 1 / Double(processes), count: processes) }

  /// The partition that balances attention alone (free links, no linear cost). Dense diagonal blocks give every
  /// process the same c_i · S_i: S_0² = W and S_i² − S_{i−1}·S_i = W, solved for W by bisection (p = 2: 0.618,
  /// 0.382); skipped tiles give S_i = sqrt((i+1)/p) (p = 2: 0.707, 0.293).
  public static func attentionBalanced(processes: Int, skipsMaskedTiles: Bool) -> [Double] {
    guard processes > 1 else { return [1] }
    var ends: [Double]
    if skipsMaskedTiles {
      ends = (1...processes).map { (Double($0) / Double(processes)).squareRoot() }
    } else {
      func prefixEnds(_ w: Double) -> [Double] {
        var s = 0.0
        return (0..<processes).map { _ in s = (s + (s * s + 4 * w).squareRoot()) / 2; return s }
      }
      var lo = 0.0, hi = 1.0
      for _ in 0..<100 { let w = (lo + hi) / 2; if prefixEnds(w)[processes - 1] > 1 { hi = w } else { lo = w } }
      ends = prefixEnds((lo + hi) / 2)
    }
    ends[processes - 1] = 1
    return ends.indices.map { ends[$0] - ($0 == 0 ? 0 : ends[$0 - 1]) }
  }

  /// A score that runs `measure` `runs` times and keeps the median: what a search over measured runs uses.
  public static func median(of runs: Int, _ measure: @escaping ([Int]) throws -> Double) -> ([Int]) throws -> Double {
    { chunks in
      let times = try (0..<max(1, runs)).map { _ in try measure(chunks) }.sorted()
      return times.count % 2 == 1 ? times[times.count / 2] : (times[times.count / 2 - 1] + times[times.count / 2]) / 2
    }
  }

  /// 1/step as a whole number, or an error.
  static func divisions(_ step: Double) throws -> Int {
    let n = (1 / step).rounded()
    guard step > 0, step <= 1, abs(1 / step - n) < 1e-9 * n, n <= 1_048_576 else {
      throw RunaheadError("search: a step must be 1/n for a whole n from 1 to 1048576, got \(step)")
    }
    return Int(n)
  }

  /// The fractions k/n with whole k summing to n and every k/n ≥ the minimum, in lexicographic order of k.
  func compositions(divisions n: Int) -> [[Double]] {
    let least = leastPart(divisions: n)
    var out: [[Double]] = [], parts: [Int] = []
    func fill(_ left: Int) {
      if parts.count == processes - 1 {
        if left >= least { out.append((parts + [left]).map { Double($0) / Double(n) }) }
        return
      }
      let slots = processes - 1 - parts.count                              // parts still to place after this one
      guard left - slots * least >= least else { return }
      for k in least...(left - slots * least) { parts.append(k); fill(left - k); parts.removeLast() }
    }
    fill(n)
    return out
  }

  /// The smallest whole k with k/n ≥ the minimum fraction.
  private func leastPart(divisions n: Int) -> Int { max(0, Int((minimumFraction * Double(n) - 1e-9).rounded(.up))) }

  /// {−2, ..., 2}^{p−1}, zero first.
  private func offsets() -> [[Int]] {
    var out: [[Int]] = [[]]
    for _ in 0..<(processes - 1) { out = out.flatMap { z in [0, -1, 1, -2, 2].map { z + [$0] } } }
    return out
  }

  /// Scores fractions through their chunks, once per distinct chunk list.
  private struct Scorer {
    let length: Int
    var seen: [[Int]: Double] = [:]

    mutating func best(of candidates: [[Double]], _ score: ([Int]) throws -> Double) throws
      -> (fractions: [Double], chunks: [Int], seconds: Double) {
      var best: (fractions: [Double], chunks: [Int], seconds: Double)? = nil
      for r in candidates {
        // The even candidate is KVR-E's own split (extra tokens to the earliest chunks), so a search is never worse
        // than `partition: "even"` under its score.
        let chunks = r.allSatisfy({ $0 == r[0] }) && length >= r.count
          ? RunaheadPartition.evenChunks(length: length, processes: r.count) : try PartitionSearch.chunks(fractions: r, length: length)
        let seconds: Double
        if let known = seen[chunks] { seconds = known } else {
          seconds = try score(chunks)
          guard seconds.isFinite else { throw RunaheadError("search: the score of \(chunks) is \(seconds), not a time") }
          seen[chunks] = seconds
        }
        if seconds < best?.seconds ?? .infinity { best = (r, chunks, seconds) }
      }
      guard let best else { throw RunaheadError("search: no partition to score") }
      return best
    }
  }
}
