// One small pool of worker threads (cores − 1) for data-parallel loops; the calling thread works too.
// `parallelFor` hands out indices by an atomic counter, so the split adapts to load; results must not depend on
// which thread ran an index (callers write disjoint outputs, or combine per-index partials in index order).
// OpenBLAS runs on one thread inside a parallel region, so the two never oversubscribe the cores.
// Workers are pinned, one per core other than the first allowed one (engine-notes.md section 3: a pinned worker
// that spins briefly and then sleeps reached 1.94–2.00x on 2 cores where concurrentPerform gave 1.00x), and a
// worker spins for about 50 µs after its last job before it sleeps, so back-to-back regions (a decode step's
// matrix-vector products) skip the wake-up.

import CBLAS
import Foundation
import Synchronization

public final class ThreadPool: @unchecked Sendable {
  /// The process's pool: one worker per core beyond the first (`LATHE_THREADS` sets the total, 1 = no workers;
  /// `LATHE_PIN=0` leaves the workers unpinned).
  public static let shared: ThreadPool = {
    let environment = ProcessInfo.processInfo.environment
    let threads = environment["LATHE_THREADS"].flatMap(Int.init)
    return ThreadPool(threads: max(1, threads ?? ProcessInfo.processInfo.activeProcessorCount),
                      pin: environment["LATHE_PIN"] != "0")
  }()

  public let threadCount: Int
  /// The CPU each worker is pinned to (empty when unpinned or when pinning is not available).
  public let pinnedCPUs: [Int]
  private let crew: Crew
  private let lock = NSLock()                      // one parallel region at a time
  /// Set on threads that are inside a parallel region (workers always): a nested parallelFor runs inline.
  private static let insideKey: pthread_key_t = {
    var k = pthread_key_t()
    pthread_key_create(&k, nil)
    return k
  }()
  private static var isInside: Bool { pthread_getspecific(insideKey) != nil }
  private static func setInside(_ on: Bool) { pthread_setspecific(insideKey, on ? UnsafeRawPointer(bitPattern: 1) : nil) }

  public init(threads: Int, pin: Bool = true) {
    threadCount = max(1, threads)
    let cpus = pin ? Affinity.allowedCPUs() : []
    pinnedCPUs = cpus.count >= threadCount ? (1..<threadCount).map { cpus[$0] } : []
    crew = Crew(workers: threadCount - 1)
    for w in 0..<(threadCount - 1) {
      let cpu = pinnedCPUs.isEmpty ? nil : pinnedCPUs[w], crew = crew
      let thread = Thread {
        if let cpu { Affinity.pinCurrentThread(to: cpu) }
        ThreadPool.setInside(true)
        crew.work(w)
      }
      thread.name = "lathe-worker-\(w)"
      thread.stackSize = 8 << 20
      thread.start()
    }
  }

  deinit { crew.stop() }

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
    BLASThreads.single { crew.run(n, body) }
  }
}

/// The state the workers share with the pool; the worker threads hold it, so it outlives the pool until they stop.
private final class Crew: @unchecked Sendable {
  private let next = Atomic<Int>(0)
  private let epoch = Atomic<Int>(0)               // bumped once per parallel region (and once to stop)
  private let done = Atomic<Int>(0)                // workers finished with the current region
  private let stopping = Atomic<Bool>(false)
  private let members: [Member]
  private final class Member: Sendable {
    let sleeping = Atomic<Int>(0)                  // 1 while the worker waits on `wake`
    let wake = DispatchSemaphore(value: 0)
  }
  nonisolated(unsafe) private var job: ((Int) -> Void)? = nil
  nonisolated(unsafe) private var count = 0
  nonisolated(unsafe) private var participants = 0

  init(workers: Int) { members = (0..<workers).map { _ in Member() } }

  func work(_ w: Int) {
    let me = members[w]
    var seen = 0
    while true {
      // Spin a little for the next region, then sleep until `run` wakes this worker.
      var spins = 0
      while epoch.load(ordering: .acquiring) == seen && spins < 20_000 { spins += 1 }
      if epoch.load(ordering: .acquiring) == seen {
        me.sleeping.store(1, ordering: .sequentiallyConsistent)
        if epoch.load(ordering: .sequentiallyConsistent) == seen {
          me.wake.wait()
        } else if me.sleeping.exchange(0, ordering: .sequentiallyConsistent) == 0 {
          me.wake.wait()                          // `run` took the flag and signalled: consume it
        }
      }
      if stopping.load(ordering: .acquiring) { return }
      seen = epoch.load(ordering: .acquiring)
      if w < participants { drain() }
      done.add(1, ordering: .releasing)
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

  private func wakeSleepers() {
    for member in members where member.sleeping.exchange(0, ordering: .sequentiallyConsistent) == 1 {
      member.wake.signal()
    }
  }

  /// Runs one region: every index of 0..<n once, on this thread and the workers.
  func run(_ n: Int, _ body: @escaping (Int) -> Void) {
    job = body
    count = n
    participants = min(members.count, n - 1)
    next.store(0, ordering: .sequentiallyConsistent)
    done.store(0, ordering: .sequentiallyConsistent)
    epoch.add(1, ordering: .sequentiallyConsistent)
    wakeSleepers()
    drain()
    // Every worker acknowledges the region (those past `participants` at once), so none can still be reading
    // `job` or `count` when the next region sets them.
    var spins = 0
    while done.load(ordering: .acquiring) < members.count {
      spins += 1
      if spins > 4096 { sched_yield() }          // a worker was preempted: let it run
    }
    job = nil
  }

  func stop() {
    stopping.store(true, ordering: .sequentiallyConsistent)
    epoch.add(1, ordering: .sequentiallyConsistent)
    wakeSleepers()
  }
}

/// CPU affinity through glibc's sched_getaffinity/sched_setaffinity, looked up at run time (the Glibc module does
/// not export them). A cpu_set_t is a 1024-bit mask.
enum Affinity {
  private typealias Call = @convention(c) (Int32, Int, UnsafeMutableRawPointer) -> Int32
  private static let get: Call? = symbol("sched_getaffinity")
  private static let set: Call? = symbol("sched_setaffinity")

  private static func symbol(_ name: String) -> Call? {
    guard let handle = dlopen(nil, RTLD_NOW), let address = dlsym(handle, name) else { return nil }
    return unsafeBitCast(address, to: Call.self)
  }

  /// The CPUs this process may run on, in order (empty when unknown).
  static func allowedCPUs() -> [Int] {
    guard let get else { return [] }
    var mask = [UInt64](repeating: 0, count: 16)
    let rc = mask.withUnsafeMutableBytes { get(0, $0.count, $0.baseAddress!) }
    guard rc == 0 else { return [] }
    return (0..<1024).filter { mask[$0 / 64] & (1 << UInt64($0 % 64)) != 0 }
  }

  @discardableResult
  static func pinCurrentThread(to cpu: Int) -> Bool {
    guard let set, cpu >= 0, cpu < 1024 else { return false }
    var mask = [UInt64](repeating: 0, count: 16)
    mask[cpu / 64] |= 1 << UInt64(cpu % 64)
    return mask.withUnsafeMutableBytes { set(0, $0.count, $0.baseAddress!) } == 0
  }
}
