// KV-Runahead (Cho et al., ICML 2024) and its tensor/sequence-parallel baseline as technique values:
// `runahead(procs: 2, partition: "even")` and `tsp(procs: 2)`. A real run starts one worker process per chunk
// (LatheParallel); mode "simulate" plays the prefill out on the cost model calibrated on the model itself.

import Foundation
import LatheModels
import LatheParallel

/// A prefill strategy: the method, the number of processes, how the prompt is split, and whether it runs on worker
/// processes (mode "real") or on the cost model (mode "simulate", with a link of `bandwidth` bytes/s and `latency` s).
public struct KVRunahead: PrefillStrategy, Equatable {
  public enum Mode: String, Sendable { case real, simulate }
  public let method: ParallelPrefillMethod
  public let procs: Int
  public let partition: RunaheadPartition
  public let mode: Mode
  /// Link bytes per second in simulate mode; nil: shared memory (the measured memcpy rate).
  public let bandwidth: Double?
  /// Seconds per message in simulate mode.
  public let latency: Double

  /// The most processes a simulated strategy may name, and a real one (each a worker process with the model mapped).
  public static let maximumProcs = 1024, maximumRealProcs = 64
  /// 2^20 tokens: attention MACs (2·n_q·d_head·L·C²) stay far inside an Int.
  public static let maximumSimulatedLength = 1 << 20

  public init(method: ParallelPrefillMethod, procs: Int, partition: RunaheadPartition = .even, mode: Mode = .real,
              bandwidth: Double? = nil, latency: Double = 0) throws {
    let name = method == .runahead ? "runahead" : "tsp"
    func fail(_ s: String) -> TechniqueError { TechniqueError("\(name): \(s)") }
    guard procs >= 1 else { throw fail("procs must be at least 1, got \(procs)") }
    guard procs <= KVRunahead.maximumProcs else { throw fail("procs must be at most \(KVRunahead.maximumProcs), got \(procs)") }
    switch partition {
    case .even, .searched: break
    case .fractions(let r):
      guard r.count == procs else { throw fail("partition has \(r.count) fractions for \(procs) processes") }
      guard r.allSatisfy({ $0 > 0 && $0.isFinite }) else { throw fail("partition fractions must be positive, got \(r)") }
      let sum = r.reduce(0, +)
      guard abs(sum - 1) <= 1e-6 else { throw fail("partition fractions must sum to 1, got \(sum)") }
    case .sizes(let c):
      guard c.count == procs else { throw fail("partition has \(c.count) chunk sizes for \(procs) processes") }
      guard c.allSatisfy({ $0 >= 1 }) else { throw fail("every chunk needs at least 1 token, got \(c)") }
      guard c.allSatisfy({ $0 <= PartitionSearch.maximumLength }) else {
        throw fail("a chunk may have at most \(PartitionSearch.maximumLength) tokens, got \(c.max() ?? 0)")
      }
    case .table(let t):
      guard t.processes == procs else { throw fail("the partition table is for \(t.processes) processes, not \(procs)") }
      guard !t.entries.isEmpty else { throw fail("the partition table is empty") }
    }
    if mode == .real, procs > KVRunahead.maximumRealProcs {
      throw fail("real runs start one worker process each, so procs must be at most \(KVRunahead.maximumRealProcs), got \(procs) (mode: \"simulate\" takes up to \(KVRunahead.maximumProcs))")
    }
    if let bandwidth {
      guard bandwidth.isFinite, bandwidth >= 1 else { throw fail("bandwidth must be at least 1 byte per second, or none, got \(bandwidth)") }
    }
    guard latency.isFinite, latency >= 0, latency <= 3600 else { throw fail("latency must be 0 to 3600 seconds, got \(latency)") }
    if mode == .real, bandwidth != nil || latency != 0 {
      throw fail("bandwidth and latency need mode: \"simulate\" (real runs send through shared memory at its own speed)")
    }
    self.method = method; self.procs = procs; self.partition = method == .tsp ? .even : partition
    self.mode = mode; self.bandwidth = bandwidth; self.latency = latency
  }

  public var entry: TechniqueEntry { method == .tsp ? KVRunahead.tspEntry : KVRunahead.runaheadEntry }

