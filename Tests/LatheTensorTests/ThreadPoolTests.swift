// The worker pool: every index runs exactly once, nested loops run inline, and conv2d agrees with the direct loops.

import Foundation
import Testing
@testable import LatheTensor

final class Counts: @unchecked Sendable {
  private let lock = NSLock()
  private var hits: [Int]
  init(_ n: Int) { hits = Array(repeating: 0, count: n) }
  func hit(_ i: Int) { lock.lock(); hits[i] += 1; lock.unlock() }
  var all: [Int] { lock.lock(); defer { lock.unlock() }; return hits }
}

@Test func parallelForRunsEveryIndexOnce() {
  let pool = ThreadPool(threads: 3)
  for n in [0, 1, 2, 7, 1000] {
    let counts = Counts(n)
    pool.parallelFor(n) { i in counts.hit(i) }
    #expect(counts.all.allSatisfy { $0 == 1 }, "n = \(n)")
  }
  // A nested loop runs inline on the thread that reached it.
  let nested = Counts(40)
  pool.parallelFor(4) { i in pool.parallelFor(10) { j in nested.hit(i * 10 + j) } }
  #expect(nested.all.allSatisfy { $0 == 1 })
}

@Test func parallelConvolutionIsDeterministic() throws {
  let x = try Tensor.randn([16, 3, 9, 9], seed: 1), w = try Tensor.randn([4, 3, 3, 3], seed: 2)
  let a = try Tensor.conv2d(x, w, bias: nil, padding: 1), b = try Tensor.conv2d(x, w, bias: nil, padding: 1)
  #expect(a.scalars == b.scalars)
  let g = try Tensor.randn([16, 4, 9, 9], seed: 3)
  let (dx1, dw1, db1) = try Tensor.conv2dBackward(x, w, grad: g, stride: 1, padding: 1, dilation: 1, groups: 1)
  let (dx2, dw2, db2) = try Tensor.conv2dBackward(x, w, grad: g, stride: 1, padding: 1, dilation: 1, groups: 1)
  #expect(dx1.scalars == dx2.scalars && dw1.scalars == dw2.scalars && db1.scalars == db2.scalars)
  expectClose(a.scalars, try referenceConv(x, w, nil, stride: 1, padding: 1, dilation: 1, groups: 1))
}

@Test func backToBackRegionsLoseNoWork() {
  // Workers spin between regions and sleep after a while: many short regions, with pauses that let them sleep.
  let pool = ThreadPool(threads: 2)
  let counts = Counts(64)
  for round in 0..<20_000 {
    pool.parallelFor(64) { i in counts.hit(i) }
    if round % 5_000 == 0 { usleep(2_000) }
  }
  #expect(counts.all.allSatisfy { $0 == 20_000 })
}

@Test func workersArePinnedToTheOtherCores() {
  let pool = ThreadPool(threads: 2)
  let allowed = Affinity.allowedCPUs()
  #expect(!allowed.isEmpty)
  if allowed.count >= 2 { #expect(pool.pinnedCPUs == [allowed[1]]) }
  #expect(ThreadPool(threads: 2, pin: false).pinnedCPUs.isEmpty)
}
