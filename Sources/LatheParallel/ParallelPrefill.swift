// Parallel prefill of a Llama-family model over worker processes: KV-Runahead (Cho et al., ICML 2024) and its
// tensor/sequence-parallel baseline (shared/techniques/kv-runahead.md). One worker per chunk of the prompt; the
// parent gets the full KV cache, the first token and every process's timeline.

import Foundation
import LatheModels
import LatheTensor

/// Where one process spent its time, in seconds, and what it sent.
public struct ProcessTimeline: Sendable {
  public var compute = 0.0, wait = 0.0, send = 0.0
  public var bytesSent = 0
  /// Compute, wait and send intervals per layer, in seconds from the start of the prefill (for a Gantt chart).
  public var events: [PrefillEvent] = []
  /// When the parent had the process's answer, in seconds from the start.
  public var finished = 0.0

  init(events: [PrefillEvent], bytesSent: Int, finished: Double) {
    self.events = events; self.bytesSent = bytesSent; self.finished = finished
    for e in events {
      switch e.kind {
      case .compute: compute += e.end - e.start
      case .wait: wait += e.end - e.start
      case .send: send += e.end - e.start
      }
    }
  }
}

/// The result of a parallel prefill: a KV cache that `decode` continues, as a serial prefill's is, plus counters.
public struct ParallelPrefill {
  public var method: ParallelPrefillMethod
  /// Tokens per process (sum: the prompt length C).
  public var chunks: [Int]
  /// The whole prompt's keys and values (C positions), with room for more.
  public var cache: KVCache
  /// Logits after the last prompt token, and their argmax.
  public var logits: [Float]
  public var firstToken: Int
  /// Seconds from the requests going out (workers already running) to the first token in the parent.
  public var ttft: Double
  /// Seconds spent starting workers and loading the model before that (0 when the pool was warm).
  public var startSeconds: Double
  public var processes: [ProcessTimeline]
  /// Each process's own cache (S_i rows for runahead, C for tsp), when asked for.
  public var processCaches: [KVCache]
  /// Score-block multiply-accumulates of attention (QKᵀ and PV, dense diagonal blocks; see `attentionMACs`).
  public var attentionMACs: Int

  public var bytesSent: [Int] { processes.map(\.bytesSent) }
}

/// The one partition rule of every parallel prefill, real, simulated or over MPI: KVRunahead's partitions, the
/// simulator and the MPI ranks all take their chunks from here.
public enum PrefillPartition {
  /// The most processes one prefill may use (an MPI job's ranks are bounded the same way).
  public static let maximumProcs = 4096

  /// C/p tokens each, the first C mod p chunks one more (an even split gives its extra tokens to the earliest chunks).
  public static func even(tokens: Int, procs: Int) throws -> [Int] {
    try checkProcs(procs, tokens: tokens)
    return evenSizes(tokens: tokens, procs: procs)
  }

  /// The even rule itself, for callers that have checked procs and tokens (procs ≥ 1).
  public static func evenSizes(tokens: Int, procs: Int) -> [Int] {
    (0..<procs).map { tokens / procs + ($0 < tokens % procs ? 1 : 0) }
  }

  /// Chunk sizes from fractions of the prompt (finite, non-negative, not all zero; scaled to sum to 1): chunk i
  /// ends at S_i = round(C·(r_0+…+r_i)), rounding half to even, kept so that every chunk has at least one token.
  ///
  ///     try PrefillPartition.sizes(fractions: [1.0 / 3, 1.0 / 3, 1.0 / 3], tokens: 10) == [3, 4, 3]
  public static func sizes(fractions: [Double], tokens: Int) throws -> [Int] {
    let p = fractions.count
    try checkProcs(p, tokens: tokens)
    let sum = fractions.reduce(0, +)
    guard fractions.allSatisfy({ $0 >= 0 && $0.isFinite }), sum > 0, sum.isFinite else {
      throw ParallelError.invalidPlan("partition fractions must be finite, non-negative and not all zero, got \(fractions)")
    }
    var ends: [Int] = [], running = 0.0
    for (i, r) in fractions.enumerated() {
      running += r
      let lowest = (ends.last ?? 0) + 1, highest = tokens - (p - 1 - i)
      let end = (running / sum * Double(tokens)).rounded(.toNearestOrEven)
      // Compared as a Double first: Double(Int.max) is 2^63, which Int(_:) would trap on.
      let clamped = end >= Double(tokens) ? tokens : Int(end)
      ends.append(i == p - 1 ? tokens : Swift.min(highest, Swift.max(lowest, clamped)))
    }
    return ends.enumerated().map { i, e in e - (i == 0 ? 0 : ends[i - 1]) }
  }