  /// The call that makes this value; mode, bandwidth and latency only when they are not the defaults.
  public var description: String {
    var options = method == .tsp ? "procs: \(procs)" : "procs: \(procs), partition: \(partitionText)"
    if mode == .simulate { options += ", mode: \"simulate\"" }
    if let bandwidth { options += ", bandwidth: \(TechniqueArgument.number(bandwidth))" }
    if latency != 0 { options += ", latency: \(TechniqueArgument.number(latency))" }
    return "\(entry.name)(\(options))"
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

  public var fields: [(String, TechniqueArgument)] {
    let part: TechniqueArgument
    switch partition {
    case .even: part = .string("even")
    case .searched: part = .string("searched")
    case .table(let t): part = .object(t)
    case .fractions(let r): part = .list(r.map { .float($0) })
    case .sizes(let c): part = .list(c.map { .int($0) })
    }
    return [("method", .string(method.rawValue)), ("procs", .int(procs)), ("partition", part), ("mode", .string(mode.rawValue)),
            ("bandwidth", bandwidth.map { .float($0) } ?? .none), ("latency", .float(latency))]
  }

  // MARK: the table

  static let linkParameters = [
    TechniqueParameter("mode", .string("real"), "\"real\" (worker processes) or \"simulate\" (the cost model calibrated on this model)"),
    TechniqueParameter("bandwidth", TechniqueArgument.none, "simulated link in bytes/s (none: shared memory at the measured memcpy rate)"),
    TechniqueParameter("latency", .int(0), "simulated seconds per message"),
  ]

  public static let runaheadEntry = TechniqueEntry(
    name: "runahead", roles: [.prefillStrategy],
    parameters: [TechniqueParameter("procs", .int(2), "processes, one chunk of the prompt each"),
                 TechniqueParameter("partition", .string("even"), "\"even\", \"searched\", a table from search, fractions ([0.7, 0.3]) or token counts ([70, 30])")]
      + linkParameters,
    doc: "KV-Runahead parallel prefill for prefill(m, prompt, t): one worker process per chunk of the prompt; process i takes the keys and values of every earlier token from process i-1, appends its chunk's and passes them on. partition: \"even\", \"searched\" (searched at the prompt's length), a table from search (interpolated), fractions ([0.7, 0.3]) or token counts ([70, 30]). mode: \"real\" (worker processes) or \"simulate\" (the cost model calibrated on this model, any procs, with a link of bandwidth bytes/s, none for shared memory, and latency seconds per message).",
    example: "prefill(m, prompt, runahead(procs: 2, partition: [0.6, 0.4]))",
    make: { a in
      try KVRunahead(method: .runahead, procs: try a.int("procs"), partition: try partition(a), mode: try mode(a),
                     bandwidth: try a.optionalDouble("bandwidth"), latency: try a.double("latency"))
    },
    decode: { bytes in try KVRunahead.decode(bytes: bytes) })

  public static let tspEntry = TechniqueEntry(
    name: "tsp", roles: [.prefillStrategy],
    parameters: [TechniqueParameter("procs", .int(2), "processes, one even chunk of the prompt each")] + linkParameters,
    doc: "The tensor/sequence-parallel prefill baseline for prefill(m, prompt, t): even chunks, one worker process each; every layer all-gathers the keys and values and each process scores its queries against the whole prompt under the causal mask. mode, bandwidth and latency as for runahead.",
    example: "prefill(m, prompt, tsp(procs: 2))",
    make: { a in
      try KVRunahead(method: .tsp, procs: try a.int("procs"), partition: .even, mode: try mode(a),
                     bandwidth: try a.optionalDouble("bandwidth"), latency: try a.double("latency"))
    },
    decode: { bytes in try KVRunahead.decode(bytes: bytes) })

  static func mode(_ a: TechniqueArguments) throws -> Mode {
    let text = try a.string("mode")
    guard let mode = Mode(rawValue: text) else { throw TechniqueError("\(a.technique): mode must be \"real\" or \"simulate\", got \"\(text)\"") }
    return mode
  }

  static func partition(_ a: TechniqueArguments) throws -> RunaheadPartition {
    switch a["partition"] {
    case .string("even"): return .even
    case .string("searched"): return .searched
    case .string(let s):
      throw TechniqueError("runahead: partition must be \"even\", \"searched\", a partition table or a list of fractions or token counts, got \"\(s)\"")
    case .object(let o as PartitionTable): return .table(o)
    case .list(let items) where items.allSatisfy({ if case .int = $0 { return true } else { return false } }):
      return .sizes(items.compactMap { if case .int(let i) = $0 { return i } else { return nil } })
    case .list(let items):
      return .fractions(try items.map { v -> Double in
        switch v {
        case .int(let i): return Double(i)
        case .float(let f): return f
        default: throw TechniqueError("runahead: partition lists hold numbers, got \(v.typeName)")
        }
      })
    default:
      throw TechniqueError("runahead: 'partition' must be \"even\", \"searched\", a partition table or a list, got \(a["partition"].typeName)")
    }
  }

  // MARK: saving

  /// The saved form: every field, the table whole.
  struct Stored: Codable {
    var method: String, procs: Int, mode: String, latency: Double, bandwidth: Double?
    var partition: String, fractions: [Double]?, sizes: [Int]?, table: PartitionTable?
    init(_ v: KVRunahead) {
      method = v.method.rawValue; procs = v.procs; mode = v.mode.rawValue; latency = v.latency; bandwidth = v.bandwidth
      switch v.partition {
      case .even: partition = "even"
      case .searched: partition = "searched"
      case .fractions(let r): partition = "fractions"; fractions = r
      case .sizes(let c): partition = "sizes"; sizes = c
      case .table(let t): partition = "table"; table = t
      }
    }
    func value() throws -> KVRunahead {
      guard let method = ParallelPrefillMethod(rawValue: self.method), let mode = Mode(rawValue: self.mode) else {
        throw TechniqueError("load: a saved prefill strategy has method \"\(self.method)\" and mode \"\(self.mode)\"")
      }
      let p: RunaheadPartition
      switch (partition, fractions, sizes, table) {
      case ("even", _, _, _): p = .even
      case ("searched", _, _, _): p = .searched
      case ("fractions", let r?, _, _): p = .fractions(r)
      case ("sizes", _, let c?, _): p = .sizes(c)
      case ("table", _, _, let t?): p = .table(t)
      default: throw TechniqueError("load: a saved prefill strategy has an unknown partition \"\(partition)\"")
      }
      return try KVRunahead(method: method, procs: procs, partition: p, mode: mode, bandwidth: bandwidth, latency: latency)
    }
  }

  /// JSON with sorted keys: the same value always saves to the same bytes.
  public func saved() throws -> [UInt8]? {
    let encoder = JSONEncoder()
    encoder.outputFormatting = [.sortedKeys]
    return Array(try encoder.encode(Stored(self)))
  }

  /// The value from its saved bytes: JSON, or the description of an earlier version
  /// (`runahead(procs: 2, partition: [0.7, 0.3])`), which the table parses.
  public static func decode(bytes: [UInt8]) throws -> KVRunahead {
    if bytes.first == UInt8(ascii: "{") {
      do { return try JSONDecoder().decode(Stored.self, from: Data(bytes)).value() }
      catch let e as TechniqueError { throw e }
      catch { throw TechniqueError("load: a saved prefill strategy is not readable: \(error)") }
    }
    let text = String(decoding: bytes, as: UTF8.self)
    guard let value = try Techniques.parse(text) as? KVRunahead else { throw TechniqueError("load: \"\(text)\" is not a prefill strategy") }
    return value
  }

  // MARK: running

  public var simulates: Bool { mode == .simulate }
  public var minimumPromptTokens: Int { procs }

  /// Tokens per process for a real prompt of `tokens` tokens (not for "searched", which needs runs).
  public func chunks(tokens: Int) throws -> [Int] {
    guard partition != .searched else { throw TechniqueError("prefill: a searched partition needs a search first") }
    do {
      return try partition.chunks(length: tokens, processes: procs) { _ in 0 }
    } catch let e as RunaheadError { throw TechniqueError("prefill: \(e.message)") }
  }

  public func prefill(_ model: LlamaModel, _ prompt: [Int], room: Int, interrupt: @escaping () throws -> Void) throws -> PrefillOutcome {
    guard prompt.count >= procs else {
      throw TechniqueError("prefill: \(procs) processes need a prompt of at least \(procs) tokens, got \(prompt.count)")
    }
    if mode == .simulate { return try simulate(model, length: prompt.count) }
    let chunks = partition == .searched ? try KVRunahead.searchedChunks(model, prompt, procs: procs, interrupt: interrupt)
                                        : try chunks(tokens: prompt.count)
    return .real(try model.parallelPrefill(prompt, method: method, chunks: chunks, extra: room, interrupt: interrupt))
  }

  /// The prefill of a `length`-token prompt played out on the cost model calibrated on `model`.
  public func simulate(_ model: LlamaModel, length: Int) throws -> PrefillOutcome {
    guard length >= procs else { throw TechniqueError("prefill: \(procs) processes need a prompt of at least \(procs) tokens, got \(length)") }
    guard length <= KVRunahead.maximumSimulatedLength else {
      throw TechniqueError("prefill: a simulated prompt may have at most \(KVRunahead.maximumSimulatedLength) tokens, got \(length)")
    }
    do {
      let sim = try simulator(model)
      let result: SimulatedPrefill
      switch (method, partition) {
      case (.tsp, _): result = try sim.tsp(length: length, processes: procs)
      case (.runahead, .sizes(let sizes)):
        guard sizes.reduce(0, +) == length else {
          throw TechniqueError("prefill: chunk sizes \(sizes) sum to \(sizes.reduce(0, +)), the prompt has \(length) tokens")
        }
        result = try sim.runahead(chunks: sizes)
      case (.runahead, let p): result = try sim.prefill(length: length, processes: procs, partition: p)
      }
      return .simulated(result, costs: sim.costs)
    } catch let e as RunaheadError { throw TechniqueError("prefill: \(e.message)") }
  }

  /// The simulator for this strategy's link on `model`.
  public func simulator(_ model: LlamaModel) throws -> RunaheadSimulator {
    var costs = try KVRunahead.costs(for: model)
    if let bandwidth { costs.bandwidth = bandwidth }
    costs.latency = latency
    return try RunaheadSimulator(costs: costs)
  }

  // MARK: per-model caches of this process

  private static let lock = NSLock()
  /// Costs measured on each model (by identity) in this process; the model is held weakly.
  nonisolated(unsafe) private static var measured: [ObjectIdentifier: (model: Weak, costs: RunaheadCosts)] = [:]
  /// Searched chunks per (model, procs, length).
  nonisolated(unsafe) private static var searched: [String: [Int]] = [:]
  final class Weak { weak var model: LlamaModel?; init(_ m: LlamaModel) { model = m } }

  /// The model's measured costs (`RunaheadCosts.measured`), once per model and process; shared-memory links get
  /// the measured memcpy rate.
  public static func costs(for model: LlamaModel) throws -> RunaheadCosts {
    lock.lock()
    measured = measured.filter { $0.value.model.model != nil }
    let known = measured[ObjectIdentifier(model)]
    lock.unlock()
    if let known, known.model.model === model { return known.costs }
    do {
      let (costs, _, memcpy) = try RunaheadCosts.measured(on: model)
      var out = costs
      out.bandwidth = memcpy
      lock.lock(); measured[ObjectIdentifier(model)] = (Weak(model), out); lock.unlock()
      return out
    } catch let e as RunaheadError {
      throw TechniqueError("prefill: \(e.message)")
    }
  }

  /// Searched chunks for a real prefill, cached per (model, procs, length) in this process: the hierarchical
  /// search scored by the median of 3 real prefills of this prompt, at a granularity of 64 tokens.
  public static func searchedChunks(_ model: LlamaModel, _ ids: [Int], procs: Int, interrupt: @escaping () throws -> Void) throws -> [Int] {
    let key = "\(ObjectIdentifier(model).hashValue) \(procs) \(ids.count)"
    lock.lock(); let known = searched[key]; lock.unlock()
    if let known { return known }
    do {
      let search = try PartitionSearch(processes: procs, granularity: 64)
      let best = try search.search(length: ids.count) { try measure(model, ids, $0, runs: 3, interrupt: interrupt) }
      lock.lock(); searched[key] = best.chunks; lock.unlock()
      return best.chunks
    } catch let e as RunaheadError {
      throw TechniqueError("prefill: \(e.message)")
    }
  }

  /// The median time to first token of `runs` real runahead prefills of `ids` split into `chunks`.
  public static func measure(_ model: LlamaModel, _ ids: [Int], _ chunks: [Int], runs: Int, interrupt: @escaping () throws -> Void) throws -> Double {
    try PartitionSearch.median(of: runs) { chunks in
      try model.parallelPrefill(ids, method: .runahead, chunks: chunks, extra: 0, interrupt: interrupt).ttft
    }(chunks)
  }
}

/// `mpi(t, hosts:, tcp:)`: a runahead or tsp strategy run as Open MPI ranks started by mpirun (lathe-mpi, built
/// with LATHE_MPI=1) instead of worker processes; the result is the same KV cache.
public struct MPIPrefill: PrefillStrategy {
  public let strategy: KVRunahead
  /// The hostfile; nil runs every rank here.
  public let hosts: String?
  /// TCP between ranks only (`--mca btl self,tcp`), as between machines.
  public let tcp: Bool

