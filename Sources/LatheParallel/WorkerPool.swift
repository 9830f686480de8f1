// The parent's workers: kept alive between calls with their model loaded (keyed by the model file's path), a shared
// region for the caches that grows as prompts do, and the run of one parallel prefill over them. A worker that dies
// or fails mid-run ends the whole run (the others may wait on it forever): every worker is killed and the error
// thrown names the worker; the next call starts fresh ones.

import Foundation
import LatheModels
import LatheTensor

public final class WorkerPool: @unchecked Sendable {
  /// False where no process may be started (the fuzzer's language target): a parallel prefill then ends in an error.
  nonisolated(unsafe) public static var spawningAllowed = true

  /// The process's pool.
  public static let shared = WorkerPool()

  private let lock = NSLock()
  private var workers: [WorkerProcess] = []
  private var folder: SharedFolder?
  private var region: SharedRegion?
  private var regionGeneration = 0
  /// GGUF files written for models that have none, while the model lives.
  private var temporaries: [(model: Weak, path: String)] = []
  final class Weak { weak var model: LlamaModel?; init(_ m: LlamaModel) { model = m } }

  public init() {}

  deinit { shutdown() }

  /// The worker processes now running.
  public var workerPIDs: [Int32] { lock.lock(); defer { lock.unlock() }; return workers.map(\.pid) }

  /// The private shared-memory folder, while the pool has one.
  public var sharedFolderPath: String? { lock.lock(); defer { lock.unlock() }; return folder?.path }

  /// Ends every worker (EOF on its socket, then SIGKILL after a second) and removes the shared-memory folder.
  public func shutdown() {
    lock.lock(); defer { lock.unlock() }
    for w in workers { w.finish(within: 1) }
    workers = []
    region = nil
    folder?.remove()
    folder = nil
  }

  /// A GGUF file of `model` for the workers to load, written once into the shared folder (mode 0600) for a model
  /// that was not loaded from one (a compressed model's packed matrices are written dequantised, as F32). Files of
  /// models that no longer exist are deleted here.
  func temporaryGGUF(for model: LlamaModel) throws -> String {
    guard Self.spawningAllowed else { throw ParallelError.invalidPlan("worker processes are switched off in this process (the fuzzer's language target)") }
    lock.lock(); defer { lock.unlock() }
    for t in temporaries where t.model.model == nil { unlink(t.path) }
    temporaries.removeAll { $0.model.model == nil }
    if let t = temporaries.first(where: { $0.model.model === model }) { return t.path }
    if folder == nil { folder = try SharedFolder() }
    regionGeneration += 1
    let path = "\(folder!.path)/model-\(regionGeneration).gguf"
    do { try model.writeGGUF(to: path, packed: true) } catch {      // compressed matrices stay packed: workers run the same model
      unlink(path)
      throw ParallelError.invalidPlan("the model \(model.name) has no GGUF file for the workers and cannot be written as one: \(error)")
    }
    guard chmod(path, 0o600) == 0 else { throw ParallelError.posix("chmod", "making \(path) private") }
    temporaries.append((Weak(model), path))
    return path
  }

  private func killAll() {
    for w in workers { w.terminate() }
    workers = []
  }

  /// `count` workers with `modelPath` loaded; returns the seconds spent starting and loading.
  private func ensure(count: Int, modelPath: String) throws -> Double {
    let started = monotonicNanoseconds()
    if workers.count < count {
      let executable = try WorkerProcess.executable()
      // Each worker's memory budget is its share of this process's: together they cannot take more than the session
      // may (a worker that would is refused its allocation with the budget's error, which reaches the caller).
      let share = Swift.max(256 << 20, Memory.budget / Swift.max(1, count))
      while workers.count < count {
        workers.append(try WorkerProcess.spawn(slot: workers.count, executable: executable, budget: share))
      }
    }
    // Workers hold a model by its file's path and identity: a new file saved over the same path is loaded again.
    let key = modelPath + "@" + (FileIdentity.of(path: modelPath)?.description ?? "")
    let loading = workers.prefix(count).filter { $0.modelPath != key }
    var w = FrameWriter()
    w.string(modelPath)
    for worker in loading {
      do { try worker.channel.send(.load, w) } catch { throw fail(worker, error) }
    }
    for worker in loading {
      do {
        let (kind, reader) = try worker.channel.receive()
        var r = reader
        switch kind {
        case .ready:
          _ = try r.int("pid"); try r.finish("a ready message")
          worker.modelPath = key
        case .failure: throw ParallelError.workerFailed(worker: worker.slot, message: try r.string("message"))
        default: throw ParallelError.malformedFrame("worker \(worker.slot) answered a load with \(kind)")
        }
      } catch { throw fail(worker, error) }
    }
    return Double(monotonicNanoseconds() - started) / 1e9
  }

  /// Kills every worker and turns what went wrong with `worker` into the error to throw.
  private func fail(_ worker: WorkerProcess, _ error: Error) -> Error {
    let result: Error
    if error is Channel.Closed {
      result = ParallelError.workerDied(worker: worker.slot, pid: worker.pid, reason: worker.exitReason())
    } else {
      result = error
    }
    killAll()
    return result
  }