  /// Chunk sizes must be at least 1 each and sum to the prompt length.
  public static func check(_ chunks: [Int], tokens: Int) throws {
    try checkProcs(chunks.count, tokens: tokens)
    guard chunks.allSatisfy({ $0 >= 1 }) else { throw ParallelError.invalidPlan("every chunk needs at least 1 token, got \(chunks)") }
    var sum = 0
    for c in chunks {
      let (next, overflow) = sum.addingReportingOverflow(c)
      guard !overflow else { throw ParallelError.invalidPlan("chunk sizes \(chunks) sum past Int's range; the prompt has \(tokens) tokens") }
      sum = next
    }
    guard sum == tokens else { throw ParallelError.invalidPlan("chunk sizes \(chunks) sum to \(sum), the prompt has \(tokens) tokens") }
  }

  static func checkProcs(_ procs: Int, tokens: Int) throws {
    guard procs >= 1 else { throw ParallelError.invalidPlan("procs must be at least 1, got \(procs)") }
    guard procs <= maximumProcs else { throw ParallelError.invalidPlan("procs must be at most \(maximumProcs), got \(procs)") }
    guard tokens >= 1 else { throw ParallelError.invalidPlan("the prompt is empty") }
    guard procs <= tokens else { throw ParallelError.invalidPlan("\(procs) processes for a \(tokens)-token prompt: each needs at least one token") }
  }

  /// Attention multiply-accumulates, QKᵀ and PV over dense score blocks: runahead Σ_l 2·n_q(l)·d_head·Σ_i c_i·S_i
  /// (equal to serial C² for one chunk), tsp Σ_l 2·n_q(l)·d_head·C² (spec check 3).
  public static func attentionMACs(_ method: ParallelPrefillMethod, chunks: [Int], config: LlamaConfig) -> Int {
    let total = chunks.reduce(0, +)
    var blocks = 0, end = 0
    for c in chunks { end += c; blocks += c * end }
    let perHead = method == .runahead ? blocks : total * total
    return config.headCounts.reduce(0) { $0 + 2 * $1 * config.headDimension * perHead }
  }

  /// Bytes each process sends, the one formula every prefill value reports (real, simulated, MPI), for keys and
  /// values of `bytesPerToken` bytes a token over all layers: runahead process i < p−1 sends its whole prefix, S_i
  /// tokens, the last nothing; tsp process i sends its c_i tokens to each of the p−1 others.
  ///
  ///     PrefillPartition.bytesPerProcess(.runahead, chunks: [3, 2, 5], bytesPerToken: 10) == [30, 50, 0]
  public static func bytesPerProcess(_ method: ParallelPrefillMethod, chunks: [Int], bytesPerToken: Int) -> [Int] {
    let p = chunks.count
    var end = 0
    return chunks.enumerated().map { i, c in
      end += c
      switch method {
      case .runahead: return i < p - 1 ? end * bytesPerToken : 0
      case .tsp: return (p - 1) * c * bytesPerToken
      }
    }
  }

  /// Keys and values of one token over every layer, f32: Σ_l 2·n_kv(l)·d_head·4 bytes.
  public static func kvBytesPerToken(_ config: LlamaConfig) -> Int {
    config.kvHeadCounts.reduce(0) { $0 + 2 * $1 * config.headDimension * 4 }
  }

