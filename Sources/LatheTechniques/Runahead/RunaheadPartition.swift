// RunaheadPartition: how a KV-Runahead prefill splits its prompt (KVR-E, KVR-S, KVR-P or given fractions), and the
// simulate-mode prefill and table search built on it.

import LatheParallel

/// The `partition:` of `runahead(procs:, partition:)`: "even", "searched", a table, or a list of fractions.
public enum RunaheadPartition: Sendable, Equatable {
  /// KVR-E: ⌊C/p⌋ tokens each, and one more for each of the last C mod p processes.
  case even
  /// KVR-S: search this prompt's length.
  case searched
  /// KVR-P: the table's fractions, interpolated for the prompt's length.
  case table(PartitionTable)
  /// Fixed fractions, one per process, scaled to sum to 1.
  case fractions([Double])
  /// Token counts, one per process (the prompt must have exactly their sum).
  case sizes([Int])

  /// The chunks for a prompt of `length` tokens on `processes` processes; a search (for `.searched`) runs `search`
  /// with `score`, which the other cases never call.
  ///
  ///     try RunaheadPartition.fractions([0.6, 0.4]).chunks(length: 10, processes: 2) { _ in 0 } == [6, 4]
  public func chunks(length: Int, processes: Int, search: PartitionSearch? = nil,
                     score: ([Int]) throws -> Double) throws -> [Int] {
    guard processes >= 1, length >= processes else {
      throw RunaheadError("\(length) tokens cannot fill \(processes) chunks of at least one token each")
    }
    guard length <= PartitionSearch.maximumLength else {
      throw RunaheadError("a prompt of \(length) tokens is longer than \(PartitionSearch.maximumLength)")
    }
    switch self {
    case .even:
      return RunaheadPartition.evenChunks(length: length, processes: processes)
    case .searched:
      let search = try search ?? PartitionSearch(processes: processes)
      guard search.processes == processes else {
        throw RunaheadError("a search over \(search.processes) processes cannot split a prompt for \(processes)")
      }
      return try search.search(length: length, score: score).chunks
    case .table(let table):
      guard table.processes == processes else {
        throw RunaheadError("a partition table for \(table.processes) processes cannot split a prompt for \(processes)")
      }
      return try table.chunks(length: length)
    case .fractions(let fractions):
      guard fractions.count == processes else {
        throw RunaheadError("\(processes) processes need \(processes) fractions, got \(fractions.count)")
      }
      return try PartitionSearch.chunks(fractions: fractions, length: length)
    case .sizes(let sizes):
      guard sizes.count == processes else { throw RunaheadError("\(processes) processes need \(processes) chunk sizes, got \(sizes.count)") }
      guard sizes.allSatisfy({ $0 >= 1 }), sizes.reduce(0, +) == length else {
        throw RunaheadError("chunk sizes \(sizes) sum to \(sizes.reduce(0, +)), the prompt has \(length) tokens")
      }
      return sizes
    }
  }

  /// ⌊C/p⌋ or ⌈C/p⌉ tokens each, the larger ones first: the rule of `PrefillPartition.even`, which real and MPI
  /// runs use too.
  static func evenChunks(length: Int, processes: Int) -> [Int] {
    PrefillPartition.evenSizes(tokens: length, procs: processes)
  }
}

extension RunaheadSimulator {
  /// A simulated KV-Runahead prefill of a `length`-token prompt on `processes` processes: what
  /// `prefill(model, prompt, runahead(procs:, partition:, mode: "simulate"))` reports. `.searched` searches with
  /// this simulator as the score, at `granularity` tokens.
  ///
  ///     let r = try sim.prefill(length: 4096, processes: 4, partition: .even)
  public func prefill(length: Int, processes: Int, partition: RunaheadPartition = .searched,
                      granularity: Int = 16) throws -> SimulatedPrefill {
    let search = partition == .searched ? try PartitionSearch(processes: processes, granularity: granularity) : nil
    let chunks = try partition.chunks(length: length, processes: processes, search: search) { try runaheadTTFT(chunks: $0) }
    return try runahead(chunks: chunks)
  }

  /// The partition table for `lengths`, each searched with this simulator as the score: what
  /// `search(model, runahead(procs:, mode: "simulate"), lengths:)` returns.
  ///
  ///     let table = try sim.table(processes: 4, lengths: [1024, 2048, 4096, 8192])
  public func table(processes: Int, lengths: [Int], granularity: Int = 16) throws -> PartitionTable {
    guard !lengths.isEmpty else { throw RunaheadError("search: lengths is empty") }
    return try PartitionTable(searching: lengths, with: PartitionSearch(processes: processes, granularity: granularity)) { _, chunks in
      try runaheadTTFT(chunks: chunks)
    }
  }
}
