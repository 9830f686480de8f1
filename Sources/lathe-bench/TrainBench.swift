// Training speed beside PyTorch's, at 1 and 2 threads: SmolLM2 full fine-tuning (seq 256, batch 4, AdamW) and the
// small decoder of notebooks/train-lm.lathe in tokens per second, the Fashion-MNIST CNN in images per second, each
// with its achieved GFLOP/s (6 × parameters × tokens/s for the decoders) beside the sgemm rate at that thread count
// and the peak resident memory of a step. Each (case, threads) runs in a child process started with LATHE_THREADS,
// since the pool's size is fixed per process. PyTorch's figures come from ../shared/tools/torch-bench when its
// virtual environment is already set up (it is never installed from here).

import CBLAS
import Foundation
import LatheData
import LatheModels
import LatheNN
import LatheTensor

enum TrainBench {
  static let probeFlag = "--train-probe"
  static let cases = ["smollm2", "small decoder", "fashion-mnist cnn"]

  static func run(filter: String?) throws {
    guard filter.map({ "train".contains($0) || $0.hasPrefix("train") }) ?? true else { return }
    let load = (try? String(contentsOfFile: "/proc/loadavg", encoding: .utf8))?.split(separator: " ").first ?? "?"
    print("\nlathe-bench: training, steady state after warm-up steps, load average \(load) on \(ProcessInfo.processInfo.activeProcessorCount) cores")
    let torch = pytorch()
    print("row                                    lathe      unit   GFLOP/s  sgemm GFLOP/s  peak RSS   PyTorch   lathe/PyTorch")
    for name in cases {
      for threads in [1, 2] {
        guard let probe = try child(name, threads) else { continue }
        var line = "\(name), \(threads) thread\(threads == 1 ? "" : "s")".padding(toLength: 34, withPad: " ", startingAt: 0)
        line += String(format: "%11.1f ", probe.rate) + probe.unit.padding(toLength: 9, withPad: " ", startingAt: 0)
        line += String(format: " %9.1f %14.1f %7.2f GB", probe.gflops, probe.sgemm, Double(probe.peak) / 1e9)
        if let reference = torch[name]?[threads] {
          line += String(format: " %9.1f %13.0f%%", reference, 100 * probe.rate / reference)
        } else {
          line += "         -              -"
        }
        print(line)
      }
    }
    if torch.isEmpty {
      print("PyTorch: not set up; run ../shared/tools/torch-bench once (it installs torch into ~/.cache/lathe-ref/torch) and rerun")
    } else {
      print("PyTorch: ../shared/tools/torch-bench in this run (random data; the small decoder has no PyTorch row)")
    }
  }

  struct Probe {
    var rate: Double, unit: String, gflops: Double, sgemm: Double, peak: Int
    init?(_ line: String) {
      let f = line.split(separator: " ")
      guard f.count == 5, let r = Double(f[0]), let g = Double(f[2]), let s = Double(f[3]), let p = Int(f[4]) else { return nil }
      rate = r; unit = String(f[1]); gflops = g; sgemm = s; peak = p
    }
  }

  static func child(_ name: String, _ threads: Int) throws -> Probe? {
    let p = Process()
    p.executableURL = URL(fileURLWithPath: CommandLine.arguments[0])
    p.arguments = [probeFlag, name]
    var environment = ProcessInfo.processInfo.environment
    environment["LATHE_THREADS"] = "\(threads)"
    environment["OPENBLAS_NUM_THREADS"] = "\(threads)"
    p.environment = environment
    let pipe = Pipe()
    p.standardOutput = pipe
    try p.run()
    let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    let last = out.split(separator: "\n").last.map(String.init) ?? ""
    guard p.terminationStatus == 0, let probe = Probe(last) else {
      print("\(name), \(threads) threads: error: \(out.suffix(400))")
      return nil
    }
    return probe
  }

