// Parallel prefill in the language: `runahead(...)` and `tsp(...)` are rows of the technique table (KVRunahead in
// LatheTechniques); `prefill(m, prompt, t)` runs them on worker processes and returns the same KV cache value as a
// serial prefill, with the parallel counters as fields, which this file reads out.

import Foundation
import LatheLang
import LatheModels
import LatheParallel
import LatheTechniques

enum ParallelBuiltins {
  static func register(into r: BuiltinRegistry) {
    RunaheadBuiltins.register(into: r)
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
