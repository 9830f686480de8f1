// RunaheadSimulator: time to first token of KV-Runahead and of the TSP baseline under a RunaheadCosts model, with
// the per-process timeline (kv-runahead.md, "TTFT model for the simulator").

/// A prefill played out on the cost model: its time to first token, the chunks it used, what each process did and
/// the bytes that crossed links.
public struct SimulatedPrefill: Sendable, Equatable {
  public var ttft: Double
  public var chunks: [Int]
  public var timeline: PrefillTimeline
  public var bytesSent: Int
}

/// Plays out KV-Runahead and TSP prefills on a cost model, for any number of processes.
///
///     let sim = try RunaheadSimulator(costs: RunaheadCosts(layers: 2, kvBytesPerToken: 8, attentionPerEntry: 1e-9))
///     try sim.runahead(chunks: [600, 400]).ttft
public struct RunaheadSimulator: Sendable {
  public let costs: RunaheadCosts

  public init(costs: RunaheadCosts) throws {
    try costs.validate()
    self.costs = costs
  }

  /// KV-Runahead over `chunks` (c_0 ... c_{p−1}, one per process, each ≥ 1), with S_i = c_0 + ... + c_i:
  ///
  ///     q_i(l)   = f_i(l−1) + t_pre(c_i)                                  f_i(−1) = 0
  ///     h_0(l)   = q_0(l)
  ///     arr_i(l) = max(h_{i−1}(l), sendEnd_{i−1}(l−1)) + comm(S_{i−1});  sendEnd_{i−1}(l) = arr_i(l)
  ///     h_i(l)   = max(q_i(l), arr_i(l))                                 (i > 0)
  ///     f_i(l)   = h_i(l) + t_att(c_i, S_i) + t_post(c_i)
  ///     TTFT     = f_{p−1}(L−1) + t_head
  ///
  /// Process i computes [f_i(l−1), q_i(l)], waits [q_i(l), h_i(l)], computes [h_i(l), f_i(l)] and sends
  /// [max(h_i(l), sendEnd_i(l−1)), arr_{i+1}(l)]: one message at a time per link. Segments of no length are left out.
  public func runahead(chunks: [Int]) throws -> SimulatedPrefill {
    try check(chunks)
    try checkBytes(tokens: RunaheadCounts.prefixEnds(chunks).dropLast().reduce(0.0) { $0 + Double($1) })
    var segments = [[PrefillTimeline.Segment]](repeating: [], count: chunks.count)
    let ttft = play(chunks, recording: true, into: &segments)
    return SimulatedPrefill(ttft: ttft, chunks: chunks, timeline: PrefillTimeline(processes: segments),
                            bytesSent: RunaheadCounts.runaheadBytes(chunks: chunks, layers: costs.layers,
                                                                    kvBytesPerToken: costs.kvBytesPerToken))
  }

  /// The TTFT of `runahead(chunks:)` without the timeline: what a partition search scores.
  public func runaheadTTFT(chunks: [Int]) throws -> Double {
    try check(chunks)
    var unused: [[PrefillTimeline.Segment]] = []
    return play(chunks, recording: false, into: &unused)
  }

  /// The TSP baseline: even chunks of C/p tokens, and every layer waits for a synchronous all-gather of keys and
  /// values before scoring its C/p queries against all C keys (masked afterwards, so tiles are never skipped):
  ///
  ///     g(l) = g(l−1) + t_pre(C/p) + (p−1)·comm(C/p) + t_att,dense(C/p, C) + t_post(C/p);  TTFT = g(L−1) + t_head
  ///
  /// All processes share one timeline; the all-gather shows as a send segment. C/p need not be whole.
  public func tsp(length: Int, processes: Int) throws -> SimulatedPrefill {
    guard processes >= 1, length >= processes else {
      throw RunaheadError("tsp: needs at least one token per process, got \(length) tokens on \(processes) processes")
    }
    guard length <= PartitionSearch.maximumLength else {
      throw RunaheadError("tsp: a prompt of \(length) tokens is longer than \(PartitionSearch.maximumLength)")
    }
    try checkBytes(tokens: Double(processes - 1) * Double(length))
    let c = Double(length) / Double(processes)
    let gather = Double(processes - 1) * costs.message(tokens: c)
    let attentionAndPost = costs.attentionConstant + costs.attentionPerEntry * c * Double(length) + costs.post(c)
    var row: [PrefillTimeline.Segment] = [], g = 0.0
    for l in 0..<costs.layers {
      g = append(&row, .compute, layer: l, from: g, seconds: costs.pre(c))
      g = append(&row, .send, layer: l, from: g, seconds: gather)
      g = append(&row, .compute, layer: l, from: g, seconds: attentionAndPost)
    }
    var rows = [[PrefillTimeline.Segment]](repeating: row, count: processes)
    let ttft = append(&rows[processes - 1], .compute, layer: nil, from: g, seconds: costs.head)
    let chunks = RunaheadPartition.evenChunks(length: length, processes: processes)
    return SimulatedPrefill(ttft: ttft, chunks: chunks, timeline: PrefillTimeline(processes: rows),
                            bytesSent: RunaheadCounts.tspBytes(length: length, processes: processes, layers: costs.layers,
                                                               kvBytesPerToken: costs.kvBytesPerToken))
  }

