// Storage: one 64-byte-aligned allocation shared by a tensor and its views; freed in deinit.

import Foundation

/// The memory budget: a request larger than this is an error before anything is allocated.
public enum Memory {
  /// Half the memory the process may use: the machine's, or less under an address-space limit (`ulimit -v`,
  /// RLIMIT_AS: half of it, as stacks, code and BLAS buffers take address space too) or a cgroup's memory.max
  /// (three quarters). `LATHE_MEMORY_BUDGET` (bytes) overrides it.
  nonisolated(unsafe) public static var budget: Int = {
    if let text = ProcessInfo.processInfo.environment["LATHE_MEMORY_BUDGET"], let bytes = Int(text), bytes > 0 { return bytes }
    var budget = Int(clamping: ProcessInfo.processInfo.physicalMemory / 2)
    var limit = rlimit()
    if getrlimit(Int32(RLIMIT_AS.rawValue), &limit) == 0, limit.rlim_cur != rlim_t.max {
      budget = Swift.min(budget, Int(clamping: limit.rlim_cur / 2))
    }
    if let text = try? String(contentsOfFile: "/sys/fs/cgroup/memory.max", encoding: .utf8),
       let bytes = Int(text.trimmingCharacters(in: .whitespacesAndNewlines)) {
      budget = Swift.min(budget, bytes / 4 * 3)
    }
    return budget
  }()

  /// Throws when `bytes` more would take the live tensors past the budget (for buffers that are not tensors:
  /// logits of every position, decoded rows).
  public static func check(_ bytes: Int, op: String) throws {
    guard bytes >= 0, bytes <= budget - liveBytes else { throw TensorError.outOfMemory(op: op, bytes: bytes, budget: budget) }
  }

  /// Bytes held by all live tensor storage; a new allocation that would take this past `budget` is an error.
  public static var liveBytes: Int { lock.lock(); defer { lock.unlock() }; return live }
  nonisolated(unsafe) private static var live = 0
  private static let lock = NSLock()

  /// Reserves `bytes` against the budget (false when they do not fit).
  static func reserve(_ bytes: Int) -> Bool {
    lock.lock(); defer { lock.unlock() }
    guard bytes <= budget - live else { return false }
    live += bytes
    return true
  }

  static func release(_ bytes: Int) {
    lock.lock(); live -= bytes; lock.unlock()
  }

  public static func describe(_ bytes: Int) -> String {
    let units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB", "EiB"]
    var value = Double(bytes), unit = 0
    while value >= 1024 && unit < units.count - 1 { value /= 1024; unit += 1 }
    return unit == 0 ? "\(bytes) B" : String(format: "%.1f %@", value, units[unit])
  }

  /// Elements of `shape`, or nil when the product overflows.
  public static func count(_ shape: [Int]) -> Int? {
    var n = 1
    for d in shape {
      let (p, o) = n.multipliedReportingOverflow(by: d)
      if o { return nil }
      n = p
    }
    return n
  }
}

/// Freed large blocks kept for reuse by the next allocation of the same size. Large blocks come from mmap and
/// every page of a fresh one faults on first touch; an op's output the same size as a tensor just freed (most of a
/// training step, and any elementwise chain) reuses it instead. Bounded: half the memory budget, at most 6 GiB (a
/// SmolLM2 training step at seq 256, batch 4 frees and allocates again some 3-4 GB of activations and gradients;
/// with 256 MiB and 4 blocks a size, the kernel's zeroing of fresh pages took 35% of the step, with a quarter of
/// the budget still 6.5%).
enum BlockCache {
  static let minimum = 1 << 20
  static var capacity: Int { Swift.min(Memory.budget / 2, 6 << 30) }
  nonisolated(unsafe) private static var blocks: [Int: [UnsafeMutableRawPointer]] = [:]
  nonisolated(unsafe) private static var held = 0
  private static let lock = NSLock()

  static func take(_ size: Int) -> UnsafeMutableRawPointer? {
    guard size >= minimum else { return nil }
    lock.lock(); defer { lock.unlock() }
    guard let block = blocks[size]?.popLast() else { return nil }
    held -= size
    return block
  }

