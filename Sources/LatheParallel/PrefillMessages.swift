// The two messages of one parallel prefill: what the parent asks of worker i (its chunk, the partition, where
// every process's cache rows and semaphores lie in the shared region) and what the worker answers (its timeline,
// bytes sent and, from the last process, the logits).

import Foundation

/// The two ways of running a prefill in parallel.
public enum ParallelPrefillMethod: String, Sendable {
  /// KV-Runahead: process i receives the prefix cache of tokens 0..<S_{i-1} from process i-1, appends its chunk and
  /// forwards 0..<S_i to process i+1; attention scores a c_i × S_i block.
  case runahead
  /// The tensor/sequence-parallel baseline: every process all-gathers every layer's keys and values and scores a
  /// dense c_i × C block under the causal mask.
  case tsp
}

struct PrefillRequest: Equatable {
  var method: ParallelPrefillMethod
  var index: Int
  /// Chunk sizes of every process (sum C).
  var chunks: [Int]
  /// This process's tokens (chunks[index] of them).
  var tokens: [Int]
  var regionPath: String
  var regionBytes: Int
  /// Byte offsets in the region, indexed [process · layers + layer]: keys, values, and the semaphore process
  /// `process` waits on for that layer.
  var keyOffsets: [Int], valueOffsets: [Int], semaphoreOffsets: [Int]
  /// Rows each process's cache segment holds per layer.
  var rows: [Int]
  /// The parent's CLOCK_MONOTONIC at the start, in ns: event times are relative to it.
  var epoch: Int
  var wantLogits: Bool

  func encoded() -> FrameWriter {
    var w = FrameWriter()
    w.string(method.rawValue); w.int(index); w.ints(chunks); w.ints(tokens)
    w.string(regionPath); w.int(regionBytes)
    w.ints(keyOffsets); w.ints(valueOffsets); w.ints(semaphoreOffsets); w.ints(rows)
    w.int(epoch); w.int(wantLogits ? 1 : 0)
    return w
  }

  init(method: ParallelPrefillMethod, index: Int, chunks: [Int], tokens: [Int], regionPath: String, regionBytes: Int,
       keyOffsets: [Int], valueOffsets: [Int], semaphoreOffsets: [Int], rows: [Int], epoch: Int, wantLogits: Bool) {
    self.method = method; self.index = index; self.chunks = chunks; self.tokens = tokens
    self.regionPath = regionPath; self.regionBytes = regionBytes
    self.keyOffsets = keyOffsets; self.valueOffsets = valueOffsets; self.semaphoreOffsets = semaphoreOffsets
    self.rows = rows; self.epoch = epoch; self.wantLogits = wantLogits
  }

  init(_ r: inout FrameReader) throws {
    let name = try r.string("method")
    guard let m = ParallelPrefillMethod(rawValue: name) else { throw ParallelError.malformedFrame("unknown method \(name)") }
    method = m
    index = try r.int("index"); chunks = try r.ints("chunks"); tokens = try r.ints("tokens")
    regionPath = try r.string("region path"); regionBytes = try r.int("region bytes")
    keyOffsets = try r.ints("key offsets"); valueOffsets = try r.ints("value offsets")
    semaphoreOffsets = try r.ints("semaphore offsets"); rows = try r.ints("rows")
    epoch = try r.int("epoch"); wantLogits = try r.int("logits") != 0
    try r.finish("a prefill request")
  }