  private func check(_ chunks: [Int]) throws {
    guard !chunks.isEmpty else { throw RunaheadError("a partition needs at least one chunk") }
    guard chunks.allSatisfy({ $0 >= 1 }) else { throw RunaheadError("every chunk needs at least one token, got \(chunks)") }
    guard chunks.reduce(0.0, { $0 + Double($1) }) <= Double(PartitionSearch.maximumLength) else {
      throw RunaheadError("a prompt of \(chunks.reduce(0.0, { $0 + Double($1) })) tokens is longer than \(PartitionSearch.maximumLength)")
    }
  }

  /// Checks that L · B_kv · `tokens` bytes fit an Int.
  private func checkBytes(tokens: Double) throws {
    let bytes = Double(costs.layers) * Double(costs.kvBytesPerToken) * tokens
    guard bytes < 0x1p62 else { throw RunaheadError("\(bytes) bytes sent are too many to count") }
  }

  /// The recurrences of `runahead(chunks:)`; when `recording`, appends segments to `segments` (one row a chunk).
  private func play(_ chunks: [Int], recording: Bool, into segments: inout [[PrefillTimeline.Segment]]) -> Double {
    let p = chunks.count, sizes = chunks.map(Double.init)
    let ends = RunaheadCounts.prefixEnds(chunks).map(Double.init)
    let pre = sizes.map(costs.pre)
    let work = (0..<p).map { costs.attention(queries: sizes[$0], keys: ends[$0]) + costs.post(sizes[$0]) }
    let message = ends.map { costs.message(tokens: $0) }                    // message[i]: from i to i+1
    var finish = [Double](repeating: 0, count: p), sendEnd = [Double](repeating: 0, count: p)
    for l in 0..<costs.layers {
      var previousStart = 0.0                                                // h_{i−1}(l)
      for i in 0..<p {
        let ready = finish[i] + pre[i]                                       // q_i(l)
        var start = ready                                                    // h_i(l)
        if i > 0 {
          let sendStart = max(previousStart, sendEnd[i - 1])
          sendEnd[i - 1] = sendStart + message[i - 1]                        // arr_i(l)
          start = max(ready, sendEnd[i - 1])
          if recording { append(&segments[i - 1], .send, layer: l, from: sendStart, seconds: message[i - 1]) }
        }
        if recording {
          append(&segments[i], .compute, layer: l, from: finish[i], seconds: pre[i])
          append(&segments[i], .wait, layer: l, from: ready, seconds: start - ready)
          append(&segments[i], .compute, layer: l, from: start, seconds: work[i])
        }
        finish[i] = start + work[i]
        previousStart = start
      }
    }
    let ttft = finish[p - 1] + costs.head
    if recording { append(&segments[p - 1], .compute, layer: nil, from: finish[p - 1], seconds: costs.head) }
    return ttft
  }

  /// Appends a segment of `seconds` from `start` unless it is empty; returns where it ends.
  @discardableResult
  private func append(_ row: inout [PrefillTimeline.Segment], _ kind: PrefillTimeline.Segment.Kind, layer: Int?,
                      from start: Double, seconds: Double) -> Double {
    if seconds > 0 { row.append(.init(kind, layer: layer, start: start, end: start + seconds)) }
    return start + seconds
  }
}
