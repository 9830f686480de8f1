// KV prediction's time to first token on SmolLM2 in f32 (the base the notebook uses): the base's own prefill, the
// aux models alone (droplayers keep 0.5: 15 layers, keep 0.25: 8) and KV prediction with each, at 512 and 1024
// prompt tokens on 1 and 2 threads, best of 3 runs interleaved; beside each, the FLOPs ratio of the paper's
// accounting (base prefill FLOPs / KVP prefill FLOPs) and the measured one. Then decoding after each prefill, which
// is the base's in both cases (best of 5, interleaved).

import Foundation
import LatheData
import LatheModels
import LatheTechniques
import LatheTensor

enum KVPredictBench {
  static func run(filter: String?) throws {
    guard filter.map({ "kvpredict".contains($0) || $0.contains("kvpredict") }) ?? true else { return }
    let path: String
    do { path = try ModelBench.modelPath() } catch { print("kvpredict: skipped: \(error)"); return }
    let base = try TrainableDecoder(model: try LlamaModel(path: path)).runnable(name: "smollm2-f32")
    guard let tokenizer = base.tokenizer else { return }
    let text = try Corpus.text(named: "lee")
    let ids = tokenizer.encode(text, parseSpecial: false, addBOS: false)
    let arms: [(String, Double)] = [("keep 0.5", 0.5), ("keep 0.25", 0.25)]
    var auxes: [(String, LlamaModel, KVPredict)] = []
    for (name, keep) in arms {
      let aux = try DropLayers(keep: .fraction(keep)).transform(base, data: nil)
      auxes.append((name, aux, try KVPredict(aux: aux)))
    }
    let load = ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "").split(separator: " ").first ?? "?"
    print("\nlathe-bench: KV prediction, SmolLM2 f32 base, time to first token in ms (best of 3, interleaved), load \(load)")
    print("case".padding(toLength: 30, withPad: " ", startingAt: 0)
          + "  tokens  1 thread  2 threads  base/x (1 thr)  base/x (2 thr)  FLOPs base/x")
    for n in [512, 1024] {
      let prompt = Array(ids.prefix(n))
      var parts: [String: String] = [:]
      var cases: [(String, () throws -> Void, Double)] = [("base prefill", { _ = try base.prefill(prompt, extra: 0) }, 1)]
      for (name, aux, kvp) in auxes {
        cases.append(("aux alone, \(name)", { _ = try aux.prefill(prompt, extra: 0) },
                      Double(KVPredict.prefillFlops(base, promptTokens: n)) / Double(KVPredict.prefillFlops(aux, promptTokens: n))))
        let maps = try kvp.maps(for: base)
        cases.append(("kvpredict, \(name)", {
          let r = try kvp.predict(base, prompt, room: 0)
          parts["\(name) \(base.threads)"] = String(format: "aux %.1f, maps %.1f, base step %.1f ms", r.auxSeconds * 1e3, r.mapSeconds * 1e3, r.baseSeconds * 1e3)
        },
                      Double(KVPredict.prefillFlops(base, promptTokens: n)) / Double(kvp.flops(base, promptTokens: n, maps: maps))))
      }
      var best = [[Double]](repeating: [.infinity, .infinity], count: cases.count)
      defer { for (k, v) in parts.sorted(by: { $0.key < $1.key }) { print("  kvpredict \(k) thread(s), last run: \(v)") } }
      for (t, threads) in [1, 2].enumerated() {
        for m in [base] + auxes.map(\.1) { m.threads = threads }
        for _ in 0..<3 {
          for (i, c) in cases.enumerated() {
            let start = DispatchTime.now().uptimeNanoseconds
            try c.1()
            best[i][t] = Swift.min(best[i][t], Double(DispatchTime.now().uptimeNanoseconds - start) / 1e6)
          }
        }
      }
      for (i, c) in cases.enumerated() {
        print(c.0.padding(toLength: 30, withPad: " ", startingAt: 0)
              + String(format: "  %6d  %8.1f  %9.1f  %14.2f  %14.2f  %12.2f", n, best[i][0], best[i][1], best[0][0] / best[i][0],
                       best[0][1] / best[i][1], c.2))
      }
    }
    // Decoding after the prefill: the base's own steps either way.
    for m in [base] + auxes.map(\.1) { m.threads = 2 }
    let prompt = Array(ids.prefix(512))
    print("decode after a 512-token prefill, 64 greedy tokens, 2 threads (tokens/s, best of 5, interleaved):")
    let decodeArms: [(String, () throws -> (cache: KVCache, logits: [Float]))] = [("base", { try base.prefill(prompt, extra: 64) })]
      + auxes.map { a in
        ("kvpredict, \(a.0)", { let r = try a.2.predict(base, prompt, room: 64); return (r.cache, r.logits) })
      }
    var fastest = [Double](repeating: 0, count: decodeArms.count)
    for _ in 0..<5 {
      for (i, arm) in decodeArms.enumerated() {
        let (cache, logits) = try arm.1()
        var sampler = try Sampler()
        let g = try base.decode(cache: cache, logits: logits, maxTokens: 64, sampler: &sampler)
        fastest[i] = Swift.max(fastest[i], g.decodeTokensPerSecond)
      }
    }
    for (i, arm) in decodeArms.enumerated() {
      print("  " + arm.0.padding(toLength: 28, withPad: " ", startingAt: 0)
            + String(format: "%8.1f  %5.2f of the base's", fastest[i], fastest[i] / fastest[0]))
    }
  }
}
