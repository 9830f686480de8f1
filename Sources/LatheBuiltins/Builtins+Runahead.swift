// KV-Runahead beyond one real run: simulated prefills (`runahead(..., mode: "simulate")`) on costs measured once
// per model, the partition search (`search`) and its table value, searched partitions for real runs, and
// `timeline(r)`, the Gantt chart of a real or simulated prefill.

import Foundation
import LatheLang
import LatheModels
import LatheParallel
import LatheTechniques

/// A partition table from `search`: the best fractions per prompt length; `runahead(partition: tab)` interpolates.
public final class PartitionTableValue: HostObject {
  public let table: PartitionTable
  /// How the entries were scored: "real" runs or the "simulate" cost model.
  public let mode: KVRunahead.Mode
  init(_ table: PartitionTable, mode: KVRunahead.Mode) { self.table = table; self.mode = mode }

  public var typeName: String { "partitionTable" }
  public var description: String {
    table.description.replacingOccurrences(of: "partition table, ", with: "partition table (\(mode.rawValue)), ")
  }
  public var memberNames: [String] { ["procs", "lengths", "fractions", "seconds", "mode"] }
  public func member(_ name: String) throws -> Value? {
    switch name {
    case "procs": return .int(table.processes)
    case "lengths": return .list(table.entries.map { .int($0.length) })
    case "fractions": return .list(table.entries.map { .list($0.fractions.map { .float($0) }) })
    case "seconds": return .list(table.entries.map { e in e.seconds.map { .float($0) } ?? Value.none })
    case "mode": return .string(mode.rawValue)
    default: return nil
    }
  }
  /// Equal when the entries are (how they were scored is not compared).
  public func isEqual(to other: any HostObject) -> Bool { (other as? PartitionTableValue)?.table == table }

  struct Stored: Codable { var mode: String; var table: PartitionTable }
  public func serialized() throws -> (kind: String, bytes: [UInt8])? {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return ("partitionTable", Array(try encoder.encode(Stored(mode: mode.rawValue, table: table))))
  }
  static func deserialize(_ bytes: [UInt8]) throws -> Value {
    do {
      let stored = try JSONDecoder().decode(Stored.self, from: Data(bytes))
      return .host(PartitionTableValue(stored.table, mode: KVRunahead.Mode(rawValue: stored.mode) ?? .simulate))
    } catch {
      throw LatheError("load: a saved partition table is not readable: \(error)")
    }
  }
}

