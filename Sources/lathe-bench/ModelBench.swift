// Language-model figures for SmolLM2-135M-Instruct (Q4_1): load time and peak resident memory, then prefill and
// decode tokens/s at 1 and 2 threads, beside llama.cpp's llama-bench on the same file when it is on the PATH.
//
// Each row mirrors one llama-bench test, so the two columns measure the same work:
// - prefill N (llama-bench pp N): one forward of N tokens into an empty cache, logits of the last token only.
//   llama-bench feeds random ids; this feeds the first N tokens of the Lee corpus (the cost does not depend on ids).
// - decode 128 (llama-bench tg128): 128 one-token forwards from an empty cache (positions 0..<128), no prompt.
//   llama-bench feeds random ids; this feeds each step's argmax, starting from the corpus's first token.
// - decode 128 at depth D (llama-bench -d D tg128): the same 128 steps after D tokens are in the cache (prefilled
//   outside the timed region; each run rolls the cache back to D).
// - attention N: the fused causal attention kernel alone on SmolLM2's shape (9 query heads, 3 KV heads, head 64)
//   over N tokens, in GFLOP/s counting only the unmasked score entries (4·hd FLOPs each: Q·Kᵀ and P·V), beside
//   cblas_sgemm's rate on the model's FFN projection shape (N × 576 · 576 × 1536) in the same run.
// - decode attention D: one decode step's attention (1 query row, 9 heads) over D cached rows in each of 30 layers'
//   own K and V buffers (189 MB at D = 4096), in GB/s of K and V read, beside a plain SIMD read of those buffers.
// Both keep the best of N runs after one warm-up run; llama-bench's best is the largest of its per-run samples
// (samples_ts), run with -r N. The cache is made outside the timed region, as llama-bench makes its context.
// llama-bench runs one test just before the matching lathe row, so that other load on a shared machine hits the two
// columns of a row at about the same time. Its own defaults stand (f16 KV cache, batch 2048, ubatch 512, mmap);
// Lathe's cache is f32. cpu/wall is the process's CPU time over wall time in the best run: about 1 on 1 thread, up
// to 2 on 2 threads when the other core was free.

import CBLAS
import Foundation
import LatheData
import LatheModels
import LatheTensor

enum ModelBench {
  static let fileName = "SmolLM2-135M-Instruct.Q4_1.gguf"
  static let threadCounts = [1, 2]
  static let promptLengths = [128, 512, 2048, 4096, 8192]
  static let decodeLength = 128
  static let decodeDepths = [0, 4096]
  static let attentionLengths = [4096]
  /// The flag that makes lathe-bench a child process that loads the model once and prints what it cost.
  static let loadProbeFlag = "--llm-load-probe"

  /// `$LATHE_SMOLLM2_GGUF`, else models/ beside each data directory (where `load("smollm2")` looks).
  static func modelPath() throws -> String {
    if let env = ProcessInfo.processInfo.environment["LATHE_SMOLLM2_GGUF"], !env.isEmpty {
      guard FileManager.default.fileExists(atPath: env) else { throw BenchError("$LATHE_SMOLLM2_GGUF names \(env), which is not there") }
      return env
    }
    let folders = Datasets.dataDirectories().map { URL(fileURLWithPath: $0).deletingLastPathComponent().appendingPathComponent("models").path }
    if let folder = folders.first(where: { FileManager.default.fileExists(atPath: "\($0)/\(fileName)") }) { return "\(folder)/\(fileName)" }
    throw BenchError("models/\(fileName) is not there (looked in \(folders.joined(separator: ", "))); run scripts/setup to fetch it")
  }

