// Parallel prefill over Open MPI from the language: `mpi(runahead(procs: 2), hosts: "hostfile")` wraps a prefill
// strategy so that prefill(m, prompt, t) and generate(m, prompt, t) run its chunks as mpirun ranks (lathe-mpi, built
// with LATHE_MPI=1) instead of worker processes; the result is the same KV cache value.

import Foundation
import LatheLang
import LatheParallel

/// What `prefill` and `generate` accept as their technique: a strategy on worker processes or one over MPI.
protocol PrefillTechniqueValue: HostObject {
  func prefill(_ value: LanguageModelValue, _ ids: [Int], room: Int, interpreter: Interpreter) throws -> KVCacheValue
}

extension PrefillStrategyValue: PrefillTechniqueValue {
  func prefill(_ value: LanguageModelValue, _ ids: [Int], room: Int, interpreter: Interpreter) throws -> KVCacheValue {
    try ParallelBuiltins.prefill(value, ids, self, room: room, interpreter: interpreter)
  }
}

/// A prefill strategy run by Open MPI ranks: on this machine, or on the hosts of an Open MPI hostfile.
public final class MPIPrefillStrategyValue: PrefillTechniqueValue {
  public let strategy: PrefillStrategyValue
  /// The hostfile; nil runs every rank here.
  public let hosts: String?
  /// TCP between ranks only (`--mca btl self,tcp`), as between machines.
  public let tcp: Bool

  init(strategy: PrefillStrategyValue, hosts: String?, tcp: Bool) { self.strategy = strategy; self.hosts = hosts; self.tcp = tcp }

  public var typeName: String { "technique" }
  public var description: String { "mpi(\(strategy.description), hosts: \(hosts.map { Value.quote($0) } ?? "none"), tcp: \(tcp))" }
  public var memberNames: [String] { strategy.memberNames + ["hosts", "tcp"] }
  public func member(_ name: String) throws -> Value? {
    switch name {
    case "hosts": return hosts.map { .string($0) } ?? Value.none
    case "tcp": return .bool(tcp)
    default: return try strategy.member(name)
    }
  }
  public func isEqual(to other: any HostObject) -> Bool { (other as? MPIPrefillStrategyValue)?.description == description }
  public func serialized() throws -> (kind: String, bytes: [UInt8])? { nil }

  func prefill(_ value: LanguageModelValue, _ ids: [Int], room: Int, interpreter: Interpreter) throws -> KVCacheValue {
    do {
      let chunks = try strategy.chunks(tokens: ids.count)
      let r = try value.model.parallelPrefill(ids, method: strategy.method, chunks: chunks, extra: room,
                                              mpi: MPILaunch(hostfile: hosts, tcpOnly: tcp))
      let text = (try? value.model.tokenizer?.decode([r.firstToken])) ?? nil
      return KVCacheValue(model: value.model, cache: r.cache, logits: r.logits, firstToken: r.firstToken, firstText: text ?? "",
                          prefillSeconds: r.ttft, promptTokens: ids.count, parallel: r, strategy: description)
    } catch let e as ParallelError {
      throw LatheError("prefill: \(e.description.replacingOccurrences(of: "parallel prefill: ", with: ""))")
    }
  }
}

enum MPIBuiltins {
  static func register(into r: BuiltinRegistry) {
    r.add("mpi", [ParameterSpec("technique"), ParameterSpec("hosts", default: Value.none), ParameterSpec("tcp", default: .bool(true))],
          doc: "Runs a prefill strategy (runahead(...) or tsp(...)) as Open MPI ranks started by mpirun instead of worker processes: on this machine, or over the hosts of an Open MPI hostfile (one `host slots=n` a line; the model and lathe-mpi at the same paths on each). tcp: ranks talk over TCP only, as between machines.",
          example: "prefill(m, prompt, mpi(runahead(procs: 2), hosts: \"hostfile\"))") { c in
      guard case .host(let h) = c[0], let strategy = h as? PrefillStrategyValue else {
        throw LatheError("mpi: 'technique' must be a prefill strategy such as runahead(procs: 2) or tsp(procs: 2), got \(c[0].typeName)", kind: .type)
      }
      let hosts = c.isNone(1) ? nil : try c.string(1)
      if let hosts, !FileManager.default.fileExists(atPath: hosts) { throw LatheError("mpi: no hostfile \(Value.quote(hosts))") }
      return .host(MPIPrefillStrategyValue(strategy: strategy, hosts: hosts, tcp: try c.bool(2)))
    }
  }
}