  /// Keeps `block` (true) or declines it (false: the caller frees it).
  static func give(_ block: UnsafeMutableRawPointer, _ size: Int) -> Bool {
    guard size >= minimum else { return false }
    lock.lock(); defer { lock.unlock() }
    guard held + size <= capacity else { return false }
    blocks[size, default: []].append(block)
    held += size
    return true
  }
}

public final class Storage {
  public let bytes: UnsafeMutableRawPointer
  public let byteCount: Int

  /// Storage of `byteCount` bytes, zero-filled unless `zeroed` is false (for outputs every element of which an op
  /// writes); throws when that, with every tensor alive now, exceeds the budget.
  public init(byteCount: Int, op: String, zeroed: Bool = true) throws {
    guard byteCount >= 0, byteCount <= Memory.budget else {
      throw TensorError.outOfMemory(op: op, bytes: byteCount, budget: Memory.budget)
    }
    guard Memory.reserve(byteCount) else {
      throw TensorError.invalidArgument(op: op, reason: "\(Memory.describe(byteCount)) more would take live tensors past the "
                                        + "memory budget of \(Memory.describe(Memory.budget)) (\(Memory.describe(Memory.liveBytes)) in use)")
    }
    self.byteCount = byteCount
    guard let block = BlockCache.take(byteCount) ?? Storage.allocate(byteCount) else {
      Memory.release(byteCount)
      throw TensorError.outOfMemory(op: op, bytes: byteCount, budget: Memory.budget)   // the system said no
    }
    bytes = block
    if zeroed { bytes.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 64)) }
  }

  /// Blocks of 4 MiB and more are aligned to 2 MiB and advised to use transparent huge pages: a model's weights
  /// are read once per generated token, and with 4 KiB pages the TLB misses alone halved the speed of a matrix-vector
  /// product over 15 MB and more (Q8_0 49152×576: 7.0 → 15.8 GB/s on 24576 rows with huge pages).
  static let hugePageThreshold = 4 << 20

  /// A 64-byte-aligned block (2 MiB-aligned from 4 MiB on), or nil when the system has no memory for it (under
  /// `ulimit -v`): an error for the caller, never a trap. Freed with free().
  static func allocate(_ byteCount: Int) -> UnsafeMutableRawPointer? {
    var block: UnsafeMutableRawPointer?
    let alignment = byteCount >= hugePageThreshold ? 2 << 20 : 64
    guard posix_memalign(&block, alignment, max(byteCount, 64)) == 0, let block else { return nil }
    if byteCount >= hugePageThreshold { _ = madvise(block, byteCount, 14) }   // MADV_HUGEPAGE; harmless where THP is off
    return block
  }

  deinit {
    if !BlockCache.give(bytes, byteCount) { free(bytes) }
    Memory.release(byteCount)
  }

  public func floats(at offset: Int = 0) -> UnsafeMutablePointer<Float> {
    bytes.assumingMemoryBound(to: Float.self) + offset
  }

  public func ints(at offset: Int = 0) -> UnsafeMutablePointer<Int32> {
    bytes.assumingMemoryBound(to: Int32.self) + offset
  }
}

extension Memory {
  /// Resets the process's peak resident set size (VmHWM) to its current size (Linux 4.0+: "5" into clear_refs), so
  /// that `peakResident()` afterwards is the peak of what ran since.
  public static func resetPeakResident() {
    guard let h = FileHandle(forWritingAtPath: "/proc/self/clear_refs") else { return }
    try? h.write(contentsOf: Data("5".utf8))
    try? h.close()
  }

  /// The process's peak resident set size (VmHWM), in bytes; 0 where /proc is not there.
  public static func peakResident() -> Int {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8),
          let line = status.split(separator: "\n").first(where: { $0.hasPrefix("VmHWM:") }) else { return 0 }
    return (Int(line.split(whereSeparator: \.isWhitespace).dropFirst().first ?? "") ?? 0) * 1024
  }
}
