// One small pool of worker threads (cores − 1) for data-parallel loops; the calling thread works too.
// `parallelFor` hands out indices by an atomic counter, so the split adapts to load; results must not depend on
// which thread ran an index (callers write disjoint outputs, or combine per-index partials in index order).
// OpenBLAS runs on one thread inside a parallel region, so the two never oversubscribe the cores.

import CBLAS
import Foundation
import Synchronization

public final class ThreadPool: @unchecked Sendable {
  /// The process's pool: one worker per core beyond the first (`LATHE_THREADS` sets the total, 1 = no workers).
  public static let shared: ThreadPool = {
    let env = ProcessInfo.processInfo.environment["LATHE_THREADS"].flatMap(Int.init)
    return ThreadPool(threads: max(1, env ?? ProcessInfo.processInfo.activeProcessorCount))
  }()

  public let threadCount: Int
  private let next = Atomic<Int>(0)
  private let remainingWorkers = Atomic<Int>(0)
  private let start: [DispatchSemaphore]
  private let finished = DispatchSemaphore(value: 0)
  private let lock = NSLock()                      // one parallel region at a time
  nonisolated(unsafe) private var job: ((Int) -> Void)? = nil
  nonisolated(unsafe) private var count = 0
  /// Set on threads that are inside a parallel region (workers always): a nested parallelFor runs inline.
  private static let insideKey: pthread_key_t = {
    var k = pthread_key_t()
    pthread_key_create(&k, nil)
    return k
  }()
  private static var isInside: Bool { pthread_getspecific(insideKey) != nil }
  private static func setInside(_ on: Bool) { pthread_setspecific(insideKey, on ? UnsafeRawPointer(bitPattern: 1) : nil) }

  public init(threads: Int) {
    threadCount = max(1, threads)
    start = (0..<(threadCount - 1)).map { _ in DispatchSemaphore(value: 0) }
    for w in 0..<(threadCount - 1) {
      let thread = Thread { [unowned self] in self.workerLoop(w) }
      thread.name = "lathe-worker-\(w)"
      thread.stackSize = 8 << 20
      thread.start()
    }
  }

  private func workerLoop(_ w: Int) {
    ThreadPool.setInside(true)
    while true {
      start[w].wait()
      drain()
      finished.signal()
    }
  }

  private func drain() {
    guard let job else { return }
    while true {
      let i = next.add(1, ordering: .relaxed).oldValue
      if i >= count { return }
      job(i)
    }
  }

  /// Calls `body(i)` for every i in 0..<n, spread over the pool; returns when all are done. Nested calls (and
  /// small n) run on the calling thread.
  public func parallelFor(_ n: Int, _ body: @escaping (Int) -> Void) {
    if n <= 1 || threadCount == 1 || ThreadPool.isInside {
      for i in 0..<max(0, n) { body(i) }
      return
    }
    lock.lock()
    defer { lock.unlock() }
    ThreadPool.setInside(true)
    defer { ThreadPool.setInside(false) }
    let blasThreads = openblas_get_num_threads()
    openblas_set_num_threads(1)
    job = body
    count = n
    next.store(0, ordering: .sequentiallyConsistent)
    let helpers = min(threadCount - 1, n - 1)
    for w in 0..<helpers { start[w].signal() }
    drain()
    for _ in 0..<helpers { finished.wait() }
    job = nil
    openblas_set_num_threads(blasThreads)
  }
}