  /// A region of at least `bytes` (a new file when the current one is too small).
  private func region(bytes: Int) throws -> SharedRegion {
    if let region, region.byteCount >= bytes { return region }
    if folder == nil { folder = try SharedFolder() }
    region?.unlinkFile()
    region = nil
    regionGeneration += 1
    let size = (bytes + 0xFFFF) & ~0xFFFF
    let r = try SharedRegion(creating: "\(folder!.path)/kv-\(regionGeneration)", byteCount: size)
    region = r
    return r
  }

  struct Outcome {
    var replies: [PrefillReply]
    /// Seconds from the requests going out to each reply's arrival.
    var arrivals: [Double]
    var startSeconds: Double
    /// Each process's own cache (S_i rows for runahead, C for tsp), when asked for.
    var processCaches: [KVCache]
  }

  /// Runs one parallel prefill of `prompt` split into `chunks`, one worker per chunk. `interrupt` is called every
  /// 50 ms while the workers run; when it throws, the workers are killed and its error is rethrown.
  func run(_ method: ParallelPrefillMethod, model: LlamaModel, modelPath: String, prompt: [Int], chunks: [Int],
           into cache: KVCache, processCaches: Bool = false, interrupt: () throws -> Void = {}) throws -> Outcome {
    lock.lock(); defer { lock.unlock() }
    let p = chunks.count, layers = model.config.layerCount
    let widths = model.config.kvHeadCounts.map { $0 * model.config.headDimension }
    let startSeconds = try ensure(count: p, modelPath: modelPath)

    // Layout: one semaphore slot per (process, layer), then each process's segment: per layer, keys then values of
    // `rows` rows (S_i for runahead, C for tsp), every array 64-byte aligned.
    let ends = chunks.reduce(into: [Int]()) { $0.append(($0.last ?? 0) + $1) }
    let total = ends.last!
    let rows = (0..<p).map { method == .runahead ? ends[$0] : total }
    func align(_ n: Int) -> Int { (n + 63) & ~63 }
    var offset = align(p * layers * 64)
    var keyOffsets = [Int](repeating: 0, count: p * layers), valueOffsets = keyOffsets
    let semaphoreOffsets = (0..<(p * layers)).map { $0 * 64 }
    for j in 0..<p {
      for l in 0..<layers {
        keyOffsets[j * layers + l] = offset; offset = align(offset + rows[j] * widths[l] * 4)
        valueOffsets[j * layers + l] = offset; offset = align(offset + rows[j] * widths[l] * 4)
      }
    }
    let region = try region(bytes: offset)
    for s in semaphoreOffsets {
      let sem = (region.base + s).assumingMemoryBound(to: sem_t.self)
      guard sem_init(sem, 1, 0) == 0 else { throw ParallelError.posix("sem_init", "preparing the shared semaphores") }
    }

    let epoch = monotonicNanoseconds()
    for i in 0..<p {
      let request = PrefillRequest(method: method, index: i, chunks: chunks, tokens: Array(prompt[(ends[i] - chunks[i])..<ends[i]]),
                                   regionPath: region.path, regionBytes: region.byteCount, keyOffsets: keyOffsets,
                                   valueOffsets: valueOffsets, semaphoreOffsets: semaphoreOffsets, rows: rows,
                                   epoch: Int(epoch), wantLogits: i == p - 1)
      do { try workers[i].channel.send(.prefill, request.encoded()) } catch { throw fail(workers[i], error) }
    }
    var replies = [PrefillReply?](repeating: nil, count: p)
    var arrivals = [Double](repeating: 0, count: p)
    var pending = Set(0..<p)
    while !pending.isEmpty {
      let order = pending.sorted()
      var fds = order.map { pollfd(fd: workers[$0].channel.fd, events: Int16(POLLIN), revents: 0) }
      let n = poll(&fds, nfds_t(fds.count), 50)
      if n < 0 && errno != EINTR {
        let e = ParallelError.posix("poll", "waiting for the workers")
        killAll()
        throw e
      }
      do { try interrupt() } catch { killAll(); throw error }
      if n <= 0 { continue }
      for (k, i) in order.enumerated() where fds[k].revents != 0 {
        let worker = workers[i]
        do {
          let (kind, reader) = try worker.channel.receive()
          var r = reader
          switch kind {
          case .done:
            replies[i] = try PrefillReply(&r)
            arrivals[i] = Double(monotonicNanoseconds() - epoch) / 1e9
            pending.remove(i)
          case .failure: throw ParallelError.workerFailed(worker: i, message: try r.string("message"))
          default: throw ParallelError.malformedFrame("worker \(i) answered a prefill with \(kind)")
          }
        } catch { throw fail(worker, error) }
      }
    }
    // The cache: the last process's rows (runahead: S_{p-1} = C; tsp: every process holds all C).
    func copy(process j: Int, into c: KVCache) throws {
      for l in 0..<layers {
        try c.write(layer: l, at: 0, rows: rows[j],
                    keys: (region.base + keyOffsets[j * layers + l]).assumingMemoryBound(to: Float.self),
                    values: (region.base + valueOffsets[j * layers + l]).assumingMemoryBound(to: Float.self),
                    limit: model.config.contextLength)
      }
      try c.setCount(rows[j])
    }
    try copy(process: p - 1, into: cache)
    var caches: [KVCache] = []
    if processCaches {
      for j in 0..<p {
        let c = try model.makeCache(capacity: rows[j])
        try copy(process: j, into: c)
        caches.append(c)
      }
    }
    return Outcome(replies: replies.map { $0! }, arrivals: arrivals, startSeconds: startSeconds, processCaches: caches)
  }
}
