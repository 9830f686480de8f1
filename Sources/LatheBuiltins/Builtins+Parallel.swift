// Parallel prefill as values of the language: `runahead(procs: 2, partition: "even")` (KV-Runahead) and
// `tsp(procs: 2)` (its tensor/sequence-parallel baseline) print every parameter; `prefill(m, prompt, t)` runs them
// on worker processes and returns the same KV cache value as a serial prefill, with the counters as fields. The
// searched and table partitions come from the partition search (`search`), which is not part of this file.

import Foundation
import LatheLang
import LatheModels
import LatheParallel
import LatheTechniques

/// A prefill strategy: the method, the number of processes, how the prompt is split, and whether it runs on worker
/// processes (mode "real") or on the cost model (mode "simulate", with a link of `bandwidth` bytes/s and `latency` s).
public final class PrefillStrategyValue: HostObject {
  public enum Partition: Equatable {
    case even
    /// Fractions of the prompt, one per process, summing to 1.
    case fractions([Double])
    /// Token counts, one per process (the prompt must have exactly their sum).
    case sizes([Int])
    /// KVR-S: searched at the prompt's length (real runs or the simulator, as the mode says).
    case searched
    /// KVR-P: interpolated from a partition table of `search`.
    case table(PartitionTable)
  }
  public enum Mode: String { case real, simulate }
  public let method: ParallelPrefillMethod
  public let procs: Int
  public let partition: Partition
  public let mode: Mode
  /// Link bytes per second in simulate mode; nil: shared memory (the measured memcpy rate).
  public let bandwidth: Double?
  /// Seconds per message in simulate mode.
  public let latency: Double

  /// The most processes a simulated strategy may name, and a real one (each a worker process with the model mapped).
  static let maximumProcs = 1024, maximumRealProcs = 64

  init(method: ParallelPrefillMethod, procs: Int, partition: Partition, mode: Mode = .real, bandwidth: Double? = nil,
       latency: Double = 0) throws {
    let name = method == .runahead ? "runahead" : "tsp"
    guard procs >= 1 else { throw LatheError("\(name): procs must be at least 1, got \(procs)") }
    guard procs <= PrefillStrategyValue.maximumProcs else {
      throw LatheError("\(name): procs must be at most \(PrefillStrategyValue.maximumProcs), got \(procs)")
    }
    switch partition {
    case .even, .searched: break
    case .fractions(let r):
      guard r.count == procs else { throw LatheError("\(name): partition has \(r.count) fractions for \(procs) processes") }
      guard r.allSatisfy({ $0 > 0 && $0.isFinite }) else { throw LatheError("\(name): partition fractions must be positive, got \(r)") }
      let sum = r.reduce(0, +)
      guard abs(sum - 1) <= 1e-6 else { throw LatheError("\(name): partition fractions must sum to 1, got \(sum)") }
    case .sizes(let c):
      guard c.count == procs else { throw LatheError("\(name): partition has \(c.count) chunk sizes for \(procs) processes") }
      guard c.allSatisfy({ $0 >= 1 }) else { throw LatheError("\(name): every chunk needs at least 1 token, got \(c)") }
    case .table(let t):
      guard t.processes == procs else {
        throw LatheError("\(name): the partition table is for \(t.processes) processes, not \(procs)")
      }
      guard !t.entries.isEmpty else { throw LatheError("\(name): the partition table is empty") }
    }
    if mode == .real, procs > PrefillStrategyValue.maximumRealProcs {
      throw LatheError("\(name): real runs start one worker process each, so procs must be at most \(PrefillStrategyValue.maximumRealProcs), got \(procs) (mode: \"simulate\" takes up to \(PrefillStrategyValue.maximumProcs))")
    }
    if let bandwidth {
      guard bandwidth.isFinite, bandwidth >= 1 else { throw LatheError("\(name): bandwidth must be at least 1 byte per second, or none, got \(bandwidth)") }
    }
    guard latency.isFinite, latency >= 0, latency <= 3600 else {
      throw LatheError("\(name): latency must be 0 to 3600 seconds, got \(latency)")
    }
    if mode == .real, bandwidth != nil || latency != 0 {
      throw LatheError("\(name): bandwidth and latency need mode: \"simulate\" (real runs send through shared memory at its own speed)")
    }
    self.method = method; self.procs = procs; self.partition = partition
    self.mode = mode; self.bandwidth = bandwidth; self.latency = latency
  }

