// KV-Runahead figures: time to first token of SmolLM2-135M (f32, dequantised from the Q4_1 file) at 512, 1k, 2k and
// 4k tokens of Wikipedia text for serial prefill on 1 and 2 threads, tsp with 2 worker processes, runahead with
// even chunks (KVR-E) and with searched chunks (KVR-S), side by side. KVR-S's chunks come from the paper's
// hierarchical search scored by the simulator calibrated on this model (RunaheadCosts.measured): a search over real
// runs costs about 20 partitions × 3 runs per length. Each figure is the median of the runs (--repeat N, default 1)
// after one warm-up of the workers; the load average before and after says how busy the shared machine was.
//
//   swift run -c release lathe-bench runahead [--repeat 3]

import Foundation
import LatheData
import LatheModels
import LatheParallel
import LatheTechniques

enum RunaheadBench {
  static let lengths = [512, 1024, 2048, 4096]

  static func run(repeatCount: Int, filter: String?) throws {
    guard filter.map({ "runahead kvr tsp".contains($0) }) ?? true else { return }
    func load() -> String {
      ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "?").split(separator: " ").prefix(3).joined(separator: " ")
    }
    print("\nlathe-bench: KV-Runahead, time to first token, median of \(repeatCount), load average \(load()) on "
          + "\(ProcessInfo.processInfo.activeProcessorCount) cores")
    let path: String
    do { path = try ModelBench.modelPath() } catch { print("runahead: skipped: \(error)"); return }
    let loaded = try LlamaModel(path: path)
    let model = try LlamaModel(gguf: try GGUFFile(bytes: try loaded.ggufWriter(type: .f32).bytes()), name: "f32")
    guard let tokenizer = model.tokenizer else { throw BenchError("\(ModelBench.fileName) has no tokenizer") }
    let text = try Corpus.text(named: "wiki").prefix(40_000)
    let ids = tokenizer.encode(String(text), parseSpecial: false, addBOS: false)
    guard ids.count >= lengths.max()! else { throw BenchError("the wiki text gave only \(ids.count) tokens") }

    let (costs, _, memcpy) = try RunaheadCosts.measured(on: model)
    var simulated = costs
    simulated.bandwidth = memcpy
    let simulator = try RunaheadSimulator(costs: simulated)
    print(String(format: "calibrated per layer: linear %.3g s/token, attention %.3g s/score entry, constant %.3g s; memcpy %.3g GB/s",
                 costs.prePerToken + costs.postPerToken, costs.attentionPerEntry, costs.preConstant + costs.postConstant, memcpy / 1e9))
    _ = try model.parallelPrefill(Array(ids.prefix(64)), method: .runahead, chunks: [32, 32])   // start the workers

    func median(_ f: () throws -> Double) rethrows -> Double {
      let times = try (0..<repeatCount).map { _ in try f() }.sorted()
      return times[times.count / 2]
    }
    func serial(_ prompt: [Int], threads: Int) throws -> Double {
      let before = model.threads
      model.threads = threads
      defer { model.threads = before }
      let t0 = DispatchTime.now().uptimeNanoseconds
      _ = try model.prefill(prompt, extra: 0)
      return Double(DispatchTime.now().uptimeNanoseconds - t0) / 1e9
    }
    let header = ["tokens", "serial 1t", "serial 2t", "tsp p2", "KVR-E p2", "KVR-S p2", "KVR-S chunks", "KVR-S/tsp"]
    let widths = [7, 10, 10, 10, 10, 10, 14, 10]
    func row(_ cells: [String]) -> String {
      zip(cells, widths).map { String(repeating: " ", count: max(0, $1 - $0.count)) + $0 }.joined(separator: " ")
    }
    print(row(header))
    for n in lengths {
      let prompt = Array(ids.prefix(n))
      let searched = try PartitionSearch(processes: 2).search(length: n) { try simulator.runaheadTTFT(chunks: $0) }.chunks
      let s1 = try median { try serial(prompt, threads: 1) }
      let s2 = try median { try serial(prompt, threads: 2) }
      let tsp = try median { try model.parallelPrefill(prompt, method: .tsp, chunks: try PrefillPartition.even(tokens: n, procs: 2), extra: 0).ttft }
      let even = try median { try model.parallelPrefill(prompt, method: .runahead, chunks: try PrefillPartition.even(tokens: n, procs: 2), extra: 0).ttft }
      let kvrS = try median { try model.parallelPrefill(prompt, method: .runahead, chunks: searched, extra: 0).ttft }
      func s(_ x: Double) -> String { String(format: "%.3f s", x) }
      print(row(["\(n)", s(s1), s(s2), s(tsp), s(even), s(kvrS), "\(searched)", String(format: "%.3f", kvrS / tsp)]))
    }
    print("load average after: \(load())")
  }
}