  static func run(repeatCount: Int, filter: String?) throws {
    func wanted(_ row: String) -> Bool { filter.map { $0 == "llm" || row.contains($0) } ?? true }
    func decodeName(_ depth: Int) -> String { "decode \(decodeLength)" + (depth > 0 ? " at depth \(depth)" : "") }
    let modelRows = promptLengths.map { "prefill \($0)" } + decodeDepths.map(decodeName)
    let attentionRows = attentionLengths.map { "attention \($0)" } + decodeDepths.filter { $0 > 0 }.map { "decode attention \($0)" }
    guard (["load"] + modelRows + attentionRows).contains(where: wanted) else { return }
    // The load average says how many cores other work was using: on a shared machine it explains a noisy run.
    let load = ((try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8)) ?? "").split(separator: " ").first ?? "?"
    print("\nlathe-bench: language model, best of \(repeatCount) after a warm-up, pool of \(ThreadPool.shared.threadCount) threads, "
          + "load average \(load) on \(ProcessInfo.processInfo.activeProcessorCount) cores")
    let path: String
    do { path = try modelPath() } catch { print("llm: skipped: \(error)"); return }
    if wanted("load") { try printLoad(path: path, repeatCount: repeatCount) }
    if attentionRows.contains(where: wanted) { printAttention(repeatCount: repeatCount, wanted: wanted) }
    if attentionRows.contains(where: { $0.hasPrefix("decode") && wanted($0) }) {
      try printDecodeAttention(repeatCount: repeatCount, wanted: wanted)
    }
    guard modelRows.contains(where: wanted) else { return }

    let model = try LlamaModel(path: path)
    guard let tokenizer = model.tokenizer else { throw BenchError("\(fileName) has no tokenizer") }
    // 64,000 characters of news text are more than 8,192 tokens' worth; only the first N tokens are used.
    let text = try Corpus.text(named: "lee").prefix(64_000)
    let corpus = tokenizer.encode(String(text), parseSpecial: false, addBOS: false)
    guard corpus.count >= promptLengths.max()! else { throw BenchError("the Lee corpus gave only \(corpus.count) tokens") }
    var version: String? = nil, missing: BenchError? = nil
    func reference(prompt: Int, generated: Int, depth: Int = 0, threads: Int) -> Result<LlamaBench.Figure, BenchError> {
      let r = LlamaBench.run(path: path, prompt: prompt, generated: generated, depth: depth, threads: threads,
                             repeatCount: repeatCount)
      switch r { case .success(let f): version = f.version; case .failure(let e): missing = e }
      return r
    }