  public var typeName: String { "technique" }
  /// The call that makes this value; mode, bandwidth and latency only when they are not the defaults.
  public var description: String {
    var options = method == .tsp ? "procs: \(procs)" : "procs: \(procs), partition: \(partitionText)"
    if mode == .simulate { options += ", mode: \"simulate\"" }
    if let bandwidth { options += ", bandwidth: \(Self.number(bandwidth))" }
    if latency != 0 { options += ", latency: \(Self.number(latency))" }
    return "\(method == .tsp ? "tsp" : "runahead")(\(options))"
  }
  var partitionText: String {
    switch partition {
    case .even: return "\"even\""
    case .searched: return "\"searched\""
    case .table(let t): return "table(\(t.entries.count) lengths \(t.entries.map(\.length)))"
    case .fractions(let r): return "[" + r.map { "\($0)" }.joined(separator: ", ") + "]"
    case .sizes(let c): return "[" + c.map { "\($0)" }.joined(separator: ", ") + "]"
    }
  }
  /// 10e9 as 1e+10, 0.5 as 0.5: how the language prints a float.
  static func number(_ x: Double) -> String { Value.float(x).description }

  public var memberNames: [String] { ["method", "procs", "partition", "mode", "bandwidth", "latency", "role"] }
  public func member(_ name: String) throws -> Value? {
    switch name {
    case "method": return .string(method.rawValue)
    case "procs": return .int(procs)
    case "partition":
      switch partition {
      case .even: return .string("even")
      case .searched: return .string("searched")
      case .table(let t): return .host(PartitionTableValue(t, mode: mode))
      case .fractions(let r): return .list(r.map { .float($0) })
      case .sizes(let c): return .list(c.map { .int($0) })
      }
    case "mode": return .string(mode.rawValue)
    case "bandwidth": return bandwidth.map { .float($0) } ?? Value.none
    case "latency": return .float(latency)
    case "role": return .string("prefill strategy")
    default: return nil
    }
  }
  public func isEqual(to other: any HostObject) -> Bool {
    guard let o = other as? PrefillStrategyValue else { return false }
    return o.description == description && o.partition == partition
  }
  public func serialized() throws -> (kind: String, bytes: [UInt8])? {
    ("prefillStrategy", Array(try JSONEncoder().encode(Stored(self))))
  }

  /// The saved form: every field, the table whole.
  struct Stored: Codable {
    var method: String, procs: Int, mode: String, latency: Double, bandwidth: Double?
    var partition: String, fractions: [Double]?, sizes: [Int]?, table: PartitionTable?
    init(_ v: PrefillStrategyValue) {
      method = v.method.rawValue; procs = v.procs; mode = v.mode.rawValue; latency = v.latency; bandwidth = v.bandwidth
      switch v.partition {
      case .even: partition = "even"
      case .searched: partition = "searched"
      case .fractions(let r): partition = "fractions"; fractions = r
      case .sizes(let c): partition = "sizes"; sizes = c
      case .table(let t): partition = "table"; table = t
      }
    }
    func value() throws -> PrefillStrategyValue {
      guard let method = ParallelPrefillMethod(rawValue: self.method), let mode = Mode(rawValue: self.mode) else {
        throw LatheError("load: a saved prefill strategy has method \(Value.quote(self.method)) and mode \(Value.quote(self.mode))")
      }
      let p: Partition
      switch (partition, fractions, sizes, table) {
      case ("even", _, _, _): p = .even
      case ("searched", _, _, _): p = .searched
      case ("fractions", let r?, _, _): p = .fractions(r)
      case ("sizes", _, let c?, _): p = .sizes(c)
      case ("table", _, _, let t?): p = .table(t)
      default: throw LatheError("load: a saved prefill strategy has an unknown partition \(Value.quote(partition))")
      }
      return try PrefillStrategyValue(method: method, procs: procs, partition: p, mode: mode, bandwidth: bandwidth, latency: latency)
    }
  }

  /// Tokens per process for a real prompt of `tokens` tokens (not for "searched", which needs runs).
  func chunks(tokens: Int) throws -> [Int] {
    switch partition {
    case .even: return try PrefillPartition.even(tokens: tokens, procs: procs)
    case .fractions(let r): return try PrefillPartition.sizes(fractions: r, tokens: tokens)
    case .sizes(let c): try PrefillPartition.check(c, tokens: tokens); return c
    case .table(let t):
      do { return try t.chunks(length: tokens) } catch let e as RunaheadError { throw LatheError("prefill: \(e.message)") }
    case .searched: throw LatheError("prefill: a searched partition needs a search first")
    }
  }

  /// The value from its saved bytes: JSON, or the description of an earlier version
  /// (`runahead(procs: 2, partition: [0.7, 0.3])`).
  static func decode(bytes: [UInt8]) throws -> PrefillStrategyValue {
    if bytes.first == UInt8(ascii: "{") {
      do { return try JSONDecoder().decode(Stored.self, from: Data(bytes)).value() }
      catch let e as LatheError { throw e }
      catch { throw LatheError("load: a saved prefill strategy is not readable: \(error)") }
    }
    return try decode(String(decoding: bytes, as: UTF8.self))
  }

