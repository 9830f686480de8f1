// Ctrl-C stops long kernels quickly: a loop of 2048×2048 matmuls, one 4096×4096 matmul, the compression of a
// 2048×2048 matrix, a training run and a convolution return to the prompt within 250 ms at the 95th percentile (matmul checks the
// flag between blocks of rows, compression between pieces of its progress, training every step, loops every step).
// Each cell runs for well over the 0.3 s before the interrupt, even warm on AVX-512 (the 7×7 convolution: about 1.5 s).

#if canImport(Glibc)
import Foundation
import Glibc
import LatheTestSupport
import Testing

extension ReplPtyTests {            // in the serialized suite: latencies are not measured against other sessions
  @Test(arguments: ["for i in 0..<1000 { let c = big @ big }", "let c = huge @ huge",
                    "let q = compress(big, seedlm(bits: 4))", "let q = compress(huge, rtn(bits: 3, group: 64))",
                    "let run = train(mlp([64, 512, 512, 10]), d, recipe(epochs: 1000, batch: 64, seed: 0))",
                    "let y = forward(conv(16, 32, kernel: 7), images)", "let c = huge @ transpose(huge)"])
  func interruptStopsMatmulsWithinAQuarterSecond(cell: String) throws {
    let s = try start()
    try s.enter("let big = randn(2048, 2048, seed: 0)", timeout: 60)
    try s.enter("let huge = randn(4096, 4096, seed: 1)", timeout: 60)
    try s.enter("let d = digits()", timeout: 60)
    try s.enter("let images = randn(512, 16, 64, 64, seed: 2)", timeout: 60)
    var latencies: [Double] = []
    for trial in 0..<10 {
      try s.send(cell + "\r")
      try s.expect(cell + "\n")
      s.settle(for: 0.15 + 0.05 * Double(trial % 4))        // land at different points of a block
      let sent = DispatchTime.now().uptimeNanoseconds
      try interrupt(s, by: .killSIGINT)
      let shown = try s.expect(PtySession.prompt, timeout: 10)
      latencies.append(Double(DispatchTime.now().uptimeNanoseconds - sent) / 1e6)
      #expect(shown.contains("interrupted"), "shown: \(shown.debugDescription)")
    }
    let sorted = latencies.sorted()
    let p95 = sorted[Int((0.95 * Double(sorted.count)).rounded(.up)) - 1]
    print("Ctrl-C during \(cell): p95 \(String(format: "%.0f", p95)) ms of \(sorted.map { String(format: "%.0f", $0) })")
    #expect(p95 <= 250, "p95 stop latency \(p95) ms: \(sorted)")
  }
}
#endif
