// Parallel prefill as values of the language: `runahead(procs: 2, partition: "even")` (KV-Runahead) and
// `tsp(procs: 2)` (its tensor/sequence-parallel baseline) print every parameter; `prefill(m, prompt, t)` runs them
// on worker processes and returns the same KV cache value as a serial prefill, with the counters as fields. The
// searched and table partitions come from the partition search (`search`), which is not part of this file.

import Foundation
import LatheLang
import LatheModels
import LatheParallel

/// A prefill strategy: the method, the number of processes and how the prompt is split.
public final class PrefillStrategyValue: HostObject {
  public enum Partition: Equatable {
    case even
    /// Fractions of the prompt, one per process, summing to 1.
    case fractions([Double])
    /// Token counts, one per process (the prompt must have exactly their sum).
    case sizes([Int])
  }
  public let method: ParallelPrefillMethod
  public let procs: Int
  public let partition: Partition

  init(method: ParallelPrefillMethod, procs: Int, partition: Partition) throws {
    let name = method == .runahead ? "runahead" : "tsp"
    guard procs >= 1 else { throw LatheError("\(name): procs must be at least 1, got \(procs)") }
    switch partition {
    case .even: break
    case .fractions(let r):
      guard r.count == procs else { throw LatheError("\(name): partition has \(r.count) fractions for \(procs) processes") }
      guard r.allSatisfy({ $0 > 0 && $0.isFinite }) else { throw LatheError("\(name): partition fractions must be positive, got \(r)") }
      let sum = r.reduce(0, +)
      guard abs(sum - 1) <= 1e-6 else { throw LatheError("\(name): partition fractions must sum to 1, got \(sum)") }
    case .sizes(let c):
      guard c.count == procs else { throw LatheError("\(name): partition has \(c.count) chunk sizes for \(procs) processes") }
      guard c.allSatisfy({ $0 >= 1 }) else { throw LatheError("\(name): every chunk needs at least 1 token, got \(c)") }
    }
    self.method = method; self.procs = procs; self.partition = partition
  }

  public var typeName: String { "technique" }
  public var description: String {
    switch method {
    case .tsp: return "tsp(procs: \(procs))"
    case .runahead: return "runahead(procs: \(procs), partition: \(partitionText))"
    }
  }
  var partitionText: String {
    switch partition {
    case .even: return "\"even\""
    case .fractions(let r): return "[" + r.map { "\($0)" }.joined(separator: ", ") + "]"
    case .sizes(let c): return "[" + c.map { "\($0)" }.joined(separator: ", ") + "]"
    }
  }

  public var memberNames: [String] { ["method", "procs", "partition", "role"] }
  public func member(_ name: String) throws -> Value? {
    switch name {
    case "method": return .string(method.rawValue)
    case "procs": return .int(procs)
    case "partition":
      switch partition {
      case .even: return .string("even")
      case .fractions(let r): return .list(r.map { .float($0) })
      case .sizes(let c): return .list(c.map { .int($0) })
      }
    case "role": return .string("prefill strategy")
    default: return nil
    }
  }
  public func isEqual(to other: any HostObject) -> Bool { (other as? PrefillStrategyValue)?.description == description }
  public func serialized() throws -> (kind: String, bytes: [UInt8])? { ("prefillStrategy", Array(description.utf8)) }

  /// Tokens per process for a prompt of `tokens` tokens.
  func chunks(tokens: Int) throws -> [Int] {
    switch partition {
    case .even: return try PrefillPartition.even(tokens: tokens, procs: procs)
    case .fractions(let r): return try PrefillPartition.sizes(fractions: r, tokens: tokens)
    case .sizes(let c): try PrefillPartition.check(c, tokens: tokens); return c
    }
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
    r.addHostDecoder(kind: "prefillStrategy") { bytes in .host(try PrefillStrategyValue.decode(String(decoding: bytes, as: UTF8.self))) }
    r.add("runahead", [ParameterSpec("procs", default: .int(2)), ParameterSpec("partition", default: .string("even"))],
          doc: "KV-Runahead parallel prefill for prefill(m, prompt, t): one worker process per chunk of the prompt; process i takes the keys and values of every earlier token from process i-1, appends its chunk's and passes them on. partition: \"even\", fractions ([0.7, 0.3]) or token counts ([70, 30]); searched partitions come from search.",
          example: "prefill(m, prompt, runahead(procs: 2, partition: [0.6, 0.4]))") { c in
      let procs = try c.int(0)
      let partition: PrefillStrategyValue.Partition
      switch c[1] {
      case .string(let s):
        guard s == "even" else {
          throw LatheError("runahead: partition must be \"even\", a list of fractions or a list of token counts, got \(Value.quote(s)) (searched partitions come from search, which builds a partition table)")
        }
        partition = .even
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
        throw LatheError("runahead: 'partition' must be \"even\" or a list, got \(c[1].typeName)", kind: .type)
      }
      return .host(try PrefillStrategyValue(method: .runahead, procs: procs, partition: partition))
    }
    r.add("tsp", [ParameterSpec("procs", default: .int(2))],
          doc: "The tensor/sequence-parallel prefill baseline for prefill(m, prompt, t): even chunks, one worker process each; every layer all-gathers the keys and values and each process scores its queries against the whole prompt under the causal mask.",
          example: "prefill(m, prompt, tsp(procs: 2))") { c in
      .host(try PrefillStrategyValue(method: .tsp, procs: try c.int(0), partition: .even))
    }
  }

  /// Runs `prompt` through `strategy` on the worker pool.
  static func prefill(_ value: LanguageModelValue, _ ids: [Int], _ strategy: PrefillStrategyValue, room: Int,
                      interpreter: Interpreter) throws -> KVCacheValue {
    do {
      let chunks = try strategy.chunks(tokens: ids.count)
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