  /// The value from its description (`runahead(procs: 2, partition: [0.7, 0.3])`), as saved in a notebook.
  static func decode(_ text: String) throws -> PrefillStrategyValue {
    func fail() -> LatheError { LatheError("load: \(Value.quote(text)) is not a prefill strategy") }
    guard let open = text.firstIndex(of: "("), text.hasSuffix(")") else { throw fail() }
    let name = text[..<open], body = text[text.index(after: open)..<text.index(before: text.endIndex)]
    guard let procsPart = body.split(separator: ",").first, procsPart.hasPrefix("procs:"),
          let procs = Int(procsPart.dropFirst(6).trimmingCharacters(in: .whitespaces)) else { throw fail() }
    if name == "tsp" { return try PrefillStrategyValue(method: .tsp, procs: procs, partition: .even) }
    guard name == "runahead", let at = body.range(of: "partition:") else { throw fail() }
    let rest = body[at.upperBound...].trimmingCharacters(in: .whitespaces)
    if rest == "\"even\"" { return try PrefillStrategyValue(method: .runahead, procs: procs, partition: .even) }
    guard rest.hasPrefix("["), rest.hasSuffix("]") else { throw fail() }
    let items = rest.dropFirst().dropLast().split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
    if items.allSatisfy({ Int($0) != nil }) {
      return try PrefillStrategyValue(method: .runahead, procs: procs, partition: .sizes(items.compactMap { Int($0) }))
    }
    let fractions = items.compactMap { Double($0) }
    guard fractions.count == items.count else { throw fail() }
    return try PrefillStrategyValue(method: .runahead, procs: procs, partition: .fractions(fractions))
  }
}

enum ParallelBuiltins {
  static func register(into r: BuiltinRegistry) {
    r.addHostDecoder(kind: "prefillStrategy") { bytes in .host(try PrefillStrategyValue.decode(bytes: bytes)) }
    let link = [ParameterSpec("mode", default: .string("real")), ParameterSpec("bandwidth", default: Value.none),
                ParameterSpec("latency", default: .int(0))]
    r.add("runahead", [ParameterSpec("procs", default: .int(2)), ParameterSpec("partition", default: .string("even"))] + link,
          doc: "KV-Runahead parallel prefill for prefill(m, prompt, t): one worker process per chunk of the prompt; process i takes the keys and values of every earlier token from process i-1, appends its chunk's and passes them on. partition: \"even\", \"searched\" (searched at the prompt's length), a table from search (interpolated), fractions ([0.7, 0.3]) or token counts ([70, 30]). mode: \"real\" (worker processes) or \"simulate\" (the cost model calibrated on this model, any procs, with a link of bandwidth bytes/s, none for shared memory, and latency seconds per message).",
          example: "prefill(m, prompt, runahead(procs: 2, partition: [0.6, 0.4]))") { c in
      let procs = try c.int(0)
      let partition: PrefillStrategyValue.Partition
      switch c[1] {
      case .string("even"): partition = .even
      case .string("searched"): partition = .searched
      case .string(let s):
        throw LatheError("runahead: partition must be \"even\", \"searched\", a partition table or a list of fractions or token counts, got \(Value.quote(s))")
      case .host(let h as PartitionTableValue): partition = .table(h.table)
      case .list(let items) where items.allSatisfy({ if case .int = $0 { return true } else { return false } }):
        partition = .sizes(items.compactMap { if case .int(let i) = $0 { return i } else { return nil } })
      case .list(let items):
        partition = .fractions(try items.map { v -> Double in
          switch v {
          case .int(let i): return Double(i)
          case .float(let f): return f
          default: throw LatheError("runahead: partition lists hold numbers, got \(v.typeName)", kind: .type)
          }
        })
      default:
        throw LatheError("runahead: 'partition' must be \"even\", \"searched\", a partition table or a list, got \(c[1].typeName)", kind: .type)
      }
      let (mode, bandwidth, latency) = try linkOptions(c, from: 2, "runahead")
      return .host(try PrefillStrategyValue(method: .runahead, procs: procs, partition: partition, mode: mode,
                                            bandwidth: bandwidth, latency: latency))
    }
    r.add("tsp", [ParameterSpec("procs", default: .int(2))] + link,
          doc: "The tensor/sequence-parallel prefill baseline for prefill(m, prompt, t): even chunks, one worker process each; every layer all-gathers the keys and values and each process scores its queries against the whole prompt under the causal mask. mode, bandwidth and latency as for runahead.",
          example: "prefill(m, prompt, tsp(procs: 2))") { c in
      let (mode, bandwidth, latency) = try linkOptions(c, from: 1, "tsp")
      return .host(try PrefillStrategyValue(method: .tsp, procs: try c.int(0), partition: .even, mode: mode,
                                            bandwidth: bandwidth, latency: latency))
    }
    RunaheadBuiltins.register(into: r)
  }

