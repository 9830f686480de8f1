// RunaheadCounts: the analytic bytes moved and attention multiply-adds of KV-Runahead and of the TSP baseline
// (kv-runahead.md, checks 2 and 3).

import LatheParallel

/// Closed forms for what a prefill moves and computes, per whole model (all L layers). S_i = c_0 + ... + c_i.
///
///     RunaheadCounts.runaheadBytes(chunks: [2, 2], layers: 1, kvBytesPerToken: 10) == 20   // S_0 = 2 tokens sent
public enum RunaheadCounts {
  /// KV-Runahead: process i < p−1 sends the keys and values of its whole prefix, S_i tokens, each layer:
  /// L · B_kv · Σ_{i<p−1} S_i bytes.
  public static func runaheadBytes(chunks: [Int], layers: Int, kvBytesPerToken: Int) -> Int {
    PrefillPartition.bytesPerProcess(.runahead, chunks: chunks, bytesPerToken: layers * kvBytesPerToken).reduce(0, +)
  }

  /// TSP: each process receives the C − c_i tokens it lacks in every layer's all-gather: L · B_kv · (p−1) · C bytes.
  public static func tspBytes(length: Int, processes: Int, layers: Int, kvBytesPerToken: Int) -> Int {
    layers * kvBytesPerToken * (processes - 1) * length
  }

  /// KV-Runahead with dense diagonal blocks: chunk i scores c_i · S_i entries, each costing n_q · d_head
  /// multiply-adds for QKᵀ and as many for PV: 2 · n_q · d_head · L · Σ c_i · S_i.
  public static func runaheadAttentionMACs(chunks: [Int], layers: Int, queryHeads: Int, headDimension: Int) -> Int {
    let entries = zip(chunks, prefixEnds(chunks)).reduce(0) { $0 + $1.0 * $1.1 }
    return 2 * queryHeads * headDimension * layers * entries
  }

  /// TSP: every process scores its C/p queries against all C keys before masking: 2 · n_q · d_head · L · C².
  public static func tspAttentionMACs(length: Int, layers: Int, queryHeads: Int, headDimension: Int) -> Int {
    2 * queryHeads * headDimension * layers * length * length
  }

  /// S_0, S_1, ..., S_{p−1}: where each chunk ends.
  public static func prefixEnds(_ chunks: [Int]) -> [Int] {
    var total = 0
    return chunks.map { total += $0; return total }
  }
}