/// A prefill played out on the cost model: the same counters as a real parallel prefill, and no KV cache.
public final class SimulatedPrefillValue: HostObject {
  let result: SimulatedPrefill
  let strategy: KVRunahead
  let attentionMACs: Int
  let bytesPerProcess: [Int]
  let costs: RunaheadCosts
  init(_ result: SimulatedPrefill, strategy: KVRunahead, config: LlamaConfig, costs: RunaheadCosts) {
    self.result = result; self.strategy = strategy; self.costs = costs
    attentionMACs = PrefillPartition.attentionMACs(strategy.method, chunks: result.chunks, config: config)
    bytesPerProcess = PrefillPartition.bytesPerProcess(strategy.method, chunks: result.chunks,
                                                       bytesPerToken: costs.kvBytesPerToken * costs.layers)
  }
  public var typeName: String { "prefill" }
  public var length: Int { result.chunks.reduce(0, +) }
  public var description: String {
    let procs = result.timeline.processes.indices.map { i in
      String(format: "process %d: compute %.3f s, wait %.3f s, send %.3f s", i, result.timeline.seconds(.compute, process: i),
             result.timeline.seconds(.wait, process: i), result.timeline.seconds(.send, process: i))
    }
    return String(format: "simulated prefill: %d tokens, time to first token %.3f s\n  ", length, result.ttft)
      + "\(strategy.description): chunks \(result.chunks), bytes sent \(bytesPerProcess), attention MACs \(attentionMACs)\n  "
      + procs.joined(separator: "\n  ")
  }
  public var memberNames: [String] { ["ttft", "chunks", "perProc", "bytesSent", "attnMACs", "technique", "promptTokens", "costs"] }
  public func member(_ name: String) throws -> Value? {
    switch name {
    case "ttft": return .float(result.ttft)
    case "chunks": return .list(result.chunks.map { .int($0) })
    case "bytesSent": return .list(bytesPerProcess.map { .int($0) })
    case "attnMACs": return .int(attentionMACs)
    case "technique": return .string(strategy.description)
    case "promptTokens", "prompttokens": return .int(length)
    case "costs":
      // Seconds per layer: pre = preConstant + prePerToken·c, attention = attentionPerEntry·c·S, post likewise.
      return .record(Record([("preConstant", .float(costs.preConstant)), ("prePerToken", .float(costs.prePerToken)),
                             ("attentionPerEntry", .float(costs.attentionPerEntry)),
                             ("postConstant", .float(costs.postConstant)), ("postPerToken", .float(costs.postPerToken)),
                             ("head", .float(costs.head)), ("kvBytesPerToken", .int(costs.kvBytesPerToken)),
                             ("layers", .int(costs.layers)), ("bandwidth", costs.bandwidth.map { .float($0) } ?? Value.none),
                             ("latency", .float(costs.latency))]))
    case "perProc":
      return .list(result.timeline.processes.indices.map { i in
        .record(Record([("compute", .float(result.timeline.seconds(.compute, process: i))),
                        ("wait", .float(result.timeline.seconds(.wait, process: i))),
                        ("send", .float(result.timeline.seconds(.send, process: i))),
                        ("bytesSent", .int(bytesPerProcess[i]))]))
      })
    default: return nil
    }
  }
}

enum RunaheadBuiltins {
  static func register(into r: BuiltinRegistry) {
    r.addHostDecoder(kind: "partitionTable", PartitionTableValue.deserialize)
    r.add("search", [ParameterSpec("m"), ParameterSpec("technique"), ParameterSpec("lengths"),
                     ParameterSpec("runs", default: .int(3)), ParameterSpec("granularity", default: Value.none),
                     ParameterSpec("prompt", default: Value.none)],
          doc: "Searches KV-Runahead partitions for each prompt length (the paper's hierarchical grid search) and returns a partition table, which runahead(partition: tab) interpolates and save/load keep. mode \"simulate\" scores partitions with the simulator (granularity 16 tokens); mode \"real\" with the median of `runs` real prefills (granularity 64) of the first tokens of `prompt` (text or ids; default: a fixed token sequence, since timing does not depend on the tokens).",
          example: "let tab = search(m, runahead(procs: 4, mode: \"simulate\"), lengths: [1024, 2048, 4096])") { c in
      let value = try ModelBuiltins.model(c, 0, "search")
      guard case .host(let h) = c[1], let t = (h as? TechniqueValue)?.technique as? KVRunahead, t.method == .runahead else {
        throw LatheError("search: 'technique' must be runahead(procs:, mode:), got \(c[1].typeName)", kind: .type)
      }
      let lengths = try c.list(2).map { v -> Int in
        guard case .int(let n) = v else { throw LatheError("search: lengths must be ints, got \(v.typeName)", kind: .type) }
        guard n >= t.procs, n <= value.model.config.contextLength else {
          throw LatheError("search: each length must be \(t.procs) to \(value.model.config.contextLength) tokens, got \(n)")
        }
        return n
      }
      guard !lengths.isEmpty else { throw LatheError("search: lengths is empty") }
      let runs = try c.int(3)
      guard (1...99).contains(runs) else { throw LatheError("search: runs must be 1 to 99, got \(runs)") }
      let granularity = c.isNone(4) ? (t.mode == .real ? 64 : 16) : try c.int(4)
      guard (1...65536).contains(granularity) else { throw LatheError("search: granularity must be 1 to 65536 tokens, got \(granularity)") }
      do {
        let search = try PartitionSearch(processes: t.procs, granularity: granularity)
        switch t.mode {
        case .simulate:
          let sim: RunaheadSimulator
          do { sim = try t.simulator(value.model) } catch { throw TechniqueBuiltins.error(error) }
          return .host(PartitionTableValue(try PartitionTable(searching: lengths, with: search) { _, chunks in
            try c.interpreter.checkInterrupt()
            return try sim.runaheadTTFT(chunks: chunks)
          }, mode: .simulate))
        case .real:
          let interpreter = c.interpreter
          let ids = try searchPrompt(c, 5, model: value.model, length: lengths.max() ?? 1)
          return .host(PartitionTableValue(try PartitionTable(searching: lengths, with: search) { length, chunks in
            try KVRunahead.measure(value.model, Array(ids.prefix(length)), chunks, runs: runs, interrupt: { try interpreter.checkInterrupt() })
          }, mode: .real))
        }
      } catch let e as RunaheadError {
        throw LatheError("search: \(e.message.hasPrefix("search: ") ? String(e.message.dropFirst(8)) : e.message)")
      } catch let e as ParallelError {
        throw LatheError("search: \(e.description.replacingOccurrences(of: "parallel prefill: ", with: ""))")
      }
    }
    r.add("timeline", [ParameterSpec("prefill"), ParameterSpec("title", default: Value.none)],
          doc: "Draws a prefill's processes as a Gantt chart (compute, wait, send per layer): an SVG figure in the notebook, bars in the terminal. Takes a real prefill value (from prefill(m, prompt, t), serial or parallel) or a simulated one.",
          example: "timeline(prefill(m, prompt, runahead(procs: 2)))") { c in
      let (timeline, name) = try self.timeline(c[0])
      let title = c.isNone(1) ? name : try c.string(1)
      let svg = try timeline.svg(title: title), text = try timeline.text()
      c.interpreter.display([(mime: "image/svg+xml", text: svg), (mime: "text/plain", text: text + "\n")])
      return .none
    }
  }