  /// Checks the request against the model the worker holds (layer widths in floats per row), so that no offset
  /// can reach outside the region.
  func validate(widths: [Int]) throws {
    let p = chunks.count, layers = widths.count
    func fail(_ reason: String) -> ParallelError { .malformedFrame("prefill request: \(reason)") }
    guard p >= 1, index >= 0, index < p else { throw fail("index \(index) of \(p) processes") }
    guard chunks.allSatisfy({ $0 >= 1 && $0 <= 1 << 30 }) else { throw fail("chunk sizes \(chunks) must each be 1 to 2^30") }
    guard regionBytes >= 0, rows.allSatisfy({ $0 >= 0 && $0 <= 1 << 32 }), widths.allSatisfy({ $0 >= 0 && $0 <= 1 << 24 }) else {
      throw fail("sizes out of range (region \(regionBytes) bytes, rows \(rows))")
    }
    guard tokens.count == chunks[index] else { throw fail("\(tokens.count) tokens for a chunk of \(chunks[index])") }
    // Every product below stays far inside Int: chunks ≤ 2^30 (a 256 MiB frame holds at most 2^25 of them), rows ≤ 2^32,
    // widths ≤ 2^24, so rows·width·4 ≤ 2^58.
    guard keyOffsets.count == p * layers, valueOffsets.count == p * layers, semaphoreOffsets.count == p * layers, rows.count == p else {
      throw fail("the layout is not \(p) processes × \(layers) layers")
    }
    let total = chunks.reduce(0, +)
    let ends = chunks.reduce(into: [Int]()) { $0.append(($0.last ?? 0) + $1) }
    for j in 0..<p {
      let needed = method == .runahead ? ends[j] : total
      guard rows[j] >= needed else { throw fail("process \(j)'s segment holds \(rows[j]) rows, it needs \(needed)") }
      for l in 0..<layers {
        let size = rows[j] * widths[l] * 4, at = j * layers + l
        for (offset, what) in [(keyOffsets[at], "keys"), (valueOffsets[at], "values")] {
          guard offset >= 0, offset % 4 == 0, offset <= regionBytes - size else { throw fail("\(what) of process \(j), layer \(l) fall outside the region") }
        }
        let s = semaphoreOffsets[at]
        guard s >= 0, s % 16 == 0, s <= regionBytes - MemoryLayout<sem_t>.size else { throw fail("semaphore of process \(j), layer \(l) falls outside the region") }
      }
    }
  }
}

/// One interval of a process's timeline, in seconds from the start of the prefill.
public struct PrefillEvent: Sendable, Equatable {
  public enum Kind: Int, Sendable { case compute = 0, wait = 1, send = 2 }
  public var kind: Kind
  /// The layer: for compute, the work up to that layer's attention input (the previous layer's attention and
  /// feed-forward, then this layer's norm, QKV and RoPE); `layers` for the last stretch (the last layer's attention
  /// and feed-forward, then the output head).
  public var layer: Int
  public var start: Double, end: Double
  public init(kind: Kind, layer: Int, start: Double, end: Double) { self.kind = kind; self.layer = layer; self.start = start; self.end = end }

  /// Events as four parallel arrays: kinds, layers, starts, ends.
  package static func encode(_ events: [PrefillEvent], into w: inout FrameWriter) {
    w.ints(events.map(\.kind.rawValue)); w.ints(events.map(\.layer))
    w.doubles(events.map(\.start)); w.doubles(events.map(\.end))
  }

  package static func decode(_ r: inout FrameReader) throws -> [PrefillEvent] {
    let kinds = try r.ints("event kinds"), layers = try r.ints("event layers")
    let starts = try r.doubles("event starts"), ends = try r.doubles("event ends")
    guard layers.count == kinds.count, starts.count == kinds.count, ends.count == kinds.count else {
      throw ParallelError.malformedFrame("events: fields of different lengths")
    }
    return try kinds.indices.map { i in
      guard let kind = Kind(rawValue: kinds[i]) else { throw ParallelError.malformedFrame("events: kind \(kinds[i])") }
      return PrefillEvent(kind: kind, layer: layers[i], start: starts[i], end: ends[i])
    }
  }
}

struct PrefillReply {
  var events: [PrefillEvent]
  var bytesSent: Int
  var logits: [Float]

  func encoded() -> FrameWriter {
    var w = FrameWriter()
    PrefillEvent.encode(events, into: &w)
    w.int(bytesSent); w.floats(logits)
    return w
  }

  init(events: [PrefillEvent], bytesSent: Int, logits: [Float]) { self.events = events; self.bytesSent = bytesSent; self.logits = logits }

  init(_ r: inout FrameReader) throws {
    events = try PrefillEvent.decode(&r)
    bytesSent = try r.int("bytes sent"); logits = try r.floats("logits")
    try r.finish("a prefill reply")
  }
}