  /// The child's side: one case at the process's thread count; prints "rate unit gflops sgemm peakBytes".
  static func probe(_ name: String) -> Int32 {
    do {
      let threads = ThreadPool.shared.threadCount
      BLASThreads.set(threads)
      let sgemm = sgemmRate()
      switch name {
      case "smollm2", "small decoder":
        let model = try LlamaModel(path: try ModelBench.modelPath())
        let decoder: TrainableDecoder
        if name == "smollm2" {
          decoder = try TrainableDecoder(model: model)
        } else {
          let config = try LlamaConfig(vocabularySize: model.config.vocabularySize, dimension: 128, contextLength: 2048,
                                       headCounts: Array(repeating: 4, count: 4), kvHeadCounts: Array(repeating: 2, count: 4),
                                       ffnWidths: Array(repeating: 384, count: 4), headDimension: 32)
          decoder = try TrainableDecoder(config: config, seed: 1, tokenizer: model.tokenizer)
        }
        guard let tokenizer = model.tokenizer else { throw BenchError("the model has no tokenizer") }
        let tokens = tokenizer.encode(try Corpus.text(named: "lee"), parseSpecial: false, addBOS: false)
        var recipe = Recipe()
        recipe.sequence = 256; recipe.batch = 4; recipe.lr = 1e-4
        let (warm, timed) = name == "smollm2" ? (2, 4) : (3, 20)
        recipe.steps = warm + timed
        var rates: [Double] = [], peak = 0
        _ = try LanguageModelTrainer.train(decoder, tokens: tokens, recipe: recipe) { s in
          if s.step > warm { rates.append(s.tokensPerSecond); peak = max(peak, s.peakResidentBytes) }
        }
        // Tokens over the timed steps' total time (as PyTorch's figure is).
        let rate = Double(rates.count) / rates.reduce(0) { $0 + 1 / $1 }
        let params = Double(decoder.parameterCount)
        print(rate, "tokens/s", 6 * params * rate / 1e9, sgemm, peak)
      default:
        let model = Sequential([try Conv2d(1, 16, kernel: 3, padding: 1, seed: 1), Activation(.relu), try Pool2d(.max, kernel: 2),
                                try Conv2d(16, 32, kernel: 3, padding: 1, seed: 2), Activation(.relu), try Pool2d(.max, kernel: 2),
                                Flatten(), try Linear(32 * 7 * 7, 10, seed: 3)])
        let data = try Datasets.fashionMNIST(split: "train").subset(Array(0..<6400))
        let (images, labels) = try data.batch(0..<6400)
        var recipe = Recipe()
        recipe.batch = 64; recipe.lr = 2e-3
        recipe.makeOptimizer = { AdamW(weightDecay: 1e-4) }
        _ = try Trainer.train(model, images: try images.gatheredRows(Array(0..<640)), labels: try labels.gatheredRows(Array(0..<640)), recipe: recipe)
        Memory.resetPeakResident()
        let started = now()
        _ = try Trainer.train(model, images: images, labels: labels, recipe: recipe)
        let seconds = now() - started
        // Forward and backward of the two convolutions and the linear layer: 3 × 2 × MACs per image.
        let conv1: Double = 28 * 28 * 16 * 9, conv2: Double = 14 * 14 * 32 * 16 * 9, dense: Double = 1568 * 10
        let macs = conv1 + conv2 + dense
        let rate = 6400 / seconds
        print(rate, "images/s", 6 * macs * rate / 1e9, sgemm, Memory.peakResident())
      }
      return 0
    } catch {
      print("error: \(error)")
      return 1
    }
  }

  /// cblas_sgemm GFLOP/s on a training-sized product (1024 tokens × 576 → 1536) at the current thread count.
  static func sgemmRate() -> Double {
    let m = 1024, k = 576, n = 1536
    let a = UnsafeMutablePointer<Float>.allocate(capacity: m * k), b = UnsafeMutablePointer<Float>.allocate(capacity: k * n)
    let c = UnsafeMutablePointer<Float>.allocate(capacity: m * n)
    defer { a.deallocate(); b.deallocate(); c.deallocate() }
    a.initialize(repeating: 0.5, count: m * k); b.initialize(repeating: 0.25, count: k * n)
    var best = Double.infinity
    for _ in 0..<12 {
      let t = now()
      cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, Int32(m), Int32(n), Int32(k), 1, a, Int32(k), b, Int32(k), 0, c, Int32(n))
      best = min(best, now() - t)
    }
    return 2.0 * Double(m * k * n) / best / 1e9
  }

  /// PyTorch's rows by case and thread count, from torch-bench when its environment exists.
  static func pytorch() -> [String: [Int: Double]] {
    let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent().deletingLastPathComponent()
    let script = root.deletingLastPathComponent().appendingPathComponent("shared/tools/torch-bench").path
    let cache = ProcessInfo.processInfo.environment["LATHE_REF_CACHE"] ?? (NSHomeDirectory() + "/.cache/lathe-ref")
    guard FileManager.default.isExecutableFile(atPath: script), FileManager.default.fileExists(atPath: cache + "/torch/venv/bin/python") else { return [:] }
    let p = Process()
    p.executableURL = URL(fileURLWithPath: script)
    let pipe = Pipe()
    p.standardOutput = pipe
    p.standardError = FileHandle.nullDevice
    guard (try? p.run()) != nil else { return [:] }
    let out = String(decoding: pipe.fileHandleForReading.readDataToEndOfFile(), as: UTF8.self)
    p.waitUntilExit()
    var rows: [String: [Int: Double]] = [:]
    for line in out.split(separator: "\n") {
      // "fashion-mnist CNN, 1 thread(s): 4507 images/s" and "SmolLM2-shaped decoder (...) training, 2 thread(s): 110 tokens/s, ..."
      guard let colon = line.range(of: " thread(s): ") else { continue }
      let threads = Int(line[..<colon.lowerBound].split(separator: " ").last ?? "") ?? 0
      let value = Double(line[colon.upperBound...].split(separator: " ").first ?? "") ?? 0
      let name = line.hasPrefix("fashion-mnist") ? "fashion-mnist cnn" : (line.hasPrefix("SmolLM2") ? "smollm2" : "")
      if !name.isEmpty, threads > 0, value > 0 { rows[name, default: [:]][threads] = value }
    }
    if let version = out.split(separator: "\n").first { print("PyTorch: \(version)") }
    return rows
  }
}