    print("row".padding(toLength: 38, withPad: " ", startingAt: 0) + "  lathe tok/s  cpu/wall  llama.cpp tok/s (avg)  lathe/llama.cpp")
    for threads in threadCounts {
      model.threads = threads
      BLASThreads.set(threads)
      for n in promptLengths where wanted("prefill \(n)") {
        let prompt = Array(corpus.prefix(n))
        let figure = reference(prompt: n, generated: 0, threads: threads)
        let (t, cpu) = try best(repeatCount) {
          let cache = try model.makeCache(capacity: n)
          var logits: [Float] = []
          let r = try timed { logits = try model.forward(prompt, cache: cache) }
          _ = try check(logits, model)
          return r
        }
        row("prefill \(n), \(threads) thread\(threads == 1 ? "" : "s")", Double(n) / t, cpu / t, figure)
      }
      for depth in decodeDepths where wanted(decodeName(depth)) {
        let figure = reference(prompt: 0, generated: decodeLength, depth: depth, threads: threads)
        let cache = try model.makeCache(capacity: depth + decodeLength)
        if depth > 0 { _ = try model.forward(Array(corpus.prefix(depth)), cache: cache) }
        let (t, cpu) = try best(repeatCount) {
          cache.truncate(to: depth)
          var logits: [Float] = []
          let r = try timed {
            var token = corpus[depth]
            for _ in 0..<decodeLength { logits = try model.forward([token], cache: cache); token = argmax(logits) }
          }
          _ = try check(logits, model)
          return r
        }
        row("\(decodeName(depth)), \(threads) thread\(threads == 1 ? "" : "s")", Double(decodeLength) / t, cpu / t, figure)
      }
    }
    BLASThreads.set(ThreadPool.shared.threadCount)
    if let version {
      print("llama.cpp: \(version), `llama-bench -m \(path) -p N -n 0 | -p 0 -n \(decodeLength) [-d D] -t T -r \(repeatCount) -o json`, "
            + "best and mean of its \(repeatCount) runs")
    }
    if version == nil, let e = missing {
      print("llama.cpp: \(e.message). Earlier measurements of llama-bench on this file (not this run; a quiet 2-core machine):")
      print("  prefill 128: 182 tok/s on 1 thread, 339-353 on 2; prefill 512: 170 and 332-346; decode 128: 86 and 134-143")
    }
  }

  // MARK: attention

  /// The fused attention kernel on SmolLM2's shape at each length and thread count, beside sgemm's rate.
  static func printAttention(repeatCount: Int, wanted: (String) -> Bool) {
    let heads = 9, kvHeads = 3, hd = 64, d = 576, ffn = 1536
    print("row".padding(toLength: 38, withPad: " ", startingAt: 0) + "  attention GFLOP/s (unmasked)  sgemm GFLOP/s  attention/sgemm")
    for n in attentionLengths where wanted("attention \(n)") {
      func noise(_ count: Int) -> [Float] { (0..<count).map { Float(($0 &* 2_654_435_761) % 2001) / 1000 - 1 } }
      let q = noise(n * heads * hd), k = noise(n * kvHeads * hd), v = noise(n * kvHeads * hd)
      var out = [Float](repeating: 0, count: n * heads * hd)
      let x = noise(n * d), w = noise(ffn * d)
      var y = [Float](repeating: 0, count: n * ffn)
      for threads in threadCounts {
        let attention = bestSeconds(repeatCount) {
          q.withUnsafeBufferPointer { qp in k.withUnsafeBufferPointer { kp in v.withUnsafeBufferPointer { vp in
            out.withUnsafeMutableBufferPointer { op in
              FusedAttention.causal(queries: qp.baseAddress!, queryStride: heads * hd, keys: kp.baseAddress!,
                                    values: vp.baseAddress!, kvStride: kvHeads * hd, output: op.baseAddress!,
                                    outputStride: heads * hd, rows: n, start: 0, heads: heads, kvHeads: kvHeads,
                                    headDim: hd, threads: threads)
            }
          } } }
        }
        BLASThreads.set(threads)
        let gemm = bestSeconds(repeatCount) {
          cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(n), Int32(ffn), Int32(d), 1, x, Int32(d), w, Int32(d),
                      0, &y, Int32(ffn))
        }
        let attentionFlops = 4.0 * Double(hd) * Double(heads) * Double(n) * Double(n + 1) / 2
        let gemmFlops = 2.0 * Double(n) * Double(ffn) * Double(d)
        let a = attentionFlops / attention / 1e9, g = gemmFlops / gemm / 1e9
        print("attention \(n), \(threads) thread\(threads == 1 ? "" : "s")".padding(toLength: 38, withPad: " ", startingAt: 0)
              + String(format: "  %28.1f  %13.1f  %14.0f%%", a, g, 100 * a / g))
      }
    }
    BLASThreads.set(ThreadPool.shared.threadCount)
  }

  nonisolated(unsafe) static var readSink: Float = 0

  /// One decode step's attention on SmolLM2's shape over a cache of D tokens in all 30 layers (each layer's K and V
  /// its own [D, 192] buffers, 189 MB in all at D = 4096, so they stream from memory as in decoding), in GB/s of K
  /// and V read, beside a plain SIMD read of the same buffers over the same threads.
  static func printDecodeAttention(repeatCount: Int, wanted: (String) -> Bool) throws {
    let layers = 30, heads = 9, kvHeads = 3, hd = 64, width = kvHeads * hd
    print("row".padding(toLength: 38, withPad: " ", startingAt: 0) + "  attention GB/s of K, V  read GB/s  attention/read")
    for depth in decodeDepths where depth > 0 && wanted("decode attention \(depth)") {
      let count = depth * width
      // Allocated as KVCache allocates each layer's keys and values (Storage).
      let storages = try (0..<(2 * layers)).map { _ in try Storage(byteCount: (depth + decodeLength) * width * 4, op: "bench", zeroed: false) }
      let caches = storages.enumerated().map { c, storage -> UnsafeMutablePointer<Float> in
        let p = storage.floats()
        for i in 0..<count { p[i] = Float((i &* 2_654_435_761 &+ c) % 2001) / 1000 - 1 }
        return p
      }
      defer { withExtendedLifetime(storages) {} }               // the pointers above live as long as their storage
      let q = (0..<(heads * hd)).map { Float(($0 &* 40_503) % 2001) / 1000 - 1 }
      var out = [Float](repeating: 0, count: heads * hd)
      let bytes = Double(2 * layers * count * 4)
      for threads in threadCounts {
        let attention = bestSeconds(repeatCount) {
          q.withUnsafeBufferPointer { qp in out.withUnsafeMutableBufferPointer { op in
            for l in 0..<layers {
              FusedAttention.causal(queries: qp.baseAddress!, queryStride: heads * hd, keys: caches[2 * l],
                                    values: caches[2 * l + 1], kvStride: width, output: op.baseAddress!,
                                    outputStride: heads * hd, rows: 1, start: depth - 1, heads: heads, kvHeads: kvHeads,
                                    headDim: hd, threads: threads)
            }
          } }
        }
        nonisolated(unsafe) let buffers = caches
        let read = bestSeconds(repeatCount) {
          let chunks = threads * 4
          let body: (Int) -> Void = { item in
            let p = UnsafeRawPointer(buffers[item / chunks]), per = count / chunks * 4
            var a = SIMD16<Float>(), b = SIMD16<Float>()
            var at = (item % chunks) * per
            let end = at + per
            while at + 128 <= end {
              a += p.loadUnaligned(fromByteOffset: at, as: SIMD16<Float>.self)
              b += p.loadUnaligned(fromByteOffset: at + 64, as: SIMD16<Float>.self)
              at += 128
            }
            readSink = (a + b).sum()                          // kept, so the loads are not optimised away
          }
          if threads == 1 { for item in 0..<(buffers.count * chunks) { body(item) } }
          else { ThreadPool.shared.parallelFor(buffers.count * chunks, body) }
        }
        let a = bytes / attention / 1e9, r = bytes / read / 1e9
        print("decode attention \(depth), \(threads) thread\(threads == 1 ? "" : "s")".padding(toLength: 38, withPad: " ", startingAt: 0)
              + String(format: "  %22.1f  %9.1f  %13.0f%%", a, r, 100 * a / r))
      }
    }
  }

  /// The fastest of `repeatCount` runs of `body` after one warm-up, in seconds.
  static func bestSeconds(_ repeatCount: Int, _ body: () -> Void) -> Double {
    body()
    var fastest = Double.infinity
    for _ in 0..<repeatCount { let t0 = now(); body(); fastest = Swift.min(fastest, now() - t0) }
    return fastest
  }

  // MARK: load

  /// Loads the model in fresh child processes (so the peak is the load's own), keeping the fastest load and the
  /// largest peak.
  static func printLoad(path: String, repeatCount: Int) throws {
    let exe = (try? FileManager.default.destinationOfSymbolicLink(atPath: "/proc/self/exe")) ?? CommandLine.arguments[0]
    var probes: [LoadProbe] = []
    for _ in 0..<repeatCount {
      let p = Process()
      p.executableURL = URL(fileURLWithPath: exe)
      p.arguments = [loadProbeFlag, path]
      let pipe = Pipe()
      p.standardOutput = pipe
      try p.run()
      let data = pipe.fileHandleForReading.readDataToEndOfFile()
      p.waitUntilExit()
      let out = String(decoding: data, as: UTF8.self)
      guard p.terminationStatus == 0, let probe = LoadProbe(out) else {
        throw BenchError("load probe exited with status \(p.terminationStatus): \(out.trimmingCharacters(in: .whitespacesAndNewlines))")
      }
      probes.append(probe)
    }
    let seconds = probes.map(\.seconds).min()!, peak = probes.map(\.peakGrowth).max()!, after = probes.map(\.rssAfter).max()!
    let fileBytes = (try? FileManager.default.attributesOfItem(atPath: path)[.size] as? Int) ?? 0
    print(String(format: "load smollm2: %.3f s (fastest of %d fresh processes); resident memory: peak +%.1f MB during the load (VmHWM), "
                 + "%.1f MB after it (VmRSS, whole process); the file is %.1f MB", seconds, probes.count, mb(peak), mb(after), mb(fileBytes)))
  }

  struct LoadProbe {
    var seconds: Double, peakGrowth: Int, rssAfter: Int
    /// Parses the child's one line: "seconds peakGrowthBytes rssAfterBytes".
    init?(_ line: String) {
      let f = line.split(whereSeparator: \.isWhitespace)
      guard f.count == 3, let s = Double(f[0]), let g = Int(f[1]), let r = Int(f[2]) else { return nil }
      seconds = s; peakGrowth = g; rssAfter = r
    }
  }

  /// The child's side: resets the peak (clear_refs 5, Linux 4.0+), loads once, prints one line for LoadProbe.
  static func loadProbe(path: String) -> Int32 {
    if let h = FileHandle(forWritingAtPath: "/proc/self/clear_refs") { h.write(Data("5".utf8)); try? h.close() }
    let before = memoryStatus()
    let started = now()
    do {
      let model = try LlamaModel(path: path)
      let seconds = now() - started
      let after = memoryStatus()
      // Without the reset the old peak may stand above the starting RSS; growth is then measured from that peak.
      let base = max(before.rss, before.peak)
      print(seconds, max(0, after.peak - base), after.rss)
      withExtendedLifetime(model) {}
      return 0
    } catch {
      print("error: \(error)")
      return 1
    }
  }

  /// VmHWM and VmRSS of this process, in bytes.
  static func memoryStatus() -> (peak: Int, rss: Int) {
    guard let status = try? String(contentsOfFile: "/proc/self/status", encoding: .utf8) else { return (0, 0) }
    func field(_ name: String) -> Int {
      guard let line = status.split(separator: "\n").first(where: { $0.hasPrefix(name + ":") }) else { return 0 }
      return (Int(line.split(whereSeparator: \.isWhitespace).dropFirst().first ?? "") ?? 0) * 1024
    }
    return (field("VmHWM"), field("VmRSS"))
  }

  // MARK: timing

  /// Wall and process CPU seconds of `body` (CPU over wall shows how many cores it kept busy).
  static func timed(_ body: () throws -> Void) rethrows -> (wall: Double, cpu: Double) {
    let c0 = cpuSeconds(), t0 = now()
    try body()
    let t1 = now(), c1 = cpuSeconds()
    return (t1 - t0, c1 - c0)
  }

  /// One warm-up, then the fastest of `repeatCount` runs and its CPU seconds.
  static func best(_ repeatCount: Int, _ body: () throws -> (wall: Double, cpu: Double)) rethrows -> (Double, Double) {
    _ = try body()
    var bestRun = (Double.infinity, 0.0)
    for _ in 0..<repeatCount {
      let r = try body()
      if r.wall < bestRun.0 { bestRun = (r.wall, r.cpu) }
    }
    return bestRun
  }

  static func cpuSeconds() -> Double {
    var usage = rusage()
    getrusage(__rusage_who_t(RUSAGE_SELF.rawValue), &usage)
    func s(_ t: timeval) -> Double { Double(t.tv_sec) + Double(t.tv_usec) / 1e6 }
    return s(usage.ru_utime) + s(usage.ru_stime)
  }

  /// The answer check: one finite logit per vocabulary entry.
  static func check(_ logits: [Float], _ model: LlamaModel) throws -> [Float] {
    guard logits.count == model.config.vocabularySize, logits.allSatisfy(\.isFinite) else {
      throw BenchError("forward gave \(logits.count) logits (\(logits.filter { !$0.isFinite }.count) not finite), "
                       + "expected \(model.config.vocabularySize) finite")
    }
    return logits
  }

  static func argmax(_ xs: [Float]) -> Int {
    var best = 0
    for i in xs.indices where xs[i] > xs[best] { best = i }
    return best
  }

  static func mb(_ bytes: Int) -> Double { Double(bytes) / 1_048_576 }

  static func row(_ name: String, _ tokensPerSecond: Double, _ busy: Double, _ reference: Result<LlamaBench.Figure, BenchError>) {
    var s = name.padding(toLength: 38, withPad: " ", startingAt: 0) + String(format: "%13.1f %9.2f", tokensPerSecond, busy)
    switch reference {
    case .success(let f): s += String(format: "  %11.1f (%6.1f) %15.0f%%", f.best, f.mean, 100 * tokensPerSecond / f.best)
    case .failure(let e): s += "  \(e.message)"
    }
    print(s)
  }
}

