// OpenBLAS's thread count is one setting for the whole process, and on CPUs with AVX-512 kernels the last bits of a
// product depend on how OpenBLAS splits it over its threads (the fused attention's tiles differed by 1-2 ulp between
// a call that OpenBLAS split in two and one it did not). Regions that bring their own parallelism (the pool's
// workers, the fused attention, small products) run with OpenBLAS at one thread; `BLASThreads` keeps it there while
// any such region is open, in any thread, and applies the count last asked for (`set`) when the last one closes.

import CBLAS
import Foundation

public enum BLASThreads {
  private static let lock = NSLock()
  nonisolated(unsafe) private static var openRegions = 0
  /// The count asked for by `set`, or OpenBLAS's own until then (read when the first region opens).
  nonisolated(unsafe) private static var wanted: Int32 = 0

  /// OpenBLAS's threads for the products outside single-thread regions (a model forward's projections): applied
  /// now, or when the last open region closes.
  public static func set(_ threads: Int) {
    lock.withLock {
      wanted = Int32(Swift.max(1, threads))
      if openRegions == 0 && openblas_get_num_threads() != wanted { openblas_set_num_threads(wanted) }
    }
  }

  /// Runs `body` with OpenBLAS at one thread (every product in it runs on the thread that calls it).
  public static func single<T>(_ body: () throws -> T) rethrows -> T {
    lock.withLock {
      if openRegions == 0 {
        if wanted == 0 { wanted = openblas_get_num_threads() }
        if openblas_get_num_threads() != 1 { openblas_set_num_threads(1) }
      }
      openRegions += 1
    }
    defer {
      lock.withLock {
        openRegions -= 1
        if openRegions == 0 && wanted != 1 { openblas_set_num_threads(wanted) }
      }
    }
    return try body()
  }
}