  /// Bytes all processes send, by the spec's formulas (check 2): runahead Σ_l B_kv(l)·Σ_{i<p-1} S_i, tsp
  /// Σ_l B_kv(l)·(p-1)·C, with B_kv(l) = 2·n_kv(l)·d_head·4 (f32).
  public static func bytesSent(_ method: ParallelPrefillMethod, chunks: [Int], config: LlamaConfig) -> Int {
    bytesPerProcess(method, chunks: chunks, bytesPerToken: kvBytesPerToken(config)).reduce(0, +)
  }
}

extension LlamaModel {
  /// Prefills `prompt` split into `chunks` (one worker process per chunk; one chunk runs the serial prefill here),
  /// leaving room for `extra` more positions in the cache. Each worker loads the model's GGUF file once and keeps
  /// it; a model without one (a copy, a compressed model) is first written to a temporary GGUF file in the pool's
  /// shared folder, kept while the model lives (change a model's weights in place and the workers do not see it). `interrupt` is polled while the workers run (every 50 ms): when it throws, the workers
  /// are killed (the pool starts new ones next time) and its error is rethrown.
  ///
  ///     let r = try model.parallelPrefill(ids, method: .runahead, chunks: [70, 30])   // r.cache, r.firstToken, r.ttft
  public func parallelPrefill(_ prompt: [Int], method: ParallelPrefillMethod, chunks: [Int], extra: Int = 256,
                              pool: WorkerPool = .shared, processCaches: Bool = false,
                              interrupt: () throws -> Void = {}) throws -> ParallelPrefill {
    try PrefillPartition.check(chunks, tokens: prompt.count)
    guard prompt.count <= config.contextLength else {
      throw ParallelError.invalidPlan("\(prompt.count) prompt tokens exceed the model's context of \(config.contextLength)")
    }
    if let bad = prompt.first(where: { $0 < 0 || $0 >= config.vocabularySize }) {
      throw ParallelError.invalidPlan("token id \(bad) is outside the vocabulary 0..<\(config.vocabularySize)")
    }
    let macs = PrefillPartition.attentionMACs(method, chunks: chunks, config: config)
    if chunks.count == 1 {
      let started = monotonicNanoseconds()
      let (cache, logits) = try prefill(prompt, extra: extra)
      let first = Sampler.argmax(logits)
      let seconds = Double(monotonicNanoseconds() - started) / 1e9
      let timeline = ProcessTimeline(events: [PrefillEvent(kind: .compute, layer: config.layerCount, start: 0, end: seconds)],
                                     bytesSent: 0, finished: seconds)
      return ParallelPrefill(method: method, chunks: chunks, cache: cache, logits: logits, firstToken: first, ttft: seconds,
                             startSeconds: 0, processes: [timeline], processCaches: processCaches ? [try cache.copy()] : [],
                             attentionMACs: macs)
    }
    // The file the model came from, unless it was replaced since: then the workers get a copy of this model.
    let path = try unchangedGGUFPath ?? pool.temporaryGGUF(for: self)
    let cache = try makeCache(capacity: cacheCapacity(prompt: prompt.count, extra: extra))
    let outcome = try pool.run(method, model: self, modelPath: path, prompt: prompt, chunks: chunks, into: cache,
                               processCaches: processCaches, interrupt: interrupt)
    let last = outcome.replies.count - 1
    let logits = outcome.replies[last].logits
    guard logits.count == config.vocabularySize else {
      throw ParallelError.workerFailed(worker: last, message: "sent \(logits.count) logits for a vocabulary of \(config.vocabularySize)")
    }
    let first = Sampler.argmax(logits)
    let ttft = outcome.arrivals[last]
    let timelines = outcome.replies.indices.map {
      ProcessTimeline(events: outcome.replies[$0].events, bytesSent: outcome.replies[$0].bytesSent, finished: outcome.arrivals[$0])
    }
    return ParallelPrefill(method: method, chunks: chunks, cache: cache, logits: logits, firstToken: first, ttft: ttft,
                           startSeconds: outcome.startSeconds, processes: timelines, processCaches: outcome.processCaches,
                           attentionMACs: macs)
  }
}