  /// The timeline of a prefill value and a default title.
  static func timeline(_ v: Value) throws -> (PrefillTimeline, String) {
    switch v {
    case .host(let s as SimulatedPrefillValue):
      return (s.result.timeline, "\(s.strategy.description), \(s.length) tokens (simulated)")
    case .host(let kv as KVCacheValue):
      guard let p = kv.parallel else {
        let segment = PrefillTimeline.Segment(.compute, layer: nil, start: 0, end: kv.prefillSeconds)
        return (PrefillTimeline(processes: [[segment]]), "serial prefill, \(kv.promptTokens) tokens")
      }
      let layers = kv.model.config.layerCount
      let rows = p.processes.map { t in
        t.events.map { e in
          PrefillTimeline.Segment([.compute, .wait, .send][e.kind.rawValue], layer: e.layer < layers ? e.layer : nil,
                                  start: e.start, end: e.end)
        }
      }
      return (PrefillTimeline(processes: rows), "\(kv.strategy ?? "parallel prefill"), \(kv.promptTokens) tokens")
    default:
      throw LatheError("timeline: 'prefill' must be a prefill value from prefill(m, prompt, t), got \(v.typeName)", kind: .type)
    }
  }

  /// The token ids a real search times: `prompt:` (text or ids) or a fixed sequence, at least `length` long.
  static func searchPrompt(_ c: NativeCall, _ i: Int, model: LlamaModel, length: Int) throws -> [Int] {
    let ids: [Int]
    switch c[i] {
    case .none: return (0..<length).map { ($0 * 7919 + 13) % model.config.vocabularySize }
    case .string(let text):
      ids = try ModelBuiltins.tokenizer(c, "search").encode(text, parseSpecial: true)
    default:
      ids = try ModelBuiltins.ids(c, i, "search")
      if let bad = ids.first(where: { $0 < 0 || $0 >= model.config.vocabularySize }) {
        throw LatheError("search: token id \(bad) is outside the vocabulary 0..<\(model.config.vocabularySize)")
      }
    }
    guard ids.count >= length else { throw LatheError("search: 'prompt' has \(ids.count) tokens, fewer than the longest length \(length)") }
    return ids
  }
}