struct BenchError: Error, CustomStringConvertible {
  let message: String
  init(_ message: String) { self.message = message }
  var description: String { message }
}

/// llama.cpp's llama-bench, found on the PATH and run on the same file; never needed to build or test Lathe.
enum LlamaBench {
  struct Figure { var best: Double, mean: Double, version: String }

  static func executable() -> String? {
    let path = ProcessInfo.processInfo.environment["PATH"] ?? ""
    return path.split(separator: ":").map { "\($0)/llama-bench" }.first { FileManager.default.isExecutableFile(atPath: $0) }
  }

  /// Runs one test, `llama-bench -m path -p prompt -n generated -t threads -r N -o json` (a zero count is no test),
  /// and reads its samples.
  static func run(path: String, prompt: Int, generated: Int, depth: Int = 0, threads: Int, repeatCount: Int) -> Result<Figure, BenchError> {
    guard let exe = executable() else { return .failure(BenchError("llama-bench not on PATH")) }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: exe)
    p.arguments = ["-m", path, "-p", "\(prompt)", "-n", "\(generated)", "-t", "\(threads)", "-r", "\(repeatCount)", "-o", "json"]
      + (depth > 0 ? ["-d", "\(depth)"] : [])
    let out = Pipe()
    p.standardOutput = out
    let errorLog = FileManager.default.temporaryDirectory.appendingPathComponent("lathe-bench-llama-\(getpid()).log")
    _ = FileManager.default.createFile(atPath: errorLog.path, contents: nil)
    defer { try? FileManager.default.removeItem(at: errorLog) }
    p.standardError = try? FileHandle(forWritingTo: errorLog)
    do { try p.run() } catch { return .failure(BenchError("llama-bench did not start: \(error)")) }
    let data = out.fileHandleForReading.readDataToEndOfFile()
    p.waitUntilExit()
    guard p.terminationStatus == 0 else {
      let log = (try? String(contentsOf: errorLog, encoding: .utf8)) ?? ""
      return .failure(BenchError("llama-bench exited with status \(p.terminationStatus): \(log.split(separator: "\n").last ?? "")"))
    }
    let tests = (try? JSONSerialization.jsonObject(with: data)) as? [[String: Any]] ?? []
    guard let t = tests.first(where: { $0["n_prompt"] as? Int == prompt && $0["n_gen"] as? Int == generated
                                       && $0["n_threads"] as? Int == threads && ($0["n_depth"] as? Int ?? 0) == depth }),
          let mean = (t["avg_ts"] as? NSNumber)?.doubleValue else {
      return .failure(BenchError("llama-bench printed no pp\(prompt)/tg\(generated) test for \(threads) threads"))
    }
    let samples = (t["samples_ts"] as? [NSNumber])?.map(\.doubleValue) ?? []
    let version = "llama-bench build \(t["build_number"].map { "\($0)" } ?? "?") (commit \(t["build_commit"] as? String ?? "?"))"
    return .success(Figure(best: samples.max() ?? mean, mean: mean, version: version))
  }
}