  public init(strategy: KVRunahead, hosts: String?, tcp: Bool) throws {
    guard strategy.mode == .real else { throw TechniqueError("mpi: \(strategy.description) simulates; give a real strategy") }
    if let hosts, !FileManager.default.fileExists(atPath: hosts) { throw TechniqueError("mpi: no hostfile \"\(hosts)\"") }
    self.strategy = strategy; self.hosts = hosts; self.tcp = tcp
  }

  public var entry: TechniqueEntry { MPIPrefill.entry }
  public var description: String {
    "mpi(\(strategy.description), hosts: \(hosts.map { TechniqueArgument.string($0).description } ?? "none"), tcp: \(tcp))"
  }
  public var fields: [(String, TechniqueArgument)] { strategy.fields + [("hosts", hosts.map { .string($0) } ?? .none), ("tcp", .bool(tcp))] }
  /// A hostfile is a path on this machine: the value is not saved.
  public func saved() throws -> [UInt8]? { nil }
  public var minimumPromptTokens: Int { strategy.procs }

  public static let entry = TechniqueEntry(
    name: "mpi", roles: [.prefillStrategy],
    parameters: [TechniqueParameter(required: "technique", "a real runahead(...) or tsp(...) strategy"),
                 TechniqueParameter("hosts", TechniqueArgument.none, "an Open MPI hostfile (none: every rank on this machine)"),
                 TechniqueParameter("tcp", .bool(true), "ranks talk over TCP only, as between machines")],
    doc: "Runs a prefill strategy (runahead(...) or tsp(...)) as Open MPI ranks started by mpirun instead of worker processes: on this machine, or over the hosts of an Open MPI hostfile (one `host slots=n` a line; the model and lathe-mpi at the same paths on each). tcp: ranks talk over TCP only, as between machines.",
    example: "prefill(m, prompt, mpi(runahead(procs: 2), hosts: \"hostfile\"))",
    make: { a in
      try MPIPrefill(strategy: try a.object("technique", KVRunahead.self, "a prefill strategy such as runahead(procs: 2) or tsp(procs: 2)"),
                     hosts: try a.optionalString("hosts"), tcp: try a.bool("tcp"))
    },
    decode: { _ in throw TechniqueError("load: an mpi(...) strategy is not saved") })

  /// The ranks' chunks: the strategy's own, by the one partition rule.
  public func chunks(tokens: Int) throws -> [Int] { try strategy.chunks(tokens: tokens) }

  public func prefill(_ model: LlamaModel, _ prompt: [Int], room: Int, interrupt: @escaping () throws -> Void) throws -> PrefillOutcome {
    let chunks = try chunks(tokens: prompt.count)
    return .real(try model.parallelPrefill(prompt, method: strategy.method, chunks: chunks, extra: room,
                                           mpi: MPILaunch(hostfile: hosts, tcpOnly: tcp)))
  }
}
