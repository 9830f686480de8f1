// Speculative Streaming's costs on SmolLM2 in f32: a greedy step against one tree call (k = 1..3, γ = 4, N_s = 5;
// streamsOn "accepted": the verifying call, then the accepted node's streams through the top layers), ms per call, on 1 and 2 threads (best of 3, interleaved; the drafts of an untrained value, whose cost is the same);
// and the few-row product kernel against sgemm and one sgemv per row on the model's projection shapes.

import CBLAS
import Foundation
import LatheModels
import LatheTechniques
import LatheTensor

enum SpecStreamBench {
  static func run(filter: String?) throws {
    guard filter.map({ "specstream".contains($0) || $0.contains("specstream") }) ?? true else { return }
    let load = ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "").split(separator: " ").first ?? "?"
    products(load: String(load))
    let path: String
    do { path = try ModelBench.modelPath() } catch { print("specstream: skipped: \(error)"); return }
    let model = try TrainableDecoder(model: try LlamaModel(path: path)).runnable(name: "smollm2-f32")
    guard let tokenizer = model.tokenizer else { return }
    let prompt = tokenizer.encode("The history of the Roman Empire begins with", parseSpecial: false, addBOS: false)
    print("\nlathe-bench: specstream, SmolLM2 f32, 32 tokens after a \(prompt.count)-token prompt, ms (best of 3, interleaved), load \(load)")
    print("case".padding(toLength: 28, withPad: " ", startingAt: 0) + "  1 thread  2 threads   (per call; greedy: per token)")
    var cases: [(String, () throws -> Double)] = [("greedy step", {
      let (cache, logits) = try model.prefill(prompt, extra: 40)
      var sampler = try Sampler()
      let r = try Greedy().decode(model, context: prompt, cache: cache, logits: logits, maxTokens: 32, sampler: &sampler, stop: []) { _, _ in }
      return r.generation.decodeSeconds * 1e3 / Double(Swift.max(1, r.generation.tokens.count))
    })]
    for (k, on) in [(1, "tree"), (2, "tree"), (3, "tree"), (1, "accepted"), (2, "accepted")] {
      cases.append((on == "tree" ? "specstream tree call, k \(k)" : "  streams on accepted, k \(k)", {
        let ss = try SpecStream(streams: 4, msaLayers: 5, topK: k, streamsOn: on)
        let (cache, logits) = try model.prefill(prompt, extra: 400)
        var sampler = try Sampler()
        ss.draftOverride = { _, levels in levels.map { $0.map { _ in 0 } } }     // every draft wrong: 32 tree calls
        let r = try ss.decode(model, context: prompt, cache: cache, logits: logits, maxTokens: 32, sampler: &sampler, stop: []) { _, _ in }
        return r.generation.decodeSeconds * 1e3 / Double(Swift.max(1, ss.totals.calls))
      }))
    }
    var best = [[Double]](repeating: [.infinity, .infinity], count: cases.count)
    for (t, threads) in [1, 2].enumerated() {
      model.threads = threads
      for _ in 0..<3 { for (i, c) in cases.enumerated() { best[i][t] = Swift.min(best[i][t], try c.1()) } }
    }
    for (i, c) in cases.enumerated() {
      print(c.0.padding(toLength: 28, withPad: " ", startingAt: 0) + String(format: "  %8.1f  %9.1f   (%.2fx / %.2fx greedy)", best[i][0], best[i][1],
                                                                           best[i][0] / best[0][0], best[i][1] / best[0][1]))
    }
  }

  /// The few-row kernel, sgemm and one sgemv per row on one thread: out = x·Wᵀ for n rows.
  static func products(load: String) {
    print("\nlathe-bench: products of n rows with an f32 weight on 1 thread, µs (best of 20), load \(load)")
    print("shape".padding(toLength: 16, withPad: " ", startingAt: 0) + "   n   few-rows     sgemm  sgemv×n")
    for (features, cols) in [(1536, 576), (576, 1536), (49152, 576)] {
      let w = (0..<(features * cols)).map { Float(($0 * 7919) % 1000) / 1000 - 0.5 }
      for n in [1, 2, 5, 9, 25] {
        let x = (0..<(n * cols)).map { Float(($0 * 104729) % 1000) / 1000 - 0.5 }
        var out = [Float](repeating: 0, count: n * features)
        func time(_ body: () -> Void) -> Double {
          var best = Double.infinity
          for _ in 0..<20 {
            let start = DispatchTime.now().uptimeNanoseconds
            body()
            best = Swift.min(best, Double(DispatchTime.now().uptimeNanoseconds - start) / 1e3)
          }
          return best
        }
        let few = time { FewRows.multiply(x, rows: n, w, features: features, cols: cols, into: &out, outStride: features) }
        let gemm = time {
          BLASThreads.single {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(features), Int32(cols), 1, x, Int32(cols), w, Int32(cols), 0, &out, Int32(features))
          }
        }
        let gemv = time {
          BLASThreads.single {
            x.withUnsafeBufferPointer { xp in
              out.withUnsafeMutableBufferPointer { op in
                guard let xb = xp.baseAddress, let ob = op.baseAddress else { return }
                for t in 0..<n {
                  cblas_sgemv(CblasRowMajor, CblasNoTrans, Int32(features), Int32(cols), 1, w, Int32(cols), xb + t * cols, 1, 0, ob + t * features, 1)
                }
              }
            }
          }
        }
        print("\(features)x\(cols)".padding(toLength: 16, withPad: " ", startingAt: 0) + String(format: "  %2d  %9.0f  %8.0f  %7.0f", n, few, gemm, gemv))
      }
    }
  }
}
