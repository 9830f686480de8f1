// PartitionTable: searched KV-Runahead partitions by prompt length, interpolated for lengths in between (KVR-P).

import Foundation

/// The best fractions found for each of a set of prompt lengths. A length between two entries C_a < C < C_b gets
/// r = r(C_a) + (C − C_a)/(C_b − C_a) · (r(C_b) − r(C_a)), which stays on the simplex; a length outside the range
/// takes the nearest entry's fractions. Codable, so a notebook can keep it.
///
///     var table = try PartitionTable(processes: 2)
///     try table.insert(length: 1024, fractions: [0.55, 0.45]); try table.insert(length: 2048, fractions: [0.6, 0.4])
///     try table.fractions(length: 1536) == [0.575, 0.425]
public struct PartitionTable: Codable, Sendable, Equatable, CustomStringConvertible {
  public struct Entry: Codable, Sendable, Equatable {
    public var length: Int
    public var fractions: [Double]
    /// The score the search gave the entry's chunks, when it came from a search (seconds).
    public var seconds: Double?
  }

  public let processes: Int
  /// Sorted by length, one entry per length.
  public private(set) var entries: [Entry] = []

  public init(processes: Int) throws {
    guard processes >= 1 else { throw RunaheadError("table: procs must be at least 1, got \(processes)") }
    self.processes = processes
  }

  private enum CodingKeys: String, CodingKey { case processes, entries }

  /// Decodes through `insert`, so a stored table is checked and sorted like a built one.
  public init(from decoder: any Decoder) throws {
    let container = try decoder.container(keyedBy: CodingKeys.self)
    try self.init(processes: try container.decode(Int.self, forKey: .processes))
    for e in try container.decode([Entry].self, forKey: .entries) {
      try insert(length: e.length, fractions: e.fractions, seconds: e.seconds)
    }
  }

  /// Searches each length with `search` and keeps the results; `score(length, chunks)` gives seconds.
  ///
  ///     let table = try PartitionTable(searching: [1024, 2048], with: PartitionSearch(processes: 2)) { _, chunks in
  ///       try sim.runaheadTTFT(chunks: chunks) }
  public init(searching lengths: [Int], with search: PartitionSearch,
              score: (_ length: Int, _ chunks: [Int]) throws -> Double) throws {
    try self.init(processes: search.processes)
    for length in lengths {
      let best = try search.search(length: length) { try score(length, $0) }
      try insert(length: length, fractions: best.fractions, seconds: best.seconds)
    }
  }

  /// Adds or replaces the entry for `length`. The fractions are scaled to sum to 1.
  public mutating func insert(length: Int, fractions: [Double], seconds: Double? = nil) throws {
    guard length >= processes else {
      throw RunaheadError("table: a length of \(length) tokens cannot give each of \(processes) processes a token")
    }
    guard fractions.count == processes else {
      throw RunaheadError("table: \(processes) processes need \(processes) fractions, got \(fractions.count)")
    }
    let total = fractions.reduce(0, +)
    guard fractions.allSatisfy({ $0.isFinite && $0 >= 0 }), total > 0, total.isFinite else {
      throw RunaheadError("table: fractions must be finite, non-negative and not all zero, got \(fractions)")
    }
    let entry = Entry(length: length, fractions: fractions.map { $0 / total }, seconds: seconds)
    let i = entries.firstIndex { $0.length >= length } ?? entries.endIndex
    if i < entries.endIndex, entries[i].length == length { entries[i] = entry } else { entries.insert(entry, at: i) }
  }

  /// The fractions for a prompt of `length` tokens: an entry's own, interpolated between neighbours, or the nearest
  /// entry's outside the range.
  public func fractions(length: Int) throws -> [Double] {
    guard let first = entries.first, let last = entries.last else { throw RunaheadError("table: the table is empty") }
    if length <= first.length { return first.fractions }
    if length >= last.length { return last.fractions }
    let b = entries.firstIndex { $0.length >= length } ?? entries.endIndex - 1
    let lower = entries[b - 1], upper = entries[b]
    let t = Double(length - lower.length) / Double(upper.length - lower.length)
    return zip(lower.fractions, upper.fractions).map { $0 + t * ($1 - $0) }
  }

  /// Integer chunks for a prompt of `length` tokens (`PartitionSearch.chunks` of the interpolated fractions).
  public func chunks(length: Int) throws -> [Int] {
    try PartitionSearch.chunks(fractions: try fractions(length: length), length: length)
  }

  /// One row per length: the fractions per process and the score in ms when known.
  ///
  ///     partition table, 2 processes
  ///     length  proc 0  proc 1  ttft ms
  ///       1024   0.555   0.445    12.31
  public var description: String {
    let header = ["length"] + (0..<processes).map { "proc \($0)" } + ["ttft ms"]
    var rows = entries.map { e in
      ["\(e.length)"] + e.fractions.map { String(format: "%.3f", $0) } + [e.seconds.map { String(format: "%.2f", $0 * 1000) } ?? "-"]
    }
    rows.insert(header, at: 0)
    let widths = header.indices.map { c in rows.map { $0[c].count }.max() ?? 0 }
    let lines = rows.map { row in
      row.indices.map { c in String(repeating: " ", count: widths[c] - row[c].count) + row[c] }.joined(separator: "  ")
    }
    let title = "partition table, \(processes) process\(processes == 1 ? "" : "es")"
    return ([title] + (entries.isEmpty ? ["(empty)"] : lines)).joined(separator: "\n")
  }
}