  /// mode:, bandwidth: and latency: at arguments i, i+1, i+2.
  static func linkOptions(_ c: NativeCall, from i: Int, _ op: String) throws
    -> (PrefillStrategyValue.Mode, Double?, Double) {
    let modeText = try c.string(i)
    guard let mode = PrefillStrategyValue.Mode(rawValue: modeText) else {
      throw LatheError("\(op): mode must be \"real\" or \"simulate\", got \(Value.quote(modeText))")
    }
    return (mode, c.isNone(i + 1) ? nil : try c.double(i + 1), try c.double(i + 2))
  }

  /// Runs `prompt` through `strategy` on the worker pool.
  static func prefill(_ value: LanguageModelValue, _ ids: [Int], _ strategy: PrefillStrategyValue, room: Int,
                      interpreter: Interpreter) throws -> KVCacheValue {
    guard strategy.mode == .real else {
      throw LatheError("prefill: \(strategy.description) simulates, so it has no KV cache to decode from; use prefill(m, prompt, t) for its timings")
    }
    do {
      let chunks = strategy.partition == .searched
        ? try RunaheadBuiltins.searchedChunks(value.model, ids, procs: strategy.procs, interpreter: interpreter)
        : try strategy.chunks(tokens: ids.count)
      let r = try value.model.parallelPrefill(ids, method: strategy.method, chunks: chunks, extra: room,
                                              interrupt: { try interpreter.checkInterrupt() })
      let text = (try? value.model.tokenizer?.decode([r.firstToken])) ?? nil
      return KVCacheValue(model: value.model, cache: r.cache, logits: r.logits, firstToken: r.firstToken, firstText: text ?? "",
                          prefillSeconds: r.ttft, promptTokens: ids.count, parallel: r, strategy: strategy.description)
    } catch let e as ParallelError {
      throw LatheError("prefill: \(e.description.replacingOccurrences(of: "parallel prefill: ", with: ""))")
    }
  }

  /// The parallel fields of a prefill value: a serial prefill reads as one process that sends nothing.
  static func member(_ name: String, of kv: KVCacheValue) -> Value? {
    let config = kv.model.config
    switch name {
    case "technique": return kv.strategy.map { .string($0) } ?? Value.none
    case "chunks": return .list((kv.parallel?.chunks ?? [kv.promptTokens]).map { .int($0) })
    case "bytesSent": return .list((kv.parallel?.bytesSent ?? [0]).map { .int($0) })
    case "attnMACs":
      return .int(kv.parallel?.attentionMACs ?? PrefillPartition.attentionMACs(.runahead, chunks: [kv.promptTokens], config: config))
    case "startSeconds": return .float(kv.parallel?.startSeconds ?? 0)
    case "perProc":
      guard let p = kv.parallel else {
        return .list([.record(Record([("compute", .float(kv.prefillSeconds)), ("wait", .float(0)), ("send", .float(0)),
                                      ("bytesSent", .int(0)), ("finished", .float(kv.prefillSeconds)), ("events", .list([]))]))])
      }
      return .list(p.processes.map { t in
        let events: [Value] = t.events.map { e in
          .record(Record([("kind", .string(["compute", "wait", "send"][e.kind.rawValue])), ("layer", .int(e.layer)),
                          ("start", .float(e.start)), ("end", .float(e.end))]))
        }
        return .record(Record([("compute", .float(t.compute)), ("wait", .float(t.wait)), ("send", .float(t.send)),
                               ("bytesSent", .int(t.bytesSent)), ("finished", .float(t.finished)), ("events", .list(events))]))
      })
    default: return nil
    }
  }

  static let memberNames = ["technique", "chunks", "perProc", "bytesSent", "attnMACs", "startSeconds"]

  /// The line a parallel prefill adds to the cache value's description.
  static func summary(_ p: ParallelPrefill, strategy: String) -> String {
    let procs = p.processes.enumerated().map { i, t in
      String(format: "process %d: compute %.3f s, wait %.3f s, send %.3f s", i, t.compute, t.wait, t.send)
    }
    return "\(strategy): chunks \(p.chunks), bytes sent \(p.bytesSent), attention MACs \(p.attentionMACs)\n  " + procs.joined(separator: "\n  ")
  }
}
