// Tensor-engine figures side by side with their references: matmul vs raw cblas_sgemm, elementwise vs memcpy,
// conv2d GFLOP/s (training speed is TrainBench's).

import CBLAS
import Foundation
import LatheNN
import LatheTensor

enum TensorBench {
  static func best(_ repeatCount: Int, _ body: () throws -> Void) rethrows -> Double {
    try body()                                    // warm-up
    var best = Double.infinity
    for _ in 0..<repeatCount {
      let t = now()
      try body()
      best = min(best, now() - t)
    }
    return best
  }

  static func run(repeatCount: Int, filter: String?) throws {
    func wanted(_ name: String) -> Bool { filter.map { name.contains($0) } ?? true }
    guard ["matmul", "elementwise", "conv"].contains(where: wanted) else { return }
    print("\nlathe-bench: tensor engine, best of \(repeatCount), OpenBLAS threads \(openblas_get_num_threads())")
    print("case".padding(toLength: 34, withPad: " ", startingAt: 0) + "      lathe   reference   lathe/ref")
    for (m, k, n) in [(576, 1536, 576), (2048, 2048, 2048)] where wanted("matmul") {
      let a = try Tensor.randn([m, k], seed: 1), b = try Tensor.randn([k, n], seed: 2)
      var out = try Tensor.zeros([m, n])
      let op = out
      let flops = 2.0 * Double(m * k * n)
      let tl = try best(repeatCount) { let c = try a.matmul(b); precondition(c.shape == [m, n]) }
      let dst = try out.mutablePointer()
      let tr = best(repeatCount) {
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, Int32(m), Int32(n), Int32(k), 1, a.readPointer(), Int32(k),
                    b.readPointer(), Int32(n), 0, dst, Int32(n))
      }
      _ = op
      line("matmul \(m)x\(k) @ \(k)x\(n) GFLOP/s", flops / tl / 1e9, flops / tr / 1e9)
    }
    if wanted("elementwise") {
      let count = 16 << 20
      let a = try Tensor.randn([count], seed: 3), b = try Tensor.randn([count], seed: 4)
      let bytes = Double(3 * count * 4)
      let tadd = try best(repeatCount) { _ = try a.add(b) }
      let src = UnsafeMutableRawPointer.allocate(byteCount: count * 8, alignment: 64), dst = UnsafeMutableRawPointer.allocate(byteCount: count * 8, alignment: 64)
      defer { src.deallocate(); dst.deallocate() }
      src.initializeMemory(as: UInt8.self, repeating: 1, count: count * 8)
      let tcopy = best(repeatCount) { dst.copyMemory(from: src, byteCount: count * 8) }
      line("add 16M floats GB/s (vs memcpy)", bytes / tadd / 1e9, Double(2 * count * 8) / tcopy / 1e9)
      let trelu = try best(repeatCount) { _ = try a.unary(.relu) }
      line("relu 16M floats GB/s (vs memcpy)", Double(2 * count * 4) / trelu / 1e9, Double(2 * count * 8) / tcopy / 1e9)
    }
    if wanted("conv") {
      let x = try Tensor.randn([64, 16, 14, 14], seed: 5), w = try Tensor.randn([32, 16, 3, 3], seed: 6)
      let flops = 2.0 * 64 * 32 * 14 * 14 * 16 * 9
      let t = try best(repeatCount) { _ = try Tensor.conv2d(x, w, bias: nil, padding: 1) }
      line("conv2d 64x16x14x14, 32 3x3 GFLOP/s", flops / t / 1e9, nil)
    }
  }

  static func line(_ name: String, _ value: Double, _ reference: Double?) {
    var s = name.padding(toLength: 34, withPad: " ", startingAt: 0) + String(format: "%11.1f", value)
    if let reference { s += String(format: " %11.1f %10.0f%%", reference, 100 * value / reference) }
    print(s)
  }
}
